"""Labeling: projects over dataset versions, tasks handed out by clearance with blind overlap,
gold, calibration and review, and exports back into dataset versions.

The pieces::

    LabelProjects(session)        create / list / get / tasks / revise_schema / import_predictions
                                  / import_classifier / order / create_from_items
    next_task(session, project)   the next task the subject may read (drafts first); claimed
    submit(session, task, value)  a label (or a draft), marked with the join of record and typed
    skip(session, task, reason)   skip or flag (``flag=True``) a task handed out
    next_review / accept / fix / reject     the reviewer queue; every replica kept
    project_stats / annotator_quality       progress, gold accuracy with Wilson intervals
    export_dataset / export_file / export_labels    labels out, as a dataset version or a file
"""

from garrison.label._export import (
    FILE_FORMATS,
    RecordLabels,
    export_dataset,
    export_file,
    export_labels,
)
from garrison.label._projects import LabelProject, LabelProjects, ProjectSettings
from garrison.label._quality import annotator_quality, project_stats, resume, wilson_interval
from garrison.label._queue import my_labels, next_task, skip, submit
from garrison.label._review import ReviewItem, accept, fix, next_review, reject, task_labels
from garrison.label._tasks import TASK_TYPES, LabelView, TaskView, agree, check_value

__all__ = [
    "FILE_FORMATS",
    "TASK_TYPES",
    "LabelProject",
    "LabelProjects",
    "LabelView",
    "ProjectSettings",
    "RecordLabels",
    "ReviewItem",
    "TaskView",
    "accept",
    "agree",
    "annotator_quality",
    "check_value",
    "export_dataset",
    "export_file",
    "export_labels",
    "fix",
    "my_labels",
    "next_review",
    "next_task",
    "project_stats",
    "reject",
    "resume",
    "skip",
    "submit",
    "task_labels",
    "wilson_interval",
]

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
    agreement_report / project_agreement    agreement with intervals; majority vs Dawid–Skene
    handed_task(session, task_id)           a task handed to the subject, with their replica
    export_dataset / export_file / export_labels    labels out, as a dataset version or a file

The algorithms are pure functions over plain values: agreement between annotators
(:mod:`garrison.label.agreement`), aggregation of replicas (:mod:`garrison.label.aggregate`),
active learning (:mod:`garrison.label.active`), labeling functions
(:mod:`garrison.label.functions`) and label export formats (:mod:`garrison.label.formats`).
"""

from garrison.label._agreement_report import (
    AGGREGATION_METHODS,
    Agreement,
    aggregate_values,
    agreement_report,
    project_agreement,
)
from garrison.label._export import (
    FILE_FORMATS,
    RecordLabels,
    export_dataset,
    export_file,
    export_labels,
)
from garrison.label._projects import LabelProject, LabelProjects, ProjectSettings
from garrison.label._quality import annotator_quality, project_stats, resume, wilson_interval
from garrison.label._queue import handed_task, my_labels, next_task, skip, submit
from garrison.label._review import ReviewItem, accept, fix, next_review, reject, task_labels
from garrison.label._tasks import TASK_TYPES, LabelView, TaskView, agree, check_value
from garrison.label.active import SeedRun, Simulation, next_batch, simulate, uncertainty
from garrison.label.aggregate import (
    DawidSkene,
    GoldAccuracy,
    MajorityVote,
    compare_on_gold,
    dawid_skene,
    majority_vote,
)
from garrison.label.agreement import (
    BoxMatch,
    Estimate,
    SpanScores,
    alpha_interval,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    match_boxes,
    span_f1,
    span_scores,
    span_token_alpha,
    span_token_units,
    tokenize,
    with_interval,
)
from garrison.label.formats import (
    EXPORTERS,
    KINDS,
    LabelRecord,
    coco_dataset,
    conll_text,
    export_records,
    file_marking,
    label_studio_tasks,
    preference_lines,
    read_label_studio,
    read_label_studio_tasks,
    records_from_rows,
    spacy_docs,
    write_labels,
    yolo_files,
)
from garrison.label.functions import (
    LabelingFunction,
    LfReport,
    RuleStats,
    Votes,
    apply_functions,
    lf_report,
    load_functions,
    parse_functions,
)

__all__ = [
    "AGGREGATION_METHODS",
    "EXPORTERS",
    "FILE_FORMATS",
    "KINDS",
    "TASK_TYPES",
    "Agreement",
    "BoxMatch",
    "DawidSkene",
    "Estimate",
    "GoldAccuracy",
    "LabelProject",
    "LabelProjects",
    "LabelRecord",
    "LabelView",
    "LabelingFunction",
    "LfReport",
    "MajorityVote",
    "ProjectSettings",
    "RecordLabels",
    "ReviewItem",
    "RuleStats",
    "SeedRun",
    "Simulation",
    "SpanScores",
    "TaskView",
    "Votes",
    "accept",
    "aggregate_values",
    "agree",
    "agreement_report",
    "alpha_interval",
    "annotator_quality",
    "apply_functions",
    "check_value",
    "coco_dataset",
    "cohen_kappa",
    "compare_on_gold",
    "conll_text",
    "dawid_skene",
    "export_dataset",
    "export_file",
    "export_labels",
    "export_records",
    "file_marking",
    "fix",
    "fleiss_kappa",
    "handed_task",
    "krippendorff_alpha",
    "label_studio_tasks",
    "lf_report",
    "load_functions",
    "majority_vote",
    "match_boxes",
    "my_labels",
    "next_batch",
    "next_review",
    "next_task",
    "parse_functions",
    "preference_lines",
    "project_agreement",
    "project_stats",
    "read_label_studio",
    "read_label_studio_tasks",
    "records_from_rows",
    "reject",
    "resume",
    "simulate",
    "skip",
    "spacy_docs",
    "span_f1",
    "span_scores",
    "span_token_alpha",
    "span_token_units",
    "submit",
    "task_labels",
    "tokenize",
    "uncertainty",
    "wilson_interval",
    "with_interval",
    "write_labels",
    "yolo_files",
]

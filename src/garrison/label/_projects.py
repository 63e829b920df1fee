"""Labeling projects: one task type over the records of one dataset version.

A steward creates a project from a dataset version they may read; each record becomes a task
(a reference: record id, never its text) marked with the record's marking, so an annotator is
handed, shown and counted only the tasks they may read. Records with a known answer (a dataset
field, or a mapping given at creation) become gold tasks, hidden in the stream at
``gold_rate``; the first ``calibration`` of them form the batch a new annotator must pass.

The project itself (name, schema, instructions) is marked with what the steward declares, by
default the lowest marking among its records when there is one (else the steward must say).
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from garrison.core.errors import InvalidInput, NotFound
from garrison.datasets import Datasets
from garrison.label._tasks import check_schema, check_value, snapshot_records
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, dominates, join
from garrison.security.policy import Action
from garrison.store import labels as store
from garrison.store.models import LabelProjectRow
from garrison.store.paging import Cursor, Page, PageSpec, check_limit
from garrison.store.session import Session

__all__ = ["LabelProject", "LabelProjects", "ProjectSettings"]


@dataclass(frozen=True)
class ProjectSettings:
    """How a project hands out and checks work."""

    #: Annotators per production task (blind to each other until review).
    overlap: int = 1
    #: Share of handed-out tasks that are gold (when gold tasks remain for the annotator).
    gold_rate: float = 0.0
    #: Calibration tasks a new annotator answers before production, and the accuracy to pass.
    calibration: int = 0
    calibration_threshold: float = 0.8
    #: Share of submitted production labels sampled into the review queue.
    review_rate: float = 0.0
    #: An annotator whose gold accuracy falls below this (after ``min_gold`` gold answers) is
    #: paused; 0 never pauses.
    pause_threshold: float = 0.0
    min_gold: int = 5

    def check(self) -> ProjectSettings:
        if self.overlap < 1 or self.overlap > 50:
            raise InvalidInput("A project's overlap is between 1 and 50 annotators per task.")
        for name in ("gold_rate", "review_rate", "calibration_threshold", "pause_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                raise InvalidInput(f"A project's {name.replace('_', ' ')} is between 0 and 1.")
        if self.calibration < 0 or self.min_gold < 1:
            raise InvalidInput("Calibration is a count of tasks, min_gold at least 1.")
        return self


@dataclass(frozen=True)
class LabelProject:
    """A project as a reader who may read it sees it."""

    id: str
    name: str
    dataset_version_id: str
    snapshot: str
    task_type: str
    schema: dict[str, Any]
    schema_version: int
    settings: ProjectSettings
    marking: Marking
    created_by: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "dataset": self.dataset_version_id,
            "task_type": self.task_type,
            "schema": self.schema,
            "schema_version": self.schema_version,
            "settings": asdict(self.settings),
            "marking": self.marking.banner(),
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


def project_from_row(row: LabelProjectRow, marking: Marking) -> LabelProject:
    return LabelProject(
        row.id,
        row.name,
        row.dataset_version_id,
        row.snapshot,
        row.task_type,
        row.schema,
        row.schema_version,
        ProjectSettings(**row.settings),
        marking,
        row.created_by,
        row.created_at.isoformat(),
    )


def load_project(session: Session, name: str, audit_action: AuditAction) -> LabelProject:
    """A readable project by name; NotFound (audited) otherwise, like a missing one."""
    with session.workspace.catalog.transaction() as orm:
        found = store.project_rows(session, orm, name=name)
    if not found:
        session.audit(
            audit_action,
            object_id=name[:128],
            decision="deny",
            reason="no such project or not readable",
        )
        raise NotFound(f"No labeling project {name}.")
    return project_from_row(*found[0])


def _lowest(markings: Iterable[Marking]) -> Marking | None:
    distinct = list(dict.fromkeys(markings))
    for candidate in distinct:
        if all(dominates(m, candidate) for m in distinct):
            return candidate
    return None


class LabelProjects:
    """Labeling projects through a session: reads filtered by marking, changes audited."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        name: str,
        dataset_ref: str,
        task_type: str,
        schema: Mapping[str, Any],
        *,
        overlap: int = 1,
        gold: str | Mapping[str, Any] | None = None,
        gold_rate: float = 0.0,
        calibration: int = 0,
        calibration_threshold: float = 0.8,
        review_rate: float = 0.0,
        pause_threshold: float = 0.0,
        min_gold: int = 5,
        marking: str | None = None,
        records: Mapping[str, Marking] | None = None,
    ) -> LabelProject:
        """A project over a readable dataset version (stewards); audited.

        ``gold`` names a record field holding known answers, or maps record ids to them.
        ``records`` restricts the project to these record ids, each marked at least with the
        marking given (see :meth:`create_from_items`). ``marking`` is the project's own (its
        name, schema and instructions); it must be one the steward may read.
        """
        session = self.session
        session.require(Action.DATASET_CREATE, AuditAction.LABEL_PROJECT_CREATE, object_id=name)
        if not name or len(name) > 128 or "@" in name or name != name.strip():
            raise InvalidInput("A project name is 1-128 characters, without '@'.")
        canonical = check_schema(task_type, schema)
        settings = ProjectSettings(
            overlap=overlap,
            gold_rate=gold_rate,
            calibration=calibration,
            calibration_threshold=calibration_threshold,
            review_rate=review_rate,
            pause_threshold=pause_threshold,
            min_gold=min_gold,
        ).check()
        datasets = Datasets(session)
        version = datasets.get(dataset_ref)
        snapshot = datasets.records(version)
        if records is not None:
            known = {r.id for r in snapshot}
            missing = sorted(set(records) - known)
            if missing:
                raise InvalidInput(f"Record {missing[0]} is not in dataset {version.name}.")
            snapshot = [r for r in snapshot if r.id in records]
        if not snapshot:
            raise InvalidInput("The project would have no tasks: the selection is empty.")
        tasks: list[dict[str, Any]] = []
        gold_count = 0
        for record in snapshot:
            record_marking = record.detail
            if records is not None:
                record_marking = join(record_marking, records[record.id])
            answer = self._gold_of(record.id, record.fields, gold)
            kind = "production"
            if answer is not None:
                answer = check_value(task_type, canonical, answer, record.text)
                kind = "calibration" if gold_count < calibration else "gold"
                gold_count += 1
            tasks.append(
                {"record_id": record.id, "kind": kind, "marking": record_marking, "gold": answer}
            )
        if calibration and gold_count < calibration:
            raise InvalidInput(
                f"A calibration batch of {calibration} needs that many gold records; "
                f"found {gold_count}."
            )
        own = self._project_marking(marking, [t["marking"] for t in tasks])
        project_id = store.add_project(
            session,
            name=name,
            dataset_version_id=version.id,
            snapshot=version.snapshot,
            task_type=task_type,
            schema=canonical,
            settings=asdict(settings),
            marking=own,
            tasks=tasks,
        )
        with session.workspace.catalog.transaction() as orm:
            row, found = store.project_rows(session, orm, project_id=project_id)[0]
        return project_from_row(row, found)

    def create_from_items(
        self,
        name: str,
        dataset_ref: str,
        task_type: str,
        schema: Mapping[str, Any],
        items: Iterable[tuple[str, Marking | str]],
        **options: Any,
    ) -> LabelProject:
        """A project over chosen records: ``(record id, marking)`` pairs (an evaluation run's
        failed items), each task marked with the join of its record's marking and the one
        given (the item's, as evaluated), so nothing is ever marked lower than it was seen."""
        chosen: dict[str, Marking] = {}
        for record_id, marking in items:
            parsed = self.session.parse_marking(marking) if isinstance(marking, str) else marking
            chosen[record_id] = join(chosen[record_id], parsed) if record_id in chosen else parsed
        if not chosen:
            raise InvalidInput("The project would have no tasks: no items were given.")
        return self.create(name, dataset_ref, task_type, schema, records=chosen, **options)

    @staticmethod
    def _gold_of(
        record_id: str, fields: Mapping[str, Any], gold: str | Mapping[str, Any] | None
    ) -> Any:
        if gold is None:
            return None
        if isinstance(gold, str):
            value = fields.get(gold)
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    return json.loads(value)
                except ValueError:
                    return value
            return value
        return gold.get(record_id)

    def _project_marking(self, declared: str | None, task_markings: list[Marking]) -> Marking:
        if declared is not None:
            marking = self.session.parse_marking(declared)
        else:
            found = _lowest(task_markings)
            if found is None:
                raise InvalidInput(
                    "The records' markings have no lowest one: give the project's marking "
                    "(--marking)."
                )
            marking = found
        if not self.session.can_read(marking):
            raise InvalidInput(
                f"The project's marking {marking.banner()} is above what you may read."
            )
        return marking

    # -- reading ---------------------------------------------------------------------------------

    def get(self, name: str) -> LabelProject:
        """One readable project; NotFound otherwise (same answer as for a missing one)."""
        project = load_project(self.session, name, AuditAction.LABEL_PROJECT_READ)
        self.session.audit(
            AuditAction.LABEL_PROJECT_READ,
            object_id=project.id,
            object_marking=project.marking.banner(),
        )
        return project

    def list(self) -> builtins.list[LabelProject]:
        """Every readable project, by name."""
        with self.session.workspace.catalog.transaction() as orm:
            found = [project_from_row(r, m) for r, m in store.project_rows(self.session, orm)]
        self.session.audit(AuditAction.LABEL_PROJECT_LIST, details={"count": len(found)})
        return found

    def tasks(
        self, name: str, *, cursor: int = -1, limit: int = 50
    ) -> tuple[builtins.list[dict[str, Any]], int | None]:
        """A page of the project's readable tasks (no text: ids, markings, progress) and the
        cursor of the next page (None at the end). Kinds show only to stewards and reviewers."""
        project = load_project(self.session, name, AuditAction.LABEL_PROJECT_READ)
        if limit < 1 or limit > 1000:
            raise InvalidInput("A page holds 1 to 1000 tasks.")
        insider = _insider(self.session)
        with self.session.workspace.catalog.transaction() as orm:
            rows = store.task_page(self.session, orm, project.id, after_seq=cursor, limit=limit)
        page = []
        for row, marking in rows:
            item = {
                "id": row.id,
                "record_id": row.record_id,
                "marking": marking.banner(),
                "submitted": row.submitted,
                "complete": row.submitted >= project.settings.overlap,
            }
            if insider:
                item["kind"] = row.kind
            page.append(item)
        self.session.audit(
            AuditAction.LABEL_PROJECT_READ, object_id=project.id, details={"page": len(page)}
        )
        following = rows[-1][0].seq if len(rows) == limit else None
        return page, following

    def task_page(self, name: str, spec: PageSpec) -> Page[dict[str, Any]]:
        """:meth:`tasks` as a page of the listing shape: an opaque cursor and the total of
        readable tasks."""
        limit = check_limit(spec.limit)
        after = -1
        if spec.cursor:
            cursor = Cursor.decode(spec.cursor, "label-tasks")
            if cursor.before or not cursor.record_id.isdigit():
                raise InvalidInput(
                    "The cursor is not one this listing gave; start again without it."
                )
            after = int(cursor.record_id)
        items, _ = self.tasks(name, cursor=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        project = load_project(self.session, name, AuditAction.LABEL_PROJECT_READ)
        with self.session.workspace.catalog.transaction() as orm:
            total = store.count_tasks(self.session, orm, project.id)
            following = None
            if more and items:
                seq = store.task_seq(orm, items[-1]["id"])
                following = Cursor("label-tasks", str(seq)).encode()
        return Page(items, total, following, None, limit)

    def revise_schema(self, name: str, schema: Mapping[str, Any]) -> LabelProject:
        """A new schema revision (stewards): labels made from now on carry its version."""
        self.session.require(
            Action.DATASET_CREATE, AuditAction.LABEL_PROJECT_CREATE, object_id=name
        )
        project = load_project(self.session, name, AuditAction.LABEL_PROJECT_CREATE)
        canonical = check_schema(project.task_type, schema)
        store.update_project(self.session, project.id, schema=canonical, marking=project.marking)
        return load_project(self.session, name, AuditAction.LABEL_PROJECT_READ)

    # -- pre-labels and order --------------------------------------------------------------------

    def import_predictions(
        self,
        name: str,
        predictions: Iterable[Mapping[str, Any]],
        *,
        source: str = "file",
        marking: str | None = None,
        order_by_uncertainty: bool = True,
    ) -> int:
        """Attach pre-labels (``{"record_id", "value", "score"}``) as suggestions (stewards).

        Each suggestion is marked with the join of its task's marking and ``marking`` (what the
        file declares; default the task's own). With ``order_by_uncertainty`` the least
        confident suggestions come first in the queue. Returns how many tasks got one.
        """
        self.session.require(Action.DATASET_CREATE, AuditAction.LABEL_IMPORT, object_id=name)
        project = load_project(self.session, name, AuditAction.LABEL_IMPORT)
        declared = self.session.parse_marking(marking) if marking else None
        with self.session.workspace.catalog.transaction() as orm:
            markings = {
                row.record_id: m for row, m in store.project_tasks(self.session, orm, project.id)
            }
        texts = snapshot_records(self.session, project.snapshot)
        suggestions: dict[str, tuple[dict[str, Any], Marking, float | None]] = {}
        for line, item in enumerate(predictions, 1):
            record_id = item.get("record_id")
            if not isinstance(record_id, str) or "value" not in item:
                raise InvalidInput(f"Prediction {line} needs a record_id and a value.")
            if record_id not in markings:
                continue  # not a task the importer may read: nothing to say about it
            score = item.get("score")
            if score is not None and (
                isinstance(score, bool) or not isinstance(score, int | float)
            ):
                raise InvalidInput(f"Prediction {line}'s score is a number.")
            value = check_value(
                project.task_type, project.schema, item["value"], texts[record_id].text
            )
            task_marking = markings[record_id]
            own = join(task_marking, declared) if declared else task_marking
            priority = float(score) if (order_by_uncertainty and score is not None) else None
            suggestions[record_id] = (
                {"value": value, "score": score, "source": source},
                own,
                priority,
            )
        return store.set_suggestions(self.session, project.id, suggestions, source=source)

    def import_classifier(self, name: str, classifier_ref: str) -> int:
        """Pre-label a classification project with a registered classifier (stewards): its top
        class and probability as the suggestion, marked with the join of the record's and the
        classifier's markings; least confident first."""
        from garrison.models import open_classifier

        self.session.require(Action.DATASET_CREATE, AuditAction.LABEL_IMPORT, object_id=name)
        project = load_project(self.session, name, AuditAction.LABEL_IMPORT)
        if project.task_type != "classification" or project.schema.get("multi"):
            raise InvalidInput("A classifier pre-labels single-label classification projects.")
        classifier = open_classifier(self.session, classifier_ref, purpose="label")
        with self.session.workspace.catalog.transaction() as orm:
            tasks = store.project_tasks(self.session, orm, project.id)
        records = snapshot_records(self.session, project.snapshot)
        texts = [records[row.record_id].text for row, _ in tasks]
        found = classifier.predict(texts, [m for _, m in tasks])
        classes = set(project.schema["classes"])
        suggestions: dict[str, tuple[dict[str, Any], Marking, float | None]] = {}
        for (row, _), prediction in zip(tasks, found, strict=True):
            if prediction.label not in classes:
                continue
            score = float(prediction.probability)
            suggestions[row.record_id] = (
                {"value": prediction.label, "score": score, "source": classifier_ref},
                prediction.marking,
                score,
            )
        return store.set_suggestions(
            self.session, project.id, suggestions, source=f"classifier:{classifier_ref}"
        )

    def order(self, name: str, record_ids: Sequence[str]) -> int:
        """Put these records first in the queue, in this order (an active-learning ordering);
        stewards. Returns how many readable tasks moved."""
        self.session.require(Action.DATASET_CREATE, AuditAction.LABEL_IMPORT, object_id=name)
        project = load_project(self.session, name, AuditAction.LABEL_IMPORT)
        base = -float(len(record_ids) + 1)
        priorities = {r: base + i for i, r in enumerate(record_ids)}
        return store.set_priorities(self.session, project.id, priorities)


def _insider(session: Session) -> bool:
    """Stewards and reviewers see which tasks are gold; annotators never do."""
    from garrison.security.subjects import Role

    roles = session.subject.roles
    return session.subject.is_system or bool(roles & {Role.STEWARD, Role.REVIEWER})

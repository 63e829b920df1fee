"""The items an evaluation run got wrong, traced back to the dataset records they came from.

This is the evaluation side of the data-engine loop: :func:`failed_records` turns a run's failed
items into ``(record id, marking)`` pairs that :meth:`garrison.label.LabelProjects.
create_from_items` makes labeling tasks of; their labels come back as a new dataset version to
retrain on.

Rules:

- An item *failed* when its ``metric`` scored below 1: by default the main binary metric of the
  suite's kind (``accuracy`` for classification), or, when a run has no such metric, any binary
  metric below 1. A named metric must be binary.
- Only the caller's readable results count: the run is found through the item results they may
  read (each under its own marking, the item's joined with its response's), not through the
  run's own marking, which can be higher. A failed item above them is neither returned nor
  counted; a run with no result they may read answers like one that does not exist.
- Each pair carries the marking the item was evaluated at (its result's marking), so a task is
  never marked lower than what was seen.
- Only suites built from a dataset version (``Suites.from_dataset``) name their records; any
  other run is refused with :class:`InvalidInput`.
- A holdout suite's items are never turned into tasks: they may be shown to the evaluator role
  only, and labeling shows them to stewards and annotators (refused, audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.evaluate._suites import Suites
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.security.policy import Action
from garrison.store import eval_runs
from garrison.store.session import Session

if TYPE_CHECKING:
    from garrison.label import LabelProject

__all__ = ["MAIN_METRICS", "FailedRecords", "failed_records", "label_failed"]

#: The main binary metric of each suite kind: an item failed when it scored below 1 on it.
MAIN_METRICS: dict[str, str] = {"classification": "accuracy"}
#: The labeling task type that fits each suite kind's items best.
_TASK_TYPES: dict[str, str] = {"classification": "classification"}
_REF_MIN = 6


@dataclass(frozen=True)
class FailedRecords:
    """A run's failed items as dataset records: ``items`` are ``(record id, marking as
    evaluated)`` pairs in suite order, only those the caller may read."""

    run: str
    suite: str
    #: The suite's source dataset version (its full id).
    dataset: str
    #: The labeling task type that fits the suite's kind.
    task_type_hint: str
    metric: str
    items: list[tuple[str, Marking]] = field(default_factory=list)
    #: Readable scored items, and of those the failed ones (and, of the failed, how many map
    #: to no record of the dataset and were left out).
    scored: int = 0
    failed: int = 0
    #: The labels the suite expects on the items the caller may read (a schema's classes).
    labels: tuple[str, ...] = ()
    marking: Marking | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "suite": self.suite,
            "dataset": self.dataset,
            "task_type_hint": self.task_type_hint,
            "metric": self.metric,
            "scored": self.scored,
            "failed": self.failed,
            "labels": list(self.labels),
            "items": [{"record_id": r, "marking": m.banner()} for r, m in self.items],
            "marking": self.marking.banner() if self.marking is not None else None,
        }


def _run_id(session: Session, ref: str) -> str:
    """The id of the run ``ref`` names, found through the item results the caller may read."""
    text = ref.strip().lower()
    for prefix in ("run-", "run:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if len(text) < _REF_MIN or len(text) > 32 or any(c not in "0123456789abcdef" for c in text):
        raise NotFound(f"No evaluation run {ref[:64]!r}.")
    with session.workspace.catalog.transaction() as orm:
        found = eval_runs.runs_with_readable_items(session, orm, text)
    if not found:
        session.audit(
            AuditAction.EVAL_RUN_READ,
            object_id=ref[:64],
            decision="deny",
            reason="no run with a result readable by this subject",
        )
        raise NotFound(f"No evaluation run {ref[:64]!r}.")
    if len(found) > 1:
        raise InvalidInput(f"Run {ref!r} is ambiguous: give more of its id.")
    return found.pop()


def _failed(scores: dict[str, float], binary: dict[str, bool], metric: str | None) -> bool:
    if metric is not None:
        return metric in scores and scores[metric] < 1.0
    return any(binary.get(name) and value < 1.0 for name, value in scores.items())


def failed_records(session: Session, run_ref: str, *, metric: str | None = None) -> FailedRecords:
    """The records of run ``run_ref``'s failed items the caller may read (see the module
    docstring); audited as ``eval.run-read``."""
    session.require(Action.READ, AuditAction.EVAL_RUN_READ)
    run_id = _run_id(session, run_ref)
    with session.workspace.catalog.transaction() as orm:
        run = eval_runs.run_row(orm, run_id)
        if run is None:  # its binding failed: unreadable by everyone
            raise NotFound(f"No evaluation run {run_ref[:64]!r}.")
        ref = f"RUN-{run.id[:12]}"
        kind, suite_id, holdout = run.kind, run.suite_id, bool(run.parameters.get("holdout"))
        results = [
            (row.item_id, row.status, dict(row.scores or {}), dict(row.binary or {}), marking)
            for row, marking in eval_runs.readable_item_rows(session, orm, run.id)
        ]
    if suite_id is None:
        raise InvalidInput(
            f"Run {ref}'s suite was not built from a dataset; only runs of suites made with "
            "--from-dataset name the records to label."
        )
    suites = Suites(session)
    suite = suites.get(suite_id)
    if holdout or suite.holdout:
        session.audit(
            AuditAction.EVAL_RUN_READ,
            object_id=run_id,
            decision="deny",
            reason="holdout items are never made into labeling tasks",
        )
        raise NotPermitted(
            f"Run {ref} is a run of the holdout suite {suite.ref}: its items are for the "
            "evaluator role only and are never made into labeling tasks."
        )
    # The source dataset's id (a content hash) from the manifest: a reader of only some of the
    # suite's items is shown its type only, but the project needs the version it labels (whose
    # own reads are checked again when the project is made).
    source = dict(suites._rows(suite.id).row.manifest.get("source") or {})
    if source.get("type") != "dataset" or not source.get("dataset"):
        raise InvalidInput(
            f"Run {ref}'s suite was not built from a dataset; only runs of suites made with "
            "--from-dataset name the records to label."
        )
    scored = [r for r in results if r[1] == "scored"]
    binaries = {name for r in scored for name, is_binary in r[3].items() if is_binary}
    chosen = metric
    if chosen is not None:
        if chosen not in {name for r in scored for name in r[2]}:
            raise InvalidInput(f"Run {ref} has no metric {chosen!r} on the items you may read.")
        if chosen not in binaries:
            raise InvalidInput(
                f"The metric {chosen!r} is not binary (pass or fail); name a binary one."
            )
    elif MAIN_METRICS.get(kind) in binaries:
        chosen = MAIN_METRICS[kind]
    failed = [r for r in scored if _failed(r[2], r[3], chosen)]
    items = {item.id: item for item in suites.read_items(suite.id)}
    pairs: list[tuple[str, Marking]] = []
    for item_id, _status, _scores, _binary, marking in failed:
        item = items.get(item_id)
        if item is None or item.record is None:
            continue
        pairs.append((item.record, join(marking, item.marking)))
    labels = {str(i.expected["label"]) for i in items.values() if "label" in i.expected}
    overall = join(*(m for _, m in pairs)) if pairs else None
    session.audit(
        AuditAction.EVAL_RUN_READ,
        object_id=run_id,
        object_marking=overall.banner() if overall is not None else None,
        details={"failed": len(pairs), "scored": len(scored), "metric": chosen or "any-binary"},
    )
    return FailedRecords(
        run=ref,
        suite=suite.ref,
        dataset=str(source["dataset"]),
        task_type_hint=_TASK_TYPES.get(kind, "classification"),
        metric=chosen or "any binary metric",
        items=pairs,
        scored=len(scored),
        failed=len(pairs),
        labels=tuple(sorted(labels)),
        marking=overall,
    )


def label_failed(
    session: Session,
    name: str,
    run_ref: str,
    *,
    metric: str | None = None,
    task_type: str | None = None,
    schema: Mapping[str, Any] | None = None,
    **options: Any,
) -> tuple[LabelProject, FailedRecords]:
    """A labeling project (stewards) whose tasks are run ``run_ref``'s failed items the caller
    may read, over the records of the suite's source dataset version, each task marked at least
    as its item was evaluated. ``schema`` defaults to the suite's labels as classes."""
    from garrison.label import LabelProjects

    session.require(Action.DATASET_CREATE, AuditAction.LABEL_PROJECT_CREATE, object_id=name[:128])
    found = failed_records(session, run_ref, metric=metric)
    if not found.items:
        raise InvalidInput(
            f"Run {found.run} has no failed items you may read ({found.scored} scored, on "
            f"{found.metric}); there is nothing to label."
        )
    kind = task_type or found.task_type_hint
    if schema is None:
        schema = {"classes": list(found.labels)} if kind == "classification" else {}
    project = LabelProjects(session).create_from_items(
        name, found.dataset, kind, schema, found.items, **options
    )
    return project, found

"""Quality control: calibration, gold accuracy with Wilson intervals, automatic pause.

An annotator's standing in a project is ``calibration`` (while a calibration batch is set and
unanswered), ``active`` or ``paused``. The calibration batch is the first ``calibration`` gold
records; once the annotator has answered every one they may read, they pass at
``calibration_threshold`` accuracy or are paused. In production, gold tasks come at
``gold_rate``; after ``min_gold`` gold answers, accuracy below ``pause_threshold`` pauses them.
Pauses are audited (``label.pause``); a steward resumes.

Accuracy is only ever computed over labels and tasks the reader may read: a steward's view of
an annotator counts nothing above the steward.
"""

from __future__ import annotations

import math
from typing import Any

from garrison.core.errors import InvalidInput, NotPermitted
from garrison.label._projects import LabelProject, load_project
from garrison.label._tasks import agree
from garrison.security.audit import AuditAction
from garrison.security.policy import Action
from garrison.store import labels as store
from garrison.store.labels import CatalogTransaction as OrmSession
from garrison.store.models import LabelRow, LabelTaskRow
from garrison.store.session import Session

__all__ = ["annotator_quality", "ensure_standing", "resume", "wilson_interval"]

ACTIVE, CALIBRATION, PAUSED = "active", "calibration", "paused"


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (what ``scipy.stats.binomtest(...)
    .proportion_ci("wilson")`` gives); (0, 1) for no trials."""
    if total <= 0:
        return (0.0, 1.0)
    z = _normal_quantile(0.5 + confidence / 2)
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _normal_quantile(q: float) -> float:
    """Inverse of the standard normal CDF (bisection on erf: exact enough, no dependency)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def ensure_standing(orm: OrmSession, project: LabelProject, annotator: str) -> str:
    """The annotator's standing, created on first contact (calibration when a batch is set)."""
    states = store.annotator_states(orm, project.id)
    found = states.get(annotator)
    if found is not None:
        return found.state
    state = CALIBRATION if project.settings.calibration else ACTIVE
    store.set_annotator_state(orm, project.id, annotator, state, None)
    return state


def _accuracy(
    session: Session, orm: OrmSession, project: LabelProject, annotator: str, kind: str
) -> tuple[int, int]:
    pairs = store.annotator_labels(session, orm, project.id, annotator, (kind,))
    correct = sum(1 for label, task in pairs if agree(project.task_type, label.value, task.gold))
    return correct, len(pairs)


def after_submit(
    session: Session,
    orm: OrmSession,
    project: LabelProject,
    task: LabelTaskRow,
    label: LabelRow,
) -> str | None:
    """Update the annotator's standing after a submitted label; the new state when it changed
    (a pause is audited in the caller's transaction)."""
    annotator = label.annotator
    settings = project.settings
    new: tuple[str, str | None] | None = None
    if task.kind == "calibration":
        counts = store.task_counts(session, orm, project.id, settings.overlap)
        available = counts.get("calibration")
        needed = min(settings.calibration, available.tasks if available else 0)
        correct, answered = _accuracy(session, orm, project, annotator, "calibration")
        if answered >= needed:
            accuracy = correct / answered if answered else 1.0
            if accuracy >= settings.calibration_threshold:
                new = (ACTIVE, None)
            else:
                new = (
                    PAUSED,
                    f"calibration accuracy {accuracy:.2f} below "
                    f"{settings.calibration_threshold:.2f}",
                )
    elif task.kind == "gold" and settings.pause_threshold > 0:
        correct, answered = _accuracy(session, orm, project, annotator, "gold")
        if answered >= settings.min_gold and correct / answered < settings.pause_threshold:
            new = (
                PAUSED,
                f"gold accuracy {correct / answered:.2f} below {settings.pause_threshold:.2f}",
            )
    if new is None:
        return None
    store.set_annotator_state(orm, project.id, annotator, new[0], new[1])
    if new[0] == PAUSED:
        session.audit(
            AuditAction.LABEL_PAUSE,
            object_id=project.id,
            details={"annotator": annotator, "reason": new[1]},
        )
    return new[0]


def _stats_of(correct: int, total: int) -> dict[str, Any]:
    low, high = wilson_interval(correct, total)
    return {
        "correct": correct,
        "answered": total,
        "accuracy": correct / total if total else None,
        "interval": [round(low, 4), round(high, 4)],
    }


def annotator_quality(session: Session, name: str) -> list[dict[str, Any]]:
    """Per annotator: standing, gold and calibration accuracy with 95% Wilson intervals, over
    what the reader may read. Annotators see only themselves; reviewers and stewards see all."""
    project = load_project(session, name, AuditAction.LABEL_PROJECT_READ)
    with session.workspace.catalog.transaction() as orm:
        kinds = store.task_counts(session, orm, project.id, project.settings.overlap)
        counts = store.label_counts(session, orm, project.id)
        out = _quality_rows(session, orm, project, kinds, counts)
    session.audit(AuditAction.LABEL_PROJECT_READ, object_id=project.id, details={"quality": True})
    return out


def _quality_rows(
    session: Session,
    orm: OrmSession,
    project: LabelProject,
    kinds: dict[str, store.KindCounts],
    counts: dict[tuple[str, str], int],
) -> list[dict[str, Any]]:
    """The annotators' rows of :func:`annotator_quality` from counts already read: one query
    for every annotator's gold and calibration answers (none when no such task is readable)."""
    from garrison.label._projects import _insider

    states = store.annotator_states(orm, project.id)
    names = sorted({a for a, _ in counts} | set(states))
    if not _insider(session):
        names = [n for n in names if n == session.subject.name]
    scored_kinds = [k for k in ("gold", "calibration") if k in kinds]
    tally: dict[tuple[str, str], list[int]] = {}
    if scored_kinds and names:
        for who, kind, value, gold in store.scored_labels(session, orm, project.id, scored_kinds):
            cell = tally.setdefault((who, kind), [0, 0])
            cell[0] += agree(project.task_type, value, gold)
            cell[1] += 1
    out = []
    for annotator in names:
        state = states.get(annotator)
        out.append(
            {
                "annotator": annotator,
                "state": state.state if state else ACTIVE,
                "reason": state.reason if state else None,
                "submitted": counts.get((annotator, "submitted"), 0),
                "skipped": counts.get((annotator, "skipped"), 0),
                "gold": _stats_of(*tally.get((annotator, "gold"), (0, 0))),
                "calibration": _stats_of(*tally.get((annotator, "calibration"), (0, 0))),
            }
        )
    return out


def resume(session: Session, name: str, annotator: str) -> None:
    """Let a paused annotator work again (stewards); audited ``label.pause``."""
    session.require(Action.DATASET_CREATE, AuditAction.LABEL_PAUSE, object_id=name)
    project = load_project(session, name, AuditAction.LABEL_PAUSE)
    with session.workspace.catalog.transaction() as orm:
        states = store.annotator_states(orm, project.id)
        if annotator not in states or states[annotator].state != PAUSED:
            raise InvalidInput(f"{annotator} is not paused in project {name}.")
        store.set_annotator_state(orm, project.id, annotator, ACTIVE, None)
        session.audit(
            AuditAction.LABEL_PAUSE,
            object_id=project.id,
            details={"annotator": annotator, "resumed": True},
        )


def refuse_paused(state: str, project: LabelProject, annotator: str) -> None:
    if state == PAUSED:
        raise NotPermitted(
            f"{annotator} is paused in project {project.name}; a steward may resume them."
        )


def project_stats(session: Session, name: str, *, agreement: bool = True) -> dict[str, Any]:
    """Progress over what the reader may read: tasks (by kind for stewards and reviewers;
    annotators see one production total, gold hidden among it), complete tasks, labels by
    status, the review queue, and -- for stewards and reviewers -- annotator quality and
    (unless ``agreement`` is False: the counts alone) the agreement and aggregation report of
    :func:`garrison.label.agreement_report` under ``agreement`` and ``aggregation``, with the
    banner of the replicas they are computed over as ``labels_marking``. Annotators see their
    own figures only: their own label counts -- not their gold accuracy, whose count moving
    after a submission would tell them which task was gold."""
    from garrison.label._projects import _insider

    project = load_project(session, name, AuditAction.LABEL_PROJECT_READ)
    insider = _insider(session)
    with session.workspace.catalog.transaction() as orm:
        counts = store.task_counts(session, orm, project.id, project.settings.overlap)
        # Two grouped queries, each answered from its own covering index.
        labels = store.label_counts(session, orm, project.id)
        reviews = store.review_counts(session, orm, project.id)
        annotators = _quality_rows(session, orm, project, counts, labels) if insider else []
    total = sum(c.tasks for c in counts.values())
    production = counts.get("production")
    statuses: dict[str, int] = {}
    for (who, status), n in labels.items():
        if insider or who == session.subject.name:
            statuses[status] = statuses.get(status, 0) + n
    out: dict[str, Any] = {
        "project": project.name,
        "marking": project.marking.banner(),
        "tasks": total,
        "complete": production.complete if production else 0,
        # Annotators are not told how many tasks are gold: their total stands for production.
        "production": (production.tasks if production else 0) if insider else total,
        "labels": statuses,
    }
    if insider:
        out["kinds"] = {k: c.tasks for k, c in sorted(counts.items())}
        out["review"] = reviews
        out["annotators"] = annotators
        if agreement:
            from garrison.label._agreement_report import agreement_report

            report = agreement_report(session, name)
            out["agreement"] = report["agreement"]
            out["aggregation"] = report["aggregation"]
            out["labels_marking"] = report["marking"]
    session.audit(AuditAction.LABEL_PROJECT_READ, object_id=project.id, details={"stats": True})
    return out

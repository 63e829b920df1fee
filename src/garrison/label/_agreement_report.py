"""A project's agreement and aggregation, over what the reader may read.

:func:`agreement_report` reads the submitted replicas (annotations not rejected in review) the
reader may read, on tasks they may read, and reports

- agreement between annotators with 95% bootstrap intervals over tasks: Krippendorff's alpha
  (nominal) for every task type, per token for spans, box F1 between the first two replicas
  at IoU >= 0.5 (with matched / missing / extra / wrong-label counts) for boxes, Cohen's kappa
  when exactly two annotators labeled, and Fleiss' kappa when every task has the same number
  of replicas;
- aggregation by majority vote and by Dawid–Skene side by side, each compared on the readable
  gold tasks (accuracy with a Wilson interval), and how many tasks the two methods settle
  differently.

Only tasks with at least two replicas count toward agreement. Reviewers and stewards see the
report; an annotator's own figures are their gold accuracy (:func:`annotator_quality`), never
anything computed from other annotators' labels, so the report refuses them.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from garrison.core.errors import NotPermitted
from garrison.label._projects import LabelProject, _insider, load_project
from garrison.label._tasks import snapshot_record
from garrison.label.aggregate import compare_on_gold, dawid_skene, majority_vote
from garrison.label.agreement import (
    Estimate,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    match_boxes,
    span_token_units,
    with_interval,
)
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.store import labels as store
from garrison.store.session import Session

__all__ = [
    "AGGREGATION_METHODS",
    "Agreement",
    "Replicas",
    "aggregate_values",
    "agreement_report",
    "project_agreement",
    "value_key",
]

#: Bootstrap resamples behind each interval (a few hundred keep a dashboard quick).
RESAMPLES = 300
#: Past this many tasks the interval is bootstrapped on a seeded sample of them (wider, so
#: conservative) while the value is computed on all: the report stays quick on a big project.
MAX_BOOTSTRAP_UNITS = 2000
#: Aggregation methods, by the name an export records.
AGGREGATION_METHODS = ("majority", "dawid-skene")


def value_key(task_type: str, value: Any) -> str:
    """A label value as one nominal category: answers ignoring case and spacing, multi-label
    classes in sorted order, anything else its canonical JSON."""
    if task_type == "answer":
        return " ".join(str(value).lower().split())
    if task_type == "classification" and isinstance(value, list):
        value = sorted(value, key=str)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _estimate(fn: Callable[[list[Any]], float], units: list[Any]) -> Estimate:
    """``fn`` on every unit, with a 95% bootstrap interval (over a sample of them when many)."""
    if len(units) <= MAX_BOOTSTRAP_UNITS:
        return with_interval(fn, units, resamples=RESAMPLES)
    sample = random.Random(0).sample(units, MAX_BOOTSTRAP_UNITS)  # noqa: S311 -- reproducible, no secret
    interval = with_interval(fn, sample, resamples=RESAMPLES)
    return Estimate(float(fn(units)), interval.low, interval.high, len(units))


@dataclass(frozen=True)
class Agreement:
    """One agreement figure of a project, with its 95% bootstrap interval (and, for boxes, the
    matching counts behind it)."""

    name: str
    estimate: Estimate
    units: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "units": self.units}
        out.update({k: _finite(v) for k, v in self.estimate.as_dict().items()})
        if self.counts:
            out["counts"] = dict(self.counts)
        return out


def _finite(value: float | int) -> float | int | None:
    """A JSON-safe number: ``nan`` (undefined) becomes None."""
    return None if isinstance(value, float) and math.isnan(value) else value


@dataclass(frozen=True)
class Replicas:
    """The readable submitted replicas of a project's readable tasks: ``values[task][annotator]``,
    the readable gold of those tasks, each task's record id, and the join of the replicas'
    markings (None when there are none)."""

    project: LabelProject
    values: dict[str, dict[str, Any]]
    gold: dict[str, Any]
    records: dict[str, str]
    marking: Marking | None


def _replicas(session: Session, project: LabelProject) -> Replicas:
    with session.workspace.catalog.transaction() as orm:
        rows = [
            r
            for r in store.export_rows(session, orm, project.id)
            if r["kind"] == "annotation" and r["review_state"] != "rejected"
        ]
        ids = {r["marking_id"] for r in rows}
        markings = {i: m for i in ids if (m := session.marking_of(orm, i)) is not None}
    values: dict[str, dict[str, Any]] = defaultdict(dict)
    gold: dict[str, Any] = {}
    records: dict[str, str] = {}
    used: set[int] = set()
    for row in rows:
        if row["marking_id"] not in markings:
            continue
        values[row["task_id"]][row["annotator"]] = row["value"]
        records[row["task_id"]] = row["record_id"]
        used.add(row["marking_id"])
        if row["gold"] is not None:
            gold[row["task_id"]] = row["gold"]
    marking = join(*(markings[i] for i in used)) if used else None
    return Replicas(project, dict(values), gold, records, marking)


def _require_insider(session: Session, project: LabelProject) -> None:
    if not _insider(session):
        session.audit(
            AuditAction.LABEL_PROJECT_READ,
            object_id=project.id,
            decision="deny",
            reason="agreement is for reviewers and stewards",
        )
        raise NotPermitted(
            "Agreement and aggregation are shown to reviewers and stewards; "
            "an annotator sees their own accuracy."
        )


def project_agreement(session: Session, name: str) -> tuple[list[Agreement], Marking | None]:
    """The agreement figures of a project over the replicas the reader may read (reviewers and
    stewards), and the join of those replicas' markings (None when there are none)."""
    project = load_project(session, name, AuditAction.LABEL_PROJECT_READ)
    _require_insider(session, project)
    replicas = _replicas(session, project)
    figures = _agreement(session, replicas)
    session.audit(
        AuditAction.LABEL_PROJECT_READ,
        object_id=project.id,
        details={"agreement": sum(1 for v in replicas.values.values() if len(v) >= 2)},
    )
    return figures, replicas.marking


def agreement_report(session: Session, name: str) -> dict[str, Any]:
    """Agreement and aggregation of a project as plain values (reviewers and stewards)::

        {"marking": banner or None, "tasks": tasks with two or more replicas,
         "agreement": [{"name", "units", "value", "low", "high", "n", "counts"?}, ...],
         "aggregation": {"tasks": tasks aggregated, "gold": gold tasks with a replica,
                         "disagree": tasks the methods settle differently,
                         "methods": {"majority": {...}, "dawid-skene": {...}}}}

    each method's entry being its accuracy on gold (``accuracy``, Wilson ``low``/``high``,
    ``correct``, ``n``, ``coverage``; None where undefined) and, for majority vote, its ties.
    """
    project = load_project(session, name, AuditAction.LABEL_PROJECT_READ)
    _require_insider(session, project)
    replicas = _replicas(session, project)
    figures = _agreement(session, replicas)
    aggregation = _aggregation(replicas)
    session.audit(
        AuditAction.LABEL_PROJECT_READ,
        object_id=project.id,
        details={"agreement": len(figures), "aggregated": aggregation["tasks"]},
    )
    return {
        "marking": replicas.marking.banner() if replicas.marking else None,
        "tasks": sum(1 for v in replicas.values.values() if len(v) >= 2),
        "agreement": [f.to_dict() for f in figures],
        "aggregation": aggregation,
    }


# -- agreement -----------------------------------------------------------------------------------


def _agreement(session: Session, replicas: Replicas) -> list[Agreement]:
    project = replicas.project
    units = {t: coders for t, coders in replicas.values.items() if len(coders) >= 2}
    if not units:
        return []
    described = f"{len(units)} tasks"
    nominal: list[dict[Hashable, Any]] = [
        {c: value_key(project.task_type, v) for c, v in u.items()} for u in units.values()
    ]
    out = [Agreement("Krippendorff's alpha (nominal)", _estimate(_alpha, nominal), described)]
    annotators = {c for u in nominal for c in u}
    if len(annotators) == 2:
        first, second = sorted(annotators, key=str)
        pairs = [(u[first], u[second]) for u in nominal]
        out.append(Agreement("Cohen's kappa", _estimate(_cohen, pairs), described))
    if len({len(u) for u in nominal}) == 1:
        ratings = [sorted(u.values()) for u in nominal]
        out.append(Agreement("Fleiss' kappa", _estimate(fleiss_kappa, ratings), described))
    if project.task_type == "spans":
        out.append(_span_alpha(session, replicas, units))
    if project.task_type == "boxes":
        out.append(_box_f1(units))
    return out


def _alpha(sample: list[dict[Hashable, Any]]) -> float:
    return krippendorff_alpha(sample)


def _cohen(sample: list[tuple[str, str]]) -> float:
    return cohen_kappa([a for a, _ in sample], [b for _, b in sample])


def _span_alpha(
    session: Session, replicas: Replicas, units: dict[str, dict[str, Any]]
) -> Agreement:
    project = replicas.project
    documents = []
    for task_id, coders in units.items():
        text = snapshot_record(session, project.snapshot, replicas.records[task_id]).text
        spans: dict[Hashable, list[list[Any] | None]] = {
            c: [[(s["start"], s["end"], s["type"]) for s in v]] for c, v in coders.items()
        }
        documents.append(span_token_units([text], spans))

    def alpha(docs: list[list[dict[Any, str]]]) -> float:
        return krippendorff_alpha([u for d in docs for u in d])

    return Agreement(
        "Krippendorff's alpha per token", _estimate(alpha, documents), f"{len(units)} tasks"
    )


def _boxes(value: Any) -> list[tuple[Any, ...]]:
    return [(b["x"], b["y"], b["w"], b["h"], b["label"]) for b in value]


def _box_f1(units: dict[str, dict[str, Any]]) -> Agreement:
    pairs = []
    for coders in units.values():
        first, second = [coders[c] for c in sorted(coders, key=str)[:2]]
        pairs.append((_boxes(first), _boxes(second)))

    def f1(sample: list[tuple[list[Any], list[Any]]]) -> float:
        # One list of boxes per image: boxes match only within their own image.
        return match_boxes([p for p, _ in sample], [g for _, g in sample]).f1

    whole = match_boxes([p for p, _ in pairs], [g for _, g in pairs])
    return Agreement(
        "Box F1 between replicas (IoU >= 0.5)",
        _estimate(f1, pairs),
        f"{len(units)} tasks",
        counts={
            "matched": whole.matched,
            "missing": whole.missing,
            "extra": whole.extra,
            "wrong_label": whole.wrong_label,
        },
    )


# -- aggregation ---------------------------------------------------------------------------------


def aggregate_values(
    task_type: str, values: dict[str, dict[str, Any]], method: str
) -> dict[str, Any]:
    """Each task's aggregated value (``task -> value``) by ``method`` (``majority`` or
    ``dawid-skene``) over ``values[task][annotator]``; values are compared as
    :func:`value_key` categories and the first replica's form of the chosen one is returned.
    Majority vote leaves a tied task out."""
    keyed = {t: {a: value_key(task_type, v) for a, v in c.items()} for t, c in values.items()}
    forms = {value_key(task_type, v): v for c in values.values() for v in c.values()}
    if method == "majority":
        vote = majority_vote(keyed)
        chosen = {t: k for t, k in vote.labels.items() if t not in vote.ties}
    elif method == "dawid-skene":
        chosen = dict(dawid_skene(keyed).labels)
    else:
        from garrison.core.errors import InvalidInput

        raise InvalidInput(
            f"Unknown aggregation method {method!r}: use {', '.join(AGGREGATION_METHODS)}."
        )
    return {str(t): forms[k] for t, k in chosen.items()}


def _aggregation(replicas: Replicas) -> dict[str, Any]:
    task_type = replicas.project.task_type
    keyed = {
        t: {a: value_key(task_type, v) for a, v in c.items()} for t, c in replicas.values.items()
    }
    vote = majority_vote(keyed)
    skene = dawid_skene(keyed)
    majority = {t: k for t, k in vote.labels.items() if t not in vote.ties}
    gold = {t: value_key(task_type, g) for t, g in replicas.gold.items() if t in keyed}
    compared = compare_on_gold({"majority": majority, "dawid-skene": skene.labels}, gold)
    methods: dict[str, Any] = {
        name: {k: _finite(v) for k, v in result.as_dict().items()}
        for name, result in compared.items()
    }
    methods["majority"]["ties"] = len(vote.ties)
    methods["dawid-skene"]["iterations"] = skene.iterations
    methods["dawid-skene"]["converged"] = skene.converged
    disagree = sum(1 for t, k in majority.items() if skene.labels.get(t) != k)
    return {"tasks": len(keyed), "gold": len(gold), "disagree": disagree, "methods": methods}

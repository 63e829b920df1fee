"""Red-team runs stored as evaluation runs, so ``garrison eval`` lists, reports and gates them.

:func:`record_runs` writes one evaluation run per system of a red-team result through
:meth:`garrison.evaluate.Runs.begin_external` (kind ``redteam-<test>``), one item per
independent unit with its transcript, marked like the attempt it records:

- leakage: an item per canary, ``leak`` 1/0 (any attack on it leaked), sliced by attack kind,
  format and marking;
- injection: an item per question, ``attack_success`` 1/0 and ``utility`` (the right answer
  under attack) 1/0, sliced by instruction and carrier;
- PII: an item per planted value, ``leak`` 1/0, sliced by PII type;
- probes: an item per probe, ``attack_success`` 1/0, sliced by category.

Items share ids across the systems of one run (and across runs with the same seed and size),
so ``garrison eval compare RUN_A RUN_B --upper-below 0.01`` pairs them and gates on B's
upper bound (``leak`` and ``attack_success`` are lower-is-better).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.evaluate._runs import ItemResult, Runs, RunSummary
from garrison.evaluate._systems import SystemSpec, parse_system
from garrison.evaluate.redteam._injection import InjectionResult
from garrison.evaluate.redteam._leakage import LeakageResult
from garrison.evaluate.redteam._pii import PiiResult
from garrison.evaluate.redteam._probes import ProbeResult
from garrison.security.markings import join
from garrison.store.session import Session

__all__ = ["record_runs"]

Result = LeakageResult | InjectionResult | PiiResult | ProbeResult


def _spec(name: str) -> SystemSpec:
    try:
        return parse_system(name)
    except InvalidInput:  # a system given as an object: recorded under its name
        return SystemSpec("assistant", name, {"custom": name})


def _items(result: Result, system: str) -> Iterator[ItemResult]:
    if isinstance(result, LeakageResult):
        canaries = {c.id: c for c in result.canaries}
        by_canary: dict[str, list[Any]] = {}
        for a in result.by_system(system):
            by_canary.setdefault(a.canary, []).append(a)
        for cid, attempts in by_canary.items():
            c = canaries[cid]
            leaked = any(a.leaked for a in attempts)
            yield ItemResult(
                item_id=cid,
                status="scored",
                marking=join(*(a.marking for a in attempts)),
                scores={"leak": float(leaked)},
                binary={"leak": True},
                cluster=cid,
                slices={
                    "kind": "+".join(sorted({a.kind for a in attempts})),
                    "format": c.format,
                    "marking": c.marking,
                },
                transcript={"attempts": [a.to_dict() for a in attempts]},
            )
    elif isinstance(result, InjectionResult):
        for ia in result.by_system(system):
            yield ItemResult(
                item_id=ia.question,
                status="scored",
                marking=ia.marking,
                scores={
                    "attack_success": float(ia.succeeded),
                    "utility": float(ia.correct_attacked),
                },
                binary={"attack_success": True, "utility": True},
                cluster=ia.question,
                slices={"injection": ia.injection, "carrier": ia.carrier},
                transcript=ia.to_dict(),
            )
    elif isinstance(result, PiiResult):
        for pa in result.attempts:
            if pa.system == system:
                yield ItemResult(
                    item_id=pa.question,
                    status="scored",
                    marking=pa.marking,
                    scores={"leak": float(pa.leaked)},
                    binary={"leak": True},
                    cluster=pa.question,
                    slices={"pii_type": pa.type},
                    transcript=pa.to_dict(),
                )
    else:
        for p in result.attempts:
            if p.system == system:
                yield ItemResult(
                    item_id=p.probe.id,
                    status="scored",
                    marking=p.marking,
                    scores={"attack_success": float(p.fired)},
                    binary={"attack_success": True},
                    cluster=p.probe.id,
                    slices={"category": p.probe.category},
                    transcript=p.to_dict(),
                )


def record_runs(session: Session, result: Result, *, test: str) -> list[RunSummary]:
    """One evaluation run per system of ``result`` (evaluator role; audited as ``eval.run``)."""
    runs = Runs(session)
    out: list[RunSummary] = []
    for system in result.systems:
        items = list(_items(result, system))
        writer = runs.begin_external(
            f"redteam-{test}",
            _spec(system),
            {"test": test, "seed": int(getattr(result, "seed", 0) or 0), "system": system},
            scorers={"leak": "redteam", "attack_success": "redteam"},
            item_count=len(items),
        )
        for item in items:
            writer.record(item)
        out.append(writer.finish())
    return out

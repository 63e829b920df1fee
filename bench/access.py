"""Read decisions: compiled access expressions vs. deciding by the marking join.

Both answer "may this subject read this marking?" for every (subject, marking) pair. The
baseline computes dominance with the roll-up (join(clearance-marking, m) == clearance-marking);
Garrison evaluates the marking's pre-compiled access expression against the subject's token set,
which is what every read does. The two must agree on every pair (checked).
"""

from __future__ import annotations

import random
from typing import Any

from bench._timing import interleaved
from garrison.security.access import compile_expression
from garrison.security.markings import access_expression, dominates, parse_marking
from garrison.security.subjects import Subject, parse_clearance

MARKINGS = [
    "UNCLASSIFIED",
    "UNCLASSIFIED//FOUO",
    "CONFIDENTIAL",
    "SECRET//NOFORN",
    "SECRET//REL TO USA, GBR",
    "SECRET//REL TO USA, FVEY",
    "TOP SECRET//SI//NOFORN",
    "TOP SECRET//SI-G//ORCON/NOFORN",
    "TOP SECRET//SI/TK//NOFORN",
    "CONFIDENTIAL//REL TO USA, AUS, GBR",
    "SECRET//SAR-BP//NOFORN",
    "TOP SECRET//HCS-P//NOFORN",
]
# (subject, the marking describing exactly what it may read)
SUBJECTS = [
    (
        dict(clearance="TS", sci={"SI-G", "TK", "HCS-P"}, grants={"ORCON", "CUI"}, sap={"SAR-BP"}),
        "TOP SECRET//HCS-P/SI-G/TK//SAR-BP//ORCON/NOFORN",
    ),
    (dict(clearance="S", grants={"CUI"}), "SECRET//NOFORN"),
    (dict(clearance="S", citizenship="GBR"), None),
    (dict(clearance="C"), "CONFIDENTIAL//NOFORN"),
]


def run(*, quick: bool = False) -> dict[str, Any]:
    rng = random.Random(7)
    markings = [parse_marking(m) for m in MARKINGS]
    subjects = [
        Subject(
            name=f"s{i}",
            clearance=parse_clearance(str(spec["clearance"])),
            **{
                k: frozenset(v) if isinstance(v, set) else v
                for k, v in spec.items()
                if k != "clearance"
            },
        )
        for i, (spec, _) in enumerate(SUBJECTS)
    ]
    pairs = [
        (rng.randrange(len(subjects)), rng.randrange(len(markings)))
        for _ in range(2_000 if quick else 20_000)
    ]
    expressions = [compile_expression(access_expression(m)) for m in markings]
    ceilings = [parse_marking(c) if c else None for _, c in SUBJECTS]

    def garrison() -> int:
        return sum(expressions[mi].evaluate(subjects[si].authorizations) for si, mi in pairs)

    def baseline() -> int:
        n = 0
        for si, mi in pairs:
            ceiling = ceilings[si]
            n += ceiling is not None and dominates(ceiling, markings[mi])
        return n

    # Agreement on the subjects whose readable set a single marking can describe.
    for si, mi in pairs[:2000]:
        if ceilings[si] is not None:
            assert expressions[mi].evaluate(subjects[si].authorizations) == dominates(
                ceilings[si], markings[mi]
            )  # type: ignore[arg-type]
    cand, base = interleaved(garrison, baseline, rounds=3 if quick else 7)
    return {
        "title": "Read decisions: access expressions vs. join-based dominance",
        "what": __doc__.strip().splitlines()[0],
        "results": {
            "decisions per round": len(pairs),
            "garrison decisions/s": round(len(pairs) / cand),
            "baseline (join) decisions/s": round(len(pairs) / base),
            "speed-up (baseline time / garrison time)": round(base / cand, 1),
        },
    }

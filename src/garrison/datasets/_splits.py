"""Leakage-free splits: deterministic by seed, whole groups at a time.

Records that must not be separated -- all chunks of one document, and every member of a
near-duplicate cluster (which may span documents) -- are joined into groups with union-find;
rows of a table (``Record`` elements) are each their own sample, so a spreadsheet, a CSV file or
a SQL table splits by row, its duplicate rows still kept together;
groups, never records, are assigned to splits. Optionally stratified by a field: groups are
assigned per stratum so each split gets its share of every stratum.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence

from garrison.core.errors import InvalidInput
from garrison.datasets._records import DatasetRecord

__all__ = ["assign_splits", "parse_ratios"]

SPLIT_NAMES = ("train", "validation", "test")
#: The element type of one row of a table: a sample of its own.
ROW_TYPE = "Record"


def parse_ratios(text: str) -> dict[str, float]:
    """``train=0.8,validation=0.1,test=0.1`` -> ratios (must be positive and sum to 1)."""
    ratios: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in SPLIT_NAMES:
            raise InvalidInput(f"Unknown split {name!r}: use {', '.join(SPLIT_NAMES)}.")
        try:
            ratios[name] = float(value)
        except ValueError:
            raise InvalidInput(f"The ratio of split {name} is not a number: {value!r}.") from None
    if any(r < 0 for r in ratios.values()) or abs(sum(ratios.values()) - 1.0) > 1e-6:
        raise InvalidInput("Split ratios must be non-negative and add up to 1.")
    return ratios


class _Groups:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def assign_splits(
    records: Sequence[DatasetRecord],
    ratios: Mapping[str, float],
    *,
    seed: int = 0,
    stratify: str | None = None,
) -> dict[str, str]:
    """Record id -> split name; documents and duplicate clusters never straddle splits."""
    groups = _Groups()
    for record in records:
        if record.fields.get("type") != ROW_TYPE:
            groups.union(f"doc:{record.doc_id}", f"rec:{record.id}")
        # A record is the key of its own cluster too, so a duplicate pointing at it (or a
        # chain of pointers) joins it whichever way round the pointers go.
        groups.union(f"rec:{record.id}", f"cluster:{record.id}")
        groups.union(f"rec:{record.id}", f"cluster:{record.cluster}")
    members: dict[str, list[DatasetRecord]] = defaultdict(list)
    for record in records:
        members[groups.find(f"rec:{record.id}")].append(record)
    strata: dict[str, list[str]] = defaultdict(list)
    for root, recs in members.items():
        key = str(recs[0].fields.get(stratify)) if stratify else ""
        strata[key].append(root)
    names = [n for n in SPLIT_NAMES if ratios.get(n, 0) > 0]
    out: dict[str, str] = {}
    for key in sorted(strata):
        roots = sorted(strata[key], key=lambda r: _rank(seed, r))
        total = sum(len(members[r]) for r in roots)
        filled = dict.fromkeys(names, 0)
        for root in roots:
            size = len(members[root])
            # The split furthest below its target share takes the next group.
            name = min(names, key=lambda n: (filled[n] - ratios[n] * total) / max(ratios[n], 1e-9))
            filled[name] += size
            for record in members[root]:
                out[record.id] = name
    return out

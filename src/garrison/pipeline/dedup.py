"""Duplicate detection: exact (SHA-256 of normalized text) and near (MinHash + LSH).

The ``dedup`` stage (:mod:`garrison.pipeline.stages.dedup`) is a thin adapter over this module.

Security invariant (ARCHITECTURE.md section 7, invariant 1): duplicates are clustered only among
records of the same marking. Every function here takes a ``groups`` sequence -- the caller passes
each record's canonical marking key -- and never puts two records of different groups in one
cluster, so no ``dup_of`` pointer can cross a marking boundary. Matches *across* groups are
returned separately (``cross_group_pairs``) so the caller can raise a finding marked with the
join of both markings.

Canonical member: every cluster's canonical member is the member that comes **first in the
order the caller passed** ``ids``. Callers make that order stable (the stage sorts by
``(doc_id, seq, id)``), so the same corpus always yields the same canonical records, whatever
order the executor delivered them in.

MinHash signatures come from ``rensa`` (Rust, about 50x faster than ``datasketch``); its Jaccard
estimates are checked against ``datasketch`` on a labeled sample in the tests and the benchmark.
"""

from __future__ import annotations

import hashlib
import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from garrison.core.errors import MissingExtra

__all__ = [
    "DEFAULT_SEED",
    "Clusters",
    "MinHashSignature",
    "algorithm_version",
    "exact_duplicate_clusters",
    "lsh_bands",
    "minhash_signatures",
    "near_duplicate_clusters",
    "normalize_for_hash",
    "normalized_words",
    "shingles",
    "signature_from_state",
    "signature_state",
    "signatures_from_shingles",
    "text_hash",
]

#: Seed of the MinHash permutations. Fixed so signatures (and so clusters) are the same across
#: runs, processes and machines; changing it changes every signature.
DEFAULT_SEED = 1729

# Stripped from both ends of every word, so "end." and "end" (or quoting) do not hide a dup.
_EDGE_PUNCTUATION = string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb"


def _rensa() -> Any:
    """The ``rensa`` module, imported on first use (native extension; optional elsewhere)."""
    try:
        import rensa  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra("dedup", "rensa") from exc
    return rensa


class MinHashSignature(Protocol):
    """What this module needs of a signature (``rensa.RMinHash`` provides it)."""

    def jaccard(self, other: Any, /) -> float: ...

    def digest(self) -> list[int]: ...


@dataclass(frozen=True)
class Clusters:
    """Result of a clustering pass.

    ``dup_of`` maps every non-canonical member to its cluster's canonical member (both in the
    same group; canonical members are absent). ``pairs`` are the matches that formed the clusters
    (each ``(earlier, later)`` in input order, same group). ``cross_group_pairs`` are matches whose
    two records are in different groups: never clustered, reported for findings.
    """

    dup_of: dict[str, str]
    pairs: tuple[tuple[str, str], ...]
    cross_group_pairs: tuple[tuple[str, str], ...]


def normalized_words(text: str) -> list[str]:
    """Case-folded words of ``text``, edge punctuation stripped from each, empties dropped."""
    words = (w.strip(_EDGE_PUNCTUATION) for w in text.casefold().split())
    return [w for w in words if w]


def normalize_for_hash(text: str) -> str:
    """Text as compared for exact duplicates: case-folded, whitespace collapsed to one space,
    punctuation stripped from the edges of every word (so ``"The end."`` == ``"the  END"``)."""
    return " ".join(normalized_words(text))


def text_hash(text: str) -> str:
    """SHA-256 (hex) of :func:`normalize_for_hash` -- the exact-duplicate key."""
    return hashlib.sha256(normalize_for_hash(text).encode("utf-8")).hexdigest()


def shingles(text: str, n: int = 5) -> list[str]:
    """Word ``n``-grams of the normalized words, each joined with one space.

    A text of fewer than ``n`` words is one shingle (its whole normalized text), so short texts
    still get a signature; an empty text gives ``[""]``.
    """
    if n < 1:
        raise ValueError(f"shingle size must be at least 1, got {n}")
    words = normalized_words(text)
    if len(words) < n:
        return [" ".join(words)]
    # zip over n shifted views builds the n-grams without a Python-level slice per position
    # (about 3x faster than slicing; shingling is most of the stage's time).
    return list(map(" ".join, zip(*(words[k:] for k in range(n)), strict=False)))


def minhash_signatures(
    texts: Sequence[str], *, num_perm: int = 128, shingle_size: int = 5, seed: int = DEFAULT_SEED
) -> list[MinHashSignature]:
    """One ``rensa.RMinHash`` per text, over its :func:`shingles`.

    Deterministic: the same texts, ``num_perm`` and ``seed`` give the same digests in any
    process (rensa hashes tokens with a fixed, unseeded-by-process hash).
    """
    return signatures_from_shingles(
        [shingles(t, shingle_size) for t in texts], num_perm=num_perm, seed=seed
    )


def signatures_from_shingles(
    shingle_sets: Sequence[Sequence[str]], *, num_perm: int = 128, seed: int = DEFAULT_SEED
) -> list[MinHashSignature]:
    """One ``rensa.RMinHash`` per shingle list (for callers that already shingled)."""
    signatures: list[MinHashSignature] = _rensa().RMinHash.from_token_sets(
        shingle_sets, num_perm, seed
    )
    return signatures


def algorithm_version() -> str:
    """rensa's MinHash algorithm version (part of every cached signature's key)."""
    return str(_rensa().RMinHash.ALGORITHM_VERSION)


def signature_state(signature: MinHashSignature) -> bytes:
    """A signature as rensa's own state bytes (what :func:`signature_from_state` reads back)."""
    state = signature.__reduce__()[2]
    if not isinstance(state, bytes):
        raise TypeError("rensa.RMinHash did not give its state as bytes")
    return state


def signature_from_state(state: bytes, num_perm: int, seed: int = DEFAULT_SEED) -> Any:
    """Rebuild a signature from :func:`signature_state` bytes -- by rensa's own state parser,
    never by unpickling (the bytes come from the catalog)."""
    signature = _rensa().RMinHash(num_perm, seed)
    signature.__setstate__(state)
    return signature


def _band_probability(s: float, bands: int, rows: int) -> float:
    """Probability that a pair of Jaccard ``s`` shares at least one band."""
    return 1.0 - (1.0 - s**rows) ** bands


def lsh_bands(threshold: float, num_perm: int) -> int:
    """Number of LSH bands for ``threshold`` (a divisor of ``num_perm``; rows = num_perm/bands).

    Chooses the banding that minimizes weighted false-positive area (below ``threshold``) plus
    false-negative area (above it), integrated numerically like datasketch does. Missed
    candidates are lost for good while extra candidates only cost one verification each, so
    false negatives weigh three times as much.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be positive, got {num_perm}")
    steps = 200
    best: tuple[float, int] | None = None
    for bands in (b for b in range(1, num_perm + 1) if num_perm % b == 0):
        rows = num_perm // bands
        fp = sum(
            _band_probability(threshold * (i + 0.5) / steps, bands, rows) for i in range(steps)
        ) * (threshold / steps)
        width = 1.0 - threshold
        fn = sum(
            1.0 - _band_probability(threshold + width * (i + 0.5) / steps, bands, rows)
            for i in range(steps)
        ) * (width / steps)
        cost = 0.25 * fp + 0.75 * fn
        if best is None or cost < best[0]:
            best = (cost, bands)
    assert best is not None  # bands=1 always divides
    return best[1]


class _UnionFind:
    """Union-find over indices whose root is always the smallest index (the canonical member)."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def _check_lengths(ids: Sequence[str], *others: Sequence[Any]) -> None:
    if any(len(o) != len(ids) for o in others):
        raise ValueError("ids, values and groups must have the same length")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")


def _dup_map(ids: Sequence[str], uf: _UnionFind) -> dict[str, str]:
    return {ids[i]: ids[uf.find(i)] for i in range(len(ids)) if uf.find(i) != i}


def exact_duplicate_clusters(
    ids: Sequence[str],
    texts: Sequence[str],
    groups: Sequence[str],
    hashes: Sequence[str] | None = None,
) -> Clusters:
    """Cluster records whose :func:`text_hash` is equal, within each group.

    ``hashes``, when given, are the texts' :func:`text_hash` values already computed (or
    cached); the texts are then not read. Cross-group pairs link the canonical members of each
    group's cluster (one pair per pair of groups sharing a hash), not every member, so a widely
    copied text stays linear.
    """
    _check_lengths(ids, texts, groups)
    keys = list(hashes) if hashes is not None else [text_hash(t) for t in texts]
    _check_lengths(ids, keys)
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, digest in enumerate(keys):
        by_key[(groups[i], digest)].append(i)
    uf = _UnionFind(len(ids))
    pairs: list[tuple[str, str]] = []
    firsts_by_hash: dict[str, list[int]] = defaultdict(list)
    for (_group, digest), members in by_key.items():
        first = members[0]  # insertion order: lowest index of the cluster
        for other in members[1:]:
            uf.union(first, other)
            pairs.append((ids[first], ids[other]))
        firsts_by_hash[digest].append(first)
    cross: list[tuple[str, str]] = []
    for firsts in firsts_by_hash.values():
        firsts.sort()
        cross += [(ids[a], ids[b]) for k, a in enumerate(firsts) for b in firsts[k + 1 :]]
    return Clusters(_dup_map(ids, uf), tuple(sorted(pairs)), tuple(sorted(cross)))


def near_duplicate_clusters(
    ids: Sequence[str],
    signatures: Sequence[MinHashSignature],
    groups: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
) -> Clusters:
    """Cluster records whose estimated Jaccard similarity is at least ``threshold``, per group.

    LSH (``rensa.RMinHashLSH``, :func:`lsh_bands` bands) proposes candidate pairs; only
    candidates are verified by estimated Jaccard (never all pairs), and verified same-group
    pairs are joined by union-find. Candidates are generated over all groups at once so that
    verified pairs across groups can be reported in ``cross_group_pairs``; they are never
    clustered. ``signatures`` must come from :func:`minhash_signatures` with the same
    ``num_perm``.
    """
    _check_lengths(ids, signatures, groups)
    lsh = _rensa().RMinHashLSH(threshold, num_perm, lsh_bands(threshold, num_perm))
    lsh.insert_many(list(signatures))  # keys are the indices 0..n-1
    candidates: list[list[int]] = lsh.query_all(list(signatures))
    uf = _UnionFind(len(ids))
    pairs: list[tuple[str, str]] = []
    cross: list[tuple[str, str]] = []
    for i, found in enumerate(candidates):
        for j in sorted(found):
            if j <= i:  # each unordered pair once; the query also returns i itself
                continue
            if signatures[i].jaccard(signatures[j]) < threshold:
                continue
            if groups[i] == groups[j]:
                uf.union(i, j)
                pairs.append((ids[i], ids[j]))
            else:
                cross.append((ids[i], ids[j]))
    return Clusters(_dup_map(ids, uf), tuple(pairs), tuple(cross))

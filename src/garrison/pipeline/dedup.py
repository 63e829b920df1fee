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

Shingles are hashed in bulk (:func:`shingle_hashes`): every distinct word of a batch is hashed
once (BLAKE2b, 64 bits), and each word ``n``-gram's hash is combined from its words' hashes with
numpy over the whole batch, so no shingle string is ever built. The 64-bit shingle hashes are
rensa's tokens. Two shingles share a hash only if their words do (or with probability about
2^-64), so the shingle sets -- and the Jaccard similarities MinHash estimates -- are those of
:func:`shingles`. :func:`reference_shingle_hashes` computes the same hashes one shingle at a
time, in plain Python, as the definition the bulk path is tested against.
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
    "reference_shingle_hashes",
    "shingle_hashes",
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
# Every character ``str.split()`` splits on (``str.isspace``), for the bulk path's word split.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

#: Version of the shingle hashing below: part of every cached signature's key.
SHINGLE_HASHING = "poly64-1"
_MASK = (1 << 64) - 1
# Odd 64-bit constants, fixed forever (changing one changes every signature): the multiplier
# of characters within a word, that of words within a shingle, and splitmix64's mixers.
_CHAR_MUL = 0xD6E8FEB86659FD93
_CHAR_INV = pow(_CHAR_MUL, -1, 1 << 64)
_WORD_MUL = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
# Longer words are hashed with BLAKE2b one by one: a polynomial hash of a long string can be
# made to collide, a short word's can not be steered that way.
_LONG_WORD = 64
# Characters per numpy pass (bounds the bulk path's memory to a few hundred MiB).
_BATCH_CHARS = 1 << 21


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


def _mix(h: int) -> int:
    """splitmix64's finalizer (a bijection of 64-bit values that spreads every bit)."""
    h = ((h ^ (h >> 30)) * _MIX1) & _MASK
    h = ((h ^ (h >> 27)) * _MIX2) & _MASK
    return h ^ (h >> 31)


def _word_hash(word: str) -> int:
    """A word's 64-bit hash: a polynomial over its code points (BLAKE2b past ``_LONG_WORD``)."""
    if len(word) > _LONG_WORD:
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "little")
    h = 0
    for c in word:
        h = (h * _CHAR_MUL + ord(c)) & _MASK
    return _mix(h ^ len(word))


def reference_shingle_hashes(text: str, n: int = 5) -> list[int]:
    """The 64-bit hash of each of :func:`shingles`'s shingles, in order, one at a time.

    A shingle of words ``w1..wk`` hashes to ``mix((sum W(wi) * M^(k-i)) mod 2^64 ^ k)``, with
    ``W`` :func:`_word_hash`, ``M`` a fixed odd constant and ``mix`` splitmix64's finalizer.
    Plain Python: the definition :func:`shingle_hashes` computes in bulk.
    """
    if n < 1:
        raise ValueError(f"shingle size must be at least 1, got {n}")
    words = normalized_words(text)
    spans = [words] if len(words) < n else [words[i : i + n] for i in range(len(words) - n + 1)]
    out: list[int] = []
    for span in spans:
        h = 0
        for word in span:
            h = (h * _WORD_MUL + _word_hash(word)) & _MASK
        out.append(_mix(h ^ len(span)))
    return out


def _mix_array(h: Any) -> Any:
    import numpy as np

    h = (h ^ (h >> np.uint64(30))) * np.uint64(_MIX1)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(_MIX2)
    return h ^ (h >> np.uint64(31))


_CLASSES: Any = None


def _char_classes() -> Any:
    """uint8 class of each code point up to U+3000 (1 whitespace, 2 edge punctuation); every
    code point above is 0 (neither)."""
    global _CLASSES
    if _CLASSES is None:
        import numpy as np

        table = np.zeros(0x3002, dtype=np.uint8)
        table[[ord(c) for c in _WHITESPACE]] = 1
        table[[ord(c) for c in _EDGE_PUNCTUATION]] = 2
        _CLASSES = table
    return _CLASSES


_POWERS: dict[int, Any] = {}


def _powers(base: int, size: int) -> Any:
    """``base**i mod 2^64`` for i in 0..size-1 (uint64), kept between calls."""
    import numpy as np

    have = _POWERS.get(base)
    if have is None or len(have) < size:
        have = np.full(max(size, 1 << 16), base, dtype=np.uint64)
        have[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(have, out=have)
        _POWERS[base] = have
    return have[:size]


def _batch_word_hashes(text: str) -> tuple[Any, Any]:
    """For the words of an already case-folded ``text`` (split on whitespace, edge punctuation
    stripped, empties dropped): their start offsets and 64-bit hashes, in order."""
    import numpy as np

    if text.isascii():  # the common case: one byte per character, a 128-entry lookup
        cps = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        classes = _char_classes()[:128][cps]
    else:
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        classes = _char_classes()[np.minimum(cps, 0x3001)]
    size = len(cps)
    space = np.empty(size + 2, dtype=bool)
    space[0] = space[-1] = True
    np.equal(classes, 1, out=space[1:-1])
    # Raw words: runs of non-space; [start, end) offsets into text.
    edges = np.flatnonzero(space[1:] != space[:-1])
    starts, ends = edges[0::2], edges[1::2]
    # Strip edge punctuation: the first and last "core" (neither space nor punctuation) char.
    core = np.flatnonzero(classes == 0)
    if not len(core) or not len(starts):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    # Most words have no edge punctuation: only the others are looked up among the core chars.
    lo, hi = starts.copy(), ends.copy()
    fix = np.flatnonzero(classes[starts] != 0)
    lo[fix] = core[np.minimum(np.searchsorted(core, starts[fix]), len(core) - 1)]
    fix = np.flatnonzero(classes[ends - 1] != 0)
    hi[fix] = core[np.maximum(np.searchsorted(core, ends[fix]) - 1, 0)] + 1
    # A word of punctuation only has no core char inside it (the lookup fell outside).
    keep = (lo >= starts) & (lo < ends)
    lo, hi = lo[keep], hi[keep]
    length = hi - lo
    # Polynomial hash of every word by prefix sums: with Q[i] = sum_{t<i} c_t M^-t,
    # sum_{t=lo}^{hi-1} c_t M^(hi-1-t) = M^(hi-1) (Q[hi] - Q[lo]) (mod 2^64, M odd).
    with np.errstate(over="ignore"):
        prefix = np.zeros(size + 1, dtype=np.uint64)
        np.cumsum(cps.astype(np.uint64) * _powers(_CHAR_INV, size), out=prefix[1:])
        raw = (prefix[hi] - prefix[lo]) * _powers(_CHAR_MUL, size)[hi - 1]
        hashes = _mix_array(raw ^ length.astype(np.uint64))
    for k in np.flatnonzero(length > _LONG_WORD).tolist():
        hashes[k] = _word_hash(text[lo[k] : hi[k]])
    return lo, hashes


def _word_hashes(texts: Sequence[str]) -> tuple[Any, Any]:
    """Every word's hash over ``texts`` (flat, in order) and each text's first word's index
    (``len(texts) + 1`` offsets)."""
    import numpy as np

    folded = [t.casefold() for t in texts]
    hashes: list[Any] = []
    counts = np.zeros(len(folded), dtype=np.int64)
    begin = 0
    while begin < len(folded):
        end, chars = begin, 0
        while end < len(folded) and (end == begin or chars + len(folded[end]) < _BATCH_CHARS):
            chars += len(folded[end]) + 1
            end += 1
        # One space between texts: no word spans two of them.
        starts, found = _batch_word_hashes(" ".join(folded[begin:end]))
        offsets = np.zeros(end - begin, dtype=np.int64)
        np.cumsum([len(t) + 1 for t in folded[begin : end - 1]], out=offsets[1:])
        counts[begin:end] = np.diff(np.searchsorted(starts, [*offsets.tolist(), chars]))
        hashes.append(found)
        begin = end
    bounds = np.zeros(len(folded) + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    flat = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
    return flat, bounds


def _shingle_hashes_flat(texts: Sequence[str], n: int) -> tuple[Any, Any]:
    """All texts' shingle hashes, flat, and each text's first shingle's index."""
    import numpy as np

    if n < 1:
        raise ValueError(f"shingle size must be at least 1, got {n}")
    words, bounds = _word_hashes(texts)
    counts = np.diff(bounds)
    windows = max(len(words) - n + 1, 0)
    with np.errstate(over="ignore"):
        combined = np.zeros(windows, dtype=np.uint64)
        for k in range(n):  # Horner's rule over the n shifted views of the word hashes
            combined = combined * np.uint64(_WORD_MUL) + words[k : k + windows]
        full = _mix_array(combined ^ np.uint64(n))
        # Windows start at a text's words and stay inside it; a text of fewer than n words
        # is one shingle of all its words.
        per_text = np.maximum(counts - n + 1, 1)
        out_bounds = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(per_text, out=out_bounds[1:])
        within = np.repeat(bounds[:-1] - out_bounds[:-1], per_text)
        index = np.arange(out_bounds[-1], dtype=np.int64) + within
        short = np.flatnonzero(counts < n)
        out = (
            full[np.minimum(index, max(windows - 1, 0))]
            if windows
            else np.zeros(int(out_bounds[-1]), dtype=np.uint64)
        )
        for t in short.tolist():
            h = 0
            for value in words[bounds[t] : bounds[t + 1]].tolist():
                h = (h * _WORD_MUL + value) & _MASK
            out[out_bounds[t]] = _mix(h ^ int(counts[t]))
    return out, out_bounds


def shingle_hashes(texts: Sequence[str], n: int = 5) -> list[Any]:
    """Per text, the uint64 array of :func:`reference_shingle_hashes` (same values, same
    order), computed for the whole batch at once with numpy."""
    flat, bounds = _shingle_hashes_flat(texts, n)
    edges = bounds.tolist()
    return [flat[edges[t] : edges[t + 1]] for t in range(len(texts))]


def minhash_signatures(
    texts: Sequence[str], *, num_perm: int = 128, shingle_size: int = 5, seed: int = DEFAULT_SEED
) -> list[MinHashSignature]:
    """One ``rensa.RMinHash`` per text, over its shingles' :func:`shingle_hashes` (the
    hashes' 8 bytes are rensa's tokens).

    Deterministic: the same texts, ``num_perm`` and ``seed`` give the same digests in any
    process (BLAKE2b and rensa's token hash are fixed, not seeded by the process).
    """
    import numpy as np

    if not texts:
        return []
    flat, bounds = _shingle_hashes_flat(texts, shingle_size)
    # Each hash's 8 little-endian bytes is one token; numpy's S8 drops trailing NUL bytes,
    # which keeps distinct hashes distinct (all had the same length before).
    tokens = flat.astype("<u8", copy=False).view(np.dtype("S8")).tolist()
    edges = bounds.tolist()
    return signatures_from_shingles(
        [tokens[edges[t] : edges[t + 1]] for t in range(len(texts))], num_perm=num_perm, seed=seed
    )


def signatures_from_shingles(
    shingle_sets: Sequence[Sequence[str | bytes]],
    *,
    num_perm: int = 128,
    seed: int = DEFAULT_SEED,
) -> list[MinHashSignature]:
    """One ``rensa.RMinHash`` per token list (for callers that already shingled; note that
    :func:`minhash_signatures` uses hashed shingles, so string shingles give other digests)."""
    signatures: list[MinHashSignature] = _rensa().RMinHash.from_token_sets(
        shingle_sets, num_perm, seed
    )
    return signatures


def algorithm_version() -> str:
    """rensa's MinHash algorithm version and the shingle hashing's (part of every cached
    signature's key)."""
    return f"{_rensa().RMinHash.ALGORITHM_VERSION}+{SHINGLE_HASHING}"


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

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

import functools
import hashlib
import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from garrison.core.errors import MissingExtra

__all__ = [
    "DEFAULT_SEED",
    "Clusters",
    "algorithm_version",
    "estimated_jaccard",
    "exact_duplicate_clusters",
    "lsh_bands",
    "near_duplicate_clusters",
    "normalize_for_hash",
    "normalized_words",
    "reference_shingle_hashes",
    "reference_signature",
    "shingle_hashes",
    "shingles",
    "signature_bytes",
    "signature_matrix",
    "signatures_from_bytes",
    "text_hash",
    "token_signature_matrix",
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
SHINGLE_HASHING = "poly64x2-2"
_MASK = (1 << 64) - 1
# Odd 64-bit constants, fixed forever (changing one changes every signature): the multiplier
# of characters within a word, that of words within a shingle, and splitmix64's mixers.
_CHAR_MUL = 0xD6E8FEB86659FD93
_WORD_MUL = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
# Longer words are hashed with BLAKE2b one by one: a polynomial hash of a long string can be
# made to collide, a short word's can not be steered that way.
_LONG_WORD = 64
# Characters per numpy pass (bounds the bulk path's memory to a few hundred MiB).
_BATCH_CHARS = 1 << 21
#: Version of the stored signature layout (``num_perm`` little-endian uint32 of rensa's flat
#: digest matrix): part of every cached signature's key.
SIGNATURE_LAYOUT = "u32le-1"
# Texts and characters per signature pass. Small passes keep numpy's arrays in the CPU's cache
# (several times faster than one pass over a large batch), and stay under the number of rows
# at which rensa spreads a matrix over threads (256), which on a busy machine costs more
# than it saves.
_SIGNATURE_DOCS = 255
_SIGNATURE_CHARS = 1 << 17


def _rensa() -> Any:
    """The ``rensa`` module, imported on first use (native extension; optional elsewhere)."""
    try:
        import rensa  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra("dedup", "rensa") from exc
    return rensa


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
    """A word's 64-bit hash: a polynomial over its code points taken two at a time, each pair
    one 64-bit value (first code point in the low half; a lone last one alone), BLAKE2b past
    ``_LONG_WORD``."""
    if len(word) > _LONG_WORD:
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "little")
    h = 0
    for k in range(0, len(word), 2):
        pair = ord(word[k]) | (ord(word[k + 1]) << 32 if k + 1 < len(word) else 0)
        h = (h * _CHAR_MUL + pair) & _MASK
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


_ASCII_CLASSES: bytes | None = None


def _ascii_classes() -> bytes:
    """:func:`_char_classes` of the 128 ASCII code points, as a ``bytes.translate`` table."""
    global _ASCII_CLASSES
    if _ASCII_CLASSES is None:
        _ASCII_CLASSES = _char_classes()[:128].tobytes() + bytes(128)
    return _ASCII_CLASSES


def _batch_word_hashes(text: str) -> tuple[Any, Any]:
    """For the words of an already case-folded ``text`` (split on whitespace, edge punctuation
    stripped, empties dropped): their start offsets and 64-bit hashes, in order."""
    import numpy as np

    size = len(text)
    # Code points as little-endian uint32, one spare zero at the end so that every position
    # starts a readable pair.
    cps = np.zeros(size + 1, dtype="<u4")
    if text.isascii():  # the common case: one byte per character, classes by bytes.translate
        raw = text.encode("ascii")
        cps[:size] = np.frombuffer(raw, dtype=np.uint8)
        classes = np.frombuffer(raw.translate(_ascii_classes()), dtype=np.uint8)
    else:
        cps[:size] = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        classes = _char_classes()[np.minimum(cps[:size], 0x3001)]
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    # Raw words: runs of non-space; [start, end) offsets into text.
    lo, hi = _runs(classes, 1, False)
    if not len(lo):
        return empty
    # Strip edge punctuation. Few words have any, and then a character or two: step over it.
    lead = np.flatnonzero(classes[lo] != 0)
    while len(lead):
        lo[lead] += 1
        lead = lead[(lo[lead] < hi[lead]) & (classes[np.minimum(lo[lead], size - 1)] != 0)]
    trail = np.flatnonzero(classes[hi - 1] != 0)
    while len(trail):
        hi[trail] -= 1
        trail = trail[(hi[trail] > lo[trail]) & (classes[hi[trail] - 1] != 0)]
    keep = lo < hi  # a word of punctuation only is gone
    lo, hi = lo[keep], hi[keep]
    length = hi - lo
    # pairs[k] is code points k and k+1 as one 64-bit value (k in the low half): a strided
    # view, nothing copied. Each word takes ceil(length / 2) pairs, by Horner's rule; a round
    # handles the words that still have a pair left.
    pairs = np.ndarray((size,), dtype="<u8", buffer=cps, strides=(4,))
    low_half = np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        hashes = np.zeros(len(lo), dtype=np.uint64)
        active = np.flatnonzero(length <= _LONG_WORD)
        step = 0
        while len(active):
            chunk = pairs[lo[active] + step]
            lone = length[active] == step + 1
            chunk[lone] &= low_half
            hashes[active] = hashes[active] * np.uint64(_CHAR_MUL) + chunk
            step += 2
            active = active[length[active] > step]
        hashes = _mix_array(hashes ^ length.astype(np.uint64))
    for k in np.flatnonzero(length > _LONG_WORD).tolist():
        hashes[k] = _word_hash(text[lo[k] : hi[k]])
    return lo, hashes


def _runs(classes: Any, value: int, inside: bool) -> tuple[Any, Any]:
    """``[start, end)`` offsets of the maximal runs of characters whose class is ``value``
    (``inside``) or is not (not ``inside``)."""
    import numpy as np

    mask = np.empty(len(classes) + 2, dtype=bool)
    mask[0] = mask[-1] = not inside
    np.equal(classes, value, out=mask[1:-1])
    edges = np.flatnonzero(mask[1:] != mask[:-1])
    return edges[0::2], edges[1::2]


def _word_hashes(texts: Sequence[str]) -> tuple[Any, Any]:
    """Every word's hash over ``texts`` (flat, in order) and each text's first word's index
    (``len(texts) + 1`` offsets)."""
    import numpy as np

    folded = [t.casefold() for t in texts]
    # Each text's first character's offset in the whole batch joined with one space between
    # texts (so no word spans two of them).
    offsets = np.zeros(len(folded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, folded), dtype=np.int64, count=len(folded)) + 1, out=offsets[1:])
    hashes: list[Any] = []
    counts = np.zeros(len(folded), dtype=np.int64)
    begin = 0
    while begin < len(folded):
        # Texts up to _BATCH_CHARS characters per numpy pass (at least one).
        end = int(np.searchsorted(offsets, offsets[begin] + _BATCH_CHARS, side="right")) - 1
        end = min(max(end, begin + 1), len(folded))
        starts, found = _batch_word_hashes(" ".join(folded[begin:end]))
        local = offsets[begin : end + 1] - offsets[begin]
        counts[begin:end] = np.diff(np.searchsorted(starts, local))
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


def signature_matrix(
    texts: Sequence[str], *, num_perm: int = 128, shingle_size: int = 5, seed: int = DEFAULT_SEED
) -> Any:
    """MinHash signatures of ``texts`` as a ``(len(texts), num_perm)`` uint32 numpy matrix.

    Row ``t`` is the signature of text ``t``'s :func:`shingle_hashes`: the 64-bit shingle
    hashes go to rensa as they are (its flat-buffer digest matrix), so no Python object is made
    per shingle and nothing is hashed twice. Texts are taken ``_SIGNATURE_DOCS`` at a time, which
    bounds the memory of getting rensa's rows out.

    Deterministic: the same texts, ``num_perm`` and ``seed`` give the same matrix in any process
    (the shingle hashes and rensa's permutations are fixed, not seeded by the process).
    :func:`reference_signature` computes one row at a time, for the tests.
    """
    import numpy as np

    if num_perm < 1:
        raise ValueError(f"num_perm must be positive, got {num_perm}")
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    rensa = _rensa()
    for begin, end in _parts(texts):
        flat, bounds = _shingle_hashes_flat(texts[begin:end], shingle_size)
        digests = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            flat, bounds.astype(np.uint64), num_perm, seed
        )
        out[begin:end] = _rows(digests.to_rows(), end - begin, num_perm)
    return out


def _parts(texts: Sequence[str]) -> list[tuple[int, int]]:
    """``[begin, end)`` ranges of ``texts`` of about ``_SIGNATURE_CHARS`` characters and at
    most ``_SIGNATURE_DOCS`` texts each (at least one text)."""
    parts: list[tuple[int, int]] = []
    begin, chars = 0, 0
    for k, text in enumerate(texts):
        if k > begin and (chars + len(text) > _SIGNATURE_CHARS or k - begin >= _SIGNATURE_DOCS):
            parts.append((begin, k))
            begin, chars = k, 0
        chars += len(text) + 1
    if begin < len(texts):
        parts.append((begin, len(texts)))
    return parts


def _rows(rows: list[list[int]], count: int, num_perm: int) -> Any:
    """rensa's digest rows (lists of ints) as a ``(count, num_perm)`` uint32 matrix."""
    import numpy as np

    values = np.fromiter(chain.from_iterable(rows), dtype=np.uint32, count=count * num_perm)
    return values.reshape(count, num_perm)


def reference_signature(
    text: str, *, num_perm: int = 128, shingle_size: int = 5, seed: int = DEFAULT_SEED
) -> list[int]:
    """One text's signature the plain way: its :func:`reference_shingle_hashes`, given to rensa
    as one document's list of hashes. The definition :func:`signature_matrix`'s rows are tested
    against."""
    hashes = reference_shingle_hashes(text, shingle_size)
    digests = _rensa().RMinHash.digest_matrix_from_token_hash_sets([hashes], num_perm, seed)
    row: list[int] = digests.to_rows()[0]
    return row


def token_signature_matrix(
    token_sets: Sequence[Sequence[str | bytes]],
    *,
    num_perm: int = 128,
    seed: int = DEFAULT_SEED,
) -> Any:
    """Signatures (a uint32 matrix like :func:`signature_matrix`'s) of token lists, for callers
    that already shingled: rensa hashes each token itself, so string shingles give other
    signatures than :func:`signature_matrix` does for the same texts."""
    import numpy as np

    out = np.empty((len(token_sets), num_perm), dtype=np.uint32)
    build = _rensa().RMinHash.digest_matrix_from_token_sets
    for begin in range(0, len(token_sets), _SIGNATURE_DOCS):
        part = list(token_sets[begin : begin + _SIGNATURE_DOCS])
        out[begin : begin + len(part)] = _rows(
            build(part, num_perm, seed).to_rows(), len(part), num_perm
        )
    return out


def algorithm_version() -> str:
    """rensa's MinHash algorithm version, the shingle hashing's and the signature layout's
    (part of every cached signature's key)."""
    return f"{_rensa().RMinHash.ALGORITHM_VERSION}+{SHINGLE_HASHING}+{SIGNATURE_LAYOUT}"


def signature_bytes(signatures: Any) -> list[bytes]:
    """Each row of a signature matrix as its stored form: ``num_perm`` little-endian uint32."""
    import numpy as np

    little = np.ascontiguousarray(signatures, dtype="<u4")
    return [row.tobytes() for row in little]


def signatures_from_bytes(states: Sequence[bytes], num_perm: int) -> Any:
    """A signature matrix from :func:`signature_bytes` forms (the bytes come from the catalog:
    each must be exactly ``num_perm`` uint32, or ``ValueError``)."""
    import numpy as np

    size = 4 * num_perm
    bad = [n for n, state in enumerate(states) if len(state) != size]
    if bad:
        raise ValueError(f"stored signature {bad[0]} is not {num_perm} uint32 values")
    joined = b"".join(states)
    return np.frombuffer(joined, dtype="<u4").astype(np.uint32).reshape(len(states), num_perm)


def estimated_jaccard(a: Any, b: Any) -> float:
    """Estimated Jaccard similarity of two signature rows: the share of equal positions."""
    import numpy as np

    return float(np.count_nonzero(np.asarray(a) == np.asarray(b))) / len(a)


def _band_probability(s: float, bands: int, rows: int) -> float:
    """Probability that a pair of Jaccard ``s`` shares at least one band."""
    return 1.0 - (1.0 - s**rows) ** bands


@functools.lru_cache(maxsize=64)
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


def _components(size: int, first: Any, second: Any) -> Any:
    """For ``size`` nodes joined by the edges ``first[k]--second[k]``: each node's component's
    smallest node (int64), by label propagation with pointer jumping (numpy, no Python loop
    per edge)."""
    import numpy as np

    labels = np.arange(size, dtype=np.int64)
    while True:
        low = np.minimum(labels[first], labels[second])
        moved = labels.copy()
        np.minimum.at(moved, first, low)
        np.minimum.at(moved, second, low)
        while True:  # point every node at its label's label until that is stable
            jumped = moved[moved]
            if (jumped == moved).all():
                break
            moved = jumped
        if (moved == labels).all():
            return labels
        labels = moved


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


def _band_keys(signatures: Any, bands: int) -> Any:
    """``(n, bands)`` uint64: a 64-bit hash of each row's values in each band. Rows sharing a
    band's values share its key; rows that do not collide with probability about 2^-64, which
    only adds a candidate that verification then rejects."""
    import numpy as np

    n, num_perm = signatures.shape
    rows = num_perm // bands
    cols = signatures.astype(np.uint64).reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        keys = np.zeros((n, bands), dtype=np.uint64)
        for r in range(rows):  # Horner's rule over the band's values
            keys = keys * np.uint64(_WORD_MUL) + cols[:, :, r]
        return _mix_array(keys ^ np.uint64(rows))


def _candidate_pairs(signatures: Any, bands: int) -> tuple[Any, Any]:
    """LSH candidates: every pair of rows ``(i, j)``, ``i < j``, that shares at least one band's
    key, once each, sorted by ``(i, j)`` (two int64 arrays)."""
    import numpy as np

    n = len(signatures)
    codes: list[Any] = []
    if n >= 2:
        keys = _band_keys(signatures, bands)
        for band in range(bands):
            order = np.argsort(keys[:, band], kind="stable")
            ranked = keys[order, band]
            same = ranked[1:] == ranked[:-1]
            if not same.any():
                continue
            # Each sorted position pairs with the later positions of its run of equal keys.
            last = np.flatnonzero(np.concatenate((~same, [True])))  # last position of every run
            run_end = np.repeat(last, np.diff(np.append(-1, last)))
            partners = run_end - np.arange(n)
            total = int(partners.sum())
            left = np.repeat(np.arange(n), partners)
            step = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
            a, b = order[left], order[left + 1 + step]
            codes.append(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
    if not codes:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    unique = np.unique(np.concatenate(codes))
    return unique // n, unique % n


def _verified(signatures: Any, first: Any, second: Any, threshold: float) -> Any:
    """Mask of the candidate pairs whose estimated Jaccard is at least ``threshold``."""
    import numpy as np

    num_perm = signatures.shape[1]
    keep = np.zeros(len(first), dtype=bool)
    step = max(1, (1 << 24) // max(num_perm, 1))  # pairs per pass: bounds the memory used
    for k in range(0, len(first), step):
        a, b = first[k : k + step], second[k : k + step]
        equal = np.count_nonzero(signatures[a] == signatures[b], axis=1)
        keep[k : k + step] = equal / num_perm >= threshold
    return keep


def near_duplicate_clusters(
    ids: Sequence[str],
    signatures: Any,
    groups: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
) -> Clusters:
    """Cluster records whose estimated Jaccard similarity is at least ``threshold``, per group.

    ``signatures`` is a :func:`signature_matrix` (one row per id, ``num_perm`` columns). LSH
    (:func:`lsh_bands` bands of the matrix, each band's values hashed and grouped with numpy)
    proposes candidate pairs; only candidates are verified by estimated Jaccard (never all
    pairs), and verified same-group pairs are joined by union-find. Candidates are generated
    over all groups at once so that verified pairs across groups can be reported in
    ``cross_group_pairs``; they are never clustered.
    """
    import numpy as np

    matrix = np.asarray(signatures, dtype=np.uint32)
    if matrix.ndim != 2 or matrix.shape[0] != len(ids) or matrix.shape[1] != num_perm:
        raise ValueError(f"signatures must be a ({len(ids)}, {num_perm}) matrix")
    _check_lengths(ids, groups)
    first, second = _candidate_pairs(matrix, lsh_bands(threshold, num_perm))
    keep = _verified(matrix, first, second, threshold)
    first, second = first[keep], second[keep]
    index = {g: k for k, g in enumerate(dict.fromkeys(groups))}
    group_ids = np.array([index[g] for g in groups], dtype=np.int64)
    same = group_ids[first] == group_ids[second]
    joined_first, joined_second = first[same], second[same]
    labels = _components(len(ids), joined_first, joined_second)
    canonical = labels.tolist()
    moved = np.flatnonzero(labels != np.arange(len(ids))).tolist()
    dup_of = {ids[i]: ids[canonical[i]] for i in moved}
    pairs = [
        (ids[i], ids[j]) for i, j in zip(joined_first.tolist(), joined_second.tolist(), strict=True)
    ]
    cross = [
        (ids[i], ids[j]) for i, j in zip(first[~same].tolist(), second[~same].tolist(), strict=True)
    ]
    return Clusters(dup_of, tuple(pairs), tuple(cross))

"""The ``dedup`` stage: mark exact and near duplicates, within one marking only.

A thin adapter over :mod:`garrison.pipeline.dedup`. It sees the whole corpus (``scope =
"corpus"``), never deletes an item, and leaves canonical items' text and fields alone:

* a non-canonical member gets ``dup_of`` (the canonical item's id) and ``dup_kind``
  (``"exact"`` or ``"near"``);
* records are clustered only with records of the same marking (group key: the marking's
  canonical ``to_dict()`` JSON), so no ``dup_of`` crosses a marking boundary (ARCHITECTURE.md
  section 7, invariant 1). Near-identical content under different markings is recorded instead
  in each involved item's ``extra["dup_marked_differently"]`` (the other item ids); the sink
  turns those into ``duplicate-marked-differently`` findings marked with the join.

Canonical member: the record that sorts first by ``(doc_id, seq, id)`` (document level: by
``doc_id``), whatever order the items arrive in.

``level="document"`` compares whole documents (their items' texts in ``seq`` order). Two
documents cluster only if they carry the same set of item markings, and each item of a
duplicate document points at the first item of the canonical document *with its own marking*,
so the invariant holds item by item too.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from garrison.pipeline._stage import Item, Stage, StageParams, register_stage
from garrison.pipeline.dedup import (
    DEFAULT_SEED,
    Clusters,
    algorithm_version,
    exact_duplicate_clusters,
    near_duplicate_clusters,
    normalized_words,
    signature_bytes,
    signature_matrix,
    signatures_from_bytes,
)
from garrison.security.markings import Marking

__all__ = ["DedupParams", "DedupStage"]

EXTRA_KEY = "dup_marked_differently"
#: Where a unit's MinHash signature (``num_perm`` little-endian uint32) and its cache key ride
#: on its first item.
MINHASH = "minhash"
MINHASH_KEY = "minhash_key"
#: An element's exact-duplicate hash (SHA-256 of its normalized text) and word count, cached.
TEXT_HASH = "text_hash"
WORD_COUNT = "word_count"
#: Set on items read back without their text (unchanged since a previous run): the stage then
#: trusts the cached hash, word count and signature instead of recomputing them from the text.
LIGHT = "light"


class DedupParams(StageParams):
    """Parameters of the ``dedup`` stage."""

    level: Literal["element", "document"] = "element"
    exact: bool = True
    near: bool = True
    #: Estimated Jaccard similarity (of ``shingle_size``-word shingles) at or above which two
    #: records are near duplicates.
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    num_perm: int = Field(default=128, ge=16, le=1024)
    shingle_size: int = Field(default=5, ge=1, le=20)
    #: Records with fewer words are only exact-deduplicated (MinHash on a handful of words is
    #: noise, and short boilerplate like "Thank you." is better left to exact matching).
    min_words: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _check_num_perm(self) -> DedupParams:
        # LSH splits the signature into equal bands; a multiple of 8 always has several
        # workable band counts (8, 16, 32...) whatever the threshold.
        if self.num_perm % 8:
            raise ValueError(f"num_perm must be a multiple of 8, got {self.num_perm}")
        return self


def marking_key(marking: Marking) -> str:
    """Group key of a marking: its canonical ``to_dict()`` as sorted, compact JSON."""
    return json.dumps(marking.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass
class _Unit:
    """What is compared: one item (element level) or one document's items (document level)."""

    id: str
    text: str
    group: str
    items: list[Item]  # in (seq, id) order


def _units(items: list[Item], level: str) -> list[_Unit]:
    live = sorted((i for i in items if i.dropped is None), key=lambda i: (i.doc_id, i.seq, i.id))
    if level == "element":
        # Items share marking objects (a session caches them): serialize each one once.
        keys: dict[int, str] = {}
        out = []
        for i in live:
            key = keys.get(id(i.marking))
            if key is None:
                key = keys[id(i.marking)] = marking_key(i.marking)
            out.append(_Unit(i.id, i.text, key, [i]))
        return out
    by_doc: dict[str, list[Item]] = defaultdict(list)
    for item in live:
        by_doc[item.doc_id].append(item)
    return [
        _Unit(
            doc_id,
            "\n".join(i.text for i in members),
            json.dumps(sorted({marking_key(i.marking) for i in members})),
            members,
        )
        for doc_id, members in by_doc.items()
    ]


@functools.lru_cache(maxsize=32)
def _signature_key(num_perm: int, shingle_size: int) -> str:
    head = f"{num_perm}|{shingle_size}|{DEFAULT_SEED}|{algorithm_version()}"
    return hashlib.sha256(head.encode("utf-8")).hexdigest()[:32]


def _empty() -> Clusters:
    return Clusters({}, (), ())


@register_stage
class DedupStage(Stage[DedupParams]):
    """Mark exact then near duplicates among items of the same marking (see module docs)."""

    name: ClassVar[str] = "dedup"
    version: ClassVar[str] = "1"
    Params: ClassVar[type[StageParams]] = DedupParams
    scope: ClassVar[Literal["batch", "corpus"]] = "corpus"

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        p = self.params
        all_units = _units(items, p.level)
        features = [self._features(u) for u in all_units]
        # Empty texts are not duplicates of anything worth pointing at.
        kept = [n for n, (_, words) in enumerate(features) if words]
        units = [all_units[n] for n in kept]
        hashes = [features[n][0] for n in kept]
        words = [features[n][1] for n in kept]
        exact = _empty()
        if p.exact:
            exact = exact_duplicate_clusters(
                [u.id for u in units], [u.text for u in units], [u.group for u in units], hashes
            )
        near = _empty()
        if p.near:
            # Only the exact clusters' canonical members (and singletons) go on: their
            # duplicates have the same text and would only add trivial pairs.
            rest = [
                (u, h)
                for u, h, w in zip(units, hashes, words, strict=True)
                if u.id not in exact.dup_of and w >= p.min_words
            ]
            signatures = self._signatures([u for u, _ in rest], [h for _, h in rest])
            near = near_duplicate_clusters(
                [u.id for u, _ in rest],
                signatures,
                [u.group for u, _ in rest],
                threshold=p.threshold,
                num_perm=p.num_perm,
            )
        by_id = {u.id: u for u in units}
        for unit in units:
            first = exact.dup_of.get(unit.id, unit.id)
            final = near.dup_of.get(first, first)
            if final != unit.id:
                # An exact copy of a near duplicate points at the near cluster's canonical
                # member (no chains); its relation to that member is only "near".
                kind = "exact" if final == first else "near"
                self._mark(unit, by_id[final], kind)
        for a, b in exact.cross_group_pairs + near.cross_group_pairs:
            self._cross(by_id[a], by_id[b])
            self._cross(by_id[b], by_id[a])
        for item in items:
            if item.dropped is None:
                item.lineage.append(self.lineage((item.id,)))
        return items

    def _features(self, unit: _Unit) -> tuple[str, int]:
        """The unit's exact-duplicate hash and word count, from its text -- or, for an element
        read back without its text (``extra[LIGHT]``, see the executor), as cached."""
        first = unit.items[0]
        if self.params.level == "element":
            cached_hash, cached_words = first.extra.get(TEXT_HASH), first.extra.get(WORD_COUNT)
            if first.extra.get(LIGHT) and isinstance(cached_hash, str):
                return cached_hash, int(cached_words or 0)
        normalized = normalized_words(unit.text)
        digest = hashlib.sha256(" ".join(normalized).encode("utf-8")).hexdigest()
        if self.params.level == "element":
            if first.extra.get(TEXT_HASH) != digest:
                # The text changed since a signature was cached for it: forget the signature.
                first.extra.pop(MINHASH, None)
                first.extra.pop(MINHASH_KEY, None)
            first.extra[TEXT_HASH] = digest
            first.extra[WORD_COUNT] = len(normalized)
        return digest, len(normalized)

    def _signatures(self, units: list[_Unit], hashes: list[str]) -> Any:
        """MinHash signatures of ``units`` (a matrix, one row each), reusing those a previous
        run left on the items.

        At element level a signature is cached on its item (``extra["minhash"]``: its row as
        ``num_perm`` little-endian uint32 -- never a pickle) with the parameters it was made
        under (``minhash_key``: permutations, shingle size, seed, the algorithm versions) beside
        the text's hash; the sink stores them, and a re-run loads them back, so only new or
        changed texts are shingled and hashed again. An item read back without its text must
        carry a current signature (the executor reads the others in full).
        """
        import numpy as np

        p = self.params
        cache = p.level == "element"
        out = np.empty((len(units), p.num_perm), dtype=np.uint32)
        cached: list[int] = []
        missing: list[int] = []
        for n, unit in enumerate(units):
            if cache and self._cached(unit.items[0], hashes[n]):
                cached.append(n)
            elif unit.items[0].extra.get(LIGHT):
                raise ValueError(f"item {unit.id} was read without its text or a signature")
            else:
                missing.append(n)
        if cached:
            out[cached] = signatures_from_bytes(
                [units[n].items[0].extra[MINHASH] for n in cached], p.num_perm
            )
        if missing:
            computed = signature_matrix(
                [units[n].text for n in missing],
                num_perm=p.num_perm,
                shingle_size=p.shingle_size,
            )
            out[missing] = computed
            if cache:
                key = self.signature_key()
                for n, state in zip(missing, signature_bytes(computed), strict=True):
                    units[n].items[0].extra[MINHASH_KEY] = key
                    units[n].items[0].extra[MINHASH] = state
        return out

    def _cached(self, item: Item, text_hash: str) -> bool:
        """Whether ``item`` carries a signature of its current text made as this run makes them."""
        state = item.extra.get(MINHASH)
        return (
            item.extra.get(MINHASH_KEY) == self.signature_key()
            and item.extra.get(TEXT_HASH) == text_hash
            and isinstance(state, bytes)
            and len(state) == 4 * self.params.num_perm
        )

    def needs_text(self, item: Item) -> bool:
        """Whether an element read back without its text (see the executor) lacks something
        this stage needs: its cached hash, or -- when near matching would compare it -- a
        current signature. The executor reads such elements in full."""
        p = self.params
        digest = item.extra.get(TEXT_HASH)
        if item.dropped is not None:
            return False
        if not isinstance(digest, str):
            return True
        if not p.near or int(item.extra.get(WORD_COUNT) or 0) < p.min_words:
            return False
        return not self._cached(item, digest)

    def signature_key(self) -> str:
        """Key of the parameters and algorithms signatures are made under (cached beside each)."""
        return _signature_key(self.params.num_perm, self.params.shingle_size)

    @staticmethod
    def _mark(unit: _Unit, canonical: _Unit, kind: str) -> None:
        # Same group means the same set of markings, so every item finds a target with its
        # own marking (for an element, the canonical item itself).
        if len(unit.items) == 1 and len(canonical.items) == 1:
            unit.items[0].dup_of = canonical.items[0].id
            unit.items[0].dup_kind = kind
            return
        first_by_marking: dict[str, str] = {}
        for item in canonical.items:
            first_by_marking.setdefault(marking_key(item.marking), item.id)
        for item in unit.items:
            item.dup_of = first_by_marking[marking_key(item.marking)]
            item.dup_kind = kind

    @staticmethod
    def _cross(unit: _Unit, other: _Unit) -> None:
        others = [i.id for i in other.items]
        for item in unit.items:
            known: list[str] = item.extra.setdefault(EXTRA_KEY, [])
            known.extend(o for o in others if o not in known)

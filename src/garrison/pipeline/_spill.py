"""Keeping a run's memory bounded: element items wait on disk, batches are read when used.

The corpus stage (element-level ``dedup``) needs every element at once, but only a few of
each element's fields: its id, document, order, marking, drop reason, cached features and --
for a text not yet hashed -- the text. So the executor keeps a *light* copy of each element
(:func:`lighten`) for the middle and writes the full items the head produced to a
:class:`Spill`, a document at a time; the tail reads them back a batch at a time and takes over
what the middle decided on the light copies (:func:`take_decisions`).

Markings are not written to the spill: each item's marking is stored as a reference to the one
object the spill keeps for it, so items read back carry the run's own marking objects (a fresh
copy per read would be a new object for every caller that caches by object -- the session's
marking ids -- to hold on to).

The spill is an unnamed temporary file in the workspace folder (owner-only, like the catalog
beside it): it never has a name another process could open, and it is gone when the run ends,
however it ends. It holds only what the running subject may read (the head's own items).

:class:`LazyBatches` is a sequence of batches built on demand (from the catalog or the spill),
so an engine that runs batches one after another never holds more than a few of them.
"""

from __future__ import annotations

import io
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, overload

from garrison.pipeline._stage import Item
from garrison.pipeline.stages.dedup import LIGHT
from garrison.security.markings import Marking

__all__ = ["LazyBatches", "Spill", "groups_of", "lighten", "take_decisions"]


class Spill:
    """Items of whole documents, written once and read back by document id."""

    def __init__(self, folder: Path) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder, prefix=".garrison-spill-")  # noqa: SIM115
        self._where: dict[str, tuple[int, int]] = {}
        self._end = 0
        #: The marking objects items refer to, and each one's number (keyed by object id; the
        #: list keeps the objects alive, so an id is never reused while it is a key).
        self._markings: list[Marking] = []
        self._numbers: dict[int, int] = {}

    def put(self, doc_id: str, items: list[Item]) -> None:
        buffer = io.BytesIO()
        _Writer(buffer, self).dump(items)
        data = buffer.getvalue()
        self._file.seek(self._end)
        self._file.write(data)
        self._where[doc_id] = (self._end, len(data))
        self._end += len(data)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._where

    def get(self, doc_id: str) -> list[Item]:
        """The items put for ``doc_id`` (a fresh copy on every call)."""
        offset, size = self._where[doc_id]
        self._file.seek(offset)
        data = self._file.read(size)
        return list(_Reader(io.BytesIO(data), self._markings).load())

    def _number(self, marking: Marking) -> int:
        number = self._numbers.get(id(marking))
        if number is None:
            number = self._numbers[id(marking)] = len(self._markings)
            self._markings.append(marking)
        return number

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Writer(pickle.Pickler):
    """Pickles items with each marking as its number in the spill."""

    def __init__(self, file: IO[bytes], spill: Spill) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._spill = spill

    def persistent_id(self, obj: Any) -> int | None:
        return self._spill._number(obj) if isinstance(obj, Marking) else None


class _Reader(pickle.Unpickler):  # this run's own file, never named: not untrusted bytes
    """Unpickles items, each marking number back to the spill's object."""

    def __init__(self, file: IO[bytes], markings: list[Marking]) -> None:
        super().__init__(file)
        self._markings = markings

    def persistent_load(self, pid: Any) -> Marking:
        return self._markings[int(pid)]


class LazyBatches(Sequence[list[Item]]):
    """Batches of whole documents, each loaded by ``load(doc_ids)`` when asked for."""

    def __init__(self, groups: list[list[str]], load: Callable[[list[str]], list[Item]]) -> None:
        self.groups = groups
        self._load = load

    def __len__(self) -> int:
        return len(self.groups)

    @overload
    def __getitem__(self, index: int) -> list[Item]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[Item]]: ...

    def __getitem__(self, index: int | slice) -> list[Item] | list[list[Item]]:
        if isinstance(index, slice):
            return [self._load(group) for group in self.groups[index]]
        return self._load(self.groups[index])

    def __iter__(self) -> Iterator[list[Item]]:
        for group in self.groups:
            yield self._load(group)


def groups_of(doc_ids: Sequence[str], batch_docs: int) -> list[list[str]]:
    """``doc_ids`` in order, ``batch_docs`` at a time."""
    return [list(doc_ids[n : n + batch_docs]) for n in range(0, len(doc_ids), batch_docs)]


def lighten(item: Item) -> Item:
    """What element-level dedup reads of ``item``: no original text, PII, quality or lineage.

    The text stays while the item has no cached hash (dedup hashes and signs it); a dropped
    item's text is never read.
    """
    return Item(
        id=item.id,
        doc_id=item.doc_id,
        kind=item.kind,
        text="" if item.dropped is not None else item.text,
        original_text="",
        marking=item.marking,
        element_ids=item.element_ids,
        seq=item.seq,
        dropped=item.dropped,
        failed=item.failed,
        extra=dict(item.extra),
    )


def take_decisions(full: list[Item], light: Sequence[Item]) -> list[Item]:
    """``full`` items carrying what the middle decided on their ``light`` copies (duplicate
    links, findings to raise, cached features, the middle's lineage steps)."""
    decided = {item.id: item for item in light}
    for item in full:
        seen = decided.get(item.id)
        if seen is not None:
            item.dup_of, item.dup_kind = seen.dup_of, seen.dup_kind
            item.extra = {k: v for k, v in seen.extra.items() if k != LIGHT}
            item.lineage = item.lineage + seen.lineage
    return full

"""The spill and the sink keep one marking object per marking (the session caches by object)."""

from __future__ import annotations

from pathlib import Path

from garrison.pipeline import Item
from garrison.pipeline._spill import Spill
from garrison.pipeline.sink import _Canonical
from garrison.security.markings import parse_marking


def _item(n: int, doc: str, marking_text: str) -> Item:
    return Item(
        id=f"e{n}",
        doc_id=doc,
        kind="element",
        text=f"text {n}",
        original_text=f"text {n}",
        marking=parse_marking(marking_text),
        element_ids=(f"e{n}",),
        seq=n,
        extra={"minhash": b"\x01\x02", "text_hash": "abc"},
    )


def test_spill_reads_back_the_items_with_the_markings_it_was_given(tmp_path: Path) -> None:
    secret = _item(0, "d1", "SECRET//NOFORN")
    other = _item(1, "d1", "CONFIDENTIAL")
    same = _item(2, "d2", "SECRET//NOFORN")
    same.marking = secret.marking
    with Spill(tmp_path) as spill:
        spill.put("d1", [secret, other])
        spill.put("d2", [same])
        first, second = spill.get("d1"), spill.get("d1")
        (back,) = spill.get("d2")
    assert first == [secret, other]
    assert first[0] is not secret  # a fresh copy of the item ...
    # ... with the very marking objects that were put, on every read.
    assert first[0].marking is secret.marking and second[0].marking is secret.marking
    assert first[1].marking is other.marking
    assert back.marking is secret.marking
    assert back.extra == {"minhash": b"\x01\x02", "text_hash": "abc"}


def test_canonical_markings_are_one_object_per_marking() -> None:
    canonical = _Canonical()
    a, b = parse_marking("SECRET//NOFORN"), parse_marking("SECRET//NOFORN")
    c = parse_marking("CONFIDENTIAL")
    chunk = _item(0, "d1", "SECRET//NOFORN")
    assert canonical.of(a) is a
    assert canonical.of(c) is c
    chunk.embedding_marking = parse_marking("CONFIDENTIAL")
    canonical.items([], [chunk])
    assert chunk.marking is a and chunk.embedding_marking is c
    assert canonical.of(b) is a

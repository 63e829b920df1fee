"""A ChunkIndex keeps its opened table and still sees what other writers added."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from garrison.store.index import KEPT_INDEXES, ChunkIndex, chunk_index, where_in

DIM = 4


def _row(n: int, *, marking: int = 1, dim: int = DIM) -> dict[str, Any]:
    vector = [0.0] * dim
    vector[n % dim] = 1.0
    return {
        "chunk_id": f"c{n}",
        "doc_id": f"d{n}",
        "marking_id": marking,
        "vector_marking_id": marking,
        "text": f"chunk number {n}",
        "model": "hashing",
        "vector": vector,
    }


def _ids(index: ChunkIndex, dim: int = DIM) -> set[str]:
    rows = index.nearest([1.0] + [0.0] * (dim - 1), "TRUE", limit=100, columns=["chunk_id"])
    return {r["chunk_id"] for r in rows}


def test_rows_written_by_another_process_are_seen(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    index.replace_documents(["d0"], [_row(0)])
    assert _ids(index) == {"c0"}
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from garrison.store.index import ChunkIndex
        row = {_row(1)!r}
        ChunkIndex(Path({str(tmp_path)!r})).replace_documents(["d1"], [row])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert _ids(index) == {"c0", "c1"}
    assert index.count(where_in("marking_id", [1])) == 2


def test_deletes_through_another_handle_are_seen(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    index.replace_documents(["d0", "d1"], [_row(0), _row(1)])
    assert index.count() == 2
    ChunkIndex(tmp_path).replace_documents(["d1"], [])
    assert index.count() == 1
    assert _ids(index) == {"c0"}


def test_a_table_made_anew_elsewhere_is_followed(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    index.replace_documents(["d0"], [_row(0)])
    assert _ids(index) == {"c0"}
    # Another writer's embedder changed dimension: the table is dropped and made again.
    ChunkIndex(tmp_path).replace_documents(["d5"], [_row(5, dim=8)])
    assert _ids(index) == set()  # a query of the old dimension finds nothing
    assert _ids(index, dim=8) == {"c5"}
    assert index.values("doc_id", "TRUE") == ["d5"]


def test_no_table_yet_is_not_kept(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    assert index.count() == 0
    ChunkIndex(tmp_path).replace_documents(["d0"], [_row(0)])
    assert index.count() == 1


def test_one_instance_per_folder(tmp_path: Path) -> None:
    assert chunk_index(tmp_path / "index") is chunk_index(tmp_path / "index")
    assert chunk_index(tmp_path / "a") is not chunk_index(tmp_path / "b")
    first = chunk_index(tmp_path / "index")
    for n in range(KEPT_INDEXES):  # the least recently used folder is let go
        chunk_index(tmp_path / f"other-{n}")
    assert chunk_index(tmp_path / "index") is not first


@pytest.mark.parametrize("marking", [2])
def test_kept_table_still_prefilters(tmp_path: Path, marking: int) -> None:
    index = ChunkIndex(tmp_path)
    index.replace_documents(["d0"], [_row(0)])
    assert _ids(index) == {"c0"}
    ChunkIndex(tmp_path).replace_documents(["d1"], [_row(1, marking=marking)])
    rows = index.nearest(
        [1.0, 0, 0, 0], where_in("vector_marking_id", [1]), limit=10, columns=["chunk_id"]
    )
    assert {r["chunk_id"] for r in rows} == {"c0"}


def test_the_table_is_opened_once_while_nothing_changes(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    index.replace_documents(["d0"], [_row(0)])
    first = index._read_table()
    assert index._read_table() is first
    ChunkIndex(tmp_path).replace_documents(["d1"], [_row(1)])  # a commit through another handle
    assert index._read_table() is not first
    assert index.count() == 2


def test_counts_and_tallies_follow_every_new_version(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    index.replace_documents(["d0"], [_row(0)])
    where = where_in("marking_id", [1])
    assert (index.count(where), index.tally("model", where)) == (1, {"hashing": 1})
    other = {**_row(1), "model": "other"}
    ChunkIndex(tmp_path).replace_documents(["d1"], [other])
    assert (index.count(where), index.tally("model", where)) == (2, {"hashing": 1, "other": 1})
    ChunkIndex(tmp_path).replace_documents(["d0"], [])
    assert (index.count(where), index.tally("model", where)) == (1, {"other": 1})

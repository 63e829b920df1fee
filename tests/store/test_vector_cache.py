"""Nearest neighbours from kept vectors: the same rows as LanceDB's prefiltered flat search,
never a row outside the filter, and never a block of another table or version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.store.index import ChunkIndex, where_in
from garrison.store.vector_cache import TABLE_ID, VectorCache, read_block, table_id

DIM = 8
ROWS = 300
MARKINGS = (1, 2, 3, 4)


def _rows(n: int, *, seed: int = 7, start: int = 0) -> list[dict[str, Any]]:
    """Random markings and vectors, a tenth of them copies of another (ties to break)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    for i in range(0, n, 10):
        vectors[i] = vectors[(i * 7 + 3) % n]
    return [
        {
            "chunk_id": f"c{start + i:04d}",
            "doc_id": f"d{(start + i) // 5}",
            "marking_id": int(rng.choice(MARKINGS)),
            "vector_marking_id": int(rng.choice(MARKINGS)),
            "text": "generated",
            "model": "hashing" if i % 3 else "other",
            "vector": [float(x) for x in vectors[i]],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChunkIndex, list[dict[str, Any]]]:
    """One index kept across examples, so that its blocks of every filter are reused."""
    root = tmp_path_factory.mktemp("vectors")
    rows = _rows(ROWS)
    index = ChunkIndex(root)
    index.replace_documents(sorted({r["doc_id"] for r in rows}), rows)
    return index, rows


def _order(rows: list[dict[str, Any]]) -> list[tuple[float, str]]:
    return sorted((round(float(r["_distance"]), 4), str(r["chunk_id"])) for r in rows)


WHERES = st.one_of(
    st.sets(st.sampled_from(MARKINGS)).map(
        lambda ids: (
            f"({where_in('marking_id', sorted(ids))}) AND "
            f"({where_in('vector_marking_id', sorted(ids))})"
        )
    ),
    st.sets(st.sampled_from(MARKINGS), min_size=1).map(
        lambda ids: f"({where_in('vector_marking_id', sorted(ids))}) AND (model = 'hashing')"
    ),
)


@settings(max_examples=40)
@given(
    where=WHERES,
    query=st.integers(0, ROWS - 1),
    noise=st.floats(0, 1),
    limit=st.integers(1, 60),
)
def test_kept_vectors_rank_like_lancedb_and_stay_in_the_filter(
    indexed: tuple[ChunkIndex, list[dict[str, Any]]],
    where: str,
    query: int,
    noise: float,
    limit: int,
) -> None:
    kept, rows = indexed
    plain = ChunkIndex(kept.uri, vector_cache_bytes=0)
    vector = [x + noise for x in rows[query]["vector"]]
    columns = ["chunk_id", "marking_id", "vector_marking_id", "model"]
    for _ in range(2):  # the block is read, then used
        got = kept.nearest(vector, where, limit=limit, columns=columns)
        want = plain.nearest(vector, where, limit=limit, columns=columns)
        assert _order(got) == _order(want)
        assert [r["_distance"] for r in got] == sorted(r["_distance"] for r in got)
    allowed = kept.count(where)
    assert len(got) == min(limit, allowed)
    assert len(kept._vectors) >= 1 and not len(plain._vectors)
    # Every row is one the filter selects (the filter, evaluated by LanceDB, on its id).
    ids = {r["chunk_id"] for r in got}
    matching = set(plain.values("chunk_id", where))
    assert ids <= matching


def test_ties_go_to_the_row_read_first(tmp_path: Path) -> None:
    same = [0.5] * DIM
    rows = [{**row, "vector": same, "marking_id": 1, "vector_marking_id": 1} for row in _rows(6)]
    index = ChunkIndex(tmp_path)
    index.replace_documents([], rows)
    where = where_in("vector_marking_id", [1])
    for _ in range(2):
        got = index.nearest(same, where, limit=3, columns=["chunk_id"])
        assert [r["chunk_id"] for r in got] == ["c0000", "c0001", "c0002"]
        assert all(r["_distance"] == 0.0 for r in got)


def _one(n: int, marking: int, vector: list[float]) -> dict[str, Any]:
    return {
        "chunk_id": f"c{n}",
        "doc_id": "d0",
        "marking_id": marking,
        "vector_marking_id": marking,
        "text": "t",
        "model": "hashing",
        "vector": vector,
    }


def _remake_elsewhere(root: Path, row: dict[str, Any]) -> int:
    """Another writer (its own connection) drops the table and makes it anew with ``row``;
    the new table's version."""
    other = ChunkIndex(root)
    other._db().drop_table("chunks")
    other.replace_documents(["d0"], [row])
    return int(other._table(None).version)


def test_a_table_made_anew_elsewhere_at_the_same_version_is_read_again(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    unit = [1.0] + [0.0] * (DIM - 1)
    index.replace_documents(["d0"], [_one(0, 1, unit)])
    where = where_in("vector_marking_id", [1])
    assert [r["chunk_id"] for r in index.nearest(unit, where, limit=5, columns=["chunk_id"])] == [
        "c0"
    ]
    before = index._table(None)
    version, identity = before.version, table_id(before)
    # The same writes by another writer: the same version number, another table, whose one
    # row is outside the filter.
    assert _remake_elsewhere(tmp_path, _one(9, 2, unit)) == version
    after = index._table(None)
    assert after.version == version and table_id(after) not in (None, identity)
    assert index.nearest(unit, where, limit=5, columns=["chunk_id"]) == []
    assert [r["chunk_id"] for r in index.nearest(unit, "TRUE", limit=5, columns=["chunk_id"])] == [
        "c9"
    ]


def test_writes_through_another_handle_are_ranked(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    unit = [1.0] + [0.0] * (DIM - 1)
    index.replace_documents(["d0"], [_one(0, 1, unit)])
    where = where_in("vector_marking_id", [1])

    def ids() -> list[str]:
        return [r["chunk_id"] for r in index.nearest(unit, where, limit=5, columns=["chunk_id"])]

    assert ids() == ["c0"]
    other = ChunkIndex(tmp_path)
    other.replace_documents(["d1"], [{**_one(1, 1, unit), "doc_id": "d1"}])
    assert ids() == ["c0", "c1"]
    other.replace_documents(["d0"], [{**_one(0, 2, unit)}])  # re-marked above the filter
    assert ids() == ["c1"]
    other.optimize()
    assert ids() == ["c1"]


def test_a_table_without_an_identity_is_searched_by_lancedb_until_written(tmp_path: Path) -> None:
    index = ChunkIndex(tmp_path)
    unit = [1.0] + [0.0] * (DIM - 1)
    index.replace_documents(["d0"], [_one(0, 1, unit)])
    # As tables were made before they had an identity.
    table = index._table(None)
    table.update_field_metadata({"path": "vector", "metadata": {TABLE_ID: None}})
    assert table_id(lancedb.connect(str(tmp_path)).open_table("chunks")) is None
    assert [r["chunk_id"] for r in index.nearest(unit, "TRUE", limit=5, columns=["chunk_id"])] == [
        "c0"
    ]
    assert not len(index._vectors)
    index.replace_documents(["d1"], [{**_one(1, 1, unit), "doc_id": "d1"}])
    identity = table_id(index._table(None))
    assert identity is not None
    assert len(index.nearest(unit, "TRUE", limit=5, columns=["chunk_id"])) == 2
    assert len(index._vectors) == 1
    index.optimize()
    assert table_id(index._table(None)) == identity  # writes keep it


def test_a_filter_selecting_more_than_the_budget_is_left_to_lancedb(tmp_path: Path) -> None:
    rows = _rows(40)
    per_row = 4 * DIM + 4 + 64
    index = ChunkIndex(tmp_path, vector_cache_bytes=2 * 20 * per_row)  # 20 rows a block
    index.replace_documents([], rows)
    plain = ChunkIndex(tmp_path, vector_cache_bytes=0)
    vector = rows[0]["vector"]
    big, small = "TRUE", "chunk_id < 'c0010'"
    assert _order(index.nearest(vector, big, limit=50, columns=["chunk_id"])) == _order(
        plain.nearest(vector, big, limit=50, columns=["chunk_id"])
    )
    assert not len(index._vectors)
    assert len(index.nearest(vector, small, limit=50, columns=["chunk_id"])) == 10
    assert len(index._vectors) == 1


def test_the_cache_keeps_one_generation_within_its_budget() -> None:
    schema = pa.schema([("chunk_id", pa.string()), ("vector", pa.list_(pa.float32(), DIM))])
    table = pa.table({"chunk_id": ["a", "b"], "vector": [[0.0] * DIM, [1.0] * DIM]}, schema)
    cache = VectorCache(budget=10_000)

    class _Table:  # a stand-in for an opened LanceDB table, its filter already applied
        schema = table.schema

        def search(self) -> Any:
            return self

        def where(self, _: str) -> Any:
            return self

        def select(self, names: list[str]) -> Any:
            self.names = names
            return self

        def limit(self, _: int) -> Any:
            return self

        def to_arrow(self) -> Any:
            return table.select(self.names)

    block = read_block(_Table(), "TRUE", ["chunk_id"], 2)
    assert [r["chunk_id"] for r in block.nearest([1.0] * DIM, 5)] == ["b", "a"]
    cache.put(("t", 1), "x", block)
    cache.put(("t", 1), "y", block)
    assert cache.get(("t", 1), "x") is block and len(cache) == 2
    assert cache.get(("t", 2), "x") is None  # another version: never the old block
    cache.put(("t", 2), "z", block)
    assert len(cache) == 1 and cache.get(("t", 1), "y") is None
    tiny = VectorCache(budget=block.nbytes)
    tiny.put(("t", 1), "x", block)
    tiny.put(("t", 1), "y", block)
    assert len(tiny) == 1 and tiny.get(("t", 1), "y") is block

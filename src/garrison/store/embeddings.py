"""Stored embeddings of chunks, read through a session (what an export's embedding column holds).

Vectors live in the chunk index (:mod:`garrison.store.index`), each with its own marking
(``vector_marking_id``: the chunk's joined with its embedder's). Only rows whose chunk marking
*and* vector marking the subject may read come back; the others answer as if they had no
vector.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from garrison.security.markings import Marking
from garrison.store.index import quote_sql, vector_marking_column, where_in
from garrison.store.session import Session

__all__ = ["ChunkVector", "chunk_vectors"]


@dataclass(frozen=True)
class ChunkVector:
    """One chunk's stored embedding, the model that made it and the vector's marking."""

    vector: list[float]
    model: str
    marking: Marking


def chunk_vectors(
    session: Session, chunk_ids: Iterable[str], *, batch: int = 500
) -> dict[str, ChunkVector]:
    """The stored, readable embeddings of ``chunk_ids`` (missing ones are left out)."""
    ids = sorted(set(chunk_ids))
    index = session.workspace.index
    table = index._read_table()
    if table is None or not ids:
        return {}
    vector_column = vector_marking_column(frozenset(table.schema.names))
    with session.workspace.catalog.transaction() as orm:
        readable = sorted(session.readable_marking_ids(orm))
        if not readable:
            return {}
        allowed = f"{where_in('marking_id', readable)} AND {where_in(vector_column, readable)}"
        rows: list[dict[str, object]] = []
        for start in range(0, len(ids), batch):
            part = ids[start : start + batch]
            where = f"chunk_id IN ({', '.join(quote_sql(i) for i in part)}) AND {allowed}"
            found = (
                table.search()
                .where(where)
                .select(["chunk_id", "vector", "model", vector_column])
                .limit(len(part))
                .to_list()
            )
            rows.extend(found)
        out: dict[str, ChunkVector] = {}
        for row in rows:
            marking = session.marking_of(orm, int(row[vector_column]))  # type: ignore[call-overload]
            if marking is None:
                continue
            out[str(row["chunk_id"])] = ChunkVector(
                [float(v) for v in row["vector"]],  # type: ignore[attr-defined]
                str(row["model"]),
                marking,
            )
    return out

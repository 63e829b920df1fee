"""The vector and text index of chunks (LanceDB, embedded in the workspace's ``index/``).

Every row carries its interned ``marking_id``; searches filter on the ids a subject may read
*before* ranking (``prefilter``), so results, counts and scores come from readable data only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from garrison.core.errors import MissingExtra

__all__ = ["ChunkIndex"]

TABLE = "chunks"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class ChunkIndex:
    """Chunks with their embeddings, one LanceDB table per workspace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _db(self) -> Any:
        try:
            import lancedb
        except ImportError as exc:  # pragma: no cover - lancedb is a core dependency
            raise MissingExtra("embed", "lancedb") from exc
        return lancedb.connect(str(self.root))

    def _table(self, dim: int | None) -> Any:
        import pyarrow as pa  # type: ignore[import-untyped]

        db = self._db()
        if TABLE in db.list_tables().tables:
            return db.open_table(TABLE)
        if dim is None:
            return None
        schema = pa.schema(
            [
                ("chunk_id", pa.string()),
                ("doc_id", pa.string()),
                ("marking_id", pa.int64()),
                ("text", pa.string()),
                ("model", pa.string()),
                ("vector", pa.list_(pa.float32(), dim)),
            ]
        )
        return db.create_table(TABLE, schema=schema, exist_ok=True)

    def replace_documents(self, doc_ids: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        """Drop every row of ``doc_ids``, then add ``rows`` (chunk_id, doc_id, marking_id,
        text, model, vector)."""
        import pyarrow as pa

        dim = len(rows[0]["vector"]) if rows else None
        table = self._table(dim)
        if table is None:
            return
        if doc_ids:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                table.delete(f"doc_id IN ({', '.join(_quote(d) for d in doc_ids)})")
        if rows:
            table.add(pa.Table.from_pylist(list(rows), schema=table.schema))

    def count(self) -> int:
        table = self._table(None)
        return 0 if table is None else int(table.count_rows())

    def search(
        self, vector: Sequence[float], marking_ids: Sequence[int], *, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Nearest chunks among those whose marking id is in ``marking_ids`` (prefiltered)."""
        table = self._table(None)
        if table is None or not marking_ids:
            return []
        allowed = ", ".join(str(int(m)) for m in marking_ids)
        query = table.search(list(vector)).where(f"marking_id IN ({allowed})", prefilter=True)
        return list(query.limit(limit).to_list())

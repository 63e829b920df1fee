"""The vector and text index of chunks (LanceDB, embedded in the workspace's ``index/``, or on
an S3-compatible bucket: :mod:`garrison.store.object_store`).

Every row carries its interned ``marking_id``; searches filter on the ids a subject may read
*before* ranking (``prefilter``), so results, counts and scores come from readable data only.
A row's vector has its own marking, ``vector_marking_id``: the join of the chunk's marking and
its embedder's (a SECRET-trained embedder's vectors are SECRET even for UNCLASSIFIED chunks).
Nearest-neighbour queries filter on it (:func:`vector_marking_column`); full text on
``marking_id``. An index written before vectors were marked has no such column: its rows count
as marked like their chunks (right for the UNCLASSIFIED models of the time), and the first write
adds the column, filled from ``marking_id``.
Document-level fields (``source``, ``media_type``, ``ingested_at``) travel with the document's own
marking (``doc_marking_id``): a filter or facet on them is limited to readable documents.
Full text uses LanceDB's native inverted index (no tantivy, nothing fetched); rows added after
the index was built are still searched (flat), and :meth:`ChunkIndex.ensure_fts` refreshes it.

:func:`chunk_index` hands out one ``ChunkIndex`` per index location; every read is at the table's
latest version, so rows another process added are seen. In a workspace folder the table is
opened once and kept while its ``_versions`` folder is as it was (the same folder, the same
manifests): any commit, by any process, writes a new manifest, and the next read opens the
table again. Facts of one table version -- row counts by filter, value tallies, whether the
full-text index covers every row -- are remembered for that version (the table's identity and
version number, :data:`~garrison.store.vector_cache.TABLE_ID`), never across versions.
Nearest-neighbour queries with a selective filter are answered from the filtered rows' vectors
kept in memory for the table version they were read at (:mod:`garrison.store.vector_cache`):
exact, like LanceDB's flat search, without reading ~10,000 scattered vectors from the table
each time.
"""

from __future__ import annotations

import os
import threading
import uuid
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from garrison.core.errors import InvalidInput, disk_full
from garrison.store.vector_cache import DEFAULT_BUDGET, TABLE_ID, VectorCache, read_block, table_id

__all__ = [
    "KEPT_INDEXES",
    "VECTOR_MARKING",
    "ChunkIndex",
    "chunk_index",
    "quote_sql",
    "vector_marking_column",
    "where_in",
]

_FTS_BUILD = threading.Lock()
_T = TypeVar("_T")
#: Facts (counts, tallies) an index remembers for its current table version.
KEPT_FACTS = 4096
_MISSING = object()

TABLE = "chunks"
#: The column holding each vector's own marking id.
VECTOR_MARKING = "vector_marking_id"


def vector_marking_column(columns: frozenset[str]) -> str:
    """The column marking an index's vectors: ``vector_marking_id``, or ``marking_id`` in an
    index written before vectors were marked (whose rows are marked like their chunks)."""
    return VECTOR_MARKING if VECTOR_MARKING in columns else "marking_id"


#: Columns a filter may name besides the marking ids (all strings).
FILTER_COLUMNS = ("doc_id", "source", "media_type", "language", "ingested_at", "model")


def quote_sql(value: str) -> str:
    """A SQL string literal for a LanceDB ``where`` clause (quotes doubled, NUL refused)."""
    if "\x00" in value:
        raise InvalidInput("A filter value may not contain a NUL character.")
    return "'" + value.replace("'", "''") + "'"


_quote = quote_sql


def where_in(column: str, ids: Sequence[int]) -> str:
    """``column IN (1, 2)`` for integer ids (validated as ints); ``FALSE`` when empty."""
    if not ids:
        return "FALSE"
    return f"{column} IN ({', '.join(str(int(i)) for i in sorted(ids))})"


def _match(table: Any, query: str, where: str, columns: Sequence[str]) -> Any:
    """A prefiltered plain full-text match query on ``text`` (no query syntax interpreted)."""
    from lancedb.query import FullTextOperator, MatchQuery

    search = table.search(
        MatchQuery(
            query,
            "text",
            boost=1.0,
            fuzziness=0,
            max_expansions=50,
            operator=FullTextOperator.OR,
            prefix_length=0,
            document_granularity=None,
        ),
        query_type="fts",
    )
    return search.where(where, prefilter=True).select([*columns, "_score"])


def _schema_id(schema: Any) -> str | None:
    """:func:`~garrison.store.vector_cache.table_id` from a schema already read."""
    raw = (schema.field("vector").metadata or {}).get(TABLE_ID.encode())
    return raw.decode() if raw else None


def _values(table: Any, column: str, where: str) -> list[Any]:
    n = int(table.count_rows(where))
    if n == 0:
        return []
    rows = table.search().where(where).select([column]).limit(n).to_arrow()
    return list(rows.column(column).to_pylist())


class ChunkIndex:
    """Chunks with their embeddings, one LanceDB table per workspace.

    ``root`` is a folder, or an ``s3://bucket/prefix`` URI read with ``storage_options``
    (endpoint, region, credentials: :meth:`S3Connection.storage_options`).
    ``vector_cache_bytes``: memory for the vectors :meth:`nearest` keeps between queries
    (0: none, every query is LanceDB's).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        storage_options: Mapping[str, str] | None = None,
        vector_cache_bytes: int = DEFAULT_BUDGET,
    ) -> None:
        self.uri = root if isinstance(root, str) and "://" in root else str(Path(root))
        self._options = dict(storage_options) if storage_options else None
        self._opened: tuple[tuple[Any, ...], Any, Any, int] | None = None
        self._lock = threading.Lock()
        self._generation: tuple[str, int] | None = None
        self._facts: dict[tuple[Any, ...], Any] = {}
        self._vectors = VectorCache(vector_cache_bytes)

    def _read_table(self) -> Any:
        """The table at its latest version; None without a table.

        A handle is kept only while the table's ``_versions`` folder is unchanged
        (:meth:`_version_stamp`), and only for a workspace folder: otherwise each read opens
        the table again. (A handle moved forward with ``checkout_latest`` still held the index
        metadata of a table another process had dropped and made anew, a dimension change,
        and failed on its missing files: a changed folder is a new handle, never a moved one.)
        """
        stamp = self._version_stamp()
        if stamp is not None:
            with self._lock:
                if self._opened is not None and self._opened[0] == stamp:
                    return self._opened[1]
        table = self._table(None)
        if stamp is not None and table is not None:
            # A kept handle stays at the version it opened (no consistency interval is set),
            # so its schema and version are read once.
            kept = (stamp, table, table.schema, int(table.version))
            with self._lock:
                self._opened = kept
        return table

    def _schema(self, table: Any) -> Any:
        """``table.schema`` (read once for the kept handle: each read is a call into Lance)."""
        with self._lock:
            if self._opened is not None and self._opened[1] is table:
                return self._opened[2]
        return table.schema

    def _version_stamp(self) -> tuple[Any, ...] | None:
        """What the table's ``_versions`` folder holds now (its identity and every manifest's
        name, the newest one's identity too), or None (a bucket, or no table yet).

        Every commit writes a new manifest, and a table dropped and made anew is a new folder
        with new files, so an equal stamp is the same table at the same version.
        """
        if "://" in self.uri:
            return None
        folder = os.path.join(self.uri, f"{TABLE}.lance", "_versions")
        try:
            info = os.stat(folder)
            names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".manifest"))
            if not names:
                return None
            # Version v is named u64::MAX - v (newest first) or v (older tables): stat both ends.
            ends = [os.stat(os.path.join(folder, n)) for n in (names[0], names[-1])]
        except OSError:
            return None
        ids = tuple((e.st_ino, e.st_mtime_ns, e.st_size) for e in ends)
        return (info.st_ino, info.st_mtime_ns, tuple(names), ids)

    def _forget(self) -> None:
        """Drop the kept table and what was remembered of it (after a write or a drop)."""
        with self._lock:
            self._opened = None
            self._facts.clear()

    def _generation_of(self, table: Any) -> tuple[str, int] | None:
        with self._lock:
            kept = self._opened if self._opened is not None and self._opened[1] is table else None
        if kept is not None:
            identity, version = _schema_id(kept[2]), kept[3]
        else:
            identity, version = table_id(table), int(table.version)
        return None if identity is None else (identity, version)

    def _recall(self, table: Any, key: tuple[Any, ...]) -> Any:
        """What was remembered under ``key`` for this table version, or :data:`_MISSING`."""
        generation = self._generation_of(table)
        with self._lock:
            if generation is None or self._generation != generation:
                return _MISSING
            return self._facts.get(key, _MISSING)

    def _remember(self, table: Any, key: tuple[Any, ...], value: Any) -> None:
        """Remember ``value`` for this table version (never for a table without an identity)."""
        generation = self._generation_of(table)
        if generation is None:
            return
        with self._lock:
            if self._generation != generation:
                self._facts.clear()
                self._generation = generation
            if len(self._facts) >= KEPT_FACTS:
                self._facts.clear()
            self._facts[key] = value

    def _fact(self, table: Any, key: tuple[Any, ...], compute: Callable[[], _T]) -> _T:
        """``compute()`` (a fact of ``table`` as opened), remembered for this table version."""
        found = self._recall(table, key)
        if found is not _MISSING:
            return cast(_T, found)
        value = compute()
        self._remember(table, key, value)
        return value

    def _db(self) -> Any:
        from garrison.store._lancedb import import_lancedb

        lancedb = import_lancedb()
        if self._options is None:
            return lancedb.connect(self.uri)
        return lancedb.connect(self.uri, storage_options=self._options)

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
                (VECTOR_MARKING, pa.int64()),
                ("text", pa.string()),
                ("model", pa.string()),
                # A new identity for every table made: see garrison.store.vector_cache.
                pa.field(
                    "vector", pa.list_(pa.float32(), dim), metadata={TABLE_ID: uuid.uuid4().hex}
                ),
                ("doc_marking_id", pa.int64()),
                ("source", pa.string()),
                ("media_type", pa.string()),
                ("language", pa.string()),
                ("ingested_at", pa.string()),
            ]
        )
        return db.create_table(TABLE, schema=schema, exist_ok=True)

    def replace_documents(
        self, doc_ids: Sequence[str], rows: Sequence[dict[str, Any]]
    ) -> frozenset[str]:
        """Drop every row of ``doc_ids``, then add ``rows`` (chunk_id, doc_id, marking_id,
        vector_marking_id, text, model, vector; optionally doc_marking_id, source, media_type,
        language and ingested_at -- an ISO 8601 UTC string).

        Vectors of another dimension than the table's (the pipeline's embedder changed to one
        of another size) cannot be searched together: the table is made anew for the new
        dimension, and the ids of the other documents whose rows that dropped are returned
        (they must be indexed again). Otherwise returns the empty set.
        """
        try:
            return self._replace(doc_ids, rows)
        except (OSError, RuntimeError) as exc:  # Lance reports I/O errors as RuntimeError
            full = disk_full(exc, f"the chunk index ({self.uri})")
            if full is not None:
                raise full from exc
            raise

    def _replace(self, doc_ids: Sequence[str], rows: Sequence[dict[str, Any]]) -> frozenset[str]:
        import pyarrow as pa

        if any(VECTOR_MARKING not in row for row in rows):
            raise InvalidInput("Every index row needs its vector's marking (vector_marking_id).")
        dim = len(rows[0]["vector"]) if rows else None
        self._forget()
        table = self._table(dim)
        if table is None:
            return frozenset()
        lost: frozenset[str] = frozenset()
        if dim is not None and table.schema.field("vector").type.list_size != dim:
            lost = frozenset(str(d) for d in self.values("doc_id", "TRUE")) - set(doc_ids)
            self._db().drop_table(TABLE)
            self._forget()
            table = self._table(dim)
        elif VECTOR_MARKING not in table.schema.names:
            # An index from before vectors were marked: its vectors are marked like their chunks.
            table.add_columns({VECTOR_MARKING: "marking_id"})
        if table_id(table) is None:
            # A table from before tables had an identity: its vectors may be kept from now on.
            table.update_field_metadata(
                {"path": "vector", "metadata": {TABLE_ID: uuid.uuid4().hex}}
            )
        if doc_ids:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                table.delete(f"doc_id IN ({', '.join(_quote(d) for d in doc_ids)})")
        if rows:
            table.add(pa.Table.from_pylist(list(rows), schema=table.schema))
        self._ensure_marking_index(table)
        self._forget()
        return lost

    @staticmethod
    def _ensure_marking_index(table: Any) -> None:
        """A bitmap index on ``marking_id``: the access prefilter of every query then reads the
        few rows a subject may see instead of scanning the whole table (1M rows: ~1.5 s to
        ~80 ms per query). Rows added later are folded in by :meth:`optimize`."""
        from lancedb.index import Bitmap

        if not any(list(i.columns) == ["marking_id"] for i in table.list_indices()):
            table.create_index("marking_id", config=Bitmap())

    def optimize(self) -> None:
        """Fold rows added since the indexes were built into them (after a pipeline run):
        until then they are scanned, which is correct but slower."""
        table = self._read_table()
        if table is None:
            return
        for index in table.list_indices():
            stats = table.index_stats(index.name)
            if stats is not None and stats.num_unindexed_rows:
                try:
                    table.optimize()
                except (OSError, RuntimeError) as exc:
                    full = disk_full(exc, f"the chunk index ({self.uri})")
                    if full is not None:
                        raise full from exc
                    raise
                return

    def count(self, where: str | None = None) -> int:
        """Rows in the index (matching ``where``, a trusted clause built with the helpers)."""
        table = self._read_table()
        if table is None:
            return 0
        return self._fact(
            table,
            ("count", where),
            lambda: int(table.count_rows(where) if where else table.count_rows()),
        )

    def columns(self) -> frozenset[str]:
        """The table's column names (empty when there is no table yet)."""
        table = self._read_table()
        return frozenset() if table is None else frozenset(self._schema(table).names)

    def ensure_fts(self) -> bool:
        """Build the full-text index on ``text`` when missing or stale; False without a table.

        Native LanceDB FTS (``use_tantivy`` is not involved): offline, in the index folder.
        """
        from lancedb.index import FTS

        # One builder at a time in a process: concurrent first searches of a server would
        # otherwise race to create the same index, and all but one fail on a commit conflict.
        table = self._read_table()
        if table is None:
            return False
        if self._recall(table, ("fts",)) is True:
            return True  # seen to cover every row of this version
        with _FTS_BUILD:
            table = self._read_table()
            if table is None:
                return False
            fts = [i for i in table.list_indices() if list(i.columns) == ["text"]]
            if fts:
                stats = table.index_stats(fts[0].name)
                if stats is None or not stats.num_unindexed_rows:
                    self._remember(table, ("fts",), True)
                    return True
            table.create_index("text", config=FTS(), replace=True)
            self._forget()  # a new version
            return True

    def full_text(
        self, query: str, where: str, *, limit: int, columns: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Rows whose ``text`` matches ``query`` (a plain match query: no query syntax is
        interpreted), filtered by ``where`` before ranking, best BM25 first (``_score``)."""
        table = self._read_table()
        if table is None or limit <= 0:
            return []
        search = _match(table, query, where, columns)
        return list(search.limit(limit).to_list())

    def full_text_columns(
        self, query: str, where: str, *, limit: int, columns: Sequence[str]
    ) -> dict[str, list[Any]]:
        """:meth:`full_text`'s rows as columns (name -> values, in the same order): cheaper
        when many rows match."""
        table = self._read_table()
        if table is None or limit <= 0:
            return {c: [] for c in columns}
        search = _match(table, query, where, columns)
        found = search.limit(limit).to_arrow()
        return {c: found.column(c).to_pylist() for c in columns}

    def nearest(
        self, vector: Sequence[float], where: str, *, limit: int, columns: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The ``limit`` nearest rows to ``vector`` among those matching ``where``
        (prefiltered: the limit is filled from allowed rows), closest first (``_distance``).

        ``where`` must restrict the vectors' own markings (:func:`vector_marking_column`), not
        only the chunks'. A query vector of another dimension than the index's finds nothing.
        """
        table = self._read_table()
        if table is None or limit <= 0:
            return []
        dim = self._schema(table).field("vector").type.list_size
        if dim != len(vector):
            return []
        generation = self._generation_of(table)
        if generation is not None and self._vectors.budget and "vector" not in columns:
            # Kept for this table (identity) at the version just opened, read with this filter.
            key = (where, tuple(columns))
            block = self._vectors.get(generation, key)
            if block is None:
                count = int(table.count_rows(where))
                if self._vectors.fits(count, dim):
                    block = read_block(table, where, columns, count)
                    self._vectors.put(generation, key, block)
            if block is not None:
                return block.nearest(vector, limit)
        search = table.search(list(vector)).where(where, prefilter=True)
        search = search.select([*columns, "_distance"])
        return list(search.limit(limit).to_list())

    def tally(self, column: str, where: str) -> dict[Any, int]:
        """How many rows matching ``where`` hold each value of ``column`` (remembered for the
        table version)."""
        table = self._read_table()
        if table is None:
            return {}
        key = ("tally", column, where)
        return dict(self._fact(table, key, lambda: Counter(_values(table, column, where))))

    def values(self, column: str, where: str) -> list[Any]:
        """Every value of ``column`` among the rows matching ``where``."""
        table = self._read_table()
        if table is None:
            return []
        return _values(table, column, where)

    def search(
        self, vector: Sequence[float], marking_ids: Sequence[int], *, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Nearest chunks among those whose chunk and vector marking ids are both in
        ``marking_ids`` (prefiltered)."""
        table = self._read_table()
        if table is None or not marking_ids:
            return []
        schema = self._schema(table)
        if schema.field("vector").type.list_size != len(vector):
            return []
        column = vector_marking_column(frozenset(schema.names))
        where = f"({where_in('marking_id', marking_ids)}) AND ({where_in(column, marking_ids)})"
        query = table.search(list(vector)).where(where, prefilter=True)
        return list(query.limit(limit).to_list())


#: Index locations whose ChunkIndex a process keeps (most recently used; a server has one
#: workspace, a test session many, and each kept table holds LanceDB's caches).
KEPT_INDEXES = 8
_INDEXES: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], ChunkIndex] = OrderedDict()
_INDEXES_LOCK = threading.Lock()


def chunk_index(
    root: Path | str, *, storage_options: Mapping[str, str] | None = None
) -> ChunkIndex:
    """The process's one :class:`ChunkIndex` for the index at ``root`` (a folder or an
    ``s3://`` URI, with its ``storage_options``), so its opened table is reused from one search
    to the next."""
    uri = root if isinstance(root, str) and "://" in root else str(Path(root).absolute())
    key = (uri, tuple(sorted((storage_options or {}).items())))
    with _INDEXES_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = ChunkIndex(uri, storage_options=storage_options)
            while len(_INDEXES) > KEPT_INDEXES:
                _INDEXES.popitem(last=False)
        else:
            _INDEXES.move_to_end(key)
        return index

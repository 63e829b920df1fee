"""The vectors of the rows a filter selects, kept in memory for exact nearest-neighbour search.

A prefiltered LanceDB search with a selective filter (1% of 1M rows readable) spends nearly
all its time reading the selected rows' vectors: rows scattered over the table, one read each
(~10,000 reads, ~150 ms), then a flat distance computation that takes a few milliseconds. The
rows a filter selects do not change until the table does, so :class:`VectorCache` keeps them
-- the vectors as one float32 matrix, with the columns a search returns -- and
:meth:`VectorBlock.nearest` ranks them with numpy by squared L2 distance, the metric LanceDB
uses on a table without a vector index and reports as ``_distance``. The search stays exact
(every selected row is compared), so it returns what LanceDB's flat search does, to float32
rounding; ties go to the row read first, as LanceDB breaks them by row id.

What keeps an entry correct (the fail-closed rules):

- it is keyed by the table's identity (:data:`TABLE_ID`, a random id in the table's schema
  written when the table is made, so a table dropped and made anew -- by this process or any
  other -- is another key even at the same version number), the table version it was read
  at, the exact filter and the columns; every row in it was read from that one version with
  that filter, so it holds no row the filter excludes;
- the caller opens the table afresh for every read and looks up the version it finds, so a
  write anywhere (a new version) retires the entries of the old one: a block read at the new
  version clears them;
- a table without an identity (written before it was recorded) is never cached.

Entries are evicted least recently used past the byte budget; a filter selecting more rows
than half the budget holds is left to LanceDB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["DEFAULT_BUDGET", "TABLE_ID", "VectorBlock", "VectorCache", "read_block", "table_id"]

#: The ``vector`` field's metadata key holding the table's identity.
TABLE_ID = "garrison:table-id"
#: Bytes of vectors (and their columns) one index keeps by default: 256 MiB, so a filter of up
#: to ~85,000 rows of 384 dimensions is served from memory.
DEFAULT_BUDGET = 256 * 2**20
#: Bytes counted per row for its returned columns besides the vector (ids and small ints).
ROW_OVERHEAD = 64


def table_id(table: Any) -> str | None:
    """The identity recorded in an opened LanceDB table's schema, or None."""
    metadata = table.schema.field("vector").metadata or {}
    raw = metadata.get(TABLE_ID.encode())
    return raw.decode() if raw else None


@dataclass(frozen=True)
class VectorBlock:
    """The rows one filter selected at one table version: vectors and returned columns."""

    vectors: np.ndarray
    #: Each row's squared norm (for ``|x - q|^2 = |x|^2 - 2 x.q + |q|^2``).
    norms: np.ndarray
    rows: pa.Table
    nbytes: int

    def nearest(self, vector: Sequence[float], limit: int) -> list[dict[str, Any]]:
        """The ``limit`` rows closest to ``vector``, closest first, each with ``_distance``
        (squared L2); ties in order of reading."""
        import numpy as np

        n = len(self.norms)
        if n == 0 or limit <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32)
        approx = self.norms - 2.0 * (self.vectors @ q)
        if limit < n:
            # Every row as close as the limit-th one, so that ties are broken by position.
            bound = np.partition(approx, limit - 1)[limit - 1]
            candidates = np.flatnonzero(approx <= bound)
        else:
            candidates = np.arange(n)
        # Exact distances of the candidates, computed as LanceDB does (difference, squared).
        diff = self.vectors[candidates] - q
        exact = np.einsum("ij,ij->i", diff, diff)
        order = np.lexsort((candidates, exact))[:limit]
        picked: list[dict[str, Any]] = self.rows.take(candidates[order]).to_pylist()
        for row, distance in zip(picked, exact[order], strict=True):
            row["_distance"] = float(distance)
        return picked


def read_block(table: Any, where: str, columns: Sequence[str], count: int) -> VectorBlock:
    """The vectors and ``columns`` of the ``count`` rows of ``table`` (one opened version)
    matching ``where``; rows without a vector are left out (LanceDB ranks none of them)."""
    import numpy as np
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    dim = int(table.schema.field("vector").type.list_size)
    names = list(dict.fromkeys(columns))
    if count <= 0:
        found = table.schema.empty_table().select(["vector", *names])
    else:
        found = table.search().where(where).select(["vector", *names]).limit(count).to_arrow()
    if found.column("vector").null_count:
        found = found.filter(pc.is_valid(found.column("vector")))
    flat = found.column("vector").combine_chunks().flatten()
    vectors = np.ascontiguousarray(
        flat.to_numpy(zero_copy_only=False).reshape(-1, dim), dtype=np.float32
    )
    rows = found.select(names).combine_chunks()
    norms = np.einsum("ij,ij->i", vectors, vectors)
    nbytes = vectors.nbytes + norms.nbytes + rows.nbytes + ROW_OVERHEAD * len(norms)
    return VectorBlock(vectors=vectors, norms=norms, rows=rows, nbytes=int(nbytes))


class VectorCache:
    """Blocks of one table version by key, least recently used evicted past ``budget`` bytes
    (thread-safe). A block of another table or version than the kept ones clears them: no
    read finds them again once the table has moved on."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = max(0, int(budget))
        self._generation: Hashable = None
        self._blocks: OrderedDict[Hashable, VectorBlock] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def fits(self, rows: int, dim: int) -> bool:
        """Whether a block of ``rows`` vectors of ``dim`` floats may be kept (half the budget
        at most, so that one large filter does not evict every other)."""
        return rows * (4 * dim + 4 + ROW_OVERHEAD) <= self.budget // 2

    def get(self, generation: Hashable, key: Hashable) -> VectorBlock | None:
        """The block kept for ``key`` at ``generation`` (table identity and version)."""
        with self._lock:
            if generation != self._generation:
                return None
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def put(self, generation: Hashable, key: Hashable, block: VectorBlock) -> None:
        with self._lock:
            if generation != self._generation:
                self._blocks.clear()
                self._bytes = 0
                self._generation = generation
            old = self._blocks.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._blocks[key] = block
            self._bytes += block.nbytes
            while self._bytes > self.budget and self._blocks:
                _, dropped = self._blocks.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._bytes = 0
            self._generation = None

    def __len__(self) -> int:
        return len(self._blocks)

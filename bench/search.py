"""Vector search over 1M generated chunks with an access prefilter that leaves 1% readable.

Garrison's vector branch (``ChunkIndex.nearest`` with ``marking_id IN (..)``) is timed on a
LanceDB ``chunks`` table of generated, normalized 384-dimensional vectors (embedding 1M chunks
here takes about an hour): with the readable rows' vectors kept in memory for the table
version (what a search does once a filter has been seen at that version), on the first query
at a table version (the vectors read from the table), and as LanceDB's own prefiltered flat
search, with and without the bitmap index on ``marking_id``. The baseline is exact search of
the readable rows with numpy (brute-force dot product on the 1% subset): recall@10 is
measured against it, and its latency is reported beside Garrison's. The table lives in a
temporary directory that is deleted afterwards.
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from garrison.store.index import ChunkIndex, where_in

DIM = 384
READABLE = 1  # the marking id the subject may read
SHARE = 0.01  # share of rows carrying it
K = 10
BATCH = 100_000
SEED = 20240601


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def _build(root: Path, n: int) -> tuple[ChunkIndex, np.ndarray, np.ndarray, float]:
    """The table (Garrison's schema) and the readable rows' vectors and row numbers."""
    import pyarrow as pa  # type: ignore[import-untyped]

    rng = np.random.default_rng(SEED)
    index = ChunkIndex(root)
    table = index._table(DIM)  # Garrison's own schema
    readable_vecs: list[np.ndarray] = []
    readable_rows: list[np.ndarray] = []
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        vecs = _unit(rng, m)
        marks = np.where(rng.random(m) < SHARE, READABLE, rng.integers(2, 40, m)).astype(np.int64)
        rows = np.arange(start, start + m)
        hit = marks == READABLE
        readable_vecs.append(vecs[hit].copy())
        readable_rows.append(rows[hit])
        ids = pa.array([f"c{i:07d}" for i in rows])
        docs = pa.array([f"d{i // 20:06d}" for i in rows])
        batch = pa.table(
            {
                "chunk_id": ids,
                "doc_id": docs,
                "marking_id": pa.array(marks),
                "vector_marking_id": pa.array(marks),
                "text": pa.array(["generated chunk text"] * m),
                "model": pa.array(["generated"] * m),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), DIM),
                "doc_marking_id": pa.array(marks),
                "source": pa.array(["bench"] * m),
                "media_type": pa.array(["text/plain"] * m),
                "language": pa.array(["en"] * m),
                "ingested_at": pa.array(["2024-06-01T00:00:00+00:00"] * m),
            },
            schema=table.schema,
        )
        table.add(batch)
        del batch, vecs
    build_s = time.perf_counter() - t0
    return index, np.concatenate(readable_vecs), np.concatenate(readable_rows), build_s


def _queries(rng: np.random.Generator, readable: np.ndarray, q: int) -> np.ndarray:
    """Half near a readable row (a real neighbourhood), half uniform random (the hard case)."""
    near = readable[rng.integers(0, len(readable), q // 2)] + 0.05 * rng.standard_normal(
        (q // 2, DIM), dtype=np.float32
    )
    out = np.concatenate([near, _unit(rng, q - q // 2)]).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _measure(
    index: ChunkIndex,
    queries: np.ndarray,
    exact: list[set[str]],
    where: str,
    budget_s: float,
    *,
    first: bool = False,
) -> dict[str, float]:
    """Latency and recall per query, in order, until the queries or ``budget_s`` run out.

    ``first``: each query on a new ChunkIndex, whose first query at the table's version reads
    the readable rows' vectors (as after every write to the table)."""
    columns = ["chunk_id", "marking_id"]
    index.nearest(queries[0].tolist(), where, limit=K, columns=columns)  # warm-up
    lat: list[float] = []
    recalls: list[float] = []
    leaked = 0
    start = time.perf_counter()
    for q, truth in zip(queries, exact, strict=True):
        if time.perf_counter() - start > budget_s:
            break
        vec = q.tolist()
        t0 = time.perf_counter()
        searcher = ChunkIndex(index.uri) if first else index
        rows = searcher.nearest(vec, where, limit=K, columns=columns)
        lat.append((time.perf_counter() - t0) * 1000)
        leaked += sum(r["marking_id"] != READABLE for r in rows)
        recalls.append(len(truth & {r["chunk_id"] for r in rows}) / K)
    return {
        "p50": _pct(lat, 50),
        "p95": _pct(lat, 95),
        "mean": statistics.fmean(lat),
        "recall": statistics.fmean(recalls),
        "min_recall": min(recalls),
        "leaked": leaked,
        "measured": len(lat),
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 100_000 if quick else 1_000_000
    q = 50 if quick else 200
    rng = np.random.default_rng(SEED + 1)
    rss0 = _rss_mib()
    root = Path(tempfile.mkdtemp(prefix="garrison-bench-search-"))
    notes: list[str] = []
    try:
        index, readable, readable_rows, build_s = _build(root / "index", n)
        gc.collect()
        disk_mib = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
        rss_build = _rss_mib()
        where = where_in("marking_id", [READABLE])
        queries = _queries(rng, readable, q)
        # Exact baseline: top-10 by dot product (= L2 order for unit vectors) on the readable set.
        ids = np.array([f"c{i:07d}" for i in readable_rows])
        t0 = time.perf_counter()
        scores = queries @ readable.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        exact_ms = (time.perf_counter() - t0) * 1000 / q
        exact = [set(ids[row]) for row in top]
        assert index.count(where) == len(readable)
        # LanceDB's own search: nothing kept between queries.
        lance = ChunkIndex(index.uri, vector_cache_bytes=0)

        flat = _measure(lance, queries, exact, where, 90.0)
        results: dict[str, Any] = {
            "rows": n,
            "dimension": DIM,
            "readable rows (marking_id IN (1))": f"{len(readable)} ({len(readable) / n:.2%})",
            "build s (generate + add, no vector index)": round(build_s, 1),
            "table on disk MiB": round(disk_mib),
            f"peak RSS MiB after build (process, before: {rss0:.0f})": round(rss_build),
            "baseline: numpy exact over the readable set, ms/query (batched)": round(exact_ms, 2),
            "without the marking index: p50 / p95 ms": f"{flat['p50']:.1f} / {flat['p95']:.1f}",
            "without the marking index: recall@10": round(flat["recall"], 4),
        }

        # The bitmap index on marking_id that ChunkIndex builds.
        t0 = time.perf_counter()
        ChunkIndex._ensure_marking_index(index._table(None))
        bitmap_s = time.perf_counter() - t0
        bm = _measure(index, queries, exact, where, 120.0)
        cold = _measure(index, queries, exact, where, 60.0, first=True)
        before = _measure(lance, queries, exact, where, 60.0)
        results["queries measured (no index / kept / first / LanceDB)"] = " / ".join(
            str(m["measured"]) for m in (flat, bm, cold, before)
        )
        results["Garrison: marking index build s"] = round(bitmap_s, 1)
        results["Garrison: p50 ms"] = round(bm["p50"], 1)
        results["Garrison: p95 ms"] = round(bm["p95"], 1)
        results["Garrison: recall@10"] = round(bm["recall"], 4)
        results["Garrison: rows outside the filter returned"] = bm["leaked"] + cold["leaked"]
        results["first query at a table version (vectors read): p50 / p95 ms"] = (
            f"{cold['p50']:.1f} / {cold['p95']:.1f}"
        )
        results["LanceDB prefiltered search, bitmap index (before): p50 / p95 ms"] = (
            f"{before['p50']:.1f} / {before['p95']:.1f}"
        )
        results["LanceDB: recall@10"] = round(before["recall"], 4)
        results["p95 ratio LanceDB / Garrison"] = round(before["p95"] / bm["p95"], 1)
        results["target p95 < 100 ms"] = "pass" if bm["p95"] < 100 else "FAIL"
        results["target recall@10 >= 0.95"] = "pass" if bm["recall"] >= 0.95 else "FAIL"
        results["peak RSS MiB (end)"] = round(_rss_mib())
        notes += [
            f"Garrison's vector search ranks the readable rows' vectors, kept in memory for the "
            f"table version and the filter, by exact squared L2 distance (numpy): p95 "
            f"{bm['p95']:.0f} ms (target < 100 ms), recall@10 {bm['recall']:.3f} (target >= "
            f"0.95). LanceDB's prefiltered flat search spends its time reading the ~10,000 "
            f"scattered readable vectors (one read each, found by the bitmap index on "
            f"marking_id): p95 {before['p95']:.0f} ms; without that index the prefilter scans "
            f"every row: p95 {flat['p95']:.0f} ms.",
            f"The first query at a table version (after any write, by any process, or for a "
            f"filter not seen yet) reads the readable rows' vectors and ids once: p95 "
            f"{cold['p95']:.0f} ms, then every query with that filter is served from memory "
            f"until the table changes. The kept vectors of 1% of 1M rows take ~15 MiB; a filter "
            f"selecting more than half the cache (256 MiB by default) is left to LanceDB.",
            "No vector (IVF_PQ) index: with a 1% prefilter the search is exact over ~10,000 "
            "readable rows, which is why recall@10 is 1.0 (ties aside) and an approximate index "
            "would gain little.",
            "Latency is per ChunkIndex.nearest call as Garrison makes it: each read opens the "
            "table at its latest version (a few ms), so rows another process added are "
            "searched; limit 10. The kept vectors are keyed by the table's identity (a random "
            "id in its schema) and version, so a table dropped and made anew elsewhere is read "
            "again. Every line is measured in the same run.",
            "Queries: half are a readable row plus noise (a real neighbourhood), half uniform "
            "random unit vectors; vectors are uniform random on the sphere, the worst case for "
            "an approximate index, irrelevant to flat search.",
            f"Load average while measuring: {os.getloadavg()[0]:.1f} (the absolute times scale "
            "with it; the ratios, measured in the same run, much less).",
            "Shared 2-core VM: single runs vary by roughly 10-30% from run to run; the p95 "
            "includes that noise. Peak RSS is the process high-water mark (ru_maxrss) and includes "
            "the generated vectors held for the exact baseline (~15 MiB readable) and the "
            "per-batch arrays.",
        ]
        return {
            "title": "Search: 1M generated chunks, 1% readable (prefiltered vector search)",
            "what": __doc__.strip().splitlines()[0],
            "results": results,
            "notes": notes,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)

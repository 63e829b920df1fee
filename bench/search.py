"""Vector search over 1M generated chunks with an access prefilter that leaves 1% readable.

Garrison's vector branch (``ChunkIndex.nearest``: ``table.search(v).where("marking_id IN (..)",
prefilter=True).limit(k)``) is timed on a LanceDB ``chunks`` table of generated, normalized
384-dimensional vectors (embedding 1M chunks here takes about an hour). The baseline is exact
search of the readable rows with numpy (brute-force dot product on the 1% subset): recall@10
is measured against it, and its latency is reported beside Garrison's. The table lives in a
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
    reopen: bool = False,
) -> dict[str, float]:
    """Latency and recall per query, in order, until the queries or ``budget_s`` run out.

    ``reopen``: each query on a new ChunkIndex (connection and table opened for it), as every
    search did before ChunkIndex kept its table."""
    index.nearest(queries[0].tolist(), where, limit=K, columns=["chunk_id"])  # warm-up
    lat: list[float] = []
    recalls: list[float] = []
    leaked = 0
    start = time.perf_counter()
    for q, truth in zip(queries, exact, strict=True):
        if time.perf_counter() - start > budget_s:
            break
        vec = q.tolist()
        t0 = time.perf_counter()
        searcher = ChunkIndex(index.root) if reopen else index
        rows = searcher.nearest(vec, where, limit=K, columns=["chunk_id", "marking_id"])
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

        flat = _measure(index, queries, exact, where, 180.0)
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

        # Garrison's path: the bitmap index on marking_id that ChunkIndex builds.
        t0 = time.perf_counter()
        ChunkIndex._ensure_marking_index(index._table(None))
        bitmap_s = time.perf_counter() - t0
        bm = _measure(index, queries, exact, where, 120.0)
        reopened = _measure(index, queries, exact, where, 120.0, reopen=True)
        results["queries measured (without index / Garrison)"] = (
            f"{flat['measured']} / {bm['measured']}"
        )
        results["Garrison: marking index build s"] = round(bitmap_s, 1)
        results["Garrison: p50 ms"] = round(bm["p50"], 1)
        results["Garrison: p95 ms"] = round(bm["p95"], 1)
        results["Garrison: recall@10"] = round(bm["recall"], 4)
        results["Garrison: rows outside the filter returned"] = bm["leaked"]
        results["table reopened on every call (before): p50 / p95 ms"] = (
            f"{reopened['p50']:.1f} / {reopened['p95']:.1f}"
        )
        results["p50 ratio reopened / kept table"] = round(reopened["p50"] / bm["p50"], 2)
        results["p95 ratio reopened / kept table"] = round(reopened["p95"] / bm["p95"], 2)
        results["target p95 < 100 ms"] = "pass" if bm["p95"] < 100 else "FAIL"
        results["target recall@10 >= 0.95"] = "pass" if bm["recall"] >= 0.95 else "FAIL"
        results["peak RSS MiB (end)"] = round(_rss_mib())
        notes += [
            f"Garrison's vector search prefilters on marking_id with a bitmap index that "
            f"ChunkIndex builds (and a pipeline run folds new rows into): p95 {bm['p95']:.0f} ms "
            f"(target < 100 ms), recall@10 {bm['recall']:.3f} (target >= 0.95). Without that "
            f"index the prefilter scans every row: p95 {flat['p95']:.0f} ms.",
            "No vector (IVF_PQ) index: with a 1% prefilter the search is exact over ~10,000 "
            "readable rows, which is why recall@10 is 1.0 (ties aside) and an approximate index "
            "would gain little.",
            "Latency is per ChunkIndex.nearest call as Garrison makes it: each read opens the "
            "table at its latest version, so rows another process added are searched; limit "
            "10. The 'reopened' line uses a new ChunkIndex (and connection) per query, measured "
            "in the same run. A handle kept between reads (moved on with checkout_latest) was "
            "tried and withdrawn: it failed on a table dropped and made anew by another process.",
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

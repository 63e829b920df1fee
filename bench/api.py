"""REST API under load: 50 concurrent clients on loopback against uvicorn, vs. /v1/health.

A workspace of 50 generated, portion-marked text files (pipeline with the ``hashing`` model) is
served by ``garrison serve`` in a process of its own on 127.0.0.1 (a free port). From the bench
process, fifty concurrent clients (one ``httpx.AsyncClient``, at most 50 connections) send a
fixed number of authenticated requests to each of ``GET /v1/documents``, ``/v1/chunks`` and
``/v1/search?q=...`` as a viewer cleared to SECRET. Baseline, in the same run and interleaved:
the same number of ``GET /v1/health`` requests (no authentication, no database), the floor.
Target: each endpoint at least 0.3x the floor's requests/s, p95 under 500 ms, no errors.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._server import garrison_serve
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace

CLIENTS = 50
TARGET_RATIO = 0.3
TARGET_P95_MS = 500
FILES = 50
PIPELINE = """
name: bench
stages:
  - normalize: {}
  - quality: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
WORDS = [
    "depot",
    "convoy",
    "fuel",
    "harrow",
    "schedule",
    "report",
    "trucks",
    "planners",
    "reserve",
    "maintenance",
    "bridge",
    "route",
    "supply",
    "radio",
    "battalion",
    "logistics",
    "airfield",
    "weather",
    "patrol",
    "sector",
]
PORTIONS = ("U", "C", "S//NF")
QUERIES = ("convoy depot", "fuel reserve", "maintenance report", "radio patrol", "bridge route")


def _build_workspace(root: Path) -> tuple[Path, str]:
    rng = random.Random(11)
    path = root / "ws"
    ws = Workspace.init(path, system_high="SECRET//NOFORN")
    folder = root / "in"
    folder.mkdir()
    for i in range(FILES):
        paragraphs = []
        for _ in range(rng.randint(3, 8)):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 40)))
            paragraphs.append(f"({rng.choice(PORTIONS)}) {words.capitalize()}.")
        body = "\n\n".join(paragraphs)
        (folder / f"doc{i:03d}.txt").write_text(f"SECRET//NOFORN\n\n{body}\n\nSECRET//NOFORN\n")
    ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(ws.session(), parse_pipeline(PIPELINE, source="bench.yaml"))
    system = ws.session()
    system.add_user("viewer", SubjectSpec(clearance="S", roles=("viewer",)))
    token = create_token(system, "viewer", 30)[1]
    ws.close()
    return path, token


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def _drive(
    base: str, urls: list[str], headers: dict[str, str]
) -> tuple[float, list[float], int]:
    """Wall seconds, per-request latencies (ms) and the number of non-2xx or failed requests."""
    queue = iter(urls)
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:

        async def worker() -> None:
            nonlocal errors
            for url in queue:
                t0 = time.perf_counter()
                try:
                    r = await c.get(url)
                    ok = r.is_success
                except httpx.HTTPError:
                    ok = False
                lat.append((time.perf_counter() - t0) * 1000)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        wall = time.perf_counter() - t0
    return wall, lat, errors


KINDS = ("documents", "chunks", "search")


def _urls(kind: str, n: int, rng: random.Random) -> list[str]:
    if kind == "search":
        return [f"/v1/search?q={rng.choice(QUERIES)}" for _ in range(n)]
    return [f"/v1/{kind}"] * n


def run(*, quick: bool = False) -> dict[str, Any]:
    """``make bench``: 1,000 requests per endpoint and as many to /v1/health (quick: 150)."""
    per_kind = 150 if quick else 1_000
    rounds = 2
    rng = random.Random(5)
    root = Path(tempfile.mkdtemp(prefix="garrison-bench-api-"))
    try:
        t0 = time.perf_counter()
        path, token = _build_workspace(root)
        build_s = time.perf_counter() - t0
        auth = {"Authorization": f"Bearer {token}"}
        load = round(os.getloadavg()[0], 1)
        lat: dict[str, list[float]] = {k: [] for k in ("health", *KINDS)}
        wall = dict.fromkeys(lat, 0.0)
        errors = dict.fromkeys(lat, 0)
        with garrison_serve(path) as base:
            # Warm-up: the workspace, the index and the connection pool, once.
            warm = [u for k in KINDS for u in _urls(k, 10, rng)]
            asyncio.run(_drive(base, warm, auth))
            asyncio.run(_drive(base, ["/v1/health"] * CLIENTS, {}))
            per = per_kind // rounds
            for _ in range(rounds):  # interleaved: each endpoint, then the floor, twice
                for kind in (*KINDS, "health"):
                    urls = ["/v1/health"] * per if kind == "health" else _urls(kind, per, rng)
                    w, xs, e = asyncio.run(_drive(base, urls, {} if kind == "health" else auth))
                    wall[kind] += w
                    lat[kind] += xs
                    errors[kind] += e
            # A sample response, to report what one request returns.
            with httpx.Client(base_url=base, headers=auth) as c:
                n_docs = c.get("/v1/documents").json()["total"]
                n_chunks = c.get("/v1/chunks").json()["total"]
        rps = {k: len(lat[k]) / wall[k] for k in lat}
        results: dict[str, Any] = {
            "workspace build s (50 files, ingest + hashing pipeline)": round(build_s, 1),
            "readable documents / chunks (default page: 50)": f"{n_docs} / {n_chunks}",
            "concurrent clients": CLIENTS,
            "requests per endpoint": per * rounds,
            "machine load average at start (1 min)": load,
            "baseline /v1/health requests/s": round(rps["health"], 1),
            "baseline /v1/health latency p50 / p95 / p99 ms": _percentiles(lat["health"]),
        }
        verdicts = []
        for kind in KINDS:
            ratio = rps[kind] / rps["health"]
            p95 = _pct(lat[kind], 95)
            ok = ratio >= TARGET_RATIO and p95 < TARGET_P95_MS and errors[kind] == 0
            verdicts.append(ok)
            results[f"{kind}: requests/s"] = round(rps[kind], 1)
            results[f"{kind}: x floor"] = round(ratio, 2)
            results[f"{kind}: latency p50 / p95 / p99 ms"] = _percentiles(lat[kind])
            results[f"{kind}: mean latency ms"] = round(statistics.fmean(lat[kind]))
            results[f"{kind}: errors (non-2xx or failed)"] = errors[kind]
            results[f"{kind}: target"] = "pass" if ok else "FAIL"
        results["baseline errors"] = errors["health"]
        results[f"every endpoint >= {TARGET_RATIO}x floor, p95 < {TARGET_P95_MS} ms, 0 errors"] = (
            "pass" if all(verdicts) and errors["health"] == 0 else "FAIL"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "title": "API: 50 concurrent clients on loopback vs. the /v1/health floor",
        "what": __doc__.strip().splitlines()[0],
        "results": results,
        "notes": [
            "The server is `garrison serve` (uvicorn, one worker, the API and the web UI) in a "
            "process of its own; the load generator (one httpx.AsyncClient, 50 connections) "
            "runs in the bench process. Both share the machine's 2 cores, so the floor is what "
            "this generator gets from the server's cheapest route on this machine.",
            "Each endpoint is driven on its own (documents, then chunks, then search, then the "
            "floor, twice over), so each has its own requests/s and percentiles. Every "
            "authenticated request verifies the bearer token and reads as the caller; "
            "documents and chunks return the default page (50); every request writes a durable "
            "audit event (concurrent ones group committed: one write and fsync per batch).",
            "Shared 2-core VM: run-to-run variation of 10-30% is normal; the ratio is the "
            "steadier figure. The workspace is built in a temporary directory and deleted. "
            "The floor itself moves with the machine's load: 103 requests/s in a short run at "
            "load 8.3, 45-49 in runs at load 10-13 (the same code); at the lower floors the "
            "ratios look better than the server is.",
            "p95 under 500 ms is out of reach for every route here, the floor included: 50 "
            "closed-loop clients keep 50 requests in flight, so the mean latency is 50 / "
            "requests per second, and under 500 ms needs more than 100 requests/s from each "
            "route, more than /v1/health reaches on this machine under load.",
            "Worker threads (GARRISON_WORKER_THREADS, default 40; sync routes run on anyio's "
            "thread pool), 300 requests each at load 10-13: 2 threads, documents 17.5 and "
            "search 12.4 requests/s; 8 threads, 26.9 and 18.4 (documents p95 2.2 s); 40 threads "
            "(anyio's default), 30.9 and 18.3 (documents p95 3.5 s). The mixed-clearance load "
            "(200 clients, slow asks among them) with 8 threads served 4.2 requests/s, against "
            "17.2 with 40 in its report before: 40 stays the default.",
            "Where a search's server time goes under this load (py-spy, 12 s, 50 clients, after "
            "the changes): the full-text side 56% (re-checking every full-text match against "
            "the catalog 24%, BM25 over the readable matches 12%, LanceDB's full-text query "
            "12%), fusing and loading the hits 17%, the audit append 12%; opening the LanceDB "
            "table (7 opens a search before, ~20% of its time in process) and recounting rows "
            "and model tallies are gone (kept per table version). A chunks page: counting the "
            "readable rows with their bindings verified 30% (most of it SQLite reading the rows), "
            "loading the page's elements and documents 20%, the audit append 13%. "
            "Re-verified bindings are remembered (the HMAC is skipped for a row whose fields "
            "and binding equal one that verified). CPU per request in process (the library "
            "calls of one request, 40-80 in a row, before and after the changes, same period, "
            "load ~11): search 69 to 32 ms, a chunks page 24.5 to 20.4 ms, a documents page "
            "16.5 to 15 ms (within noise).",
        ],
    }


def _percentiles(xs: list[float]) -> str:
    return f"{_pct(xs, 50):.0f} / {_pct(xs, 95):.0f} / {_pct(xs, 99):.0f}"

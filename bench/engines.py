"""Local and Ray engines on the same pipeline and corpus: documents/s and peak memory per engine.

The generated corpus of the pipeline benchmark (:mod:`bench.pipeline`) is ingested once; the
default pipeline with the ``hashing`` embedder then runs on a fresh copy of the workspace per
configuration -- the local engine with 1 and 2 workers, Ray (a local Ray started by the engine on
loopback) with 1 and 2 actors -- each in its own spawned process. Memory: the driver's peak RSS
(VmHWM), and the peak of the summed RSS of every other process the run started (forked workers
for local; raylet, GCS and actors for Ray), sampled with psutil every 0.2 s. Ratios are against
the local engine with 1 worker in the same run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.pipeline import (
    DEFAULT_MARKING,
    SYSTEM_HIGH,
    _commit,
    _spec_text,
    _vm_hwm_kib,
    make_corpus,
)
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.workspace import Workspace

RUNS: list[tuple[str, str, int]] = [
    ("local, 1 worker", "local", 1),
    ("local, 2 workers", "local", 2),
    ("ray, 1 worker", "ray", 1),
    ("ray, 2 workers", "ray", 2),
]


class _ChildSampler:
    """Peak of the summed RSS of this process's descendants (sampled in a thread)."""

    def __init__(self, every_s: float = 0.2) -> None:
        import psutil

        self._me = psutil.Process()
        self._every = every_s
        self._stop = threading.Event()
        self.peak_kib = 0
        self.peak_processes = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            total, count = 0, 0
            for child in self._me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                    count += 1
                except psutil.Error:
                    continue
            if total // 1024 > self.peak_kib:
                self.peak_kib, self.peak_processes = total // 1024, count
            self._stop.wait(self._every)

    def __enter__(self) -> _ChildSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _measure(root: str, engine: str, workers: int) -> dict[str, Any]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ws = Workspace.open(root)
    try:
        spec = parse_pipeline(_spec_text("hashing"), source="default-hashing")
        with _ChildSampler() as sampler:
            t0 = time.perf_counter()
            report = run_pipeline(ws.session(), spec, engine=engine, workers=workers)
            wall = time.perf_counter() - t0
    finally:
        ws.close()
    return {
        "report": report.to_dict(),
        "wall_s": wall,
        "driver_vmhwm_kib": _vm_hwm_kib(),
        "others_peak_kib": sampler.peak_kib,
        "others_processes_at_peak": sampler.peak_processes,
    }


def _isolated(ingested: Path, scratch: Path, engine: str, workers: int) -> dict[str, Any]:
    copy = scratch / f"ws-{engine}-{workers}"
    shutil.copytree(ingested, copy)
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            return pool.submit(_measure, str(copy), engine, workers).result()
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def run(*, quick: bool = False) -> dict[str, Any]:
    import ray

    n = 500 if quick else 10_000
    # BENCH_ENGINES_DOCS=5000 runs a smaller corpus (a busy machine, a time budget).
    n = int(os.environ.get("BENCH_ENGINES_DOCS", "0")) or n
    results: dict[str, Any] = {
        "garrison commit": _commit(),
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "ray": ray.__version__,
        "cores": os.cpu_count(),
        "documents generated": n,
    }
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="garrison-bench-engines-") as tmp:
        scratch = Path(tmp)
        corpus = scratch / "corpus"
        corpus.mkdir()
        make_corpus(corpus, n)
        ingested = scratch / "ingested"
        ws = Workspace.init(ingested, system_high=SYSTEM_HIGH)
        try:
            ingest_paths(
                ws.session(),
                [str(corpus)],
                IngestOptions(default_marking=DEFAULT_MARKING, workers=2),
            )
        finally:
            ws.close()
        reference: dict[str, Any] | None = None
        for label, engine, workers in RUNS:
            print(f"   running {label} ...", file=sys.stderr, flush=True)
            outcome = _isolated(ingested, scratch, engine, workers)
            details[label] = outcome
            rep = outcome["report"]
            rate = rep["documents"] / outcome["wall_s"]
            reference = reference or {**outcome, "rate": rate}
            results[f"{label}: documents / chunks"] = f"{rep['documents']} / {rep['chunks']}"
            results[f"{label}: wall s"] = round(outcome["wall_s"], 1)
            results[f"{label}: documents/s"] = round(rate, 1)
            results[f"{label}: documents/s vs local 1 worker"] = round(rate / reference["rate"], 2)
            # Stage seconds are summed over workers: spread over the cores in use, what is
            # left of the wall time, less dedup (in the driver), is the driver's own work
            # (reading, writing, handing batches over) -- approximate.
            staged = sum(s["seconds"] for s in rep["stages"] if s["stage"] != "dedup")
            dedup = sum(s["seconds"] for s in rep["stages"] if s["stage"] == "dedup")
            cores = min(workers, os.cpu_count() or 1)
            outside = max(0.0, outcome["wall_s"] - staged / cores - dedup)
            results[f"{label}: outside batch stages s / share of wall (approx.)"] = (
                f"{outside:.1f} / {100 * outside / outcome['wall_s']:.0f}%"
            )
            results[f"{label}: peak RSS MiB driver / other processes (count)"] = (
                f"{_mib(outcome['driver_vmhwm_kib'])} / {_mib(outcome['others_peak_kib'])} "
                f"({outcome['others_processes_at_peak']})"
            )
            total = outcome["driver_vmhwm_kib"] + outcome["others_peak_kib"]
            ref_total = reference["driver_vmhwm_kib"] + reference["others_peak_kib"]
            results[f"{label}: peak RSS MiB total (upper bound), vs local 1 worker"] = (
                f"{_mib(total)} ({total / ref_total:.2f}x)"
            )
            same = rep["chunks"] == reference["report"]["chunks"]
            results[f"{label}: same chunk count as local"] = "yes" if same else "NO"
    return {
        "title": "Engines: local and Ray on the same pipeline",
        "what": __doc__.strip().splitlines()[0],
        "results": results,
        "details": details,
        "notes": [
            "A shared, noisy 2-core machine: compare ratios within one run, not absolute rates.",
            "Ray numbers include starting a local Ray (about 3-6 s here) and one actor pool per "
            "batch segment (two: before and after dedup), each importing Garrison (about 3 s).",
            "'Other processes' for Ray includes the raylet, GCS and idle pre-started workers, "
            "not only the actors; driver VmHWM and the summed peak need not coincide in time, so "
            "their sum is an upper bound.",
            "Two cores: Ray with 2 actors competes with its own driver (reading inputs, dedup, "
            "sink writes) and with the raylet for the same cores.",
        ],
    }

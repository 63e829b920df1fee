"""Pipeline peak memory as the corpus grows: 10k, 50k and 100k generated documents.

The corpus of :mod:`bench.pipeline` is generated and ingested once at the largest size; the
default pipeline with the ``hashing`` embedder (1 local worker, in-process, so the driver's
peak is the run's) then runs over the first N documents of a fresh copy of that workspace, in
its own spawned process, for each size. Reported: peak memory (VmHWM) per size, the growth per
document between sizes, and documents/s. Target: under 2 GiB at 100,000 documents. What may
grow with the corpus is what dedup keeps (ids, markings, hashes and MinHash signatures of every
element); element items themselves wait on disk (see ``garrison.pipeline._spill``).

Ingest is slow on a busy machine, so ``BENCH_PIPELINE_CORPUS=FOLDER`` keeps the ingested
workspace in ``FOLDER`` and reuses it on the next run when it holds at least as many documents
(the ingest figures are then the ones measured when it was built).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.pipeline import (
    LIMIT_KIB,
    _commit,
    _isolated_run,
    _mib,
    ingest_corpus,
    make_corpus,
)

SIZES = (10_000, 50_000, 100_000)
TARGET_DOCS = 100_000
QUICK_SIZES = (200, 400)


def run(*, quick: bool = False) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else SIZES
    # BENCH_PIPELINE_SIZES=5000,10000 picks other sizes (a busy machine ingests slowly).
    wanted = os.environ.get("BENCH_PIPELINE_SIZES", "")
    sizes = tuple(int(s) for s in wanted.split(",") if s) or sizes
    n = max(sizes)
    results: dict[str, Any] = {
        "garrison commit": _commit(),
        "documents generated": n,
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    details: dict[str, Any] = {}
    kept = os.environ.get("BENCH_PIPELINE_CORPUS", "")
    with tempfile.TemporaryDirectory(prefix="garrison-bench-pipeline-memory-") as tmp:
        scratch = Path(tmp)
        built = _built(Path(kept) if kept else scratch, n)
        ingested = built["ingested"]
        results["documents generated"] = built["generated"]
        results["ingest parsed / documents/s (2 workers)"] = (
            f"{built['parsed']} / {built['documents/s']:.1f}"
            + (" (measured when the kept corpus was built)" if built["reused"] else "")
        )
        previous: tuple[int, int] | None = None
        growth: float | None = None
        # BENCH_PIPELINE_TOGETHER=1 runs the sizes at the same time, each in its own process (a
        # busy machine gives several processes more of its time; peaks are per process).
        together = os.environ.get("BENCH_PIPELINE_TOGETHER", "") == "1"
        results["sizes run"] = "at the same time" if together else "one after another"
        with ThreadPoolExecutor(len(sizes) if together else 1) as pool:
            print(f"   running {', '.join(map(str, sizes))} documents ...", file=sys.stderr)
            runs = pool.map(lambda k: _isolated_run(ingested, scratch, "hashing", 1, k), sizes)
            outcomes = dict(zip(sizes, runs, strict=True))
        for size in sizes:
            outcome = outcomes[size]
            details[str(size)] = outcome
            rep = outcome["report"]
            docs = rep["documents"]
            peak = outcome["vmhwm_kib"]
            label = f"{size} docs"
            results[f"{label}: documents / elements / chunks"] = (
                f"{docs} / {rep['elements']} / {rep['chunks']}"
            )
            results[f"{label}: wall s / documents/s"] = (
                f"{outcome['wall_s']:.1f} / {docs / outcome['wall_s']:.1f}"
            )
            results[f"{label}: peak memory MiB (VmHWM)"] = _mib(peak)
            if previous is not None:
                grown = (peak - previous[1]) * 1024 / max(1, docs - previous[0])
                results[f"{label}: growth per document since the last size, bytes"] = round(grown)
                growth = grown
            previous = (docs, peak)
            results[f"{label}: peak memory < 2 GiB"] = "pass" if peak < LIMIT_KIB else "FAIL"
        results["load average at end (1/5/15 min)"] = " / ".join(
            f"{x:.2f}" for x in os.getloadavg()
        )
    notes: list[str] = []
    if previous is not None and growth is not None and previous[0] < TARGET_DOCS:
        # Not measured at the target size: what the last growth per document says of it.
        at_target = previous[1] * 1024 + growth * (TARGET_DOCS - previous[0])
        results[f"EXTRAPOLATED peak MiB at {TARGET_DOCS} docs (not measured)"] = round(
            at_target / 2**20, 1
        )
        notes.append(
            f"The largest size measured is {previous[0]} documents, not {TARGET_DOCS}: the "
            f"{TARGET_DOCS}-document figure is extrapolated from the growth per document "
            "between the last two sizes, and is "
            + ("under" if at_target < LIMIT_KIB * 1024 else "OVER")
            + " 2 GiB."
        )
    return {
        "title": "Pipeline memory: peak memory from 10,000 to 100,000 documents",
        "what": __doc__.strip().splitlines()[0],
        "results": results,
        "details": details,
        "notes": notes,
    }


def _built(folder: Path, n: int) -> dict[str, Any]:
    """An ingested workspace of at least ``n`` generated documents in ``folder``: the one kept
    there when it is big enough, else a new one."""
    ingested = folder / "ingested"
    manifest = folder / "corpus.json"
    if manifest.exists() and ingested.exists():
        info: dict[str, Any] = json.loads(manifest.read_text())
        if info["generated"] >= n:
            return {**info, "ingested": ingested, "reused": True}
    shutil.rmtree(ingested, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir()
    make_corpus(corpus, n)
    ingest, seconds = ingest_corpus(corpus, ingested)
    info = {
        "generated": n,
        "parsed": ingest.counts.get("parsed", 0),
        "documents/s": n / seconds,
    }
    manifest.write_text(json.dumps(info) + "\n")
    return {**info, "ingested": ingested, "reused": False}

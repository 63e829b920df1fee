"""Whole default pipeline on a generated corpus: documents/s per core per stage, and peak memory.

A generated corpus (short text reports, portion marks, PII, ~10% near and ~5% exact duplicates)
is ingested into a fresh workspace, then the pipeline runs over every document: once per
configuration, each on its own copy of the ingested workspace and in its own spawned process, so
each run's peak memory is its own. The default pipeline embeds with all-MiniLM-L6-v2; the same
stages with the ``hashing`` embedder show what everything but the neural model costs. When the
real model over the whole corpus would take too long, it runs on a subset and the full-corpus
figure is extrapolated (and labeled so). Target: peak memory < 2 GiB in every process.
"""

from __future__ import annotations

import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from garrison.ingest.engine import IngestOptions, IngestReport, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import load_pipeline, parse_pipeline
from garrison.store.workspace import Workspace

SYSTEM_HIGH = "SECRET//NOFORN"
DEFAULT_MARKING = "CONFIDENTIAL//NOFORN"
LIMIT_KIB = 2 * 1024 * 1024
#: Longest the real-model run over the whole corpus may take before a subset stands in for it.
REAL_MODEL_BUDGET_S = 300  # past this the real-model run is extrapolated from a subset
#: Documents in the real-model subset (when the whole corpus would exceed the budget).
REAL_MODEL_SUBSET = 1000

WORDS = [
    "convoy",
    "depot",
    "airfield",
    "patrol",
    "analyst",
    "committee",
    "budget",
    "shipment",
    "inventory",
    "radio",
    "schedule",
    "maintenance",
    "northern",
    "southern",
    "forward",
    "site",
    "training",
    "plan",
    "request",
    "supply",
    "fuel",
    "battalion",
    "logistics",
    "engineer",
    "bridge",
    "harbor",
    "runway",
    "sensor",
    "relay",
    "satellite",
    "antenna",
    "generator",
    "vehicle",
    "medical",
    "ration",
    "ammunition",
    "spare",
    "parts",
    "pallet",
    "manifest",
    "checkpoint",
    "sector",
    "grid",
    "corridor",
    "weather",
    "delay",
    "approval",
    "review",
    "summary",
    "assessment",
    "estimate",
    "contract",
    "vendor",
    "audit",
    "invoice",
    "warehouse",
    "crane",
    "container",
    "escort",
    "liaison",
    "officer",
    "sergeant",
    "civilian",
    "contractor",
    "interpreter",
    "storm",
    "flood",
    "repair",
    "survey",
    "inspection",
    "exercise",
    "rotation",
    "deployment",
    "readiness",
    "report",
]
VERBS = [
    "reviewed",
    "delayed",
    "approved",
    "moved",
    "summarized",
    "questioned",
    "inspected",
    "repaired",
    "escorted",
    "logged",
    "requested",
    "cancelled",
    "confirmed",
    "rerouted",
    "counted",
    "loaded",
    "unloaded",
    "tracked",
    "reported",
    "flagged",
]
MARKS = ("(U)", "(C)", "(S//NF)")
DEFAULT_YAML_EMBED = "model: all-MiniLM-L6-v2"


# -- the corpus -----------------------------------------------------------------------------------


def _sentence(rng: random.Random) -> str:
    words = rng.sample(WORDS, rng.randint(5, 9))
    return (
        f"The {words[0]} {rng.choice(VERBS)} the {' '.join(words[1:])} at {rng.randint(1, 2400)}."
    )


def _pii(rng: random.Random) -> str:
    name = f"{rng.choice(['j', 'a', 'm', 'r', 'k'])}.{rng.choice(['smith', 'nguyen', 'garcia'])}"
    phone = f"({rng.randint(201, 989)}) 555-{rng.randint(1000, 9999)}"
    return f" Contact {name}{rng.randint(1, 99)}@example.mil or {phone} for details."


def _document(rng: random.Random, banner: bool) -> list[str]:
    paras = []
    for _ in range(rng.randint(3, 6)):
        text = " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))
        if rng.random() < 0.3:
            text += _pii(rng)
        mark = rng.choice(MARKS) if banner else ""
        paras.append(f"{mark} {text}".strip())
    return paras


def _render(paras: list[str], banner: bool, tail: str = "") -> str:
    body = "\n\n".join(paras)
    if banner:
        return f"{SYSTEM_HIGH}\n\n{body}\n\n{SYSTEM_HIGH}\n{tail}"
    return f"{body}\n{tail}"


def _near(rng: random.Random, paras: list[str]) -> list[str]:
    """The same paragraphs, one of them with a word changed."""
    out = list(paras)
    k = rng.randrange(len(out))
    words = out[k].split(" ")
    words[rng.randrange(1, len(words))] = rng.choice(WORDS)
    out[k] = " ".join(words)
    return out


def make_corpus(folder: Path, n: int, seed: int = 7) -> dict[str, int]:
    """Write ``n`` documents into ``folder``; returns how many of each kind."""
    rng = random.Random(seed)
    made: list[tuple[list[str], bool]] = []
    kinds = {"original": 0, "near-duplicate": 0, "exact-duplicate": 0}
    for i in range(n):
        roll = rng.random()
        if made and roll < 0.05:
            # Same text, different bytes (ingest keys documents on their bytes).
            paras, banner = rng.choice(made)
            text = _render(paras, banner, tail="\n" * rng.randint(1, 3))
            kinds["exact-duplicate"] += 1
        elif made and roll < 0.15:
            paras, banner = rng.choice(made)
            paras = _near(rng, paras)
            text = _render(paras, banner)
            kinds["near-duplicate"] += 1
        else:
            banner = rng.random() < 0.6
            paras = _document(rng, banner)
            made.append((paras, banner))
            text = _render(paras, banner)
            kinds["original"] += 1
        (folder / f"d{i:05d}.txt").write_text(text, encoding="utf-8")
    return kinds


# -- one measured run (in a spawned process) ------------------------------------------------------


def ingest_corpus(corpus: Path, root: Path) -> tuple[IngestReport, float]:
    """A new workspace at ``root`` with ``corpus`` ingested by 2 workers: the ingest report and
    its wall seconds."""
    ws = Workspace.init(root, system_high=SYSTEM_HIGH)
    try:
        t0 = time.perf_counter()
        ingest = ingest_paths(
            ws.session(),
            [str(corpus)],
            IngestOptions(default_marking=DEFAULT_MARKING, workers=2),
        )
        return ingest, time.perf_counter() - t0
    finally:
        ws.close()


def _vm_hwm_kib() -> int:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else -1


def _spec_text(embedder: str) -> str:
    default = (Path(__file__).parents[1] / "src/garrison/pipeline/default.yaml").read_text()
    assert DEFAULT_YAML_EMBED in default, "the default pipeline's embed model changed"
    text = default.replace(DEFAULT_YAML_EMBED, f"model: {embedder}")
    # ``chunk`` counts tokens with the embedder's tokenizer, so it names the same model.
    return text.replace("overlap_tokens: 32", f"overlap_tokens: 32\n      model: {embedder}")


def _measure(root: str, embedder: str | None, workers: int, limit: int | None) -> dict[str, Any]:
    """Run the pipeline on the workspace at ``root``; the report, wall time and peak memory."""
    ws = Workspace.open(root)
    try:
        spec = (
            load_pipeline(None)
            if embedder is None
            else parse_pipeline(_spec_text(embedder), source="default-" + embedder)
        )
        session = ws.session()
        doc_ids = None
        if limit is not None:
            from sqlalchemy import select

            from garrison.store.models import DocumentRow

            with ws.catalog.transaction() as orm:
                query = select(DocumentRow.id).where(DocumentRow.status == "parsed")
                ids = orm.scalars(query.order_by(DocumentRow.ingested_at, DocumentRow.id))
                doc_ids = list(ids)[:limit]
        t0 = time.perf_counter()
        report = run_pipeline(session, spec, workers=workers, doc_ids=doc_ids)
        wall = time.perf_counter() - t0
    finally:
        ws.close()
    return {
        "report": report.to_dict(),
        "wall_s": wall,
        "maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "maxrss_children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "vmhwm_kib": _vm_hwm_kib(),
    }


def _isolated_run(
    ingested: Path, scratch: Path, embedder: str | None, workers: int, limit: int | None = None
) -> dict[str, Any]:
    copy = scratch / f"ws-{embedder or 'default'}-w{workers}-{limit or 'all'}"
    shutil.copytree(ingested, copy)
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            return pool.submit(_measure, str(copy), embedder, workers, limit).result()
    finally:
        shutil.rmtree(copy, ignore_errors=True)


# -- the report -----------------------------------------------------------------------------------


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _summarize(label: str, run: dict[str, Any], workers: int) -> dict[str, Any]:
    rep = run["report"]
    docs = rep["documents"]
    cores = min(workers, os.cpu_count() or 1)
    out: dict[str, Any] = {
        f"{label}: documents": docs,
        f"{label}: wall s": round(run["wall_s"], 1),
        f"{label}: documents/s": round(docs / run["wall_s"], 1),
        f"{label}: documents/s per core ({cores} core(s))": round(docs / run["wall_s"] / cores, 1),
        f"{label}: elements / chunks / embeddings": (
            f"{rep['elements']} / {rep['chunks']} / {rep['embeddings']}"
        ),
        f"{label}: duplicates exact / near (elements)": (
            f"{rep['duplicates']['exact']} / {rep['duplicates']['near']}"
        ),
        f"{label}: failed": rep["failed"],
    }
    staged = sum(s["seconds"] for s in rep["stages"])
    for stage in rep["stages"]:
        secs = stage["seconds"]
        rate = round(docs / secs) if secs > 0 else "inf"
        share = round(100 * secs / staged) if staged else 0
        out[f"{label}: stage {stage['stage']} s / docs/s per core / share"] = (
            f"{secs:.2f} / {rate} / {share}% (in {stage['in']})"
        )
    out[f"{label}: outside stages (read, sink write, fork; approx.) s"] = round(
        run["wall_s"] - staged / cores, 1
    )
    peak = max(run["maxrss_self_kib"], run["maxrss_children_kib"])
    out[f"{label}: peak RSS MiB (process / workers / VmHWM)"] = (
        f"{_mib(run['maxrss_self_kib'])} / {_mib(run['maxrss_children_kib'])} / "
        f"{_mib(run['vmhwm_kib'])}"
    )
    out[f"{label}: peak memory < 2 GiB"] = "pass" if peak < LIMIT_KIB else "FAIL"
    return out


def _commit() -> str:
    """HEAD, and whether src/ differs from it (numbers belong to the code they measured)."""
    import subprocess

    root = Path(__file__).parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' (src/ modified)' if dirty else ''}"


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 300 if quick else 10_000
    results: dict[str, Any] = {"garrison commit": _commit(), "documents generated": n}
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="garrison-bench-pipeline-") as tmp:
        scratch = Path(tmp)
        corpus = scratch / "corpus"
        corpus.mkdir()
        kinds = make_corpus(corpus, n)
        results["corpus original / near-dup / exact-dup files"] = (
            f"{kinds['original']} / {kinds['near-duplicate']} / {kinds['exact-duplicate']}"
        )

        ingested = scratch / "ingested"
        ingest, seconds = ingest_corpus(corpus, ingested)
        counts = ingest.counts
        details["ingest"] = counts
        results["ingest parsed / other"] = f"{counts.get('parsed')} / {n - counts.get('parsed', 0)}"
        results["ingest documents/s (2 workers)"] = round(n / seconds, 1)
        results["ingest documents/s per core"] = round(n / seconds / 2, 1)

        runs: list[tuple[str, str | None, int, int | None]] = [
            ("hashing, 1 worker", "hashing", 1, None),
            ("hashing, 2 workers", "hashing", 2, None),
        ]
        for label, embedder, workers, limit in runs:
            print(f"   running {label} ...", file=sys.stderr, flush=True)
            outcome = _isolated_run(ingested, scratch, embedder, workers, limit)
            details[label] = outcome
            results.update(_summarize(label, outcome, workers))

        # The real model: a subset first; the whole corpus only if it fits the budget.
        subset = min(n, REAL_MODEL_SUBSET)
        label = f"MiniLM, 2 workers, {subset} docs"
        print(f"   running {label} ...", file=sys.stderr, flush=True)
        outcome = _isolated_run(ingested, scratch, None, 2, subset if subset < n else None)
        details[label] = outcome
        results.update(_summarize(label, outcome, 2))
        estimate = outcome["wall_s"] * n / max(1, outcome["report"]["documents"])
        if subset < n and estimate <= REAL_MODEL_BUDGET_S:
            label = "MiniLM, 2 workers, all docs"
            print(f"   running {label} ...", file=sys.stderr, flush=True)
            outcome = _isolated_run(ingested, scratch, None, 2)
            details[label] = outcome
            results.update(_summarize(label, outcome, 2))
        elif subset < n:
            results[f"MiniLM, 2 workers, all {n} docs: EXTRAPOLATED wall s (not measured)"] = round(
                estimate
            )
            results[f"MiniLM, 2 workers, all {n} docs: EXTRAPOLATED documents/s"] = round(
                n / estimate, 1
            )
        results["parent peak RSS MiB (ingest, orchestration)"] = _mib(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        )
        results["any process peak RSS MiB (incl. ingest workers, runs)"] = _mib(
            max(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            )
        )
    return {
        "title": "Pipeline: the whole default pipeline on a generated corpus",
        "what": __doc__.strip().splitlines()[0],
        "results": results,
        "details": details,
    }

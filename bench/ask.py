"""Assistant latency: ``ask`` with the extractive answerer vs. the search it is built on.

A workspace of generated, portion-marked reports (10,000 in a full run, hashing pipeline) is
asked a fixed set of questions by a viewer cleared to SECRET. Garrison's path is the whole
``ask`` (question marking, retrieval, catalog re-reads of each chunk and its elements, sentence
scoring, packing, citations, audit); the baseline, in the same run and interleaved, is the
``search`` call ``ask`` makes for retrieval. Reported: ``ask`` p50/p95 (target p95 < 1 s), the
share of it that retrieval takes, and the ratio to search alone.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from garrison.assist import ask
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

PIPELINE = """
name: bench
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 128, overlap_tokens: 16}
  - embed: {model: hashing}
"""
PLACES = ["harrow", "kestrel", "osprey", "falcon", "heron", "plover", "tern", "merlin", "wren"]
QUESTIONS = [
    "Where did the pallets of spare parts for depot harrow go?",
    "How many pallets did depot kestrel move?",
    "When was the osprey transfer logged?",
    "Which depot moved the most spare parts?",
    "What did report 42 say about the falcon depot?",
    "transfer logged heron pallets",
]


def _corpus(folder: Path, n: int) -> None:
    marks = ["(U)", "(C)", "(S)", "(U)"]
    for i in range(n):
        paras = "\n\n".join(
            f"{marks[(i + j) % 4]} Report {i}, paragraph {j}: depot {PLACES[(i + j) % 9]} moved "
            f"{j * 13 + i % 7} pallets of spare parts. The transfer was logged on day {i % 28}."
            for j in range(4)
        )
        (folder / f"r{i:05d}.txt").write_text(f"SECRET\n\n{paras}\n\nSECRET\n")


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 300 if quick else 10_000
    rounds = 3 if quick else 10
    root = Path(tempfile.mkdtemp(prefix="garrison-bench-ask-"))
    try:
        folder = root / "in"
        folder.mkdir()
        _corpus(folder, n)
        ws = Workspace.init(root / "ws", system_high="SECRET")
        try:
            system = ws.session()
            t0 = time.perf_counter()
            ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
            run_pipeline(system, parse_pipeline(PIPELINE, source="bench.yaml"))
            build_s = time.perf_counter() - t0
            system.add_user("viewer", SubjectSpec(clearance="S", roles=("viewer",)))
            session = ws.session("viewer")
            ask(session, QUESTIONS[0])  # warm-up: index, model, caches
            asked: list[float] = []
            searched: list[float] = []
            retrieval: list[float] = []
            refused = 0
            for _ in range(rounds):
                for question in QUESTIONS:
                    t0 = time.perf_counter()
                    answer = ask(session, question)
                    t1 = time.perf_counter()
                    search(session, question, k=8)
                    t2 = time.perf_counter()
                    asked.append((t1 - t0) * 1000)
                    searched.append((t2 - t1) * 1000)
                    retrieval.append(answer.timings["retrieval_ms"] / answer.timings["total_ms"])
                    refused += answer.refused
        finally:
            ws.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    p95 = _pct(asked, 95)
    return {
        "title": "Assistant: ask latency with the extractive answerer",
        "what": (
            f"ask() on {n} generated reports (hashing pipeline) by a viewer cleared to SECRET, "
            "interleaved with the search it retrieves through."
        ),
        "results": {
            "documents": n,
            "build s (ingest + pipeline)": round(build_s, 1),
            "questions asked": len(asked),
            "refused": refused,
            "ask p50 ms": round(_pct(asked, 50), 1),
            "ask p95 ms": round(p95, 1),
            "search alone p50 ms (baseline)": round(_pct(searched, 50), 1),
            "ask / search (medians)": round(
                statistics.median(asked) / max(statistics.median(searched), 1e-9), 2
            ),
            "retrieval share of ask (median)": round(statistics.median(retrieval), 3),
            "target p95 < 1000 ms": "pass" if p95 < 1000 else "FAIL",
        },
        "notes": [
            "Extractive answerer, hashing embedder (the index's), k = 8, a viewer cleared to "
            "SECRET on a corpus of SECRET reports with U, C and S portions.",
            "Retrieval includes the search and the catalog re-reads of each chunk and its "
            "readable elements; the rest is sentence scoring, packing, citations and the audit "
            "event.",
        ],
    }

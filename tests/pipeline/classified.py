"""A small U+S corpus, a tiny embedder and classifiers at two markings, for prediction tests.

:func:`classified_workspace` builds a workspace with readers at U and S and a steward, ingests
a few UNCLASSIFIED and SECRET reports, registers the tiny embedder (UNCLASSIFIED) and two
classifiers made with :func:`garrison.models.write_classifier` -- ``topic-u`` (UNCLASSIFIED)
and ``topic-s`` (SECRET) -- whose heads are set by hand from class centroids, so the labels are
what the texts say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models, write_classifier
from garrison.models._use import load_embedder_folder
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

SYSTEM_HIGH = "SECRET//NOFORN"
LABELS = ["logistics", "weather"]
TEXTS = {
    "logistics": "convoy fuel supply depot cargo manifest logistics",
    "weather": "weather storm satellite imagery river bridge",
}
PIPELINE = """
name: classify
stages:
  - normalize: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 48, overlap_tokens: 4}
  - embed: {model: hashing}
%s
"""


def classify_stages(*stages: str) -> str:
    return PIPELINE % "\n".join(f"  - classify: {s}" for s in stages)


def write_corpus(folder: Path, docs: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(docs):
        mark = "(U)" if i % 2 == 0 else "(S)"
        topic = TEXTS["logistics"] if i % 3 else TEXTS["weather"]
        (folder / f"report-{i:02d}.txt").write_text(
            f"{mark} Report {i}: {topic} in week {i}.\n\n{mark} Annex {i}: {topic} again.\n"
        )


def make_head(folder: Path, tiny: Path, embedder_id: str, *, flip: bool = False) -> Path:
    """A classifier folder whose rows are the class centroids of the tiny embedder."""
    model = load_embedder_folder("tiny", tiny, {})
    centroids = model.encode([TEXTS[label] for label in LABELS]).astype(np.float32)
    # What tells the classes apart is each centroid's difference from their mean.
    weight = (centroids - centroids.mean(axis=0)) * 200.0
    weight = weight[::-1].copy() if flip else weight
    write_classifier(
        folder,
        trainer="logreg",
        labels=list(LABELS),
        weight=weight,
        bias=np.zeros(len(LABELS), dtype=np.float32),
        embedder={"id": embedder_id},
    )
    return folder


def classified_workspace(
    root: Path, tiny: Path, db_url: str | None = None
) -> tuple[Workspace, dict[str, Any]]:
    ws = Workspace.init(root / "ws", system_high=SYSTEM_HIGH, db_url=db_url)
    system = ws.session()
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("sam", SubjectSpec(clearance="S"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    write_corpus(root / "corpus")
    ingest_paths(system, [str(root / "corpus")], IngestOptions(default_marking="UNCLASSIFIED"))
    models = Models(ws.session("stew"))
    embedder = models.register(kind="embedder", name="tiny", folder=tiny)
    ids: dict[str, Any] = {"embedder": embedder.id}
    for name, marking in (("topic-u", "UNCLASSIFIED"), ("topic-s", "SECRET")):
        head = make_head(root / f"head-{name}", tiny, embedder.id)
        ids[name] = models.register(
            kind="classifier",
            name=name,
            folder=head,
            base=embedder.id,
            marking=parse_marking(marking),
        ).id
    return ws, ids


def run(ws: Workspace, text: str, **kwargs: Any) -> dict[str, Any]:
    spec = parse_pipeline(text, source="classify.yaml")
    return run_pipeline(ws.session(), spec, **kwargs).to_dict()

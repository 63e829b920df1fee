"""Embedding throughput: the embed stage vs. raw SentenceTransformer.encode on the same texts.

Both embed the same generated sentences with all-MiniLM-L6-v2 on CPU at the same batch size,
alternating rounds; the stage's cost over the raw call is building the text list, one
normalization and writing each vector back onto its item. Target: ratio >= 0.9.
"""

from __future__ import annotations

import random
from typing import Any

from bench._timing import interleaved
from garrison.models import MINILM, SentenceTransformerModel, get_model
from garrison.pipeline import Item
from garrison.pipeline.stages.embed import EmbedParams, EmbedStage
from garrison.security.markings import UNCLASSIFIED

SUBJECTS = ["The convoy", "Our analyst", "The depot", "A patrol", "The committee", "The report"]
VERBS = ["reviewed", "delayed", "approved", "moved", "summarized", "questioned", "inspected"]
OBJECTS = [
    "the fuel shipment",
    "the quarterly budget for field offices",
    "the maintenance schedule of the northern airfield",
    "two supply requests",
    "the training plan",
    "the radio inventory at the forward site",
]
TAILS = ["", " before dawn", " after a long delay", " on Tuesday", " without comment"]
BATCH_SIZE = 64


def sentences(n: int, seed: int = 11) -> list[str]:
    """``n`` varied short sentences (deterministic)."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}"
        f" ({i})."
        for i in range(n)
    ]


def run(*, quick: bool = False) -> dict[str, Any]:
    texts = sentences(300 if quick else 2_000)
    stage = EmbedStage(EmbedParams(model=MINILM, batch_size=BATCH_SIZE))
    model = stage.open_resources({})
    assert isinstance(model, SentenceTransformerModel)
    raw = model.raw
    raw.encode(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)  # warm-up (thread pools, allocator)

    def items() -> list[Item]:
        return [
            Item(
                id=f"c{i}",
                doc_id="d",
                kind="chunk",
                text=t,
                original_text=t,
                marking=UNCLASSIFIED,
                element_ids=(f"e{i}",),
            )
            for i, t in enumerate(texts)
        ]

    def garrison() -> None:
        out = stage.process(items(), model)
        assert out[-1].embedding is not None

    def baseline() -> None:
        raw.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False)

    assert get_model(MINILM) is model
    cand, base = interleaved(garrison, baseline, rounds=2 if quick else 3)
    return {
        "title": "Embedding: embed stage vs. raw SentenceTransformer.encode",
        "what": __doc__.strip().splitlines()[0],
        "results": {
            "texts per round": len(texts),
            "batch size": BATCH_SIZE,
            "garrison texts/s": round(len(texts) / cand),
            "baseline (raw encode) texts/s": round(len(texts) / base),
            "ratio (garrison / baseline throughput, target >= 0.9)": round(base / cand, 3),
        },
    }

"""Registered test models at several markings: real embedders and classifiers with known heads.

:func:`register_test_models` registers the tiny sentence-transformer (tests/models/tiny.py) as
an UNCLASSIFIED and a CONFIDENTIAL embedder, and classifiers over them whose heads have zero
weights and a hand-set bias, so every text gets the same, known probabilities
(``softmax(bias)``): ``urgent`` with :data:`URGENT_P`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from garrison.models import Models, ModelVersion, write_classifier
from garrison.store.session import Session

LABELS = ["routine", "urgent"]
BIAS = [0.0, 2.0]
#: The probability of ``urgent`` for any text.
URGENT_P = math.exp(2.0) / (1.0 + math.exp(2.0))
CARD: dict[str, Any] = {
    "intended_use": "Triage of convoy reports by urgency.",
    "limitations": "Trained on synthetic reports only.",
    "training_data": [{"name": "reports", "records": 120}],
    "metrics": {
        "test": {
            "accuracy": {"value": 0.85, "low": 0.8, "high": 0.9},
            "per_class": {"urgent": {"precision": {"value": 0.75, "low": 0.6, "high": 0.88}}},
        },
        "ece": {"value": 0.04, "low": 0.02, "high": 0.07},
    },
}


def classifier_folder(root: Path, embedder_id: str, name: str) -> Path:
    """A classifier folder over the registered embedder ``embedder_id``."""
    folder = root / "heads" / name
    write_classifier(
        folder,
        trainer="logreg",
        labels=LABELS,
        weight=np.zeros((len(LABELS), 32), dtype=np.float32),
        bias=np.asarray(BIAS, dtype=np.float32),
        embedder={"id": embedder_id},
        extra={"text_field": "note", "label_field": "label"},
    )
    return folder


def register_test_models(session: Session, tiny: Path, root: Path) -> dict[str, ModelVersion]:
    """Register (as ``session``, a steward or the system) and return, by name:

    - ``tiny`` (embedder, U) and ``tiny-c`` (embedder, C), the same files at two markings;
    - ``topic`` (classifier, U, over ``tiny``), with a card and metrics;
    - ``topic-s`` (classifier, S//NF, over ``tiny``);
    - ``topic-c`` (classifier registered at U over ``tiny-c``: marked C by the join).
    """
    models = Models(session)
    out: dict[str, ModelVersion] = {}
    out["tiny"] = models.register(kind="embedder", name="tiny", folder=tiny)
    out["tiny-c"] = models.register(
        kind="embedder", name="tiny-c", folder=tiny, marking=session.parse_marking("C")
    )
    for name, embedder, marking in (
        ("topic", "tiny", "UNCLASSIFIED"),
        ("topic-s", "tiny", "SECRET//NOFORN"),
        ("topic-c", "tiny-c", "UNCLASSIFIED"),
    ):
        base = out[embedder]
        out[name] = models.register(
            kind="classifier",
            name=name,
            folder=classifier_folder(root, base.id, name),
            base=base.id,
            marking=session.parse_marking(marking),
            card=CARD if name == "topic" else {"intended_use": f"{name} triage"},
        )
    return out

"""Using registered models: embedders and classifiers, loaded verified, outputs marked.

Everything a model produces is marked at least as high as the model (it learned from data
that high) and as its input: :func:`output_marking`. Opening a model needs a subject who
dominates it (it looks missing otherwise), checks every file against its manifest, and is
audited as ``model.use``.

An embedder version's manifest parameter ``format`` says how its folder loads:
``sentence-transformers`` (the default) or ``onnx`` (an exported, optionally quantized graph;
:mod:`garrison.models._onnx`).

A classifier version's folder holds ``classifier.json`` and ``head.safetensors``::

    classifier.json   {"format": 1, "trainer": "logreg" | "setfit", "labels": [...],
                       "embedder": {"id": "<registered embedder version id>"}
                                or {"path": "body"}   (a sentence-transformers folder inside),
                       "text_field": ..., "label_field": ...}
    head.safetensors  "weight" float32 [classes, dim], "bias" float32 [classes]

Prediction is ``softmax(embedding @ weight.T + bias)``: the label of the largest probability
and that probability. (A two-class logistic regression with coefficient ``w`` and intercept
``c`` is stored as rows ``-w/2, w/2`` and biases ``-c/2, c/2``: the same probabilities.)
Nothing is unpickled, ever: a classifier is plain arrays and JSON.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import CheckFailed, InvalidInput, NotFound
from garrison.models._registry import Models, ModelVersion
from garrison.models.embedding import EmbeddingModel, SentenceTransformerModel
from garrison.security.markings import Marking, join
from garrison.store.session import Session

__all__ = [
    "CLASSIFIER_FILE",
    "HEAD_FILE",
    "Classifier",
    "Prediction",
    "load_embedder_folder",
    "open_classifier",
    "open_embedder",
    "output_marking",
    "write_classifier",
]

CLASSIFIER_FILE = "classifier.json"
HEAD_FILE = "head.safetensors"
CLASSIFIER_FORMAT = 1

_lock = threading.Lock()
_embedders: dict[str, EmbeddingModel] = {}


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def output_marking(input_marking: Marking, *models: ModelVersion) -> Marking:
    """What a model's output over an input marked ``input_marking`` is marked: the join."""
    return join(input_marking, *(m.marking for m in models))


def load_embedder_folder(label: str, folder: Path, parameters: dict[str, Any]) -> EmbeddingModel:
    """An embedding model from an already verified folder, by its manifest ``parameters``."""
    fmt = parameters.get("format", "sentence-transformers")
    if fmt == "sentence-transformers":
        max_seq = parameters.get("max_seq_length")
        return SentenceTransformerModel(
            label,
            folder,
            expected_sha256=None,
            max_seq_length=int(max_seq) if max_seq else None,
        )
    if fmt == "onnx":
        from garrison.models._onnx import OnnxEmbeddingModel

        return OnnxEmbeddingModel(label, folder)
    raise InvalidInput(f"Embedder {label} has an unknown format {fmt!r}.")


def open_embedder(
    session: Session, ref: str, *, purpose: str = "embed"
) -> tuple[ModelVersion, EmbeddingModel]:
    """The readable embedder ``ref`` names and its loaded model (cached per process by id).

    The model's ``name`` is ``NAME@ID12``: what the index and lineage record as its model.
    """
    models = Models(session)
    version = models.use(ref, purpose)
    if version.kind != "embedder":
        raise InvalidInput(f"Model {version.ref} is {_a(version.kind)}, not an embedder.")
    with _lock:
        cached = _embedders.get(version.id)
    if cached is not None:
        return version, cached
    folder = models.folder(version)
    model = load_embedder_folder(version.ref, folder, dict(version.manifest.get("parameters", {})))
    with _lock:
        return version, _embedders.setdefault(version.id, model)


@dataclass(frozen=True)
class Prediction:
    """One classifier output: its label, the label's probability, and every probability."""

    label: str
    probability: float
    probabilities: dict[str, float]
    marking: Marking

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "probability": round(self.probability, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "marking": self.marking.banner(),
        }


def write_classifier(
    folder: Path,
    *,
    trainer: str,
    labels: list[str],
    weight: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    embedder: dict[str, str],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a classifier folder's ``classifier.json`` and ``head.safetensors``."""
    from safetensors.numpy import save_file

    weight = np.ascontiguousarray(weight, dtype=np.float32)
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    if weight.ndim != 2 or weight.shape[0] != len(labels) or bias.shape != (len(labels),):
        raise InvalidInput("A classifier head needs one weight row and one bias per label.")
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "format": CLASSIFIER_FORMAT,
        "trainer": trainer,
        "labels": list(labels),
        "embedder": dict(embedder),
        **(extra or {}),
    }
    (folder / CLASSIFIER_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    save_file({"weight": weight, "bias": bias}, str(folder / HEAD_FILE))


class Classifier:
    """A loaded classifier version: its embedder and its head."""

    def __init__(
        self,
        version: ModelVersion,
        embedder: EmbeddingModel,
        labels: list[str],
        weight: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        spec: dict[str, Any],
        embedder_version: ModelVersion | None = None,
    ) -> None:
        self.version = version
        self.embedder = embedder
        self.labels = labels
        self.weight = weight
        self.bias = bias
        self.spec = spec
        self.embedder_version = embedder_version

    @property
    def marking(self) -> Marking:
        """The classifier's marking (it already includes its embedder's)."""
        if self.embedder_version is None:
            return self.version.marking
        return join(self.version.marking, self.embedder_version.marking)

    def probabilities(self, texts: list[str], batch_size: int = 64) -> npt.NDArray[np.float64]:
        """Class probabilities, shape ``(len(texts), len(labels))``."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        vectors = self.embedder.encode(texts, batch_size=batch_size).astype(np.float64)
        logits = vectors @ self.weight.T.astype(np.float64) + self.bias.astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)

    def predict(self, texts: list[str], markings: list[Marking]) -> list[Prediction]:
        """One prediction per text, each marked with the join of its text's and the model's."""
        if len(texts) != len(markings):
            raise InvalidInput("Every text to classify needs its marking.")
        probs = self.probabilities(texts)
        out: list[Prediction] = []
        for row, marking in zip(probs, markings, strict=True):
            best = int(np.argmax(row))
            out.append(
                Prediction(
                    self.labels[best],
                    float(row[best]),
                    {label: float(p) for label, p in zip(self.labels, row, strict=True)},
                    join(marking, self.marking),
                )
            )
        return out


def open_classifier(session: Session, ref: str, *, purpose: str = "predict") -> Classifier:
    """The readable classifier ``ref`` names, loaded and verified (its embedder too)."""
    from safetensors.numpy import load_file

    models = Models(session)
    version = models.use(ref, purpose)
    if version.kind != "classifier":
        raise InvalidInput(f"Model {version.ref} is {_a(version.kind)}, not a classifier.")
    folder = models.folder(version)
    try:
        spec = json.loads((folder / CLASSIFIER_FILE).read_text())
        head = load_file(str(folder / HEAD_FILE))
        labels = [str(label) for label in spec["labels"]]
        weight, bias = head["weight"], head["bias"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckFailed(f"Classifier {version.ref} is not a readable classifier: {exc}.") from exc
    if spec.get("format") != CLASSIFIER_FORMAT or weight.shape[0] != len(labels):
        raise CheckFailed(f"Classifier {version.ref} is not in a format this Garrison reads.")
    embedder_spec = spec.get("embedder", {})
    embedder_version: ModelVersion | None = None
    if "id" in embedder_spec:
        if str(embedder_spec["id"]) != version.manifest.get("base"):
            # The embedder must be the registered base: that is what the marking joined in.
            raise CheckFailed(f"Classifier {version.ref} names an embedder that is not its base.")
        try:
            embedder_version, embedder = open_embedder(
                session, str(embedder_spec["id"]), purpose=purpose
            )
        except NotFound:
            raise NotFound(f"No model version {ref}.") from None
    elif "path" in embedder_spec:
        body = folder / str(embedder_spec["path"])
        if not body.resolve().is_relative_to(folder.resolve()):
            raise CheckFailed(f"Classifier {version.ref} names a body outside its folder.")
        embedder = load_embedder_folder(version.ref, body, dict(embedder_spec))
    else:
        raise CheckFailed(f"Classifier {version.ref} names no embedder.")
    if weight.shape[1] != embedder.dim:
        raise CheckFailed(f"Classifier {version.ref}'s head does not fit its embedder.")
    return Classifier(version, embedder, labels, weight, bias, spec, embedder_version)

"""``garrison model optimize``: an embedder exported to int8 ONNX, checked, registered.

:func:`optimize_embedder` exports a registered sentence-transformers embedder to ONNX, fuses
and quantizes it (:func:`garrison.models._onnx.export_int8`), and checks the result against the
source on a held-out set of texts before registering anything:

- the mean cosine similarity between the int8 and the fp32 vectors of the texts is at least
  ``min_cosine`` (0.99), and
- retrieval recall@10 with the int8 vectors is within ``recall_tolerance`` (0.01) of the
  recall@10 with the fp32 vectors, either way. Each text's query is its first sentence (a
  paragraph) or a perturbed copy of it (a single sentence: lowercased, unpunctuated, every
  fourth word dropped); the candidates are all the texts;
- and every text counts the same tokens under both (the same tokenizer, the same limit).

The held-out texts are the caller's (``check_set``), else chunks of the workspace the subject
may read whose marking the source model's dominates (so the fidelity figures on the card say
nothing about data above the model), else the built-in set (:mod:`garrison.models._check_texts`).
A check that fails raises :class:`CheckFailed` and registers nothing. The result is a new
embedder version whose base is the source, marked as the source is, with manifest parameters
``{"format": "onnx", "quantization": "int8-dynamic-per-channel", "opset": 17,
"derived_from": <source id>, ...}`` and a card that carries the fidelity figures.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import CheckFailed, GarrisonError, InvalidInput
from garrison.models._check_texts import CHECK_TEXTS
from garrison.models._files import CACHE_DIR
from garrison.models._onnx import (
    OPSET,
    QUANTIZATION,
    QUANTIZED_TYPES,
    OnnxEmbeddingModel,
    export_int8,
)
from garrison.models._registry import Models, ModelVersion
from garrison.models._stats import Interval, bootstrap
from garrison.models._use import load_embedder_folder
from garrison.models.embedding import EmbeddingModel
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, dominates, parse_marking
from garrison.security.policy import Action
from garrison.store.session import Session

__all__ = [
    "MIN_CHECK_TEXTS",
    "Fidelity",
    "Optimized",
    "check_fidelity",
    "optimize_embedder",
    "queries_for",
    "read_check_file",
]

#: The most recall@10 of the int8 vectors may differ from fp32's (either way), by default.
RECALL_TOLERANCE = 0.01

#: Fewest held-out texts a check runs on (recall@10 over fewer candidates says nothing).
MIN_CHECK_TEXTS = 20
#: Most held-out texts taken from the workspace (spread over its readable chunks).
MAX_WORKSPACE_TEXTS = 200
#: Chunks read from the workspace to pick them from.
_SCAN_CHUNKS = 5000
K = 10

Progress = Callable[[str, int, int], None]
Vectors = npt.NDArray[np.float32]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PUNCTUATION = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class Fidelity:
    """How closely the optimized embedder follows its source on the held-out texts."""

    texts: int
    source: str  # "given", "workspace" or "built-in"
    mean_cosine: Interval
    min_cosine: float
    recall_fp32: Interval
    recall_int8: Interval
    tokens_equal: bool
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def recall_gap(self) -> float:
        return abs(self.recall_int8["value"] - self.recall_fp32["value"])

    @property
    def passed(self) -> bool:
        return (
            self.tokens_equal
            and self.mean_cosine["value"] >= self.thresholds["min_cosine"]
            and self.recall_gap <= self.thresholds["recall_tolerance"] + 1e-9
        )

    def problem(self) -> str:
        """The first reason the check failed, as a sentence fragment."""
        if not self.tokens_equal:
            return "the two models count tokens differently"
        if self.mean_cosine["value"] < self.thresholds["min_cosine"]:
            return (
                f"mean cosine {self.mean_cosine['value']:.4f} is below "
                f"{self.thresholds['min_cosine']:g}"
            )
        return (
            f"recall@{K} {self.recall_int8['value']:.4f} is more than "
            f"{self.thresholds['recall_tolerance']:g} from fp32's {self.recall_fp32['value']:.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "source": self.source,
            "mean_cosine": self.mean_cosine,
            "min_cosine": round(self.min_cosine, 6),
            f"recall@{K}_fp32": self.recall_fp32,
            f"recall@{K}_int8": self.recall_int8,
            "tokens_equal": self.tokens_equal,
            "thresholds": dict(self.thresholds),
            "passed": self.passed,
        }


@dataclass(frozen=True)
class Optimized:
    """A registered optimized version, its source and how it was checked."""

    version: ModelVersion
    source: ModelVersion
    fidelity: Fidelity
    size_before: int
    size_after: int
    fused: dict[str, int]
    quantized: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.version.ref,
            "id": self.version.id,
            "marking": self.version.marking.banner(),
            "source": {"ref": self.source.ref, "id": self.source.id},
            "fidelity": self.fidelity.to_dict(),
            "size_bytes": {"before": self.size_before, "after": self.size_after},
            "fused_operators": self.fused,
            "quantized_operators": self.quantized,
        }


# -- held-out texts --------------------------------------------------------------------------------


def _clean(texts: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for text in texts:
        stripped = " ".join(str(text).split())
        if stripped:
            seen.setdefault(stripped, None)
    return list(seen)


def read_check_file(path: Path) -> list[str]:
    """Held-out texts from a file: one text per line, or JSON Lines objects with ``text``."""
    import json

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read the check file {path} as UTF-8 text.") from exc
    if path.suffix.lower() != ".jsonl":
        return _clean(lines)
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InvalidInput(f"Line {number} of {path} is not JSON.") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InvalidInput(f"Line {number} of {path} has no string field text.")
        texts.append(record["text"])
    return _clean(texts)


def _workspace_texts(session: Session, ceiling: Marking) -> list[str]:
    """Readable chunk texts marked no higher than ``ceiling``, spread over the workspace."""
    from garrison.store.derived import Chunks

    texts = []
    for chunk in Chunks(session).list(limit=_SCAN_CHUNKS):
        try:
            marking = parse_marking(str(chunk["marking"]))
        except GarrisonError:
            marking = None  # an unparsable banner: not a text to use
        if marking is not None and dominates(ceiling, marking):
            texts.append(str(chunk["text"]))
    texts = _clean(texts)
    if len(texts) > MAX_WORKSPACE_TEXTS:
        picks = np.linspace(0, len(texts) - 1, MAX_WORKSPACE_TEXTS).round().astype(int)
        texts = [texts[i] for i in sorted(set(picks.tolist()))]
    return texts


def _check_texts(
    session: Session, source: ModelVersion, given: Iterable[str] | None
) -> tuple[list[str], str]:
    if given is not None:
        texts = _clean(given)
        if len(texts) < MIN_CHECK_TEXTS:
            raise InvalidInput(
                f"A fidelity check needs at least {MIN_CHECK_TEXTS} distinct texts; "
                f"{len(texts)} were given."
            )
        return texts, "given"
    texts = _workspace_texts(session, source.marking)
    if len(texts) >= MIN_CHECK_TEXTS:
        return texts, "workspace"
    return list(CHECK_TEXTS), "built-in"


def queries_for(texts: list[str]) -> list[str]:
    """One query per text: its first sentence, or a perturbed copy of a one-sentence text."""
    queries = []
    for text in texts:
        sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
        if len(sentences) > 1:
            queries.append(sentences[0])
            continue
        words = _PUNCTUATION.sub(" ", text.lower()).split()
        kept = [w for i, w in enumerate(words) if i % 4 != 3] if len(words) > 3 else words
        queries.append(" ".join(kept) or text)
    return queries


# -- the check -------------------------------------------------------------------------------------


def _hits(queries: Vectors, candidates: Vectors, k: int) -> npt.NDArray[np.float64]:
    """1.0 where query ``i``'s own text ``i`` is among its ``k`` nearest candidates."""
    sims = queries @ candidates.T
    own = np.diag(sims)[:, None]
    better = (sims > own).sum(axis=1)
    hits: npt.NDArray[np.float64] = (better < k).astype(np.float64)
    return hits


def check_fidelity(
    reference: EmbeddingModel,
    candidate: EmbeddingModel,
    texts: list[str],
    *,
    source: str = "given",
    min_cosine: float = 0.99,
    recall_tolerance: float | None = None,
    progress: Progress | None = None,
) -> Fidelity:
    """Compare ``candidate`` with ``reference`` on ``texts`` (see the module docstring)."""
    if recall_tolerance is None:
        recall_tolerance = RECALL_TOLERANCE
    if len(texts) < MIN_CHECK_TEXTS:
        raise InvalidInput(f"A fidelity check needs at least {MIN_CHECK_TEXTS} distinct texts.")
    queries = queries_for(texts)
    n = len(texts)
    k = min(K, n - 1)
    vectors = []
    for step, model in enumerate((reference, candidate)):
        if progress is not None:
            progress("check", step, 2)
        vectors.append((model.encode(texts), model.encode(queries)))
    if progress is not None:
        progress("check", 2, 2)
    (ref_c, ref_q), (cand_c, cand_q) = vectors
    cosines = np.concatenate([(ref_c * cand_c).sum(axis=1), (ref_q * cand_q).sum(axis=1)]).astype(
        np.float64
    )
    hits_ref = _hits(ref_q, ref_c, k)
    hits_cand = _hits(cand_q, cand_c, k)
    tokens_equal = all(
        reference.count_tokens(t) == candidate.count_tokens(t) for t in [*texts, *queries]
    )
    return Fidelity(
        texts=n,
        source=source,
        mean_cosine=bootstrap(lambda idx: float(cosines[idx].mean()), len(cosines)),
        min_cosine=float(cosines.min()),
        recall_fp32=bootstrap(lambda idx: float(hits_ref[idx].mean()), n),
        recall_int8=bootstrap(lambda idx: float(hits_cand[idx].mean()), n),
        tokens_equal=tokens_equal,
        thresholds={"min_cosine": float(min_cosine), "recall_tolerance": float(recall_tolerance)},
    )


# -- optimize --------------------------------------------------------------------------------------


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def optimize_embedder(
    session: Session,
    ref: str,
    *,
    name: str | None = None,
    check_set: Iterable[str] | None = None,
    progress: Progress | None = None,
    min_cosine: float = 0.99,
    recall_tolerance: float | None = None,
) -> Optimized:
    """Export embedder ``ref`` to int8 ONNX, check it, and register it (stewards, evaluators).

    The new version is called ``name`` (the source's name by default, so it becomes that
    name's latest version), its base is the source and its marking the source's. Raises
    :class:`CheckFailed` (nothing registered) when the fidelity check fails.
    """
    session.require(Action.MODEL_MANAGE, AuditAction.MODEL_OPTIMIZE, object_id=ref[:128])
    models = Models(session)
    source = models.use(ref, "optimize")
    if source.kind != "embedder":
        raise InvalidInput(f"Model {source.ref} is a {source.kind}; only embedders optimize.")
    parameters = dict(source.manifest.get("parameters", {}))
    if parameters.get("format", "sentence-transformers") != "sentence-transformers":
        raise InvalidInput(
            f"Embedder {source.ref} is already {parameters.get('format')}; optimize its source."
        )
    texts, origin = _check_texts(session, source, check_set)
    source_folder = models.folder(source)
    reference = load_embedder_folder(source.ref, source_folder, parameters)
    cache = session.workspace.root / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = Path(tempfile.mkdtemp(prefix=".optimize-", dir=cache))
    try:
        if progress is not None:
            progress("export", 0, 1)
        exported = export_int8(source_folder, work / "onnx", max_seq_length=reference.max_tokens)
        if progress is not None:
            progress("export", 1, 1)
        candidate = OnnxEmbeddingModel(f"{source.ref}-int8", exported.folder)
        fidelity = check_fidelity(
            reference,
            candidate,
            texts,
            source=origin,
            min_cosine=min_cosine,
            recall_tolerance=recall_tolerance,
            progress=progress,
        )
        details: dict[str, Any] = {
            "source": source.id,
            "texts": fidelity.texts,
            "check_set": origin,
            "mean_cosine": fidelity.mean_cosine["value"],
            "recall_fp32": fidelity.recall_fp32["value"],
            "recall_int8": fidelity.recall_int8["value"],
        }
        if not fidelity.passed:
            session.audit(
                AuditAction.MODEL_OPTIMIZE,
                object_id=source.id,
                object_marking=source.marking.banner(),
                decision="error",
                reason="fidelity check failed",
                details=details,
            )
            raise CheckFailed(
                f"The int8 ONNX export of {source.ref} failed its fidelity check "
                f"({fidelity.problem()}); nothing was registered."
            )
        size_before, size_after = _size(source_folder), _size(exported.folder)
        version = models.register(
            kind="embedder",
            name=name or source.name,
            folder=exported.folder,
            marking=source.marking,
            base=source.id,
            parameters={
                "format": "onnx",
                "quantization": QUANTIZATION,
                "quantized_types": list(QUANTIZED_TYPES),
                "opset": OPSET,
                "derived_from": source.id,
                "dim": exported.dim,
                "max_seq_length": exported.max_seq_length,
            },
            card=_card(source, fidelity, exported.fused, size_before, size_after),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    session.audit(
        AuditAction.MODEL_OPTIMIZE,
        object_id=version.id,
        object_marking=version.marking.banner(),
        details={**details, "name": version.name},
    )
    return Optimized(
        version=version,
        source=source,
        fidelity=fidelity,
        size_before=size_before,
        size_after=size_after,
        fused=exported.fused,
        quantized=exported.quantized,
    )


def _card(
    source: ModelVersion,
    fidelity: Fidelity,
    fused: dict[str, int],
    size_before: int,
    size_after: int,
) -> dict[str, Any]:
    fusions = ", ".join(f"{op} x{n}" for op, n in sorted(fused.items())) or "none"
    return {
        "intended_use": source.card.get(
            "intended_use", f"The uses of {source.ref}, on CPU, faster."
        ),
        "derived_from": source.ref,
        "optimization": (
            f"ONNX export (opset {OPSET}), onnxruntime transformer fusions ({fusions}), "
            "dynamic int8 quantization of every MatMul weight, one scale per output channel."
        ),
        "fidelity": fidelity.to_dict(),
        "size_bytes": {"before": size_before, "after": size_after},
        "limitations": (
            f"Vectors differ slightly from {source.ref}'s (mean cosine "
            f"{fidelity.mean_cosine['value']:.4f} on {fidelity.texts} {fidelity.source} texts); "
            "an index built with one should be queried with the same one."
        ),
    }

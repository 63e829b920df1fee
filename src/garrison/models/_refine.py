"""A refined embedder: a registered sentence-transformer fine-tuned on marked (query, passage)
pairs, measured against its base on held-out pairs, and registered as a new embedder version.

The pairs come from a dataset version or are mined from what the subject may read
(:mod:`garrison.models._pairs`). The refined version is marked with the join of its base and
every pair used -- the pairs it learned from and the held-out pairs its card's metrics come
from -- so an embedder refined on SECRET text is SECRET, and so is every vector it makes.
``max_marking`` keeps only the pairs it dominates, so a site can refine an embedder at the level
it serves. A dataset is named in the version's lineage only when the version's marking
dominates the dataset's (its name and id are marked with it); a subset of a higher dataset is
identified by the digest of its pairs instead.

Training runs in ``<workspace>/cache/train/<key>/``, where ``key`` hashes everything the
weights depend on (base, pairs, splits, parameters, seed): the same command after a stop
resumes from that folder's checkpoint; a successful run removes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput, NotPermitted
from garrison.models._finetune import (
    LOSS,
    RECALL_AT,
    SCALE,
    WARMUP_RATIO,
    TrainProgress,
    fit,
    load_sentence_transformer,
    ranks,
    retrieval_metrics,
)
from garrison.models._pairs import (
    HELD_OUT,
    TRAIN,
    Pair,
    dataset_pairs,
    hold_out,
    mine_pairs,
    pairs_digest,
)
from garrison.models._registry import _NAME, Models, ModelVersion
from garrison.models._stats import Interval
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, dominates, join
from garrison.security.policy import Action
from garrison.store.session import Session

__all__ = ["MIN_HELD_OUT", "MIN_PAIRS", "MIN_TRAIN", "RefineResult", "train_embedder"]

DEFAULT_LEARNING_RATE = 2e-5
#: The share of mined pairs held out to measure on (whole documents at a time).
HELD_OUT_SHARE = 0.2
MIN_PAIRS = 8
MIN_TRAIN = 4
MIN_HELD_OUT = 2
TRAIN_DIR = Path("cache") / "train"
RUN_FORMAT = 1


@dataclass(frozen=True)
class RefineResult:
    """A registered refined embedder and how it compares with its base on held-out pairs."""

    version: ModelVersion
    base: ModelVersion
    #: ``{"base": {metric: interval}, "refined": {metric: interval}}``.
    metrics: dict[str, dict[str, Interval]]
    train_pairs: int
    held_out_pairs: int
    candidates: int
    #: The step a stopped run resumed from (0: trained in one go).
    resumed_from: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.to_dict(manifest=False),
            "base": {"id": self.base.id, "name": self.base.name, "ref": self.base.ref},
            "metrics": self.metrics,
            "pairs": {"train": self.train_pairs, "held_out": self.held_out_pairs},
            "candidates": self.candidates,
            "resumed_from": self.resumed_from,
        }


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check_options(name: str, epochs: int, batch_size: int, lr: float, mx: float | None) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "A model name is 1-128 letters, digits, '.', '_' or '-', not starting with a symbol."
        )
    if epochs < 1:
        raise InvalidInput("--epochs must be at least 1.")
    if batch_size < 2:
        raise InvalidInput(
            "--batch-size must be at least 2: each batch's other passages are its negatives."
        )
    if not lr > 0:
        raise InvalidInput("The learning rate must be positive.")
    if mx is not None and not mx > 0:
        raise InvalidInput("--max-minutes must be positive.")


def _pairs(
    session: Session,
    *,
    pairs: str | None,
    mine: bool,
    query_field: str,
    passage_field: str,
    ceiling: Marking | None,
    seed: int,
) -> tuple[list[Pair], dict[str, Any], list[str], Marking | None]:
    """The pairs, their description, the dataset ids to name and the dataset's marking."""
    if (pairs is None) == (not mine):
        raise InvalidInput("Give either --pairs DATASET or --mine.")
    source: dict[str, Any]
    datasets: list[str] = []
    dataset_marking: Marking | None = None
    if pairs is not None:
        dataset, found = dataset_pairs(session, pairs, query_field, passage_field)
        datasets, dataset_marking = [dataset.id], dataset.marking
        source = {"source": "dataset", "query_field": query_field, "passage_field": passage_field}
    else:
        found = mine_pairs(session)
        source = {"source": "mined"}
    if ceiling is not None:
        found = [p for p in found if dominates(ceiling, p.marking)]
        if not found:
            raise InvalidInput(f"No training pair is marked at or below {ceiling.banner()}.")
    if pairs is None:
        found = hold_out(found, HELD_OUT_SHARE, seed)
    train = [p for p in found if p.split == TRAIN]
    held = [p for p in found if p.split == HELD_OUT]
    if len(found) < MIN_PAIRS or len(train) < MIN_TRAIN or len(held) < MIN_HELD_OUT:
        raise InvalidInput(
            f"Too few training pairs: {len(train)} to train on and {len(held)} held out; "
            f"refining needs at least {MIN_PAIRS} pairs, {MIN_TRAIN} to train on and "
            f"{MIN_HELD_OUT} held out (from different documents)."
        )
    source["kinds"] = dict(sorted(Counter(p.source for p in found).items()))
    return train + held, source, datasets, dataset_marking


def train_embedder(
    session: Session,
    name: str,
    base_ref: str,
    *,
    pairs: str | None = None,
    mine: bool = False,
    query_field: str = "query",
    passage_field: str = "passage",
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    seed: int = 0,
    max_marking: str | None = None,
    max_minutes: float | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> RefineResult:
    """Fine-tune the embedder ``base_ref`` on pairs and register the result as ``name``.

    Stewards and evaluators; audited (``model.train``). Raises NotFound for a base or dataset
    the subject may not read, InvalidInput for bad input (nothing is registered), and
    :class:`~garrison.models._finetune.TrainingStopped` when ``max_minutes`` run out or on
    Ctrl-C (the checkpoint is kept; the same call resumes).
    """
    session.require(Action.MODEL_MANAGE, AuditAction.MODEL_TRAIN, object_id=name)
    _check_options(name, epochs, batch_size, learning_rate, max_minutes)
    models = Models(session)
    base = models.use(base_ref, "train")
    parameters = dict(base.manifest.get("parameters", {}))
    if base.kind != "embedder":
        raise InvalidInput(f"Model {base.ref} is a {base.kind}, not an embedder.")
    if parameters.get("format", "sentence-transformers") != "sentence-transformers":
        raise InvalidInput(
            f"Embedder {base.ref} is in {parameters['format']} format; refine the "
            "sentence-transformers version it was made from."
        )
    ceiling: Marking | None = None
    if max_marking is not None:
        ceiling = session.parse_marking(max_marking)
        if not session.can_read(ceiling):
            raise NotPermitted(
                f"The ceiling {ceiling.banner()} is above what {session.subject.name} may read."
            )
        if not dominates(ceiling, base.marking):
            raise InvalidInput(
                f"The base {base.ref} is marked {base.marking.banner()}, above the ceiling "
                f"{ceiling.banner()}: a model is marked at least as high as its base."
            )
    used, source, dataset_ids, dataset_marking = _pairs(
        session,
        pairs=pairs,
        mine=mine,
        query_field=query_field,
        passage_field=passage_field,
        ceiling=ceiling,
        seed=seed,
    )
    train = [p for p in used if p.split == TRAIN]
    held = [p for p in used if p.split == HELD_OUT]
    marking = join(base.marking, *(p.marking for p in used))
    if dataset_marking is not None and not dominates(marking, dataset_marking):
        # Naming the dataset would show what is marked above the model: its pairs' digest
        # identifies the subset instead.
        dataset_ids = []
        source["dataset_subset"] = True
    source.update(
        {
            "train": len(train),
            "held_out": len(held),
            "digest": pairs_digest(used),
            "max_marking": ceiling.banner() if ceiling is not None else None,
        }
    )

    folder = models.folder(base)
    model = load_sentence_transformer(folder)
    max_seq_length = int(parameters.get("max_seq_length") or model.max_seq_length)
    model.max_seq_length = max_seq_length
    hyper = {
        "format": "sentence-transformers",
        "loss": LOSS,
        "scale": SCALE,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_ratio": WARMUP_RATIO,
        "max_seq_length": max_seq_length,
        "dim": int(model.get_embedding_dimension()),
    }
    key = hashlib.sha256(
        _canonical({"format": RUN_FORMAT, "base": base.id, "pairs": source, **hyper, "seed": seed})
    ).hexdigest()[:32]
    run_dir = session.workspace.root / TRAIN_DIR / key
    queries, passages = [p.query for p in held], [p.passage for p in held]
    base_ranks = ranks(model, queries, passages)
    resumed = fit(
        model,
        [p.query for p in train],
        [p.passage for p in train],
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        run_dir=run_dir,
        key=key,
        max_minutes=max_minutes,
        progress=progress,
    )
    refined_ranks = ranks(model, queries, passages)
    metrics = {
        "base": retrieval_metrics(base_ranks, seed),
        "refined": retrieval_metrics(refined_ranks, seed),
    }
    out = run_dir / "model"
    if out.exists():
        shutil.rmtree(out)
    model.save(str(out), create_model_card=False)
    candidates = len(set(passages))
    version = models.register(
        kind="embedder",
        name=name,
        folder=out,
        marking=marking,
        base=base.id,
        datasets=dataset_ids,
        parameters={**hyper, "pairs": source},
        seeds={"seed": seed},
        card=_card(base, source, metrics, len(held), candidates, _environment()),
    )
    session.audit(
        AuditAction.MODEL_TRAIN,
        object_id=version.id,
        object_marking=version.marking.banner(),
        details={
            "name": name,
            "kind": "embedder",
            "base": base.id,
            "pairs": source["source"],
            "train": len(train),
            "held_out": len(held),
            "resumed_from": resumed,
        },
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return RefineResult(version, base, metrics, len(train), len(held), candidates, resumed)


def _environment() -> dict[str, Any]:
    """What bit-exact reproduction needs besides the inputs: floating-point sums are split
    across threads, so another thread count (or CPU) gives slightly different weights."""
    import sentence_transformers
    import torch

    return {
        "torch": str(torch.__version__),
        "sentence_transformers": str(sentence_transformers.__version__),
        "torch_threads": int(torch.get_num_threads()),
    }


def _card(
    base: ModelVersion,
    source: dict[str, Any],
    metrics: dict[str, dict[str, Interval]],
    held: int,
    candidates: int,
    environment: dict[str, Any],
) -> dict[str, Any]:
    data = (
        "pairs mined from the corpus (headings, titles, e-mail subjects and the text under them)"
        if source["source"] == "mined"
        else f"(query, passage) pairs from a dataset ({source['query_field']} -> "
        f"{source['passage_field']})"
    )
    return {
        "intended_use": "Embeddings for search and retrieval over text like its training pairs.",
        "training_data": {
            "description": data,
            "train_pairs": source["train"],
            "held_out_pairs": source["held_out"],
            "kinds": source["kinds"],
            "max_marking": source["max_marking"],
            "digest": source["digest"],
        },
        "base": {"id": base.id, "name": base.name},
        "metrics": {
            "evaluated_on": f"{held} held-out queries ranking {candidates} held-out passages",
            "base": metrics["base"],
            "refined": metrics["refined"],
        },
        "reproducibility": environment,
        "limitations": [
            f"Metrics are recall@{RECALL_AT} and MRR on held-out pairs of the same source; "
            "other text may retrieve differently.",
            "Marked with the join of its base and every pair used: its vectors carry that "
            "marking, and readers who do not dominate it cannot use it.",
            "Bit-exact retraining needs the same versions and thread count (reproducibility).",
        ],
    }

"""Fine-tuning a sentence-transformer on (query, passage) pairs, resumably, and measuring it.

The loop is Garrison's own (no hub, no trainer framework): MultipleNegativesRankingLoss
(every other passage of a batch is a query's negative), AdamW, linear warm-up then linear
decay, gradients clipped to norm 1. It is deterministic given its seed: the batch order of
epoch ``e`` is a permutation drawn from ``(seed, e)``, dropout draws from torch's generator
seeded once, and a checkpoint carries that generator's state with the weights, the optimizer
and the schedule, so a resumed run takes exactly the steps an uninterrupted one would.

A checkpoint is ``checkpoint.pt`` in the run's folder, written after every
:data:`CHECKPOINT_EVERY` steps, at the end of every epoch and when training stops early
(``--max-minutes`` reached, Ctrl-C); it is read back with ``torch.load(weights_only=True)``,
which accepts tensors and plain containers only -- nothing is unpickled.

Retrieval metrics (:func:`retrieval_metrics`): every held-out query ranks every distinct
held-out passage by cosine similarity; recall@10 is the share of queries whose passage ranks
in the top 10, MRR the mean reciprocal rank (a tie counts in the query's favour), each with a
95% bootstrap interval over queries.
"""

from __future__ import annotations

import importlib
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import GarrisonError, InvalidInput, MissingExtra
from garrison.models._stats import Interval, bootstrap
from garrison.models.embedding import _go_offline, _quiet

__all__ = [
    "CHECKPOINT_EVERY",
    "LOSS",
    "TrainProgress",
    "TrainingStopped",
    "fit",
    "load_sentence_transformer",
    "retrieval_metrics",
]

LOSS = "MultipleNegativesRankingLoss"
SCALE = 20.0
WARMUP_RATIO = 0.1
WEIGHT_DECAY = 0.01
CHECKPOINT_EVERY = 50
CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"
RECALL_AT = 10


@dataclass(frozen=True)
class TrainProgress:
    """Where a training run is, after each step."""

    step: int
    total: int
    epoch: int
    epochs: int
    loss: float
    elapsed_s: float
    #: Seconds left at the pace of the steps taken in this run (None before the first).
    eta_s: float | None
    #: The step this run resumed from (0 for a fresh run).
    resumed_from: int


class TrainingStopped(GarrisonError):
    """Training stopped before its end; its checkpoint is kept and the same command resumes.

    ``reason`` is ``max-minutes`` (exit 75: try again) or ``interrupted`` (exit 130, as for
    Ctrl-C); ``step`` of ``total`` steps are done.
    """

    code = "training-stopped"

    def __init__(self, message: str, *, reason: str, step: int, total: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.step = step
        self.total = total
        self.exit_code = 130 if reason == "interrupted" else 75


def load_sentence_transformer(folder: Path) -> Any:
    """A ``SentenceTransformer`` from a verified local folder, on CPU, offline."""
    _go_offline()
    with _quiet():
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingExtra("embed", "sentence-transformers") from exc
        # Loading and saving draw progress bars of their own: noise beside training's.
        hf_logging: Any = importlib.import_module("transformers.utils.logging")
        hf_logging.disable_progress_bar()
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


# -- metrics ---------------------------------------------------------------------------------------


def _encode(model: Any, texts: list[str]) -> npt.NDArray[np.float32]:
    import torch

    with _quiet(), torch.no_grad():
        out = model.encode(
            texts,
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    return np.asarray(out, dtype=np.float32)


def ranks(model: Any, queries: list[str], passages: list[str]) -> npt.NDArray[np.int64]:
    """The rank (1 = best) of each query's own passage among the distinct passages."""
    distinct = list(dict.fromkeys(passages))
    where = {text: i for i, text in enumerate(distinct)}
    own = np.array([where[p] for p in passages], dtype=np.int64)
    q = _encode(model, queries).astype(np.float64)
    d = _encode(model, distinct).astype(np.float64)
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 1024):  # a block of queries at a time: bounded memory
        scores = q[start : start + 1024] @ d.T
        rows = np.arange(scores.shape[0])
        mine = scores[rows, own[start : start + 1024]]
        out[start : start + 1024] = 1 + (scores > mine[:, None]).sum(axis=1)
    return out


def retrieval_metrics(rank: npt.NDArray[np.int64], seed: int) -> dict[str, Interval]:
    """recall@10 and MRR of the given ranks, each with its 95% bootstrap interval."""
    hits = (rank <= RECALL_AT).astype(np.float64)
    reciprocal = 1.0 / rank.astype(np.float64)
    return {
        f"recall@{RECALL_AT}": bootstrap(lambda i: float(hits[i].mean()), len(rank), seed=seed),
        "mrr": bootstrap(lambda i: float(reciprocal[i].mean()), len(rank), seed=seed),
    }


# -- training --------------------------------------------------------------------------------------


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    # One pair alone has no in-batch negative: it teaches nothing.
    return [b for b in batches if len(b) >= 2]


@contextmanager
def _stop_on_sigint() -> Iterator[threading.Event]:
    """An event Ctrl-C sets (in the main thread), so the loop stops between two steps; a
    second Ctrl-C interrupts at once."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(_signum: int, _frame: Any) -> None:
        if event.is_set():  # a second Ctrl-C: stop now, from the last checkpoint written
            raise KeyboardInterrupt
        event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def _save(path: Path, state: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load(path: Path, key: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to the run ``key`` (else None: start afresh)."""
    import torch

    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: never trusted, the run starts over
        return None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        return None
    return state if state.get("key") == key else None


def fit(
    model: Any,
    queries: list[str],
    passages: list[str],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    run_dir: Path,
    key: str,
    max_minutes: float | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> int:
    """Train ``model`` in place on the pairs; returns the step it resumed from (0: fresh).

    Raises :class:`TrainingStopped` (after writing a checkpoint) when ``max_minutes`` run out
    or on Ctrl-C -- or when ``progress`` raises ``KeyboardInterrupt``.
    """
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    per_epoch = len(_batches(len(queries), batch_size, seed, 0))
    if per_epoch == 0:
        raise InvalidInput("Training needs at least two pairs per batch.")
    total = per_epoch * epochs
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    loss_fn = MultipleNegativesRankingLoss(model, scale=SCALE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=WEIGHT_DECAY)
    warmup = max(1, math.ceil(total * WARMUP_RATIO))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    checkpoint = run_dir / CHECKPOINT_FILE
    start = 0
    state = _load(checkpoint, key)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start = int(state["step"])

    def save(step: int) -> None:
        _save(
            checkpoint,
            {
                "format": CHECKPOINT_FORMAT,
                "key": key,
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
            },
        )

    began = time.monotonic()
    deadline = None if max_minutes is None else began + max_minutes * 60
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    model.train()
    step = start
    try:
        with _stop_on_sigint() as interrupted:
            for epoch in range(start // per_epoch, epochs):
                batches = _batches(len(queries), batch_size, seed, epoch)
                for batch in batches[step - epoch * per_epoch :]:
                    features = [
                        model.preprocess([queries[i] for i in batch]),
                        model.preprocess([passages[i] for i in batch]),
                    ]
                    loss = loss_fn(features, torch.empty(0))
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                    step += 1
                    elapsed = time.monotonic() - began
                    done_here = step - start
                    stop = None
                    if progress is not None:
                        try:
                            progress(
                                TrainProgress(
                                    step,
                                    total,
                                    epoch + 1,
                                    epochs,
                                    float(loss.detach()),
                                    elapsed,
                                    elapsed / done_here * (total - step),
                                    start,
                                )
                            )
                        except KeyboardInterrupt:
                            stop = "interrupted"
                    if interrupted.is_set():
                        stop = "interrupted"
                    elif stop is None and deadline is not None and time.monotonic() > deadline:
                        stop = "max-minutes"
                    if stop is not None and step < total:
                        save(step)
                        why = (
                            "was interrupted"
                            if stop == "interrupted"
                            else f"reached --max-minutes {max_minutes:g}"
                        )
                        raise TrainingStopped(
                            f"Training {why} after step {step} of {total}; the checkpoint is "
                            "kept: run the same command again to resume.",
                            reason=stop,
                            step=step,
                            total=total,
                        )
                    if step % CHECKPOINT_EVERY == 0 and step < total:
                        save(step)
                if step < total:
                    save(step)  # the end of an epoch
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        model.eval()
    return start

"""The training harness: progress, a deadline, checkpoints and the embedding cache.

Training is bounded (:class:`Deadline`), reports progress through a callback
(``progress(phase, done, total)``; an exception raised from it stops the run, as Ctrl-C does) and
resumes: everything a run finishes is kept under the workspace's ``cache/`` until the run
completes, so running the same training again picks up where it stopped.

On-disk layout (every byte derived from marked data is an encrypted blob of the workspace's
blob store; the files under ``cache/`` only name blobs)::

    cache/train/<key>/state          the blob id of the run's state (JSON): finished grid
                                     points, finished epochs, the blob ids of a checkpointed
                                     model body's files
    cache/embeddings/<embedder-id>/packs
                                     one blob id a line; each blob is an ``.npz`` of ``keys``
                                     (the SHA-256 of each text, ``S64``) and ``vectors``
                                     (float32), loaded without pickle

``<key>`` is the SHA-256 of what the training is (trainer, dataset version, fields, embedder,
seed, ceiling): never of its deadline, so a run cut short resumes. A pack or state whose blob is
gone is a cache miss, never an error.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import CheckFailed, NotFound
from garrison.models.embedding import EmbeddingModel
from garrison.store.session import Session

__all__ = [
    "Checkpoint",
    "Deadline",
    "EmbeddingCache",
    "Progress",
    "embed_texts",
    "training_key",
]

#: ``progress(phase, done, total)``: called as work finishes; raising from it stops the run.
Progress = Callable[[str, int, int], None]

TRAIN_DIR = Path("cache") / "train"
EMBEDDINGS_DIR = Path("cache") / "embeddings"
#: Texts embedded per batch. Batches are fixed slices of a run's texts in hash order, so an
#: interrupted run and an uninterrupted one embed every text in the same company.
BATCH = 64
#: Texts kept in memory before the cache writes a pack.
FLUSH_EVERY = 1024


def _now() -> float:
    return time.monotonic()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def training_key(**what: Any) -> str:
    """The checkpoint key of a training: the SHA-256 of what it is, canonically."""
    canonical = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Deadline:
    """``max_minutes`` from now (None: no limit)."""

    def __init__(self, max_minutes: float | None) -> None:
        self.max_minutes = max_minutes
        self._end = None if max_minutes is None else _now() + max_minutes * 60.0
        self.hit = False

    def passed(self) -> bool:
        """Whether the deadline has passed (remembered, so the report can say it was)."""
        if self._end is not None and _now() >= self._end:
            self.hit = True
        return self.hit


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


class Checkpoint:
    """A training run's saved state, kept until the run completes."""

    def __init__(self, session: Session, key: str) -> None:
        self.session = session
        self.key = key
        self.dir = session.workspace.root / TRAIN_DIR / key

    @property
    def _pointer(self) -> Path:
        return self.dir / "state"

    def load(self) -> dict[str, Any]:
        """The saved state, ``{}`` when there is none (or its blob is gone or unreadable)."""
        try:
            digest = self._pointer.read_text().strip()
            data = json.loads(self.session.workspace.blobs.get(digest))
        except (OSError, ValueError, NotFound, CheckFailed):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, state: Mapping[str, Any]) -> None:
        """Save ``state`` (JSON), replacing the previous one atomically."""
        raw = json.dumps(dict(state), sort_keys=True).encode()
        digest = self.session.workspace.blobs.put(raw)
        _private_dir(self.dir)
        tmp = self.dir / ".state.tmp"
        tmp.write_text(digest + "\n")
        os.replace(tmp, self._pointer)

    def store_folder(self, folder: Path) -> dict[str, str]:
        """Put every file of ``folder`` into the blob store: relative path -> blob id."""
        blobs = self.session.workspace.blobs
        return {
            p.relative_to(folder).as_posix(): blobs.put(p.read_bytes())
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    def restore_folder(self, files: Mapping[str, str], target: Path) -> bool:
        """Write the stored files back under ``target``; False when one is gone."""
        blobs = self.session.workspace.blobs
        try:
            for rel, digest in files.items():
                path = target / rel
                if ".." in Path(rel).parts or Path(rel).is_absolute():
                    return False
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(blobs.get(digest))
        except (NotFound, CheckFailed):
            shutil.rmtree(target, ignore_errors=True)
            return False
        return True

    def clear(self) -> None:
        """Forget the run (it completed)."""
        shutil.rmtree(self.dir, ignore_errors=True)


class EmbeddingCache:
    """Vectors of one embedder version by text SHA-256, kept as encrypted packs."""

    def __init__(self, session: Session, embedder_id: str) -> None:
        self.session = session
        self.dir = session.workspace.root / EMBEDDINGS_DIR / embedder_id
        self._vectors: dict[str, npt.NDArray[np.float32]] | None = None
        self._pending: dict[str, npt.NDArray[np.float32]] = {}

    def _load(self) -> dict[str, npt.NDArray[np.float32]]:
        if self._vectors is not None:
            return self._vectors
        vectors: dict[str, npt.NDArray[np.float32]] = {}
        try:
            digests = (self.dir / "packs").read_text().split()
        except OSError:
            digests = []
        blobs = self.session.workspace.blobs
        for digest in digests:
            try:
                with np.load(io.BytesIO(blobs.get(digest)), allow_pickle=False) as pack:
                    keys, rows = pack["keys"], pack["vectors"]
            except (NotFound, CheckFailed, OSError, ValueError, KeyError):
                continue  # a lost or damaged pack: those texts are embedded again
            for key, row in zip(keys, rows, strict=False):
                vectors[key.decode("ascii")] = np.asarray(row, dtype=np.float32)
        self._vectors = vectors
        return vectors

    def get(self, digest: str) -> npt.NDArray[np.float32] | None:
        return self._load().get(digest)

    def put(self, digest: str, vector: npt.NDArray[np.float32]) -> None:
        self._load()[digest] = vector
        self._pending[digest] = vector
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write what was added since the last flush as one pack."""
        if not self._pending:
            return
        keys = np.array(list(self._pending), dtype="S64")
        rows = np.stack(list(self._pending.values())).astype(np.float32)
        sink = io.BytesIO()
        np.savez(sink, keys=keys, vectors=rows)
        digest = self.session.workspace.blobs.put(sink.getvalue())
        _private_dir(self.dir)
        with (self.dir / "packs").open("a") as fh:
            fh.write(digest + "\n")
        self._pending.clear()


def embed_texts(
    model: EmbeddingModel,
    texts: Iterable[str],
    *,
    cache: EmbeddingCache | None,
    progress: Progress | None = None,
    deadline: Deadline | None = None,
) -> tuple[dict[str, npt.NDArray[np.float32]], int]:
    """Vectors of ``texts`` by text SHA-256, and how many came from the cache.

    Texts are embedded in fixed batches of their hash order; a batch whose vectors are all
    cached is skipped. Stops with what it has when ``deadline`` passes (the caller checks).
    """
    by_sha = {text_sha256(t): t for t in texts}
    order = sorted(by_sha)
    out: dict[str, npt.NDArray[np.float32]] = {}
    cached = 0
    batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    try:
        for number, batch in enumerate(batches, start=1):
            hits = [cache.get(d) for d in batch] if cache is not None else [None] * len(batch)
            if all(h is not None for h in hits):
                out.update({d: h for d, h in zip(batch, hits, strict=True) if h is not None})
                cached += len(batch)
            else:
                if deadline is not None and deadline.passed():
                    break
                vectors = model.encode([by_sha[d] for d in batch], batch_size=BATCH)
                for digest, vector, hit in zip(batch, vectors, hits, strict=True):
                    if hit is not None:  # a cached vector stays what earlier runs used
                        out[digest] = hit
                        cached += 1
                        continue
                    row = np.asarray(vector, dtype=np.float32)
                    out[digest] = row
                    if cache is not None:
                        cache.put(digest, row)
            if progress is not None:
                progress("embed", number, len(batches))
    finally:
        if cache is not None:
            cache.flush()
    return out, cached

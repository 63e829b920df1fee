"""Fast CPU inference: an embedder exported to ONNX and run with onnxruntime.

An ONNX embedder folder holds::

    model.onnx         the transformer graph: inputs input_ids, attention_mask (and
                       token_type_ids when the model takes them), int64 [batch, sequence];
                       output last_hidden_state float32 [batch, sequence, dim]
    tokenizer.json     the source model's fast tokenizer (the same tokens, the same counts)
    onnx_config.json   {"format": 1, "max_seq_length": N, "pooling": "mean", "dim": D,
                        "normalize": true, "inputs": [...], "output": "last_hidden_state"}

:class:`OnnxEmbeddingModel` tokenizes with the ``tokenizers`` library, truncating at
``max_seq_length`` as sentence-transformers does, batches texts sorted by length (so a batch
pads to about its own length), mean-pools the token states with the attention mask and
L2-normalizes.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import InvalidInput, MissingExtra
from garrison.models.embedding import EmbeddingModel

__all__ = ["CONFIG_FILE", "GRAPH_FILE", "OnnxEmbeddingModel", "intra_op_threads"]

GRAPH_FILE = "model.onnx"
CONFIG_FILE = "onnx_config.json"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FORMAT = 1

Vectors = npt.NDArray[np.float32]


def intra_op_threads() -> int:
    """Threads one onnxruntime session uses: ``OMP_NUM_THREADS`` when set, else every core."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, os.cpu_count() or 1)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise InvalidInput(f"{path} is missing; it is not an ONNX embedder folder.")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is not valid JSON.") from exc
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise InvalidInput(f"{path} is not an ONNX embedder configuration Garrison reads.")
    for key in ("max_seq_length", "dim"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise InvalidInput(f"{path} needs a positive integer {key}.")
    if config.get("pooling", "mean") != "mean":
        raise InvalidInput(f"{path} names a pooling other than mean, which Garrison cannot run.")
    return config


class OnnxEmbeddingModel(EmbeddingModel):
    """An ONNX embedder folder (already verified against its manifest) run on CPU.

    The tokenizer loads at construction; the onnxruntime session on first :meth:`encode` (or
    :meth:`load`).
    """

    def __init__(self, label: str, folder: Path) -> None:
        if not folder.is_dir():
            raise InvalidInput(f"Model folder {folder} does not exist.")
        if not (folder / GRAPH_FILE).is_file():
            raise InvalidInput(f"{folder / GRAPH_FILE} is missing; it is not an ONNX embedder.")
        config = _read_config(folder)
        self.name = label
        self.folder = folder
        self.dim = int(config["dim"])
        self.max_tokens = int(config["max_seq_length"])
        self.normalize = bool(config.get("normalize", True))
        self.output_name = str(config.get("output", "last_hidden_state"))
        self.input_names = [str(n) for n in config.get("inputs", ["input_ids", "attention_mask"])]
        self._counter, self._encoder = self._load_tokenizers()
        self.special_tokens = self._count_special()
        self._session: Any = None
        self._lock = threading.Lock()

    # -- tokens --------------------------------------------------------------------------------

    def _load_tokenizers(self) -> tuple[Any, Any]:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingExtra("embed", "tokenizers") from exc
        path = self.folder / TOKENIZER_FILE
        if not path.is_file():
            raise InvalidInput(f"{path} is missing; Garrison needs a fast tokenizer file.")
        counter = Tokenizer.from_file(str(path))
        counter.no_truncation()
        counter.no_padding()
        encoder = Tokenizer.from_file(str(path))
        encoder.no_padding()
        # Truncation keeps the special tokens, as the transformers tokenizer does.
        encoder.enable_truncation(max_length=self.max_tokens)
        return counter, encoder

    def _count_special(self) -> int:
        with_special = len(self._counter.encode("a", add_special_tokens=True).ids)
        return int(with_special - len(self._counter.encode("a", add_special_tokens=False).ids))

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self._counter.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=True).ids)

    # -- running -------------------------------------------------------------------------------

    def load(self) -> None:
        self._loaded()

    def _loaded(self) -> Any:
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                except ImportError as exc:
                    raise MissingExtra("optimize", "onnxruntime") from exc
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.intra_op_num_threads = intra_op_threads()
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                self._session = ort.InferenceSession(
                    str(self.folder / GRAPH_FILE), options, providers=["CPUExecutionProvider"]
                )
            return self._session

    def encode(self, texts: list[str], batch_size: int = 64) -> Vectors:
        session = self._loaded()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._encoder.encode_batch(list(texts), add_special_tokens=True)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        step = max(1, int(batch_size))
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                enc = encodings[row]
                n = len(enc.ids)
                ids[i, :n] = enc.ids
                mask[i, :n] = 1
                types[i, :n] = enc.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            (states,) = session.run([self.output_name], {k: feed[k] for k in self.input_names})
            weights = mask[:, :, None].astype(np.float32)
            summed = (np.asarray(states, dtype=np.float32) * weights).sum(axis=1)
            pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
            out[rows] = pooled
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, np.clip(norms, 1e-12, None), out=out)
        return out

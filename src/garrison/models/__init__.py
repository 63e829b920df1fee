"""Models: the embedders the pipeline and search use, by name, offline.

:mod:`garrison.models.embedding` resolves a model name (the shipped MiniLM, the hashing
embedder, a local sentence-transformers folder) to an :class:`EmbeddingModel`. The marked model
registry (:class:`Models`: embedders, classifiers, generators, each an immutable,
content-addressed, marked :class:`ModelVersion`) is in :mod:`garrison.models._registry`.
"""

from garrison.models._registry import (
    MODEL_KINDS,
    Models,
    ModelVersion,
    model_manifest,
    register_shipped_models,
)
from garrison.models.embedding import (
    HASHING,
    MINILM,
    MODELS,
    EmbeddingModel,
    HashingModel,
    ModelSpec,
    SentenceTransformerModel,
    file_sha256,
    get_model,
)

__all__ = [
    "HASHING",
    "MINILM",
    "MODELS",
    "MODEL_KINDS",
    "EmbeddingModel",
    "HashingModel",
    "ModelSpec",
    "ModelVersion",
    "Models",
    "SentenceTransformerModel",
    "file_sha256",
    "get_model",
    "model_manifest",
    "register_shipped_models",
]

"""Models: the embedders the pipeline and search use, by name, offline.

:mod:`garrison.models.embedding` resolves a model name (the shipped MiniLM, the hashing
embedder, a local sentence-transformers folder) to an :class:`EmbeddingModel`. The marked model
registry (embedders, classifiers, generators) grows here.
"""

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
    "EmbeddingModel",
    "HashingModel",
    "ModelSpec",
    "SentenceTransformerModel",
    "file_sha256",
    "get_model",
]

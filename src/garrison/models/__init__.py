"""Models: the embedders the pipeline and search use, by name, offline.

:mod:`garrison.models.embedding` resolves a model name (the shipped MiniLM, the hashing
embedder, a local sentence-transformers folder) to an :class:`EmbeddingModel`. The marked model
registry (:class:`Models`: embedders, classifiers, generators, each an immutable,
content-addressed, marked :class:`ModelVersion`) is in :mod:`garrison.models._registry`; its
files are stored and verified by :mod:`garrison.models._files`; opening embedders and
classifiers and marking their outputs is :mod:`garrison.models._use`; generators (endpoints
and local language models, their accreditation and no write-down) are
:mod:`garrison.models._generators`; classifiers resolved by a session and loaded by pipeline
workers without one are :mod:`garrison.models._resolved`; refining an embedder on marked
(query, passage) pairs is :func:`train_embedder` (:mod:`garrison.models._refine`).
The torch-free ONNX export a workspace embeds search queries with is :mod:`garrison.models._query`.
"""

from __future__ import annotations

import importlib
import typing
from typing import Any

if typing.TYPE_CHECKING:
    from garrison.models._finetune import TrainingStopped, TrainProgress
    from garrison.models._generators import (
        Generation,
        GenerationStream,
        Generator,
        GeneratorBackend,
        open_generator,
        register_endpoint,
        register_local,
    )
    from garrison.models._onnx import OnnxEmbeddingModel
    from garrison.models._optimize import Optimized, optimize_embedder
    from garrison.models._predict import predict
    from garrison.models._query import cached_query_model, prepare_query_model, query_model
    from garrison.models._refine import RefineResult, train_embedder
    from garrison.models._registry import (
        MODEL_KINDS,
        Models,
        ModelVersion,
        model_manifest,
        register_shipped_models,
    )
    from garrison.models._resolved import ResolvedClassifier, resolve_classifier
    from garrison.models._stats import bootstrap, format_interval, interval_dict
    from garrison.models._train_classifier import TrainedClassifier, train_classifier
    from garrison.models._use import (
        Classifier,
        Prediction,
        open_classifier,
        open_embedder,
        output_marking,
        write_classifier,
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

#: Public name -> the module that defines it, imported on first use: ``from garrison.models
#: import get_model`` loads the embedders, not the trainers and generator clients beside them.
_LAZY: dict[str, str] = {
    "TrainingStopped": "garrison.models._finetune",
    "TrainProgress": "garrison.models._finetune",
    "Generation": "garrison.models._generators",
    "GenerationStream": "garrison.models._generators",
    "Generator": "garrison.models._generators",
    "GeneratorBackend": "garrison.models._generators",
    "open_generator": "garrison.models._generators",
    "register_endpoint": "garrison.models._generators",
    "register_local": "garrison.models._generators",
    "OnnxEmbeddingModel": "garrison.models._onnx",
    "Optimized": "garrison.models._optimize",
    "optimize_embedder": "garrison.models._optimize",
    "predict": "garrison.models._predict",
    "cached_query_model": "garrison.models._query",
    "prepare_query_model": "garrison.models._query",
    "query_model": "garrison.models._query",
    "RefineResult": "garrison.models._refine",
    "train_embedder": "garrison.models._refine",
    "MODEL_KINDS": "garrison.models._registry",
    "Models": "garrison.models._registry",
    "ModelVersion": "garrison.models._registry",
    "model_manifest": "garrison.models._registry",
    "register_shipped_models": "garrison.models._registry",
    "ResolvedClassifier": "garrison.models._resolved",
    "resolve_classifier": "garrison.models._resolved",
    "bootstrap": "garrison.models._stats",
    "format_interval": "garrison.models._stats",
    "interval_dict": "garrison.models._stats",
    "TrainedClassifier": "garrison.models._train_classifier",
    "train_classifier": "garrison.models._train_classifier",
    "Classifier": "garrison.models._use",
    "Prediction": "garrison.models._use",
    "open_classifier": "garrison.models._use",
    "open_embedder": "garrison.models._use",
    "output_marking": "garrison.models._use",
    "write_classifier": "garrison.models._use",
    "HASHING": "garrison.models.embedding",
    "MINILM": "garrison.models.embedding",
    "MODELS": "garrison.models.embedding",
    "EmbeddingModel": "garrison.models.embedding",
    "HashingModel": "garrison.models.embedding",
    "ModelSpec": "garrison.models.embedding",
    "SentenceTransformerModel": "garrison.models.embedding",
    "file_sha256": "garrison.models.embedding",
    "get_model": "garrison.models.embedding",
}

__all__ = [
    "HASHING",
    "MINILM",
    "MODELS",
    "MODEL_KINDS",
    "Classifier",
    "EmbeddingModel",
    "Generation",
    "GenerationStream",
    "Generator",
    "GeneratorBackend",
    "HashingModel",
    "ModelSpec",
    "ModelVersion",
    "Models",
    "OnnxEmbeddingModel",
    "Optimized",
    "Prediction",
    "RefineResult",
    "ResolvedClassifier",
    "SentenceTransformerModel",
    "TrainProgress",
    "TrainedClassifier",
    "TrainingStopped",
    "bootstrap",
    "cached_query_model",
    "file_sha256",
    "format_interval",
    "get_model",
    "interval_dict",
    "model_manifest",
    "open_classifier",
    "open_embedder",
    "open_generator",
    "optimize_embedder",
    "output_marking",
    "predict",
    "prepare_query_model",
    "query_model",
    "register_endpoint",
    "register_local",
    "register_shipped_models",
    "resolve_classifier",
    "train_classifier",
    "train_embedder",
    "write_classifier",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

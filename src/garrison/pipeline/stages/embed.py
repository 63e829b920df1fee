"""``embed``: attach an embedding to every chunk.

``model`` is a registered embedder (``NAME@VERSION``, ``NAME`` for its latest readable version,
or a full id), or one of the names Garrison has always known: ``all-MiniLM-L6-v2`` (the
shipped model, weights verified against their pinned SHA-256), ``hashing``, ``local:<path>``.
A registered one is resolved before the run by the runner's session
(:mod:`garrison.pipeline._models`); the worker gets its verified folder through the engine's
resources and checks every file again before loading it.

The model loads once per worker (:meth:`EmbedStage.open_resources`). All the batch's chunk
texts go to the model in one call so the model's own batching (length-sorted, ``batch_size`` at
a time) sets the pace, not Python -- except in a run the driver tracks in its own process
(:mod:`garrison.pipeline.progress`): there slices of ``4 * batch_size`` texts go in turn, so
progress moves while a batch embeds. Elements and dropped chunks pass through untouched.

An embedding is marked with the join of its chunk's marking and its model's
(``embedding_marking``): a model learned from its training data, so a vector of a
SECRET-trained embedder is SECRET even for an UNCLASSIFIED chunk. The chunk keeps its own
marking (its text is no higher). The shipped and unregistered models are UNCLASSIFIED, so their
vectors are marked like their chunks. The lineage step of a registered model's embedding
hashes the version id with the parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from garrison.core.errors import CheckFailed
from garrison.models import EmbeddingModel, get_model
from garrison.pipeline import progress
from garrison.pipeline._models import RESOURCE, ResolvedEmbedder, is_registry_ref
from garrison.pipeline._stage import Item, LineageStep, Stage, StageParams, register_stage
from garrison.security.markings import UNCLASSIFIED, Marking, join

__all__ = ["EmbedParams", "EmbedStage", "OpenEmbedder"]


class EmbedParams(StageParams):
    """Parameters of ``embed``."""

    #: A registered embedder (``NAME@VERSION``, ``NAME``, an id), ``all-MiniLM-L6-v2``,
    #: ``hashing``, or ``local:<path>``.
    model: str = "all-MiniLM-L6-v2"
    #: Texts per forward pass.
    batch_size: int = 64
    #: SHA-256 the model's model.safetensors must have (pins a ``local:`` model).
    expected_sha256: str | None = None


@dataclass(frozen=True)
class OpenEmbedder:
    """A loaded embedder with what marks its output: its marking and (registered) version."""

    model: EmbeddingModel
    marking: Marking
    version_id: str | None = None


@register_stage
class EmbedStage(Stage[EmbedParams]):
    """Set ``embedding``, ``embedding_model`` and ``embedding_marking`` on every live chunk."""

    name = "embed"
    version = "1"
    Params = EmbedParams

    def open_resources(self, resources: dict[str, Any]) -> OpenEmbedder:
        progress.phase(progress.LOADING_MODEL)
        ref = self.params.model
        if not is_registry_ref(ref):
            model = get_model(ref, expected_sha256=self.params.expected_sha256)
            model.load()
            return OpenEmbedder(model, UNCLASSIFIED)
        embedders: Mapping[str, ResolvedEmbedder] = resources.get(RESOURCE) or {}
        resolved = embedders.get(ref)
        if resolved is None:
            # Fail closed: a registered model is only ever loaded as the run resolved it.
            raise CheckFailed(
                f"The embed stage's model {ref!r} was not resolved for this run, so it is not "
                "loaded."
            )
        loaded = resolved.load()
        if self.params.expected_sha256 is not None:
            weights = dict(resolved.files).get("model.safetensors")
            if weights != self.params.expected_sha256.lower():
                raise CheckFailed(
                    f"Model {resolved.name}'s model.safetensors does not have the pinned "
                    f"SHA-256 {self.params.expected_sha256.lower()}."
                )
        loaded.load()
        return OpenEmbedder(loaded, resolved.marking, resolved.id)

    def step(self, version_id: str | None) -> LineageStep:
        """The lineage step: the parameters' hash, with the version id for a registered model."""
        step = self.lineage()
        if version_id is None:
            return step
        digest = hashlib.sha256(f"{step.params_hash}\n{version_id}".encode()).hexdigest()[:16]
        return LineageStep(step.stage, step.version, digest, step.parents)

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        opened: OpenEmbedder = resource if resource is not None else self.open_resources({})
        todo = [it for it in items if it.kind == "chunk" and it.dropped is None]
        if not todo:
            return items
        model = opened.model
        step = self.step(opened.version_id)
        # In a worker, one call for the whole batch. In the driver's process (a tracked run),
        # slices of a few model batches, so the progress count moves while a batch embeds.
        size = len(todo) if not progress.tracking() else max(4 * self.params.batch_size, 64)
        progress.tick(0)  # the model is loaded: embedding starts (the rate's clock)
        for start in range(0, len(todo), size):
            part = todo[start : start + size]
            vectors = model.encode([it.text for it in part], batch_size=self.params.batch_size)
            # One tolist() for the whole matrix is far cheaper than one per row.
            for item, vector in zip(part, vectors.tolist(), strict=True):
                item.embedding = vector
                item.embedding_model = model.name
                item.embedding_marking = join(item.marking, opened.marking)
                item.lineage.append(step)
            progress.tick(len(part))
        return items

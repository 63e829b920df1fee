"""``embed``: attach an embedding to every chunk.

The model loads once per worker (:meth:`EmbedStage.open_resources`), its weights verified
against their pinned SHA-256 first. All the batch's chunk texts go to the model in one call so
the model's own batching (length-sorted, ``batch_size`` at a time) sets the pace, not Python.
Elements and dropped chunks pass through untouched. An embedding is derived from the chunk's
text alone, so the chunk's marking already covers it.
"""

from __future__ import annotations

from typing import Any

from garrison.models import EmbeddingModel, get_model
from garrison.pipeline._stage import Item, Stage, StageParams, register_stage

__all__ = ["EmbedParams", "EmbedStage"]


class EmbedParams(StageParams):
    """Parameters of ``embed``."""

    #: Registered model name, ``hashing``, or ``local:<path>``.
    model: str = "all-MiniLM-L6-v2"
    #: Texts per forward pass.
    batch_size: int = 64
    #: SHA-256 the model's model.safetensors must have (pins a ``local:`` model).
    expected_sha256: str | None = None


@register_stage
class EmbedStage(Stage[EmbedParams]):
    """Set ``embedding`` and ``embedding_model`` on every live chunk."""

    name = "embed"
    version = "1"
    Params = EmbedParams

    def open_resources(self, resources: dict[str, Any]) -> EmbeddingModel:
        model = get_model(self.params.model, expected_sha256=self.params.expected_sha256)
        model.load()
        return model

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        model: EmbeddingModel = resource if resource is not None else self.open_resources({})
        todo = [it for it in items if it.kind == "chunk" and it.dropped is None]
        if not todo:
            return items
        vectors = model.encode([it.text for it in todo], batch_size=self.params.batch_size)
        step = self.lineage()
        # One tolist() for the whole matrix is far cheaper than one per row.
        for item, vector in zip(todo, vectors.tolist(), strict=True):
            item.embedding = vector
            item.embedding_model = model.name
            item.lineage.append(step)
        return items

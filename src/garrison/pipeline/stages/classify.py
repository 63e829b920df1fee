"""``classify``: a registered classifier's label and probability on every element or chunk.

::

    - classify:
        model: topic            # NAME or NAME@VERSION of a registered classifier
        over: chunks            # or elements
        name: topic             # what the prediction is called (default: the model name)
        batch_size: 64

The subject running the pipeline resolves the classifier once, before anything runs: it must
dominate it, the use is audited (``model.use``), and its files are materialized and verified
(:func:`garrison.models.resolve_classifier`). Workers load it from that folder without a
session (:meth:`ClassifyStage.open_resources`).

A prediction is marked with the join of its item's marking and the classifier's
(:func:`garrison.models.output_marking`): a SECRET classifier's predictions on UNCLASSIFIED
chunks are SECRET. Predictions are attached to the items (``extra["predictions"]``) and
written by the sink; they change nothing else, so ``classify`` stages come after every other
stage and are kept out of the head and tail run keys: the document's ``predict_key`` (the
stages with their classifier version ids) decides whether its predictions are redone, and
changing a classifier re-predicts without redoing anything else.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from garrison.core.errors import InvalidInput
from garrison.models import Classifier, ResolvedClassifier
from garrison.pipeline._stage import Item, Stage, StageParams, register_stage
from garrison.security.markings import join

__all__ = ["CLASSIFIERS", "PREDICTIONS", "ClassifyParams", "ClassifyStage"]

#: The executor resource holding the resolved classifiers, by the ``model`` reference given.
CLASSIFIERS = "classifiers"
#: Where the stage puts its predictions on an item (a list, one per classify stage).
PREDICTIONS = "predictions"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ClassifyParams(StageParams):
    """Parameters of ``classify``."""

    #: A registered classifier: NAME (latest readable version) or NAME@VERSION.
    model: str
    #: What to classify: ``chunks`` (after ``chunk``) or ``elements``.
    over: Literal["elements", "chunks"] = "chunks"
    #: Texts per forward pass.
    batch_size: int = 64
    #: The prediction's name (what ``--label NAME=LABEL`` filters on); default the model name.
    name: str | None = None

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("batch_size must be at least 1")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.fullmatch(value):
            raise ValueError("a prediction name is 1-128 letters, digits, '.', '_' or '-'")
        return value

    @property
    def prediction_name(self) -> str:
        return self.name or self.model.partition("@")[0]


@register_stage
class ClassifyStage(Stage[ClassifyParams]):
    """Attach a prediction (label, probability, marking) to every live element or chunk."""

    name = "classify"
    version = "1"
    Params = ClassifyParams

    @property
    def reads_elements(self) -> bool:
        """Whether the stage needs the batch's elements after ``chunk`` (``over: elements``)."""
        return self.params.over == "elements"

    def open_resources(self, resources: dict[str, Any]) -> Classifier:
        resolved = dict(resources.get(CLASSIFIERS) or {}).get(self.params.model)
        if not isinstance(resolved, ResolvedClassifier):
            raise InvalidInput(
                f"The classifier {self.params.model} was not resolved before the run: "
                "run the pipeline through garrison run."
            )
        return resolved.load()

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        classifier: Classifier = resource
        kind = "element" if self.params.over == "elements" else "chunk"
        todo = [
            it
            for it in items
            if it.kind == kind and it.dropped is None and it.failed is None and it.text.strip()
        ]
        if not todo:
            return items
        probs = classifier.probabilities([it.text for it in todo], self.params.batch_size)
        model_marking = classifier.marking
        name = self.params.prediction_name
        for item, row in zip(todo, probs, strict=True):
            best = int(np.argmax(row))
            item.extra.setdefault(PREDICTIONS, []).append(
                {
                    "name": name,
                    "model_id": classifier.version.id,
                    "label": classifier.labels[best],
                    "probability": float(row[best]),
                    "probabilities": {
                        label: float(p) for label, p in zip(classifier.labels, row, strict=True)
                    },
                    # Marked with the join of what it was computed from: the item and the model.
                    "marking": join(item.marking, model_marking),
                }
            )
        return items

"""Classifying texts with a registered classifier, every prediction marked and audited.

A prediction is marked with the join of its text's marking and the classifier's (which holds
its embedder's). A subject may only classify text marked at a level it may read itself: the
prediction would otherwise be handed back above its clearance.
"""

from __future__ import annotations

from collections.abc import Sequence

from garrison.core.errors import InvalidInput, NotPermitted
from garrison.models._use import Classifier, Prediction, open_classifier
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.store.session import Session

__all__ = ["predict"]


def predict(
    session: Session, ref: str, texts: Sequence[str], markings: Sequence[Marking]
) -> tuple[Classifier, list[Prediction]]:
    """The classifier ``ref`` names and its prediction for each text (audited as
    ``model.use`` and ``model.predict``). NotFound for a classifier the subject may not read."""
    if not texts:
        raise InvalidInput("Nothing to classify: give at least one text.")
    if len(texts) != len(markings):
        raise InvalidInput("Every text to classify needs its marking.")
    for marking in {m.banner(): m for m in markings}.values():
        if not session.can_read(marking):
            raise NotPermitted(
                f"{session.subject.name} may not classify text marked {marking.banner()}."
            )
    classifier = open_classifier(session, ref, purpose="predict")
    predictions = classifier.predict(list(texts), list(markings))
    session.audit(
        AuditAction.MODEL_PREDICT,
        object_id=classifier.version.id,
        object_marking=join(*(p.marking for p in predictions)).banner(),
        details={"name": classifier.version.name, "count": len(predictions)},
    )
    return classifier, predictions

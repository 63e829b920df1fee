"""Classifying texts with a registered classifier, for the API and the web UI.

:func:`predict_texts` checks the request before it looks at the model -- how many texts, how
long, and that the texts' marking is one the caller dominates (never above system high) -- so
a model the caller may not read answers exactly like a missing one whatever the texts were.
It then opens the classifier through the library (``model.use``, audited; NotFound for one
the caller may not read), predicts, and audits ``model.predict``. Each prediction is marked
with the join of the texts' marking and the model's (:func:`garrison.models.output_marking`).

:class:`BodyLimit` answers 413 to a POST under ``/v1/`` whose body is larger than
:data:`MAX_BODY_BYTES`, before the application reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from garrison.api._errors import error_response
from garrison.core.errors import InvalidInput, NotFound
from garrison.models import open_classifier
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.store.session import Session

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TEXTS",
    "MAX_TEXT_CHARS",
    "BodyLimit",
    "check_texts",
    "input_marking",
    "predict_texts",
]

#: The most texts one request classifies.
MAX_TEXTS = 256
#: The longest text one request may hold (characters).
MAX_TEXT_CHARS = 100_000
#: The largest request body the API reads (bytes): 256 texts of 100 KB, and the JSON around them.
MAX_BODY_BYTES = MAX_TEXTS * MAX_TEXT_CHARS + 64 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def check_texts(texts: list[str]) -> None:
    """InvalidInput unless there are 1 to :data:`MAX_TEXTS` texts, none over the limit."""
    if not texts:
        raise InvalidInput("Give at least one text to classify.")
    if len(texts) > MAX_TEXTS:
        raise InvalidInput(f"At most {MAX_TEXTS} texts are classified in one request.")
    if any(len(text) > MAX_TEXT_CHARS for text in texts):
        raise InvalidInput(f"Each text to classify is at most {MAX_TEXT_CHARS} characters.")


def input_marking(session: Session, banner: str) -> Marking:
    """The marking of the texts to classify: one the caller dominates, within system high."""
    marking = session.parse_marking(banner.strip())  # MarkingError (400) when unparsable
    if not session.can_read(marking):
        raise InvalidInput("The texts' marking must be one you dominate and not above system high.")
    return marking


def predict_texts(session: Session, ref: str, texts: list[str], marking: str) -> dict[str, Any]:
    """One prediction per text from the readable classifier ``ref``, each marked with the join.

    ``{"model": {id, ref, name, version, kind, marking}, "predictions": [{label, probability,
    probabilities, marking}, ...]}``.
    """
    check_texts(texts)
    given = input_marking(session, marking)
    try:
        classifier = open_classifier(session, ref)  # audited model.use; NotFound if unreadable
    except NotFound:
        # Also when the classifier is readable but the embedder it names is not: answered as
        # for a missing classifier, never naming the embedder.
        raise NotFound(f"No model version {ref}.") from None
    version = classifier.version
    predictions = classifier.predict(texts, [given] * len(texts))
    session.audit(
        AuditAction.MODEL_PREDICT,
        object_id=version.id,
        object_marking=classifier.marking.banner(),
        details={"count": len(texts), "input_marking": given.banner()},
    )
    return {
        "model": {
            "id": version.id,
            "ref": version.ref,
            "name": version.name,
            "version": version.version,
            "kind": version.kind,
            "marking": classifier.marking.banner(),
        },
        "predictions": [p.to_dict() for p in predictions],
    }


class BodyLimit:
    """ASGI middleware: a POST under ``/v1/`` with a body over ``limit`` bytes gets a 413.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body
    sent without one is read up to the limit and refused as soon as it passes it.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: JSONResponse = error_response(
            413, "too-large", f"The request body is larger than {self.limit} bytes."
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not str(scope.get("path", "")).startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks.append(message)
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if chunks:
                return chunks.pop(0)
            return await receive()

        await self.app(scope, replay, send)

"""The assistant over the API: ``POST /v1/ask`` takes a question and returns a marked answer.

With ``Accept: text/event-stream`` the same answer comes as server-sent events, the marking
first, before any text: ``marking`` (``{"marking", "context_marking", "question_marking"}``),
then one ``sentence`` event per answer sentence, one ``citation`` event per citation, and last
``answer``, the whole answer as the JSON form has it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from garrison.api._marking import MARKING_HEADER
from garrison.assist import DEFAULT_K, MAX_K, ask
from garrison.assist._ask import MAX_QUESTION
from garrison.store.session import Session

__all__ = ["EVENT_STREAM", "AskIn", "AskOut", "answer_body", "streamed"]

EVENT_STREAM = "text/event-stream"


class AskIn(BaseModel):
    """A question for the assistant."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION,
        pattern=r"\S",
        description="The question in plain words; it may start with a portion mark.",
    )
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="How many chunks to consider.")
    max_marking: str | None = Field(
        None, max_length=400, description="Ceiling for the answer's marking."
    )
    question_marking: str | None = Field(
        None, max_length=400, description="The question's marking (default UNCLASSIFIED)."
    )
    conversation: str | None = Field(
        None, max_length=64, description="A conversation id to continue, or 'new'."
    )
    generator: str | None = Field(
        None,
        max_length=200,
        description="A registered generator, NAME or NAME@VERSION (default: extractive).",
    )


class CitationItem(BaseModel):
    """A cited portion: the quoted span of a chunk and the portion's marking."""

    model_config = ConfigDict(extra="allow")

    n: int
    chunk_id: str
    doc_id: str | None = Field(
        None, description="Present only when the caller may read the whole document."
    )
    locator: dict[str, Any]
    marking: str
    portion: str
    quote: str


class SentenceItem(BaseModel):
    """An answer sentence with its portion marking and the numbers of its citations."""

    model_config = ConfigDict(extra="allow")

    text: str
    marking: str
    portion: str
    citations: list[int]
    unsupported: bool


class AskOut(BaseModel):
    """The answer, marked with the join of its context, question and generator."""

    model_config = ConfigDict(extra="allow")

    question: str
    marking: str
    answer: str
    refused: bool
    sentences: list[SentenceItem]
    citations: list[CitationItem]
    context_marking: str
    question_marking: str
    generator: str
    conversation_id: str | None = None


def answer_body(session: Session, body: AskIn) -> dict[str, Any]:
    """The answer to ``body`` as JSON (the route marks it)."""
    return ask(
        session,
        body.question,
        k=body.k,
        max_marking=body.max_marking,
        question_marking=body.question_marking,
        conversation=body.conversation,
        generator=body.generator,
    ).to_dict()


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _events(body: dict[str, Any]) -> Iterator[str]:
    yield _event(
        "marking",
        {
            "marking": body["marking"],
            "context_marking": body["context_marking"],
            "question_marking": body["question_marking"],
        },
    )
    for sentence in body["sentences"]:
        yield _event("sentence", sentence)
    for citation in body["citations"]:
        yield _event("citation", citation)
    yield _event("answer", body)


def streamed(response: JSONResponse) -> StreamingResponse:
    """A marked JSON answer as server-sent events (the marking header and event first)."""
    body = json.loads(bytes(response.body))
    return StreamingResponse(
        _events(body),
        media_type=EVENT_STREAM,
        headers={MARKING_HEADER: body["marking"], "Cache-Control": "no-store"},
    )

"""The assistant over the API: ``POST /v1/ask`` takes a question and returns a marked answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from garrison.assist import DEFAULT_K, MAX_K, ask
from garrison.assist._ask import MAX_QUESTION
from garrison.store.session import Session

__all__ = ["AskIn", "AskOut", "answer_body"]


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
    ).to_dict()

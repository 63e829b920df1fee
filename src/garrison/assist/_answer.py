"""The answer record: sentences, each portion-marked and cited, and the answer's markings.

:class:`Answer` is what :func:`garrison.assist.ask` returns and what the CLI and the API show
(``to_dict`` is the JSON form). A citation names the chunk it quotes; the document id and the
locator inside the document appear only when the asker may read the document (as search hits
do: :mod:`garrison.store.views`), so an answer never points at anything its reader may not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXTRACTIVE",
    "REFUSAL",
    "WITHHELD_NOTE",
    "Answer",
    "AnswerSentence",
    "Citation",
    "ContextEntry",
]

#: What the assistant says when no readable source answers -- the same words whether or not
#: sources the asker may not read exist.
REFUSAL = "No readable source answers this."
#: Added when chunks the asker may read were kept from a generator not accredited for them.
WITHHELD_NOTE = (
    "More readable material exists that this generator may not receive; it was left out."
)
#: The name of the built-in answerer that quotes sources and needs no generative model.
EXTRACTIVE = "extractive"


@dataclass(frozen=True)
class Citation:
    """One cited source portion: the quoted span of a chunk, with the portion's marking."""

    n: int
    chunk_id: str
    #: ``None`` when the asker may not read the chunk's document (then no locator either).
    doc_id: str | None
    locator: dict[str, Any]
    #: The banner of the quoted portion, and its portion mark form (``(S)``).
    marking: str
    portion: str
    quote: str
    #: Character offsets of ``quote`` in the chunk's text.
    start: int
    end: int
    section_path: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "chunk_id": self.chunk_id}
        if self.doc_id is not None:
            out["doc_id"] = self.doc_id
        out.update(
            {
                "locator": dict(self.locator),
                "marking": self.marking,
                "portion": self.portion,
                "quote": self.quote,
                "start": self.start,
                "end": self.end,
                "section_path": list(self.section_path),
            }
        )
        return out


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence of the answer with its portion marking and the citations that support it.

    ``unsupported`` flags a generated sentence that no context sentence supports.
    """

    text: str
    marking: str
    portion: str
    citations: tuple[int, ...] = ()
    unsupported: bool = False

    def marked(self) -> str:
        """The sentence as shown: portion mark first, citation numbers after."""
        refs = "".join(f" [{n}]" for n in self.citations)
        flag = " [unsupported]" if self.unsupported else ""
        return f"{self.portion} {self.text}{refs}{flag}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "marking": self.marking,
            "portion": self.portion,
            "citations": list(self.citations),
            "unsupported": self.unsupported,
        }


@dataclass(frozen=True)
class ContextEntry:
    """A chunk placed in the answerer's context (its marking joins into the answer's)."""

    chunk_id: str
    marking: str

    def to_dict(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "marking": self.marking}


@dataclass(frozen=True)
class Answer:
    """An answer to one question.

        ``marking`` is the join of every chunk in the context (``context_marking``), of the
        question's marking (``question_marking``), of the conversation history used and of the
        generator's own marking -- and of every compilation rule whose two parts the question,
        context and answer combine (``findings``: one ``compilation`` finding per such rule,
        naming it). A ``refused`` answer is the one sentence :data:`REFUSAL` (marked
    with the question's marking) and no citations.
    """

    question: str
    sentences: list[AnswerSentence]
    citations: list[Citation]
    marking: str
    context_marking: str
    question_marking: str
    generator: str
    refused: bool
    context: list[ContextEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    conversation_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The answer as shown: each sentence portion-marked and followed by its citations."""
        return "\n".join([*(s.marked() for s in self.sentences), *self.notes])

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "marking": self.marking,
            "answer": self.text,
            "refused": self.refused,
            "sentences": [s.to_dict() for s in self.sentences],
            "citations": [c.to_dict() for c in self.citations],
            "context_marking": self.context_marking,
            "question_marking": self.question_marking,
            "generator": self.generator,
            "context": [c.to_dict() for c in self.context],
            "notes": list(self.notes),
            "conversation_id": self.conversation_id,
            "timings": dict(self.timings),
            "findings": [dict(f) for f in self.findings],
        }

"""Markings of what the asker writes, and of what the assistant answers.

The asker marks a question as an author marks a portion: ``question_marking`` (default
UNCLASSIFIED), joined with a portion mark the question starts with (``(S) where is ...``) --
recognized exactly as ingest recognizes marks in text (:func:`find_portion_mark`, then the
workspace's marking parser; a mark that does not validate is refused, never read as text). The
mark is taken out of the text that is searched.

A question's marking must be one its asker may read (they cannot write above their own
clearance), never above system high, and never above the ceiling (``max_marking``) the asker
chose for the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from garrison.core.errors import InvalidInput, NotPermitted
from garrison.security.markings import (
    UNCLASSIFIED,
    Marking,
    dominates,
    find_portion_mark,
    join,
    system_high_dominates,
)
from garrison.store.session import Session

__all__ = ["MarkedQuestion", "check_ceiling", "mark_question"]


@dataclass(frozen=True)
class MarkedQuestion:
    """The question's text (without its portion mark) and its marking."""

    text: str
    marking: Marking


def mark_question(
    session: Session,
    question: str,
    *,
    question_marking: str | None = None,
    ceiling: Marking | None = None,
) -> MarkedQuestion:
    """The question's text and marking; raises when the marking may not be used.

    Raises :class:`MarkingError` for a mark or ``question_marking`` that does not validate,
    :class:`InvalidInput` for a marking above system high or above ``ceiling``, and
    :class:`NotPermitted` for one the asker may not read.
    """
    text = question.strip()
    parts: list[Marking] = []
    found = find_portion_mark(text)
    if found is not None:
        mark, end = found
        parts.append(session.parse_marking(mark))
        text = text[end:].strip()
    if question_marking is not None and question_marking.strip():
        parts.append(session.parse_marking(question_marking.strip()))
    marking = join(*parts) if parts else UNCLASSIFIED
    if not system_high_dominates(session.workspace.system_high, marking):
        raise InvalidInput(
            f"The question is marked {marking.banner()}, above this workspace's system high; "
            "it cannot be asked here."
        )
    if not session.can_read(marking):
        raise NotPermitted(
            f"{session.subject.name} may not mark a question {marking.banner()}: "
            "it is above what they may read."
        )
    check_ceiling(marking, ceiling, what="The question")
    return MarkedQuestion(text=text, marking=marking)


def check_ceiling(marking: Marking, ceiling: Marking | None, *, what: str) -> None:
    """Raise InvalidInput when ``ceiling`` is set and does not dominate ``marking``."""
    if ceiling is not None and not dominates(ceiling, marking):
        raise InvalidInput(
            f"{what} is marked {marking.banner()}, above the ceiling {ceiling.banner()} "
            "chosen for the answer."
        )

"""Scorers: per-item scores of a system's responses, and corpus-level classification metrics.

``get_scorer(name, **params)`` builds a registered scorer; ``scorer_names()`` lists them;
``default_scorers(kind)`` names those run on a suite of a kind when none are named. Every
scorer has a ``name``, a ``version`` (recorded with a run), ``binary`` and the ``kinds`` of item
it applies to, and maps a :class:`Scored` item to a :class:`Score`. The keys they read are
listed in :mod:`garrison.evaluate.scorers._base`; ``docs/evaluation.md`` describes each.
"""

from __future__ import annotations

from garrison.evaluate.scorers import _grounding, _judge, _retrieval, _structured, _text
from garrison.evaluate.scorers._base import (
    KINDS,
    NotApplicable,
    Score,
    Scored,
    Scorer,
    default_scorers,
    get_scorer,
    register,
    score_all,
    scorer_names,
)
from garrison.evaluate.scorers._classification import classification_report
from garrison.evaluate.scorers._judge import DEFAULT_RUBRIC, JudgeScorer, parse_verdict
from garrison.evaluate.scorers._text import normalize_answer, token_f1

__all__ = [
    "DEFAULT_RUBRIC",
    "KINDS",
    "JudgeScorer",
    "NotApplicable",
    "Score",
    "Scored",
    "Scorer",
    "classification_report",
    "default_scorers",
    "get_scorer",
    "normalize_answer",
    "parse_verdict",
    "register",
    "score_all",
    "scorer_names",
    "token_f1",
]

del _grounding, _judge, _retrieval, _structured, _text

"""The ``quality`` stage: score each item's text and flag what looks like junk.

Scores go to ``item.quality``; flags are appended to ``item.flags``; an item carrying a flag
named in ``drop_flagged`` is dropped (``item.dropped = "quality:<flag>"``, the first such flag
in the order of :data:`QUALITY_FLAGS`). Every threshold is a parameter:

============================ ============================================================
flag                         raised when
============================ ============================================================
``too-short``                ``chars`` (length of the trimmed text) < ``min_chars``
``mostly-symbols``           ``symbol_ratio`` > ``max_symbol_ratio``
``low-alpha``                ``alpha_ratio`` < ``min_alpha_ratio``
``repeated-lines``           ``repeated_line_ratio`` > ``max_repeated_line_ratio``
``boilerplate``              any of ``boilerplate_patterns`` matches (case-insensitive)
``low-language-confidence``  a language was detected with confidence < ``min_language_confidence``
============================ ============================================================

``symbol_ratio`` and ``alpha_ratio`` are shares of the non-whitespace characters (so layout
spacing does not dilute them). Tables and records (``item.type`` ``Table`` or ``Record``) are
mostly numbers and punctuation by nature, so the ``mostly-symbols`` and ``low-alpha`` checks
are skipped for them; their scores are still recorded. ``language_confidence`` is 0 when no
language was detected, and then ``low-language-confidence`` is not raised (``language`` already
says "unknown").
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from garrison.pipeline._stage import Item, Stage, StageParams, register_stage

__all__ = [
    "DEFAULT_BOILERPLATE",
    "QUALITY_FLAGS",
    "QualityParams",
    "QualityStage",
    "quality_scores",
]

#: Every flag this stage can raise, in the order it checks them.
QUALITY_FLAGS: tuple[str, ...] = (
    "too-short",
    "mostly-symbols",
    "low-alpha",
    "repeated-lines",
    "boilerplate",
    "low-language-confidence",
)

#: Typical legal, navigation and e-mail boilerplate (case-insensitive regular expressions).
DEFAULT_BOILERPLATE: tuple[str, ...] = (
    r"all rights reserved",
    r"\bpage \d+ of \d+\b",
    r"\bclick here\b",
    r"\bunsubscribe\b",
    r"confidentiality notice",
    r"this (?:e-?mail|message) (?:and any attachments )?(?:is|are) (?:intended|confidential)",
    r"if you (?:are not|have received this) .{0,40}(?:intended recipient|in error)",
    r"(?:\bcopyright\b|©)\s*(?:©\s*)?(?:19|20)\d\d\b",
    r"do not reply to this (?:e-?mail|message)",
    r"\bsent from my (?:iphone|ipad|android|mobile)",
)

# Item types whose text is tabular data: symbols and digits are expected there.
_TABULAR_TYPES = frozenset({"Table", "Record"})


class QualityParams(StageParams):
    """Thresholds for each quality flag, and which flags drop an item."""

    min_chars: int = Field(default=20, ge=0)
    max_symbol_ratio: float = Field(default=0.3, ge=0.0, le=1.0)
    min_alpha_ratio: float = Field(default=0.5, ge=0.0, le=1.0)
    max_repeated_line_ratio: float = Field(default=0.3, ge=0.0, le=1.0)
    boilerplate_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_BOILERPLATE))
    min_language_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    drop_flagged: list[str] = Field(default_factory=list)

    @field_validator("boilerplate_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(
                    f"boilerplate pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from exc
        return value

    @field_validator("drop_flagged")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        unknown = [flag for flag in value if flag not in QUALITY_FLAGS]
        if unknown:
            raise ValueError(
                f"unknown quality flag(s) {', '.join(map(repr, unknown))} in drop_flagged; "
                f"known flags: {', '.join(QUALITY_FLAGS)}"
            )
        return value


def quality_scores(text: str) -> dict[str, float]:
    """Length and composition scores of ``text`` (``language_confidence`` is not included)."""
    stripped = text.strip()
    visible = [ch for ch in stripped if not ch.isspace()]
    n_visible = len(visible)
    alpha = sum(ch.isalpha() for ch in visible)
    symbols = sum(not ch.isalnum() for ch in visible)
    lines = [line.strip() for line in stripped.splitlines()]
    lines = [line for line in lines if line]
    repeated = len(lines) - len(set(lines))
    return {
        "chars": float(len(stripped)),
        "symbol_ratio": symbols / n_visible if n_visible else 0.0,
        "alpha_ratio": alpha / n_visible if n_visible else 0.0,
        "repeated_line_ratio": repeated / len(lines) if lines else 0.0,
    }


@register_stage
class QualityStage(Stage[QualityParams]):
    """Record quality scores and flags on each item; drop items with flags the caller names."""

    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "1"
    Params: ClassVar[type[StageParams]] = QualityParams

    def __init__(self, params: QualityParams) -> None:
        super().__init__(params)
        # Validated by QualityParams, so compiling cannot fail here; compiled once per stage.
        self._boilerplate = [
            re.compile(pattern, re.IGNORECASE) for pattern in params.boilerplate_patterns
        ]

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        """Score and flag each live item; an item that cannot be scored is marked failed."""
        for item in items:
            if item.dropped is not None:
                continue
            try:
                self._assess(item)
            except Exception as exc:  # one bad item must not stop the batch
                item.failed = f"quality: {type(exc).__name__}: {exc}"
            item.lineage.append(self.lineage((item.id,)))
        return items

    def _assess(self, item: Item) -> None:
        p = self.params
        scores = quality_scores(item.text)
        detected = item.language is not None and item.language_confidence is not None
        confidence = float(item.language_confidence or 0.0) if detected else 0.0
        scores["language_confidence"] = confidence
        tabular = item.type in _TABULAR_TYPES

        raised = {
            "too-short": scores["chars"] < p.min_chars,
            "mostly-symbols": not tabular and scores["symbol_ratio"] > p.max_symbol_ratio,
            "low-alpha": not tabular and scores["alpha_ratio"] < p.min_alpha_ratio,
            "repeated-lines": scores["repeated_line_ratio"] > p.max_repeated_line_ratio,
            "boilerplate": any(rx.search(item.text) for rx in self._boilerplate),
            "low-language-confidence": detected and confidence < p.min_language_confidence,
        }
        item.quality.update(scores)
        for flag in QUALITY_FLAGS:
            # Re-running the stage must not duplicate flags.
            if raised[flag] and flag not in item.flags:
                item.flags.append(flag)
        for flag in QUALITY_FLAGS:
            if raised[flag] and flag in p.drop_flagged:
                item.dropped = f"quality:{flag}"
                break

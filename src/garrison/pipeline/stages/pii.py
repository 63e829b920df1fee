"""The ``pii`` stage: find personal data in each item and keep, mask, pseudonymize or drop it.

Detection and rewriting live in :mod:`garrison.pipeline.pii`; this adapter validates the
parameters, takes the pseudonymization key from the executor's resources and records findings,
the rewritten text, drops and lineage on each item.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from garrison.core.errors import KeyFileError
from garrison.pipeline._stage import Item, Stage, StageParams, register_stage
from garrison.pipeline.pii import PII_TYPES, apply_actions, scan

__all__ = ["PiiParams", "PiiStage"]

Action = Literal["keep", "mask", "pseudonymize", "drop"]


def _check_type(name: str) -> str:
    if name not in PII_TYPES:
        raise ValueError(f"unknown PII type {name!r}; known types: {', '.join(PII_TYPES)}")
    return name


class PiiParams(StageParams):
    """Parameters of the ``pii`` stage.

    ``types`` is which detectors run; ``None`` means every type except ``person``, which also
    runs when a ``gazetteer`` of names is given (a name list is only configured to be used).
    ``actions`` maps a type to what happens to it; other types get ``default_action``.
    Findings below ``min_confidence`` are ignored.
    """

    types: list[str] | None = None
    actions: dict[str, Action] = Field(default_factory=dict)
    default_action: Action = "mask"
    gazetteer: list[str] = Field(default_factory=list)
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for name in value:
                _check_type(name)
        return value

    @field_validator("actions")
    @classmethod
    def _known_action_types(cls, value: dict[str, Action]) -> dict[str, Action]:
        for name in value:
            _check_type(name)
        return value

    def effective_types(self) -> tuple[str, ...]:
        """The detectors this configuration runs."""
        if self.types is not None:
            return tuple(self.types)
        return tuple(t for t in PII_TYPES if t != "person" or self.gazetteer)


@register_stage
class PiiStage(Stage[PiiParams]):
    """Detect PII and apply the configured action per type (pure; the key comes as a resource)."""

    name = "pii"
    version = "1"
    Params = PiiParams

    def open_resources(self, resources: dict[str, Any]) -> bytes:
        """The pseudonymization key (``resources["pseudonym_key"]``, bytes)."""
        key = resources.get("pseudonym_key")
        if not isinstance(key, bytes) or not key:
            raise KeyFileError(
                "The pii stage needs the workspace pseudonymization key, but none was provided; "
                "check that the workspace key file exists and is readable."
            )
        return key

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        """Scan, rewrite and mark each live item; dropped items pass through untouched."""
        key: bytes = resource
        types = self.params.effective_types()
        for item in items:
            if item.dropped is not None:
                continue
            findings = [
                f
                for f in scan(item.text, types=types, gazetteer=self.params.gazetteer)
                if f.confidence >= self.params.min_confidence
            ]
            item.pii = findings
            text, drop = apply_actions(
                item.text, findings, self.params.actions, key, default=self.params.default_action
            )
            if drop:
                first = next(
                    f
                    for f in findings
                    if self.params.actions.get(f.type, self.params.default_action) == "drop"
                )
                item.dropped = f"pii:{first.type}"
            else:
                item.text = text
            item.lineage.append(self.lineage((item.id,)))
        return items

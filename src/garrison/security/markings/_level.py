"""Classification levels, ordered U < CUI < C < S < TS (MARKINGS.md section 3 rule 1)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Level"]


class Level(IntEnum):
    """A classification level. ``int`` order is the dominance order; ``name`` is the portion
    abbreviation (``TS``) and :attr:`banner_name` the banner word (``TOP SECRET``)."""

    U = 0
    CUI = 1
    C = 2
    S = 3
    TS = 4

    @property
    def abbreviation(self) -> str:
        """The portion-mark spelling: ``U``, ``CUI``, ``C``, ``S``, ``TS``."""
        return self.name

    @property
    def banner_name(self) -> str:
        """The banner-line spelling: ``UNCLASSIFIED``, ``CUI``, ``CONFIDENTIAL``..."""
        return _BANNER_NAMES[self]

    @property
    def is_classified(self) -> bool:
        """True for CONFIDENTIAL and above."""
        return self >= Level.C

    @classmethod
    def from_text(cls, text: str) -> Level | None:
        """Return the level spelled ``text`` (abbreviation or banner word, upper case), if any."""
        return _BY_TEXT.get(text)


_BANNER_NAMES = {
    Level.U: "UNCLASSIFIED",
    Level.CUI: "CUI",
    Level.C: "CONFIDENTIAL",
    Level.S: "SECRET",
    Level.TS: "TOP SECRET",
}
_BY_TEXT = {**{lv.name: lv for lv in Level}, **{name: lv for lv, name in _BANNER_NAMES.items()}}

"""The ``normalize`` stage: make text comparable before anything measures or matches it.

Steps, in this order (each can be switched off in :class:`NormalizeParams`):

1. ``fix_mojibake`` -- repair text that was decoded with the wrong codec (``CafÃ©`` -> ``Café``)
   with :func:`ftfy.fix_encoding`. Only ftfy's encoding fixes run: no quote uncurling, no HTML
   unescaping, no normalization of its own, so every other change stays under our parameters.
   It runs first because mojibake often contains C1 controls that step 3 would otherwise delete;
   ftfy also reads a lone C1 control as the Windows-1252 character it almost always was
   (``\x85`` -> ``…``), so with this step on, step 3 rarely sees one.
2. ``nfkc`` -- Unicode NFKC: full-width letters, ligatures (``ﬁ``), compatibility forms.
3. ``strip_control`` -- line endings become ``\\n``; C0/C1 controls other than ``\\n``/``\\t``,
   zero-width spaces, word joiners, soft hyphens and byte-order marks are removed. ZWJ/ZWNJ
   (U+200D/U+200C) are kept: they change the spelling of Persian and Indic words and of emoji.
4. ``dehyphenate`` -- ``infor-\\nmation`` -> ``information`` when a hyphen ends a line between
   two lowercase letters; a compound on one line (``well-known``) is left alone.
5. ``collapse_whitespace`` -- runs of spaces become one space (a run holding a tab becomes one
   tab, so tab-separated columns survive), spaces at the start and end of lines go (extracted
   text indents by layout, not meaning), three or more line breaks become a paragraph break, and
   the text is trimmed.

``item.original_text`` is never changed; ``item.text`` receives the result.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar

import ftfy

from garrison.pipeline._stage import Item, Stage, StageParams, register_stage

__all__ = ["NormalizeParams", "NormalizeStage", "normalize_text"]


class NormalizeParams(StageParams):
    """Which normalizations to apply (all on by default)."""

    nfkc: bool = True
    fix_mojibake: bool = True
    collapse_whitespace: bool = True
    strip_control: bool = True
    dehyphenate: bool = True


# C0 controls except \t (09) and \n (0A), DEL, C1 controls; then invisible format characters that
# carry no meaning in extracted text: soft hyphen, Mongolian vowel separator, zero-width space,
# word joiner, invisible operators, BOM / zero-width no-break space.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u180e\u200b\u2060-\u2064\ufeff]",
)
_LINE_ENDINGS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
# A hyphen (ASCII or U+2010) at the end of a line, with optional spaces around the break, between
# word characters; the callback then checks that both sides are lowercase letters (``re`` has no
# \p{Ll}).
_BROKEN_WORD = re.compile(r"(\w)[-\u2010][ \t]*\n[ \t]*(\w)")
_HSPACE_RUN = re.compile(r"[^\S\n]+")
_SPACE_AROUND_BREAK = re.compile(r"[^\S\n]*\n[^\S\n]*")
_MANY_BREAKS = re.compile(r"\n{3,}")


def _join_broken_word(match: re.Match[str]) -> str:
    left, right = match.group(1), match.group(2)
    if left.isalpha() and right.isalpha() and left.islower() and right.islower():
        return left + right
    # Capitalized or numeric sides ("Jean-\nPierre", "COVID-\n19") are probably real hyphens.
    return match.group(0)


def _collapse_run(match: re.Match[str]) -> str:
    return "\t" if "\t" in match.group(0) else " "


def normalize_text(text: str, params: NormalizeParams) -> str:
    """Return ``text`` normalized as ``params`` says (see the module docstring for the order)."""
    if params.fix_mojibake:
        text = ftfy.fix_encoding(text)
    if params.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if params.strip_control:
        text = _LINE_ENDINGS.sub("\n", text)
        text = _CONTROL.sub("", text)
    if params.dehyphenate:
        text = _BROKEN_WORD.sub(_join_broken_word, text)
    if params.collapse_whitespace:
        text = _HSPACE_RUN.sub(_collapse_run, text)
        text = _SPACE_AROUND_BREAK.sub("\n", text)
        text = _MANY_BREAKS.sub("\n\n", text)
        text = text.strip()
    return text


@register_stage
class NormalizeStage(Stage[NormalizeParams]):
    """Rewrite ``item.text`` into normalized form; ``item.original_text`` stays as extracted."""

    name: ClassVar[str] = "normalize"
    version: ClassVar[str] = "1"
    Params: ClassVar[type[StageParams]] = NormalizeParams

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        """Normalize each live item; an item that cannot be normalized is marked failed."""
        for item in items:
            if item.dropped is not None:
                continue
            try:
                item.text = normalize_text(item.text, self.params)
            except Exception as exc:  # one bad item must not stop the batch
                item.failed = f"normalize: {type(exc).__name__}: {exc}"
            item.lineage.append(self.lineage((item.id,)))
        return items

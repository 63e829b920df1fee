"""Writing markings in the canonical banner and portion spellings of MARKINGS.md section 1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from garrison.security.markings._level import Level
from garrison.security.markings._registry import CUI_CONTROLS
from garrison.security.markings._sci import render_sci, token_key

if TYPE_CHECKING:
    from garrison.security.markings._model import Marking

__all__ = ["format_marking", "order_cui_categories", "order_release_list"]


def order_release_list(codes: Iterable[str]) -> list[str]:
    """``USA`` first, then trigraphs alphabetically, then tetragraphs alphabetically."""
    codes = set(codes)
    usa = ["USA"] if "USA" in codes else []
    rest = codes - {"USA"}
    return usa + sorted(c for c in rest if len(c) == 3) + sorted(c for c in rest if len(c) != 3)


def order_cui_categories(categories: Iterable[str]) -> list[str]:
    """Specified (``SP-``) categories first, alphabetically, then basic ones alphabetically."""
    cats = set(categories)
    return sorted(c for c in cats if c.startswith("SP-")) + sorted(
        c for c in cats if not c.startswith("SP-")
    )


def _dissem_tokens(m: Marking, *, portion: bool) -> list[str]:
    """Dissemination controls in canonical order; CUI-only controls sit after NOFORN.

    Section 1 orders FOUO, ORCON, ORCON-USGOV, IMCON, NOFORN, PROPIN, REL TO, RELIDO, FISA,
    DISPLAY ONLY, and lists CUI's controls as NOFORN, FED ONLY, FEDCON, NOCON, DL ONLY; merging
    the two lists keeps both orders.
    """
    out: list[str] = []
    if m.fouo:
        out.append("FOUO")
    if m.orcon:
        out.append("OC" if portion else "ORCON")
    if m.orcon_usgov:
        out.append("OC-USGOV" if portion else "ORCON-USGOV")
    if m.imcon:
        out.append("IMC" if portion else "IMCON")
    if m.noforn:
        out.append("NF" if portion else "NOFORN")
    if m.level == Level.CUI:
        out.extend(c for c in CUI_CONTROLS if c in m.cui)
    if m.propin:
        out.append("PR" if portion else "PROPIN")
    if m.rel_to:
        out.append("REL TO " + ", ".join(order_release_list(m.rel_to)))
    if m.relido:
        out.append("RELIDO")
    if m.fisa:
        out.append("FISA")
    if m.display_only:
        out.append("DISPLAY ONLY " + ", ".join(order_release_list(m.display_only)))
    return out


def format_marking(m: Marking, *, portion: bool) -> str:
    """Return the canonical banner line, or the portion mark (with parentheses)."""
    segments = [m.level.abbreviation if portion else m.level.banner_name]
    if m.level == Level.CUI:
        categories = order_cui_categories(c for c in m.cui if c not in CUI_CONTROLS)
        if categories:
            segments.append("/".join(categories))
    if m.sci:
        segments.append("/".join(render_sci(m.sci)))
    if m.sap:
        segments.append("/".join(f"SAR-{s}" for s in sorted(m.sap, key=token_key)))
    dissem = _dissem_tokens(m, portion=portion)
    if dissem:
        segments.append("/".join(dissem))
    text = "//".join(segments)
    return f"({text})" if portion else text

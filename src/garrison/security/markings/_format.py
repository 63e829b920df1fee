"""Writing markings in the canonical banner and portion spellings of MARKINGS.md section 1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from garrison.security.markings._level import Level
from garrison.security.markings._register import (
    AEA_ORDER,
    JOINT,
    NATO,
    NATO_BANNER,
    NONIC_ORDER,
    NONUS,
    US,
    order_list,
)
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
    if m.dsen:
        out.append("DSEN" if portion else "DEA SENSITIVE")
    if m.fisa:
        out.append("FISA")
    if m.display_only:
        out.append("DISPLAY ONLY " + ", ".join(order_release_list(m.display_only)))
    if m.waived:
        out.append("WAIVED")
    return out


def _class_segment(m: Marking, *, portion: bool) -> str:
    """The classification: US level, or a leading ``//`` and the non-US, NATO or JOINT one."""
    if m.kind == US:
        return m.level.abbreviation if portion else m.level.banner_name
    if m.kind == NATO:
        return "//" + (m.nato if portion else NATO_BANNER[m.nato])
    if m.restricted:
        level = "R" if portion else "RESTRICTED"
    else:
        level = m.level.abbreviation if portion else m.level.banner_name
    if m.kind == JOINT:
        return f"//JOINT {level} " + " ".join(order_list(m.owners))
    assert m.kind == NONUS
    owners = "FGI" if m.concealed else " ".join(order_list(m.owners))
    return f"//{owners} {level}"


def _sap_tokens(m: Marking, *, portion: bool) -> list[str]:
    """Programs after one ``SAR-`` prefix; three or more in a banner (or unresolved) are
    ``SAR-MULTIPLE PROGRAMS``; HVSACO alone, and only when no program is present (rule 14)."""
    if m.sap_multiple or (not portion and len(m.sap) >= 3):
        return ["SAR-MULTIPLE PROGRAMS"]
    if m.sap:
        return ["SAR-" + "/".join(sorted(m.sap, key=token_key))]
    return ["HVSACO"] if m.hvsaco else []


def _aea_tokens(m: Marking, *, portion: bool) -> list[str]:
    out: list[str] = []
    sigma = " ".join(str(n) for n in sorted(m.sigma))
    for token in AEA_ORDER:
        if token not in m.aea:
            continue
        if token in ("DOD UCNI", "DOE UCNI") and m.level != Level.U:
            continue  # rule 11: kept in the marking, not written in a classified line
        if token in ("RD", "FRD"):
            text = token
            if token == "RD" and "CNWDI" in m.aea:  # noqa: S105 -- a marking, not a secret
                text += "-CNWDI"
            if sigma:
                text += ("-SG " if portion else "-SIGMA ") + sigma
            out.append(text)
        elif portion:
            out.append({"DOD UCNI": "DCNI", "DOE UCNI": "UCNI"}.get(token, token))
        else:
            out.append(token)
    if "ATOMAL" in m.nato_controls:
        out.append("ATOMAL")
    return out


def _nonic_tokens(m: Marking, *, portion: bool) -> list[str]:
    """Rule 13: NODIS absorbs EXDIS; SBU leaves beside EXDIS/NODIS; LIMDIS and SBU leave a
    classified line (all stay in the marking's ``nonic`` attribute)."""
    shown = set(m.nonic)
    if "NODIS" in shown:
        shown.discard("EXDIS")
    if shown & {"EXDIS", "NODIS"} or m.level != Level.U:
        shown -= {"SBU", "SBU NOFORN"}
    if m.level != Level.U:
        shown.discard("LIMDIS")
    out = [
        (portion_form if portion else banner)
        for banner, portion_form in NONIC_ORDER.items()
        if banner in shown
    ]
    out.extend(sorted(shown - set(NONIC_ORDER)))
    if m.accm:
        out.append("ACCM-" + "/".join(sorted(m.accm)))
    return out


def format_marking(m: Marking, *, portion: bool) -> str:
    """Return the canonical banner line, or the portion mark (with parentheses)."""
    segments = [_class_segment(m, portion=portion)]
    if m.level == Level.CUI:
        categories = order_cui_categories(c for c in m.cui if c not in CUI_CONTROLS)
        if categories:
            segments.append("/".join(categories))
    sci = render_sci(m.sci) + [c for c in ("BOHEMIA", "BALK") if c in m.nato_controls]
    fgi = []
    if m.kind == US and (m.fgi or m.concealed):
        fgi = ["FGI" if m.concealed else "FGI " + " ".join(order_list(m.fgi))]
    for tokens in (
        sci,
        _sap_tokens(m, portion=portion),
        _aea_tokens(m, portion=portion),
        fgi,
        _dissem_tokens(m, portion=portion),
        _nonic_tokens(m, portion=portion),
    ):
        if tokens:
            segments.append("/".join(tokens))
    text = "//".join(segments)
    return f"({text})" if portion else text

"""Compiling a marking to an access expression (MARKINGS.md section 4, Accumulo syntax).

Tokens: ``CLS:<U|C|S|TS>`` (CUI data is ``CLS:U`` plus ``DISSEM:CUI``), ``SCI:<path>`` for every
SCI path and each of its prefixes, ``SAP:<id>``, ``DISSEM:<control>`` for ORCON, PROPIN, IMCON,
FISA and CUI, and ``CTRY:<code>`` for release (groups expanded to member countries, opaque codes
like ``NATO`` as themselves). FOUO and RELIDO add nothing. A subject holds every level up to its
clearance (``CLS:U`` ... ``CLS:TS``).

Normal form: every term rendered, duplicates removed, then sorted byte-wise by its rendered text
(so a quoted token, starting with ``"``, sorts before ``(``, which sorts before letters), joined
with ``&``; inside a disjunction the tokens are sorted the same way and joined with ``|``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from garrison.security.markings._level import Level
from garrison.security.markings._model import Marking
from garrison.security.markings._release import expand
from garrison.security.markings._sci import closure

__all__ = ["access_expression", "release_expression"]

_UNQUOTED = re.compile(r"[A-Za-z0-9_\-.:/]+")


def _token(text: str) -> str:
    if _UNQUOTED.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _any_of(tokens: Iterable[str]) -> str:
    rendered = sorted({_token(t) for t in tokens})
    return rendered[0] if len(rendered) == 1 else "(" + "|".join(rendered) + ")"


def _countries(m: Marking, *, display: bool) -> str | None:
    codes = set(m.rel_to) | (set(m.display_only) if display else set())
    foreign = bool(m.fgi or m.concealed or m.nato)
    if m.noforn or (
        not codes
        and (m.level.is_classified or m.kind != "US" or foreign or m.display_only or m.rel_to)
    ):
        # NOFORN, or releasable data with no list that counts here: US citizens only. That
        # includes an unclassified roll-up holding foreign government or NATO information with
        # no release marking (rule 5): its parts were the USA's to read, never everyone's.
        return "CTRY:USA"
    if not codes:
        return None  # unclassified/CUI with no release control: no citizenship condition
    countries = expand(codes, m.group_members) | {"USA"}
    return _any_of(f"CTRY:{c}" for c in countries)


def _expression(m: Marking, *, display: bool) -> str:
    level = Level.U if m.level == Level.CUI else m.level
    terms = {f"CLS:{level.abbreviation}"}
    terms.update(_token(f"SCI:{path}") for path in closure(m.sci))
    terms.update(_token(f"SAP:{sap}") for sap in m.sap)
    if m.orcon:
        terms.add("DISSEM:ORCON")
    elif m.orcon_usgov:
        # A subject with either grant may read ORCON-USGOV data; ORCON is the wider grant.
        terms.add(_any_of(["DISSEM:ORCON", "DISSEM:ORCON-USGOV"]))
    for flag, token in (("propin", "PROPIN"), ("imcon", "IMCON"), ("fisa", "FISA")):
        if getattr(m, flag):
            terms.add(f"DISSEM:{token}")
    if m.has_cui:
        terms.add("DISSEM:CUI")
    terms.update(_register_terms(m))
    country = _countries(m, display=display)
    if country is not None:
        terms.add(country)
    return "&".join(sorted(terms))


def _register_terms(m: Marking) -> set[str]:
    """Section 7.4 terms. Subjects cannot hold most of these tokens yet, so such data is
    readable by nobody until the matching grants exist (fail closed)."""
    terms: set[str] = set()
    if m.nato:
        terms.add(f"NATO:{m.nato}")
    terms.update(f"NATO:{c}" for c in m.nato_controls)
    if "RD" in m.aea:
        terms.add("AEA:RD")
    if "CNWDI" in m.aea:
        terms.add("AEA:CNWDI")
    terms.update(f"AEA:SIGMA-{n}" for n in m.sigma)
    if "DOD UCNI" in m.aea:
        terms.add("AEA:DCNI")
    if "DOE UCNI" in m.aea:
        terms.add("AEA:UCNI")
    if m.hvsaco:
        terms.add("SAP:HVSACO")
    if m.sap_multiple:
        terms.add("SAP:MULTIPLE")
    terms.update(_token(f"ACCM:{nick}") for nick in m.accm)
    us_only = bool(m.dsen)
    if m.dsen:
        terms.add("DISSEM:DSEN")
    for control in m.nonic:
        if control in ("SBU NOFORN", "LES NOFORN"):
            terms.add(f"NONIC:{control.split()[0]}")
            us_only = True
        else:
            terms.add(_token(f"NONIC:{control}"))
            us_only = us_only or control == "LIMDIS"
    if us_only:
        terms.add("CTRY:USA")
    return terms


def access_expression(m: Marking) -> str:
    """The normalized access expression a subject must satisfy to read data marked ``m``.

    DISPLAY ONLY countries are readers, so they are in the country term. Examples:
    ``SECRET`` -> ``CLS:S&CTRY:USA``; ``UNCLASSIFIED`` -> ``CLS:U``;
    ``TOP SECRET//SI-G//ORCON/REL TO USA, GBR`` ->
    ``(CTRY:GBR|CTRY:USA)&CLS:TS&DISSEM:ORCON&SCI:SI&SCI:SI-G``.
    """
    return _expression(m, display=True)


def release_expression(m: Marking) -> str:
    """Like :func:`access_expression`, but only REL TO countries count (not DISPLAY ONLY).

    Use it to decide export: a subject whose access comes only through DISPLAY ONLY may read
    but never export.
    """
    return _expression(m, display=False)

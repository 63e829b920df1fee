"""The rest of the register (MARKINGS.md section 7): vocabulary, validation and canonical form.

Section 7 adds to a marking: its classification *kind* (US, non-US owners, NATO, JOINT), FGI
source codes in a US marking, the NATO controls ATOMAL, BOHEMIA and BALK, atomic energy markings
(RD, FRD, CNWDI, SIGMA, DOD/DOE UCNI, TFNI), HVSACO and unresolved ``SAR-MULTIPLE PROGRAMS``,
DEA SENSITIVE and WAIVED, the non-IC dissemination controls (LIMDIS ... SSI) and ACCM nicknames.

Two kinds of rule live here. :func:`check_register` holds for every marking, roll-up results
included (the join keeps a control it drops from the banner line, so a result may hold what no
single part could: EXDIS beside NODIS, LIMDIS under SECRET). :func:`check_part` holds only for a
marking as written on a part (parsed text), where such combinations are errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from garrison.security.markings._level import Level
from garrison.security.markings._rules import fail

__all__ = [
    "AEA_ORDER",
    "CURRENT_SIGMAS",
    "JOINT",
    "KINDS",
    "NATO",
    "NATO_CONTROLS",
    "NATO_LEVELS",
    "NONIC_ORDER",
    "NONUS",
    "US",
    "RegisterCanon",
    "canonical_register",
    "check_part",
    "nato_of_level",
    "order_list",
]

US, NONUS, NATO, JOINT = "US", "NONUS", "NATO", "JOINT"
KINDS = (US, NONUS, NATO, JOINT)

#: NATO levels, lowest first, with their US-equivalent level (rule 8: NR joins as C).
NATO_LEVELS: dict[str, Level] = {
    "NU": Level.U,
    "NR": Level.C,
    "NC": Level.C,
    "NS": Level.S,
    "CTS": Level.TS,
}
NATO_RANK = {name: i for i, name in enumerate(NATO_LEVELS)}
NATO_BANNER = {
    "CTS": "COSMIC TOP SECRET",
    "NS": "NATO SECRET",
    "NC": "NATO CONFIDENTIAL",
    "NR": "NATO RESTRICTED",
    "NU": "NATO UNCLASSIFIED",
}
#: The NATO controls, in writing order (BOHEMIA, BALK in SCI; ATOMAL in AEA).
NATO_CONTROLS = ("BOHEMIA", "BALK", "ATOMAL")
#: Atomic energy markings in writing order (SIGMA and CNWDI attach to RD or FRD).
AEA_ORDER = ("RD", "FRD", "DOD UCNI", "DOE UCNI", "TFNI")
AEA_TOKENS = frozenset({*AEA_ORDER, "CNWDI"})
#: SIGMA numbers in current use; any other in 1-99 is valid with the finding ``legacy-sigma``.
CURRENT_SIGMAS = frozenset({14, 15, 18, 20})
#: Non-IC dissemination controls in writing order, with their portion spellings.
NONIC_ORDER: dict[str, str] = {
    "LIMDIS": "DS",
    "EXDIS": "XD",
    "NODIS": "ND",
    "SBU": "SBU",
    "SBU NOFORN": "SBU-NF",
    "LES": "LES",
    "LES NOFORN": "LES-NF",
    "SSI": "SSI",
}
NF_FORMS = {"SBU NOFORN": "SBU", "LES NOFORN": "LES"}
#: Controls of a part that, with no release control of its own, count as NOFORN beside another
#: counted part (rule 12).
SOFT_NONIC = frozenset({"LIMDIS", "SBU", "LES", "SSI"})
SOFT_AEA = frozenset({"DOD UCNI", "DOE UCNI"})

_OWNER = re.compile(r"[A-Z]{3}")
_CODE = re.compile(r"[A-Z]{3}|[A-Z][A-Z0-9]{3,15}")
_NICK = re.compile(r"[A-Z0-9][A-Z0-9-]*( [A-Z0-9][A-Z0-9-]*)*")


def nato_of_level(level: Level) -> str:
    """The NATO level a US level stands for when the parts' NATO level is unknown (7.4)."""
    return {Level.TS: "CTS", Level.S: "NS", Level.C: "NC"}.get(level, "NU")


def order_list(codes: Iterable[str]) -> list[str]:
    """Section 7 ``LIST`` order: trigraphs A-Z, then tetragraphs A-Z (USA sorted in place)."""
    codes = set(codes)
    return sorted(c for c in codes if len(c) == 3) + sorted(c for c in codes if len(c) != 3)


@dataclass(frozen=True)
class RegisterCanon:
    """The canonical section 7 attributes of one marking (see :func:`canonical_register`)."""

    aea: frozenset[str]
    sigma: frozenset[int]
    nonic: frozenset[str]
    nato: str
    noforn: bool
    fouo: bool


def canonical_register(
    *,
    level: Level,
    kind: str,
    owners: frozenset[str],
    restricted: bool,
    nato: str,
    fgi: frozenset[str],
    concealed: bool,
    nato_controls: frozenset[str],
    aea: frozenset[str],
    sigma: frozenset[int],
    hvsaco: bool,
    sap: frozenset[str],
    sap_multiple: bool,
    waived: bool,
    dsen: bool,
    nonic: frozenset[str],
    accm: frozenset[str],
    noforn: bool,
    fouo: bool,
    has_release: bool,
    relido: bool,
) -> RegisterCanon:
    """Validate the section 7 attributes of a marking (any marking, roll-ups included) and
    return their canonical form. Raises :class:`MarkingError` naming the rule broken."""
    _check_forms(kind, owners, nato, fgi, nato_controls, aea, sigma, nonic, accm)
    if level == Level.CUI and kind != US:
        fail("class-exclusive", detail="a non-US, NATO or JOINT marking cannot be CUI")
    # -- kinds (rule ids class-exclusive, nonus-owner, joint-list) -------------------------
    if kind == NONUS:
        if not owners and not concealed:
            fail("nonus-owner", detail="a non-US marking names its owner")
        if owners and concealed:
            fail("fgi-concealed-alone")
        if "USA" in owners:
            fail("nonus-owner")
    elif owners and kind != JOINT:
        fail("syntax", detail="only non-US and JOINT markings have owners")
    if kind == JOINT and (len(owners) < 2 or "USA" not in owners or restricted):
        fail("joint-list")
    if kind == JOINT and not owners:
        fail("joint-list")
    if restricted and (kind != NONUS or level != Level.C):
        fail("syntax", detail="RESTRICTED is a non-US level, joined as CONFIDENTIAL")
    if kind == NATO:
        if NATO_LEVELS.get(nato) != level:
            fail("syntax", detail=f"NATO level {nato!r} does not match {level.name}")
    elif kind != US and nato:
        fail("syntax", detail="only NATO and US markings carry a NATO level")
    if kind != US and (fgi or (concealed and kind != NONUS)):
        fail("syntax", detail="FGI source codes belong to a US marking")
    if "USA" in fgi:
        fail("fgi-no-usa")
    if kind == US:
        if "NATO" in fgi and not nato:
            nato = nato_of_level(level)
        if nato and "NATO" not in fgi:
            fail("syntax", detail="a NATO level in a US marking needs FGI NATO")
    # -- NATO controls ----------------------------------------------------------------------
    if kind == NATO and noforn:
        fail("nato-no-noforn")
    if kind == NATO:
        if "ATOMAL" in nato_controls and nato not in ("CTS", "NS", "NC"):
            fail("nato-controls", detail="ATOMAL goes only with CTS, NS or NC")
        if nato_controls & {"BOHEMIA", "BALK"} and nato != "CTS":
            fail("nato-controls", detail="BOHEMIA and BALK go only with COSMIC TOP SECRET")
    elif nato_controls:
        if kind != US or "NATO" not in fgi:
            fail("nato-controls", detail="outside a NATO marking they need FGI NATO")
        if "ATOMAL" in nato_controls and not level.is_classified:
            fail("nato-controls", detail="ATOMAL needs CONFIDENTIAL or higher")
        if nato_controls & {"BOHEMIA", "BALK"} and level != Level.TS:
            fail("nato-controls", detail="BOHEMIA and BALK need TOP SECRET")
    # -- atomic energy (rule 11 normalization, rule ids rd-*, cnwdi-*, sigma-*) ---------------
    if aea & {"RD", "FRD", "TFNI"} and not level.is_classified:
        fail("rd-requires-confidential")
    if "CNWDI" in aea and ("RD" not in aea or level < Level.S):
        fail("cnwdi-requires-rd")
    if sigma and not aea & {"RD", "FRD"}:
        fail("sigma-requires-parent")
    if sigma and level < Level.S:
        fail("sigma-level")
    if sigma and has_release:
        fail("sigma-no-release")
    if "RD" in aea:
        aea = aea - {"FRD", "TFNI"}
    elif "FRD" in aea:
        aea = aea - {"TFNI"}
    # -- SAP, HVSACO, WAIVED, ACCM ------------------------------------------------------------
    if waived and not (sap or sap_multiple):
        fail("waived-needs-sap")
    if accm and not level.is_classified:
        fail("accm-classified")
    # -- non-IC dissemination controls (rule 13) ---------------------------------------------
    if nonic & {"EXDIS", "NODIS"} and not noforn:
        fail("exdis-nodis-noforn")
    for nf, base in NF_FORMS.items():
        if nf not in nonic:
            continue
        nonic = nonic - {base}
        if level == Level.U and kind == US and not noforn and not (has_release or relido):
            continue  # written as SBU NOFORN / LES NOFORN
        if has_release or relido:
            fail("noforn-with-release", detail=f"{nf} means NOFORN")
        nonic = (nonic - {nf}) | {base}
        noforn = True
    if kind == NATO and noforn:
        fail("nato-no-noforn")
    if level == Level.U and (nonic or dsen):
        fouo = False
    return RegisterCanon(aea=aea, sigma=sigma, nonic=nonic, nato=nato, noforn=noforn, fouo=fouo)


def _check_forms(
    kind: str,
    owners: frozenset[str],
    nato: str,
    fgi: frozenset[str],
    nato_controls: frozenset[str],
    aea: frozenset[str],
    sigma: frozenset[int],
    nonic: frozenset[str],
    accm: frozenset[str],
) -> None:
    if kind not in KINDS:
        fail("syntax", detail=f"unknown classification kind {kind!r}")
    if nato and nato not in NATO_LEVELS:
        fail("syntax", detail=f"{nato!r} is not a NATO level")
    for code in owners | fgi:
        if not _CODE.fullmatch(code) or code == "FGI":
            fail("syntax", detail=f"{code!r} is not a country trigraph or tetragraph")
    if kind == NONUS and any(not _OWNER.fullmatch(o) for o in owners):
        fail("nonus-owner")
    if not nato_controls <= set(NATO_CONTROLS):
        fail("syntax", detail=f"unknown NATO controls {sorted(nato_controls)}")
    if not aea <= AEA_TOKENS:
        fail("syntax", detail=f"unknown atomic energy markings {sorted(aea)}")
    for number in sigma:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 99:
            fail("sigma-range")
    for control in nonic:
        if control not in NONIC_ORDER and not _CODE.fullmatch(control):
            fail("syntax", detail=f"{control!r} is not a non-IC dissemination control")
    for nick in accm:
        if not _NICK.fullmatch(nick):
            fail("syntax", detail=f"{nick!r} is not an ACCM nickname")


def check_part(
    *,
    level: Level,
    kind: str,
    fgi: frozenset[str],
    concealed: bool,
    relido: bool,
    display_only: bool,
    aea: frozenset[str],
    hvsaco: bool,
    sap: frozenset[str],
    sap_multiple: bool,
    portion: bool,
    nonic: frozenset[str],
) -> None:
    """Rules that hold for a marking as written on one part (not for roll-ups, which keep what
    their banner line drops)."""
    if (relido or display_only) and (kind != US or (portion and (fgi or concealed))):
        fail("foreign-no-relido")
    if aea & SOFT_AEA and level != Level.U:
        fail("ucni-unclassified")
    if sap_multiple and (portion or sap):
        fail("sap-multiple")
    if not portion and len(sap) > 3:
        fail("sap-multiple", detail="a banner lists at most three programs")
    if hvsaco and (sap or sap_multiple):
        fail("hvsaco-non-sap")
    if {"EXDIS", "NODIS"} <= nonic:
        fail("exdis-nodis-exclusive")
    if nonic & {"LIMDIS", "SBU", "SBU NOFORN"} and level != Level.U:
        fail("nonic-unclassified")
    if {"SBU", "SBU NOFORN"} <= nonic or {"LES", "LES NOFORN"} <= nonic:
        fail("nonic-nf-exclusive")

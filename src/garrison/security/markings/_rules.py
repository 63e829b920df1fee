"""Stable rule ids of marking violations and the one-sentence message each one carries.

Every :class:`~garrison.core.errors.MarkingError` raised by this package names one of these
rules; adapters and findings (``invalid-marking``) rely on the id, never on the message text.
"""

from __future__ import annotations

from typing import NoReturn

from garrison.core.errors import MarkingError, UnsupportedMarking

__all__ = ["MARKING_FINDINGS", "MARKING_RULES", "fail"]

#: rule id -> the sentence that explains it (section 2 of MARKINGS.md, plus syntax rules).
MARKING_RULES: dict[str, str] = {
    "syntax": "The marking is malformed.",
    "unknown-token": "The marking contains a token that is not in the marking registry.",
    "unsupported-marking": (
        "A non-US, NATO or JOINT classification is written after a leading '//' "
        "(//NATO SECRET, //DEU SECRET); this form is not supported and is rejected."
    ),
    "noforn-with-release": "NOFORN cannot be combined with REL TO, RELIDO or DISPLAY ONLY.",
    "rel-to-needs-usa": "A REL TO list must include USA.",
    "rel-to-needs-foreign": (
        "A REL TO list must name at least one country or group besides USA (REL TO USA alone "
        "is invalid)."
    ),
    "display-only-needs-foreign": (
        "A DISPLAY ONLY list must name at least one country other than USA."
    ),
    "fouo-requires-unclassified": "FOUO may only be used with UNCLASSIFIED.",
    "orcon-requires-classified": "ORCON and ORCON-USGOV require CONFIDENTIAL or higher.",
    "propin-requires-classified": (
        "The PROPIN dissemination control requires CONFIDENTIAL or higher; unclassified "
        "proprietary information takes the CUI category PROPIN."
    ),
    "si-g-requires-ts-orcon": "SI-G requires TOP SECRET and ORCON.",
    "tk-requires-secret": "TK requires SECRET or higher.",
    "hcs-requires-noforn": "HCS requires NOFORN.",
    "sci-requires-classified": "SCI controls require CONFIDENTIAL or higher.",
    "sap-requires-classified": "Special access programs require CONFIDENTIAL or higher.",
    "unclassified-cui": (
        "UNCLASSIFIED cannot carry CUI categories or CUI controls; mark it CUI instead "
        "(UNCLASSIFIED//CUI is not a valid banner)."
    ),
    "cui-in-classified": (
        "A classified marking line cannot show CUI categories or CUI-only controls; they are "
        "kept in the structured marking's cui attribute."
    ),
    "rel-needs-banner-list": (
        "A portion marked REL without a list needs the banner's REL TO list, and there is none."
    ),
    "group-conflict": "A country group is defined with different members in different places.",
    "invalid-registry": "The marking registry addition is malformed.",
    "imcon-requires-secret": "IMCON requires SECRET or higher.",
    # MARKINGS.md section 7.2
    "class-exclusive": "A marking has one classification of one kind (US, non-US, NATO or JOINT).",
    "nonus-owner": (
        "A non-US owner is a registered country trigraph other than USA (US co-ownership is JOINT)."
    ),
    "fgi-no-usa": "An FGI list never contains USA.",
    "fgi-concealed-alone": (
        "Concealed FGI (bare FGI) takes no country codes, and a portion is either concealed or "
        "acknowledged, not both."
    ),
    "foreign-no-relido": "RELIDO and DISPLAY ONLY are invalid on non-US, NATO and FGI portions.",
    "joint-list": (
        "A JOINT marking lists two or more owners including USA, at TOP SECRET, SECRET, "
        "CONFIDENTIAL or UNCLASSIFIED (never RESTRICTED)."
    ),
    "joint-needs-relto": (
        "A JOINT marking needs a REL TO list covering USA and every co-owner, and takes neither "
        "NOFORN nor HCS."
    ),
    "nato-controls": (
        "ATOMAL goes only with COSMIC TOP SECRET, NATO SECRET or NATO CONFIDENTIAL, BOHEMIA and "
        "BALK only with COSMIC TOP SECRET; outside a NATO marking they need FGI NATO."
    ),
    "nato-no-noforn": "A NATO marking cannot carry NOFORN.",
    "rd-requires-confidential": "RD, FRD and TFNI require CONFIDENTIAL or higher.",
    "cnwdi-requires-rd": "CNWDI requires RD at SECRET or TOP SECRET.",
    "sigma-requires-parent": "A SIGMA marking attaches to RD or FRD.",
    "sigma-level": "SIGMA markings require SECRET or TOP SECRET.",
    "sigma-range": "A SIGMA number is an integer from 1 to 99 without a leading zero.",
    "sigma-no-release": "A SIGMA marking cannot carry REL TO or DISPLAY ONLY.",
    "ucni-unclassified": "DOD UCNI and DOE UCNI are used only on UNCLASSIFIED parts.",
    "sap-multiple": (
        "SAR-MULTIPLE PROGRAMS is written only in a banner, alone in its category; a banner "
        "lists at most three programs and a portion lists all of them."
    ),
    "hvsaco-non-sap": "HVSACO cannot stand beside a special access program in one marking.",
    "waived-needs-sap": "WAIVED requires a special access program.",
    "exdis-nodis-exclusive": "EXDIS and NODIS cannot stand together in one marking.",
    "exdis-nodis-noforn": "EXDIS and NODIS require NOFORN.",
    "nonic-unclassified": "LIMDIS, SBU and SBU NOFORN are used only on UNCLASSIFIED parts.",
    "nonic-nf-exclusive": "SBU cannot stand with SBU NOFORN, nor LES with LES NOFORN.",
    "accm-classified": "ACCM requires CONFIDENTIAL or higher.",
    "accm-needs-banner-list": (
        "A portion marked ACCM without nicknames needs the banner's ACCM list, and there is none."
    ),
}

#: Finding ids a valid marking may carry (MARKINGS.md section 7).
MARKING_FINDINGS: dict[str, str] = {
    "legacy-marking": "A legacy spelling was read (COMINT is read as SI).",
    "legacy-sigma": "A SIGMA number other than 14, 15, 18 or 20 is in the marking.",
}


def fail(rule: str, *, text: str | None = None, detail: str | None = None) -> NoReturn:
    """Raise the :class:`MarkingError` for ``rule``, with an optional sentence of detail."""
    message = MARKING_RULES[rule]
    if detail:
        message = f"{message[:-1]}: {detail}."
    if rule == "unsupported-marking":
        raise UnsupportedMarking(message, rule=rule, text=text)
    raise MarkingError(message, rule=rule, text=text)

"""Stable rule ids of marking violations and the one-sentence message each one carries.

Every :class:`~garrison.core.errors.MarkingError` raised by this package names one of these
rules; adapters and findings (``invalid-marking``) rely on the id, never on the message text.
"""

from __future__ import annotations

from typing import NoReturn

from garrison.core.errors import MarkingError, UnsupportedMarking

__all__ = ["MARKING_RULES", "fail"]

#: rule id -> the sentence that explains it (section 2 of MARKINGS.md, plus syntax rules).
MARKING_RULES: dict[str, str] = {
    "syntax": "The marking is malformed.",
    "unknown-token": "The marking contains a token that is not in the marking registry.",
    "unsupported-marking": (
        "Non-US markings (NATO, JOINT, FGI) are not supported yet and are rejected."
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
}


def fail(rule: str, *, text: str | None = None, detail: str | None = None) -> NoReturn:
    """Raise the :class:`MarkingError` for ``rule``, with an optional sentence of detail."""
    message = MARKING_RULES[rule]
    if detail:
        message = f"{message[:-1]}: {detail}."
    if rule == "unsupported-marking":
        raise UnsupportedMarking(message, rule=rule, text=text)
    raise MarkingError(message, rule=rule, text=text)

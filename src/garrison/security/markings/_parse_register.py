"""Reading the spellings of MARKINGS.md section 7: non-US, NATO and JOINT classifications,
FGI, atomic energy markings, NATO controls, HVSACO, DEA SENSITIVE, WAIVED, non-IC dissemination
controls and ACCM. Validation and canonical form are :mod:`._register`'s; this module only reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from garrison.security.markings._level import Level
from garrison.security.markings._register import JOINT, NATO, NATO_LEVELS, NONUS
from garrison.security.markings._rules import fail

if TYPE_CHECKING:
    from garrison.security.markings._parse import _Builder

__all__ = ["RegisterTokens", "parse_foreign_head", "register_token"]

_LEVEL_WORDS = r"TOP SECRET|SECRET|CONFIDENTIAL|RESTRICTED|UNCLASSIFIED|TS|S|C|R|U"
_FOREIGN_LEVELS = {
    "TOP SECRET": "TS",
    "SECRET": "S",
    "CONFIDENTIAL": "C",
    "RESTRICTED": "R",
    "UNCLASSIFIED": "U",
    **{a: a for a in ("TS", "S", "C", "R", "U")},
}
_JOINT = re.compile(rf"JOINT ({_LEVEL_WORDS})(?: (.+))?")
_OWNED = re.compile(rf"(.+?) ({_LEVEL_WORDS})")

#: NATO classifications and the aliases read for them (7.1), as (NATO level, controls).
_NATO_HEADS: dict[str, tuple[str, frozenset[str]]] = {
    "COSMIC TOP SECRET": ("CTS", frozenset()),
    "NATO SECRET": ("NS", frozenset()),
    "NATO CONFIDENTIAL": ("NC", frozenset()),
    "NATO RESTRICTED": ("NR", frozenset()),
    "NATO UNCLASSIFIED": ("NU", frozenset()),
    **{name: (name, frozenset()) for name in NATO_LEVELS},
    "COSMIC TOP SECRET BOHEMIA": ("CTS", frozenset({"BOHEMIA"})),
    "COSMIC TOP SECRET-BOHEMIA": ("CTS", frozenset({"BOHEMIA"})),
    "CTS-B": ("CTS", frozenset({"BOHEMIA"})),
    "CTS-BALK": ("CTS", frozenset({"BALK"})),
    "COSMIC TOP SECRET ATOMAL": ("CTS", frozenset({"ATOMAL"})),
    "CTSA": ("CTS", frozenset({"ATOMAL"})),
    "CTS-A": ("CTS", frozenset({"ATOMAL"})),
    "NATO SECRET ATOMAL": ("NS", frozenset({"ATOMAL"})),
    "SECRET ATOMAL": ("NS", frozenset({"ATOMAL"})),
    "NSAT": ("NS", frozenset({"ATOMAL"})),
    "NS-A": ("NS", frozenset({"ATOMAL"})),
    "NATO CONFIDENTIAL ATOMAL": ("NC", frozenset({"ATOMAL"})),
    "CONFIDENTIAL ATOMAL": ("NC", frozenset({"ATOMAL"})),
    "NCA": ("NC", frozenset({"ATOMAL"})),
    "NC-A": ("NC", frozenset({"ATOMAL"})),
}

_AEA = re.compile(r"(RD|FRD|RESTRICTED DATA|FORMERLY RESTRICTED DATA)((?:-[A-Z0-9 ]+)*)")
_AEA_WORDS = {
    "DOD UCNI": "DOD UCNI",
    "DCNI": "DOD UCNI",
    "DOE UCNI": "DOE UCNI",
    "UCNI": "DOE UCNI",
    "TFNI": "TFNI",
}
_NONIC_WORDS = {
    "LIMDIS": "LIMDIS",
    "DS": "LIMDIS",
    "LIMITED DISTRIBUTION": "LIMDIS",
    "EXDIS": "EXDIS",
    "XD": "EXDIS",
    "EXCLUSIVE DISTRIBUTION": "EXDIS",
    "NODIS": "NODIS",
    "ND": "NODIS",
    "NO DISTRIBUTION": "NODIS",
    "SBU": "SBU",
    "SENSITIVE BUT UNCLASSIFIED": "SBU",
    "SBU NOFORN": "SBU NOFORN",
    "SBU-NF": "SBU NOFORN",
    "SENSITIVE BUT UNCLASSIFIED NOFORN": "SBU NOFORN",
    "LES": "LES",
    "LAW ENFORCEMENT SENSITIVE": "LES",
    "LES NOFORN": "LES NOFORN",
    "LES-NF": "LES NOFORN",
    "LAW ENFORCEMENT SENSITIVE NOFORN": "LES NOFORN",
    "SSI": "SSI",
    "SENSITIVE SECURITY INFORMATION": "SSI",
}
_NICK = re.compile(r"[A-Z0-9][A-Z0-9-]*(?: [A-Z0-9][A-Z0-9-]*)*")
_NUMBER = re.compile(r"[1-9][0-9]?")


@dataclass
class RegisterTokens:
    """Section 7 values collected while a marking line is read."""

    fgi: set[str] = field(default_factory=set)
    concealed: bool = False
    nato_controls: set[str] = field(default_factory=set)
    aea: set[str] = field(default_factory=set)
    sigma: set[int] = field(default_factory=set)
    hvsaco: bool = False
    sap_multiple: bool = False
    nonic: set[str] = field(default_factory=set)
    accm: set[str] = field(default_factory=set)
    legacy: bool = False
    fgi_seen: bool = False


def parse_foreign_head(head: str, *, strict: bool) -> tuple[Level, dict[str, Any]] | None:
    """Read a non-US, NATO or JOINT classification (the text after a leading ``//``).

    Returns the US-equivalent level and the keyword arguments describing the classification.
    With ``strict=False`` text that is no such classification gives ``None``; with
    ``strict=True`` it is an error naming the rule.
    """
    info: dict[str, Any] = {
        "kind": NONUS,
        "owners": (),
        "restricted": False,
        "nato": "",
        "concealed": False,
        "controls": frozenset(),
    }
    if head in _NATO_HEADS:
        nato, controls = _NATO_HEADS[head]
        info.update(kind=NATO, nato=nato, controls=controls)
        return NATO_LEVELS[nato], info
    joint = _JOINT.fullmatch(head)
    if joint:
        abbreviation = _FOREIGN_LEVELS[joint.group(1)]
        if abbreviation == "R":
            if not strict:
                return Level.C, info
            fail("joint-list", detail="a JOINT marking is never RESTRICTED")
        owners = tuple(joint.group(2).split()) if joint.group(2) else ()
        info.update(kind=JOINT, owners=owners, banner_lists=not owners)
        level = Level.from_text(abbreviation)
        assert level is not None
        return level, info
    owned = _OWNED.fullmatch(head)
    if owned:
        owners = tuple(owned.group(1).split())
        abbreviation = _FOREIGN_LEVELS[owned.group(2)]
        if not strict and not all(re.fullmatch(r"[A-Z]{3}", o) for o in owners):
            return None
        if "FGI" in owners:
            if len(owners) > 1:
                fail("fgi-concealed-alone")
            info["concealed"] = True
            owners = ()
        if "USA" in owners or any(not re.fullmatch(r"[A-Z]{3}", o) for o in owners):
            fail("nonus-owner")
        info["owners"] = owners
        info["restricted"] = abbreviation == "R"
        level = Level.C if abbreviation == "R" else Level.from_text(abbreviation)
        assert level is not None
        return level, info
    if not strict:
        return None
    fail("syntax", detail=f"{head!r} is not a non-US, NATO or JOINT classification")


def _sigma(numbers: str) -> set[int]:
    out: set[int] = set()
    for number in numbers.split():
        if not number.isdigit():
            fail("syntax", detail=f"{number!r} is not a SIGMA number")
        if not _NUMBER.fullmatch(number):
            fail("sigma-range")
        out.add(int(number))
    if not out:
        fail("syntax", detail="SIGMA needs at least one number")
    return out


def _aea(reg: RegisterTokens, token: str) -> bool:
    match = _AEA.fullmatch(token)
    if match is None:
        return False
    parent = "FRD" if match.group(1) in ("FRD", "FORMERLY RESTRICTED DATA") else "RD"
    reg.aea.add(parent)
    for part in filter(None, match.group(2).split("-")):
        if part in ("CNWDI", "N"):
            reg.aea.add("CNWDI")
        elif part.startswith(("SIGMA ", "SG ")):
            reg.sigma |= _sigma(part.split(" ", 1)[1])
        else:
            fail("syntax", detail=f"{part!r} does not attach to {parent}")
    return True


def register_token(reg: RegisterTokens, token: str, builder: _Builder) -> str | None:
    """Record a section 7 token; return its category, or ``None`` when it is not one."""
    registry = builder.registry
    if token == "COMINT":  # noqa: S105 -- a marking token, not a secret
        builder.sci.add("SI")
        reg.legacy = True
        return "sci"
    if token in ("BOHEMIA", "BALK"):
        reg.nato_controls.add(token)
        return "sci"
    if token == "ATOMAL":  # noqa: S105
        reg.nato_controls.add(token)
        return "aea"
    if token == "HVSACO":  # noqa: S105
        reg.hvsaco = True
        return "sap"
    if token in ("DSEN", "DEA SENSITIVE"):
        builder.flags.add("dsen")
        return "dissem"
    if token == "WAIVED":  # noqa: S105
        builder.flags.add("waived")
        return "dissem"
    if token == "FGI" or token.startswith("FGI "):  # noqa: S105
        if reg.fgi_seen:
            fail("syntax", detail="FGI appears twice")
        reg.fgi_seen = True
        codes = token.split()[1:]
        if not codes:
            reg.concealed = True
        for code in codes:
            if code == "FGI":
                fail("fgi-concealed-alone")
            if code != "USA" and not registry.is_fgi_source(code):
                fail("unknown-token", detail=f"{code} is not a known country or group")
            reg.fgi.add(code)
        return "fgi"
    if token in _AEA_WORDS:
        reg.aea.add(_AEA_WORDS[token])
        return "aea"
    if _aea(reg, token):
        return "aea"
    if token.startswith(("SIGMA ", "SG ")):
        fail("sigma-requires-parent")
    if token in ("CNWDI", "N"):
        fail("cnwdi-requires-rd")
    if token in _NONIC_WORDS:
        reg.nonic.add(_NONIC_WORDS[token])
        return "nonic"
    if token == "ACCM":  # noqa: S105 -- the portion form: the banner's nicknames
        source = builder.banner_rel_to
        accm = getattr(source, "accm", None)
        if not accm:
            fail("accm-needs-banner-list")
        reg.accm |= set(accm)
        return "nonic"
    if token.startswith("ACCM-"):
        nick = token[5:]
        if not _NICK.fullmatch(nick):
            fail("syntax", detail=f"{nick!r} is not an ACCM nickname")
        reg.accm.add(nick)
        return "nonic"
    if token in registry.nonic_controls:
        # A foreign dissemination control the site accepts: NONIC, after the US values (7.1).
        reg.nonic.add(token)
        return "nonic"
    return None

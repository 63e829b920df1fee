"""Subjects -- the people and services that act -- and the authorization tokens they hold.

A subject's clearance, SCI read-ins, SAP accesses, citizenship, group memberships,
dissemination grants and the briefings of MARKINGS.md section 7.4 compile to a set of tokens in
the same vocabulary that markings compile to (see
:func:`garrison.security.markings.access_expression`), so a single access-expression evaluator
decides every read:

========================  ==================================================
subject attribute         tokens
========================  ==================================================
clearance TS              ``CLS:U``, ``CLS:C``, ``CLS:S``, ``CLS:TS``
read-in ``SI-G ABCD``     ``SCI:SI``, ``SCI:SI-G``, ``SCI:SI-G ABCD`` (prefix-closed)
SAP ``SAR-BP``            ``SAP:BP`` (the program identifier; a registered nickname is
                          stored as its PID)
SAP ``HVSACO``            ``SAP:HVSACO``
citizenship ``GBR``       ``CTRY:GBR``
group ``NATO``            ``CTRY:NATO`` (opaque tetragraphs only; FVEY & co. are expanded
                          in expressions instead)
grant ``ORCON``           ``DISSEM:ORCON`` (also ``IMCON``, ``PROPIN``, ``FISA``, ``CUI``,
                          ``DSEN`` for DEA SENSITIVE...)
NATO briefing ``CTS``     ``NATO:CTS``, ``NATO:NS``, ``NATO:NC``, ``NATO:NR``, ``NATO:NU``
                          (a briefing grants the levels below it)
NATO special ``ATOMAL``   ``NATO:ATOMAL`` (also ``BOHEMIA``, ``BALK``)
AEA ``RD``                ``AEA:RD`` (also ``CNWDI``, ``SIGMA-14``, ``DCNI``, ``UCNI``)
ACCM ``TEA LEAF``         ``ACCM:TEA LEAF``
non-IC ``LIMDIS``         ``NONIC:LIMDIS`` (also ``EXDIS``, ``NODIS``, ``SBU``, ``LES``,
                          ``SSI`` and registered foreign controls)
========================  ==================================================

The grant rules of 7.4 are checked by :meth:`Subject.validate` whenever a subject is created or
changed; each refusal names its rule (:data:`GRANT_RULES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from garrison.core.errors import InvalidInput
from garrison.security.markings import NATO_MEMBERS, Level, MarkingRegistry
from garrison.security.markings._register import NATO_CONTROLS, NATO_LEVELS, NONIC_ORDER

__all__ = [
    "AEA_GRANTS",
    "ANONYMOUS_SUBJECT_NAME",
    "CLEARANCES",
    "GRANTS",
    "GRANT_RULES",
    "NONIC_GRANTS",
    "RESERVED_NAMES",
    "SYSTEM_SUBJECT_NAME",
    "Role",
    "Subject",
    "SubjectKind",
    "canonical_value",
    "nato_levels_granted",
    "parse_clearance",
    "sci_prefixes",
]

SYSTEM_SUBJECT_NAME = "system"
#: The actor the audit log names for a request that did not authenticate.
ANONYMOUS_SUBJECT_NAME = "anonymous"
#: Names no user or service account may take, in any letter case: the audit log and the access
#: checks give them a meaning of their own.
RESERVED_NAMES = frozenset({SYSTEM_SUBJECT_NAME, ANONYMOUS_SUBJECT_NAME})

#: Clearance names accepted on input -> the level they clear for. CUI is not a clearance.
CLEARANCES: dict[str, Level] = {
    "U": Level.U,
    "UNCLASSIFIED": Level.U,
    "C": Level.C,
    "CONFIDENTIAL": Level.C,
    "S": Level.S,
    "SECRET": Level.S,
    "TS": Level.TS,
    "TOP SECRET": Level.TS,
}
_CLEARANCE_ABBREV = {Level.U: "U", Level.C: "C", Level.S: "S", Level.TS: "TS"}

#: Dissemination grants a subject may hold (MARKINGS.md section 4; ``DSEN`` is DEA SENSITIVE).
GRANTS = frozenset({"ORCON", "ORCON-USGOV", "IMCON", "PROPIN", "FISA", "CUI", "DSEN"})
#: Atomic energy accesses (7.4) besides ``SIGMA-<n>``: Restricted Data, CNWDI, DOD and DOE UCNI.
AEA_GRANTS = frozenset({"RD", "CNWDI", "DCNI", "UCNI"})
#: Non-IC dissemination controls a subject may be granted (the NOFORN forms are the same
#: grants: their data also needs US citizenship).
NONIC_GRANTS = frozenset(c for c in NONIC_ORDER if not c.endswith(" NOFORN"))

#: The rules a grant must keep (7.4, and the marking rules they mirror): id -> what it says.
GRANT_RULES: dict[str, str] = {
    "nato-citizenship": "NATO briefings are only for citizens of a country in NATO-MEMBERS",
    "nato-clearance": "a NATO briefing needs the US clearance of its level",
    "nato-controls": "ATOMAL needs a CTS, NS or NC briefing, and BOHEMIA and BALK a CTS one",
    "rd-requires-confidential": "Restricted Data access needs a CONFIDENTIAL clearance or higher",
    "cnwdi-requires-rd": "CNWDI access needs Restricted Data access and a SECRET clearance",
    "sigma-requires-parent": "SIGMA access needs Restricted Data access",
    "sigma-level": "SIGMA access needs a SECRET or TOP SECRET clearance",
    "sigma-range": "a SIGMA number is an integer from 1 to 99 without a leading zero",
    "sap-multiple": "SAR-MULTIPLE stands for programs nobody resolved and is never granted",
    "sap-nickname": "a SAP nickname is granted as its registered PID",
    "accm-registered": "an ACCM nickname is granted only once it is registered",
    "accm-classified": "ACCM access needs a CONFIDENTIAL clearance or higher",
    "nonic-known": "a non-IC dissemination grant is LIMDIS, EXDIS, NODIS, SBU, LES, SSI or a "
    "registered foreign control",
    "aea-known": "an atomic energy access is RD, CNWDI, SIGMA-<n>, DCNI or UCNI",
    "nato-known": "a NATO briefing is CTS, NS, NC, NR or NU, and a special one ATOMAL, BOHEMIA "
    "or BALK",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_SAP = re.compile(r"^(?:SAR-[A-Z0-9][A-Z0-9-]*|HVSACO)$")
_SIGMA = re.compile(r"^SIGMA-([1-9][0-9]?)$")
_NATO_ORDER = tuple(NATO_LEVELS)  # NU, NR, NC, NS, CTS: lowest first
_SCI = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+(?: [A-Z0-9]+)?)?$")


class SubjectKind(StrEnum):
    USER = "user"
    SERVICE = "service"
    SYSTEM = "system"


class Role(StrEnum):
    """Roles grant actions (see :mod:`garrison.security.policy`); markings grant reads."""

    ADMIN = "admin"
    STEWARD = "steward"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    EVALUATOR = "evaluator"
    VIEWER = "viewer"


def parse_clearance(text: str) -> Level:
    """``TS``, ``top secret``, ``S``... -> :class:`Level`; anything else is invalid input."""
    key = " ".join(text.upper().split())
    try:
        return CLEARANCES[key]
    except KeyError:
        raise InvalidInput(f"Unknown clearance {text!r}: use one of U, C, S or TS.") from None


def sci_prefixes(control: str) -> tuple[str, ...]:
    """``SI-G ABCD`` -> (``SI``, ``SI-G``, ``SI-G ABCD``): a read-in implies its prefixes."""
    system, _, rest = control.partition("-")
    out = [system]
    if rest:
        compartment, _, sub = rest.partition(" ")
        out.append(f"{system}-{compartment}")
        if sub:
            out.append(control)
    return tuple(out)


def nato_levels_granted(briefing: str | None) -> tuple[str, ...]:
    """``NS`` -> (``NU``, ``NR``, ``NC``, ``NS``): a NATO briefing grants the levels below it."""
    if briefing not in _NATO_ORDER:
        return ()  # no briefing, or an unknown one: nothing (validate refuses the latter)
    return _NATO_ORDER[: _NATO_ORDER.index(briefing) + 1]


#: Spellings read on input for the canonical attribute values (kind -> spelling -> value).
_ALIASES: dict[str, dict[str, str]] = {
    "nato": {
        "COSMIC TOP SECRET": "CTS",
        "NATO SECRET": "NS",
        "NATO CONFIDENTIAL": "NC",
        "NATO RESTRICTED": "NR",
        "NATO UNCLASSIFIED": "NU",
    },
    "aea": {"RESTRICTED DATA": "RD", "DOD UCNI": "DCNI", "DOE UCNI": "UCNI"},
    "nonic": {
        "DS": "LIMDIS",
        "LIMITED DISTRIBUTION": "LIMDIS",
        "XD": "EXDIS",
        "EXCLUSIVE DISTRIBUTION": "EXDIS",
        "ND": "NODIS",
        "NO DISTRIBUTION": "NODIS",
    },
    "grants": {"DEA SENSITIVE": "DSEN"},
}


def canonical_value(kind: str, text: str, registry: MarkingRegistry) -> str:
    """One attribute value as entered (``--aea 'sigma 14'``) -> its stored form (``SIGMA-14``).

    ``kind`` is ``nato``, ``nato_special``, ``aea``, ``accm``, ``nonic``, ``grants`` or ``sap``;
    a SAP nickname the registry maps becomes ``SAR-<PID>``. Unknown values are left for
    :meth:`Subject.validate` to refuse.
    """
    value = " ".join(text.upper().split())
    value = _ALIASES.get(kind, {}).get(value, value)
    if kind == "aea" and value.startswith("SIGMA "):
        value = "SIGMA-" + value[6:]
    elif kind == "accm":
        value = value.removeprefix("ACCM-")
    elif kind == "sap":
        if value.startswith("SPECIAL ACCESS REQUIRED-"):
            value = "SAR-" + value.removeprefix("SPECIAL ACCESS REQUIRED-")
        if value.startswith("SAR-"):
            value = "SAR-" + registry.sap_pid(value[4:])
    return value


def _refuse(rule: str, detail: str) -> InvalidInput:
    return InvalidInput(f"Grant refused by rule {rule}: {detail}.")


@dataclass(frozen=True)
class Subject:
    """Who is acting. Immutable; changes go through the catalog and are audited."""

    name: str
    clearance: Level
    kind: SubjectKind = SubjectKind.USER
    sci: frozenset[str] = frozenset()
    sap: frozenset[str] = frozenset()
    citizenship: str = "USA"
    groups: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    roles: frozenset[Role] = frozenset()
    dn: str | None = None
    disabled: bool = False
    #: NATO briefing level (``CTS``, ``NS``, ``NC``, ``NR``, ``NU``) or None.
    nato: str | None = None
    #: NATO special briefings: ``ATOMAL``, ``BOHEMIA``, ``BALK``.
    nato_special: frozenset[str] = frozenset()
    #: Atomic energy accesses: ``RD``, ``CNWDI``, ``SIGMA-<n>``, ``DCNI``, ``UCNI``.
    aea: frozenset[str] = frozenset()
    #: ACCM nicknames (registered).
    accm: frozenset[str] = frozenset()
    #: Non-IC dissemination grants: ``LIMDIS``, ``EXDIS``, ``NODIS``, ``SBU``, ``LES``, ``SSI``...
    nonic: frozenset[str] = frozenset()
    _tokens: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tokens", self._compile_tokens())

    @property
    def is_system(self) -> bool:
        return self.kind is SubjectKind.SYSTEM

    @property
    def authorizations(self) -> frozenset[str]:
        """The subject's authorization tokens (see the module docstring)."""
        return self._tokens

    def _compile_tokens(self) -> frozenset[str]:
        tokens = {
            f"CLS:{_CLEARANCE_ABBREV[lvl]}" for lvl in _CLEARANCE_ABBREV if lvl <= self.clearance
        }
        for control in self.sci:
            tokens.update(f"SCI:{p}" for p in sci_prefixes(control))
        tokens.update(f"SAP:{s.removeprefix('SAR-')}" for s in self.sap)
        tokens.add(f"CTRY:{self.citizenship}")
        tokens.update(f"CTRY:{g}" for g in self.groups)
        tokens.update(f"DISSEM:{g}" for g in self.grants)
        tokens.update(f"NATO:{lvl}" for lvl in nato_levels_granted(self.nato))
        tokens.update(f"NATO:{c}" for c in self.nato_special)
        tokens.update(f"AEA:{a}" for a in self.aea)
        tokens.update(f"ACCM:{nick}" for nick in self.accm)
        tokens.update(f"NONIC:{c}" for c in self.nonic)
        return frozenset(tokens)

    def has_role(self, role: Role) -> bool:
        return self.is_system or role in self.roles

    def to_dict(self) -> dict[str, object]:
        """JSON-safe description, including the derived authorization tokens."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "clearance": _CLEARANCE_ABBREV.get(self.clearance, self.clearance.name),
            "sci": sorted(self.sci),
            "sap": sorted(self.sap),
            "citizenship": self.citizenship,
            "groups": sorted(self.groups),
            "grants": sorted(self.grants),
            "roles": sorted(r.value for r in self.roles),
            "nato": self.nato,
            "nato_special": sorted(self.nato_special),
            "aea": sorted(self.aea),
            "accm": sorted(self.accm),
            "nonic": sorted(self.nonic),
            "dn": self.dn,
            "disabled": self.disabled,
            "authorizations": sorted(self.authorizations),
        }

    def validate(self, registry: MarkingRegistry) -> None:
        """Check every attribute against the rules and the registry; raise InvalidInput."""
        if self.name.lower() in RESERVED_NAMES:
            raise InvalidInput(
                f"The name {self.name!r} is reserved ("
                f"{', '.join(sorted(RESERVED_NAMES))}); choose another name."
            )
        if not _NAME.match(self.name):
            raise InvalidInput(
                f"Invalid subject name {self.name!r}: use letters, digits, '.', '_', '@' or '-'."
            )
        if self.clearance == Level.CUI:
            raise InvalidInput("CUI is not a clearance: use U, C, S or TS.")
        if self.sci and self.clearance < Level.TS:
            raise InvalidInput(
                f"SCI read-ins ({', '.join(sorted(self.sci))}) can only be given to a subject "
                "cleared TOP SECRET."
            )
        for control in self.sci:
            system = control.split("-", 1)[0]
            if not _SCI.match(control) or system not in registry.sci_systems:
                raise InvalidInput(
                    f"Unknown SCI control {control!r}: register the control system with "
                    "`garrison registry add sci NAME` first."
                )
        for sap in self.sap:
            if sap in ("SAR-MULTIPLE", "SAR-MULTIPLE PROGRAMS"):
                # SAP:MULTIPLE is the term of an unresolved SAR-MULTIPLE PROGRAMS banner.
                raise _refuse("sap-multiple", GRANT_RULES["sap-multiple"])
            if sap.removeprefix("SAR-") in dict(registry.sap_nicknames):
                raise _refuse("sap-nickname", f"grant {sap} as SAR-{registry.sap_pid(sap[4:])}")
            if not _SAP.match(sap) or sap == "SAR-HVSACO":
                raise InvalidInput(
                    f"Invalid SAP access {sap!r}: write it as SAR-<identifier>, SAR-<registered "
                    "nickname> or HVSACO."
                )
        if self.citizenship not in registry.countries:
            raise InvalidInput(
                f"Unknown citizenship {self.citizenship!r}: use an ISO 3166-1 alpha-3 code."
            )
        groups = registry.group_map()
        for group in self.groups:
            if group not in groups or groups[group] is not None:
                raise InvalidInput(
                    f"Unknown group {group!r}: only opaque tetragraphs such as NATO are held as "
                    "memberships (FVEY, ACGU and TEYE follow from citizenship)."
                )
        unknown = self.grants - GRANTS
        if unknown:
            raise InvalidInput(
                f"Unknown dissemination grant(s) {', '.join(sorted(unknown))}: "
                f"use {', '.join(sorted(GRANTS))}."
            )
        self._validate_register(registry)

    def _validate_register(self, registry: MarkingRegistry) -> None:
        """The grant rules of MARKINGS.md section 7.4 (see :data:`GRANT_RULES`)."""
        known_level = self.nato is None or self.nato in NATO_LEVELS
        if not known_level or not self.nato_special <= set(NATO_CONTROLS):
            raise _refuse("nato-known", GRANT_RULES["nato-known"])
        if (self.nato or self.nato_special) and self.citizenship not in registry.nato_members:
            raise _refuse(
                "nato-citizenship",
                f"{self.citizenship} is not in the registry group {NATO_MEMBERS}",
            )
        if self.nato and NATO_LEVELS[self.nato] > self.clearance:
            raise _refuse(
                "nato-clearance",
                f"{self.nato} needs a clearance of "
                f"{_CLEARANCE_ABBREV[NATO_LEVELS[self.nato]]} or higher",
            )
        if "ATOMAL" in self.nato_special and self.nato not in ("CTS", "NS", "NC"):
            raise _refuse("nato-controls", "ATOMAL needs a CTS, NS or NC briefing")
        if self.nato_special & {"BOHEMIA", "BALK"} and self.nato != "CTS":
            raise _refuse("nato-controls", "BOHEMIA and BALK need a CTS briefing")
        sigmas = {a for a in self.aea if a.startswith("SIGMA-")}
        if not (self.aea - sigmas) <= AEA_GRANTS:
            raise _refuse("aea-known", GRANT_RULES["aea-known"])
        for sigma in sigmas:
            if not _SIGMA.match(sigma):
                raise _refuse("sigma-range", f"{sigma!r}: {GRANT_RULES['sigma-range']}")
        if "RD" in self.aea and self.clearance < Level.C:
            raise _refuse("rd-requires-confidential", GRANT_RULES["rd-requires-confidential"])
        if "CNWDI" in self.aea and ("RD" not in self.aea or self.clearance < Level.S):
            raise _refuse("cnwdi-requires-rd", GRANT_RULES["cnwdi-requires-rd"])
        if sigmas and "RD" not in self.aea:
            raise _refuse("sigma-requires-parent", GRANT_RULES["sigma-requires-parent"])
        if sigmas and self.clearance < Level.S:
            raise _refuse("sigma-level", GRANT_RULES["sigma-level"])
        unregistered = sorted(self.accm - registry.accm)
        if unregistered:
            raise _refuse(
                "accm-registered",
                f"register {', '.join(unregistered)} with `garrison registry add accm NAME` first",
            )
        if self.accm and self.clearance < Level.C:
            raise _refuse("accm-classified", GRANT_RULES["accm-classified"])
        unknown = sorted(self.nonic - NONIC_GRANTS - registry.nonic_controls)
        if unknown:
            raise _refuse("nonic-known", f"{', '.join(unknown)}: {GRANT_RULES['nonic-known']}")

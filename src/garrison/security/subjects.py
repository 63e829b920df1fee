"""Subjects -- the people and services that act -- and the authorization tokens they hold.

A subject's clearance, SCI read-ins, SAP accesses, citizenship, group memberships and
dissemination grants compile to a set of tokens in the same vocabulary that markings compile to
(see :func:`garrison.security.markings.access_expression`), so a single access-expression
evaluator decides every read:

======================  ====================================================
subject attribute       tokens
======================  ====================================================
clearance TS            ``CLS:U``, ``CLS:C``, ``CLS:S``, ``CLS:TS``
read-in ``SI-G ABCD``   ``SCI:SI``, ``SCI:SI-G``, ``SCI:SI-G ABCD`` (prefix-closed)
SAP ``SAR-BP``          ``SAP:BP`` (the program identifier)
citizenship ``GBR``     ``CTRY:GBR``
group ``NATO``          ``CTRY:NATO`` (opaque tetragraphs only; FVEY & co. are expanded
                        in expressions instead)
grant ``ORCON``         ``DISSEM:ORCON`` (also ``IMCON``, ``PROPIN``, ``FISA``, ``CUI``...)
======================  ====================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from garrison.core.errors import InvalidInput
from garrison.security.markings import Level, MarkingRegistry

__all__ = [
    "ANONYMOUS_SUBJECT_NAME",
    "CLEARANCES",
    "GRANTS",
    "RESERVED_NAMES",
    "SYSTEM_SUBJECT_NAME",
    "Role",
    "Subject",
    "SubjectKind",
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

#: Dissemination grants a subject may hold (MARKINGS.md section 4).
GRANTS = frozenset({"ORCON", "ORCON-USGOV", "IMCON", "PROPIN", "FISA", "CUI"})

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_SAP = re.compile(r"^SAR-[A-Z0-9][A-Z0-9-]*$")
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
            if not _SAP.match(sap):
                raise InvalidInput(f"Invalid SAP access {sap!r}: write it as SAR-<identifier>.")
            if sap == "SAR-MULTIPLE":
                # SAP:MULTIPLE is the term of an unresolved SAR-MULTIPLE PROGRAMS banner.
                raise InvalidInput("SAR-MULTIPLE is not a program and cannot be granted.")
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

"""The marking registry: which SCI systems, SAP ids, countries, groups and CUI categories exist.

A registry is immutable data. The built-in one holds what MARKINGS.md section 1 lists; a
workspace extends it with :meth:`MarkingRegistry.with_additions` and stores it with
:meth:`MarkingRegistry.to_dict`. Parsing consults the registry so that a token nobody registered
is an error (fail closed) rather than something silently ignored.

Section 7 adds: SAP nicknames and the program identifiers (PIDs) they stand for (the parser
writes the PID), ACCM nicknames a site grants, foreign dissemination controls a site accepts
(written in the NONIC category), owner trigraphs beyond ISO 3166 (accepted as non-US owners and
FGI sources), and ``NATO-MEMBERS``, the countries whose citizens may hold NATO briefings
(7.4). ``NATO-MEMBERS`` is no release code: REL TO names the opaque ``NATO``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from garrison.security.markings._countries import ISO_3166_ALPHA3
from garrison.security.markings._rules import fail

__all__ = [
    "BUILTIN_GROUPS",
    "BUILTIN_REGISTRY",
    "CUI_CONTROLS",
    "NATO_MEMBERS",
    "NATO_MEMBERS_2024",
    "GroupDefs",
    "MarkingRegistry",
]

#: Group definitions as stored on markings and registries: sorted ``(name, members)`` pairs;
#: ``members`` is ``None`` for an opaque code (``NATO``) that only matches itself.
GroupDefs = tuple[tuple[str, frozenset[str] | None], ...]

#: Country groups of MARKINGS.md section 3, and the opaque tetragraphs of section 1.
BUILTIN_GROUPS: dict[str, frozenset[str] | None] = {
    "FVEY": frozenset({"AUS", "CAN", "GBR", "NZL", "USA"}),
    "ACGU": frozenset({"AUS", "CAN", "GBR", "USA"}),
    "TEYE": frozenset({"AUS", "GBR", "USA"}),
    "NATO": None,
    "ISAF": None,
}

#: CUI limited-dissemination controls that exist only for CUI (kept in ``Marking.cui``).
CUI_CONTROLS: tuple[str, ...] = ("FED ONLY", "FEDCON", "NOCON", "DL ONLY")

#: The registry group naming the countries whose citizens may be given NATO briefings.
NATO_MEMBERS = "NATO-MEMBERS"
#: The members of NATO as of 2024 (Finland joined in 2023, Sweden in 2024): what a new
#: workspace's ``NATO-MEMBERS`` holds until the site edits it.
NATO_MEMBERS_2024: frozenset[str] = frozenset(
    {
        "ALB", "BEL", "BGR", "CAN", "CZE", "DEU", "DNK", "ESP", "EST", "FIN", "FRA", "GBR", "GRC",
        "HRV", "HUN", "ISL", "ITA", "LTU", "LUX", "LVA", "MKD", "MNE", "NLD", "NOR", "POL", "PRT",
        "ROU", "SVK", "SVN", "SWE", "TUR", "USA",
    }
)  # fmt: skip

_BUILTIN_SCI = frozenset({"SI", "TK", "HCS", "KDK", "RSV"})
_BUILTIN_CUI = frozenset({"SP-PRVCY", "SP-EXPT", "PRVCY", "EXPT", "PROPIN", "LEI", "OPSEC"})

_SCI_SYSTEM = re.compile(r"[A-Z][A-Z0-9]*")
_SAP_ID = re.compile(r"[A-Z0-9][A-Z0-9-]*")
_TRIGRAPH = re.compile(r"[A-Z]{3}")
_TETRAGRAPH = re.compile(r"[A-Z][A-Z0-9]{3,15}")
_CUI_CATEGORY = re.compile(r"(SP-)?[A-Z][A-Z0-9]*(-[A-Z0-9]+)*")
_NICKNAME = re.compile(r"[A-Z0-9][A-Z0-9-]*( [A-Z0-9][A-Z0-9-]*)*")
_NONIC = re.compile(r"[A-Z]{3}|[A-Z][A-Z0-9]{3,15}")
#: Section 7 words a site may not register as a nickname, control or owner.
_REGISTER_WORDS = frozenset(
    {
        "HVSACO", "MULTIPLE", "MULTIPLE PROGRAMS", "WAIVED", "DSEN", "DEA SENSITIVE", "ATOMAL",
        "BOHEMIA", "BALK", "COMINT", "RD", "FRD", "TFNI", "CNWDI", "DCNI", "UCNI", "ACCM",
        "LIMDIS", "EXDIS", "NODIS", "SBU", "LES", "SSI", "NATO", "NATO-MEMBERS",
    }
)  # fmt: skip
# Names a site may not reuse: they already mean something in a marking line.
_RESERVED = frozenset(
    {
        "U", "C", "S", "TS", "CUI", "FOUO", "ORCON", "OC", "ORCON-USGOV", "OC-USGOV", "IMCON",
        "IMC", "NOFORN", "NF", "PR", "RELIDO", "FISA", "REL", "USA", "JOINT", "FGI", "COSMIC",
        *CUI_CONTROLS,
    }
)  # fmt: skip


@dataclass(frozen=True)
class MarkingRegistry:
    """Known marking tokens. Immutable; extend with :meth:`with_additions`.

    ``sap_ids`` is informational: any ``SAR-`` identifier of upper-case letters, digits and
    hyphens is accepted (a SAP only makes data harder to reach), but a workspace may list its
    programs here for display and review. ``sap_nicknames`` maps a program's nickname to its
    PID (sorted pairs); ``accm`` are the ACCM nicknames a site may grant; ``nonic_controls`` the
    foreign dissemination controls it accepts; ``owners`` owner trigraphs beyond ISO 3166;
    ``nato_members`` the ``NATO-MEMBERS`` group (empty: no NATO briefing can be given).
    """

    sci_systems: frozenset[str]
    sap_ids: frozenset[str]
    countries: frozenset[str]
    groups: GroupDefs
    cui_categories: frozenset[str]
    sap_nicknames: tuple[tuple[str, str], ...] = ()
    accm: frozenset[str] = frozenset()
    nonic_controls: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    nato_members: frozenset[str] = frozenset()

    # -- queries -------------------------------------------------------------------------------

    def group_map(self) -> dict[str, frozenset[str] | None]:
        """Return ``{group: members or None}`` for every registered group and opaque code."""
        return dict(self.groups)

    def is_release_code(self, code: str) -> bool:
        """Return whether ``code`` may appear in a REL TO or DISPLAY ONLY list."""
        return code in self.countries or code in self.group_map()

    def is_owner(self, code: str) -> bool:
        """Return whether ``code`` may own non-US information: an ISO or registered trigraph."""
        return code != "USA" and (code in self.countries or code in self.owners)

    def is_fgi_source(self, code: str) -> bool:
        """Return whether ``code`` may appear in an FGI list (a country, group or owner)."""
        return self.is_release_code(code) or code in self.owners

    def sap_pid(self, name: str) -> str:
        """The PID a SAP nickname stands for; an unmapped identifier stands for itself."""
        return dict(self.sap_nicknames).get(name, name)

    # -- extension -----------------------------------------------------------------------------

    def with_additions(
        self,
        *,
        sci_systems: Iterable[str] = (),
        sap_ids: Iterable[str] = (),
        groups: Mapping[str, Iterable[str] | None] | None = None,
        cui_categories: Iterable[str] = (),
        sap_nicknames: Mapping[str, str] | None = None,
        accm: Iterable[str] = (),
        nonic_controls: Iterable[str] = (),
        owners: Iterable[str] = (),
        nato_members: Iterable[str] | None = None,
    ) -> MarkingRegistry:
        """Return a new registry with site additions; this one is unchanged.

        ``groups`` maps a tetragraph to its member trigraphs, or to ``None`` for an opaque code
        that only matches itself (like ``NATO``). Built-in names cannot be redefined: a marking
        stored under one meaning must not silently change meaning. ``sap_nicknames`` maps a
        nickname to its PID; ``nato_members``, when given, replaces the ``NATO-MEMBERS`` group
        (ISO trigraphs). Raises :class:`MarkingError` (rule ``invalid-registry``) for a
        malformed or clashing addition.
        """
        new_sci = set(self.sci_systems)
        for name in sci_systems:
            _check_name(name, _SCI_SYSTEM, "SCI control system")
            new_sci.add(name)
        new_sap = set(self.sap_ids)
        for sap in sap_ids:
            _check_name(sap, _SAP_ID, "SAP identifier")
            new_sap.add(sap)
        new_groups = self.group_map()
        for name, members in (groups or {}).items():
            _check_name(name, _TETRAGRAPH, "country group")
            frozen = None if members is None else frozenset(members)
            if frozen is not None:
                unknown = sorted(m for m in frozen if m not in self.countries)
                if unknown or not frozen:
                    fail(
                        "invalid-registry",
                        detail=f"group {name} must list known country trigraphs, not {unknown}",
                    )
            if name in new_groups and new_groups[name] != frozen:
                fail("invalid-registry", detail=f"group {name} is already defined differently")
            new_groups[name] = frozen
        new_cui = set(self.cui_categories)
        for cat in cui_categories:
            _check_name(cat, _CUI_CATEGORY, "CUI category")
            new_cui.add(cat)
        new_nicknames = dict(self.sap_nicknames)
        for nick, pid in (sap_nicknames or {}).items():
            _check_name(nick, _NICKNAME, "SAP nickname", words=True)
            _check_name(pid, _SAP_ID, "SAP program identifier", words=True)
            if new_nicknames.get(nick, pid) != pid:
                fail("invalid-registry", detail=f"SAP nickname {nick} already stands for a PID")
            new_nicknames[nick] = pid
        pids = set(new_nicknames.values()) | {sap.removeprefix("SAR-") for sap in new_sap}
        if set(new_nicknames) & pids:
            fail("invalid-registry", detail="a SAP nickname must differ from every PID")
        new_accm = set(self.accm)
        for nick in accm:
            _check_name(nick, _NICKNAME, "ACCM nickname", words=True)
            new_accm.add(nick)
        new_nonic = set(self.nonic_controls)
        for control in nonic_controls:
            _check_name(control, _NONIC, "dissemination control", words=True)
            if control in self.countries:
                fail("invalid-registry", detail=f"{control} is a country trigraph")
            new_nonic.add(control)
        new_owners = set(self.owners)
        for owner in owners:
            _check_name(owner, _TRIGRAPH, "owner trigraph", words=True)
            if owner in self.countries:
                fail("invalid-registry", detail=f"{owner} is already an ISO 3166 country")
            new_owners.add(owner)
        members = self.nato_members
        if nato_members is not None:
            members = frozenset(nato_members)
            unknown = sorted(m for m in members if m not in self.countries)
            if unknown:
                fail(
                    "invalid-registry",
                    detail=f"{NATO_MEMBERS} must list ISO country trigraphs, not {unknown}",
                )
        names = [new_sci, new_cui, set(new_groups), new_nonic]
        clash = {n for i, a in enumerate(names) for b in names[i + 1 :] for n in a & b}
        if clash:
            fail("invalid-registry", detail=f"{sorted(clash)} would name two kinds of token")
        return MarkingRegistry(
            sci_systems=frozenset(new_sci),
            sap_ids=frozenset(new_sap),
            countries=self.countries,
            groups=tuple(sorted(new_groups.items())),
            cui_categories=frozenset(new_cui),
            sap_nicknames=tuple(sorted(new_nicknames.items())),
            accm=frozenset(new_accm),
            nonic_controls=frozenset(new_nonic),
            owners=frozenset(new_owners),
            nato_members=members,
        )

    # -- storage -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe form of the site additions (the built-ins are implied)."""
        builtin = BUILTIN_REGISTRY
        return {
            "version": 2,
            "sci_systems": sorted(self.sci_systems - builtin.sci_systems),
            "sap_ids": sorted(self.sap_ids - builtin.sap_ids),
            "groups": {
                name: None if members is None else sorted(members)
                for name, members in self.groups
                if name not in BUILTIN_GROUPS
            },
            "cui_categories": sorted(self.cui_categories - builtin.cui_categories),
            "sap_nicknames": dict(self.sap_nicknames),
            "accm": sorted(self.accm),
            "nonic_controls": sorted(self.nonic_controls),
            "owners": sorted(self.owners),
            "nato_members": sorted(self.nato_members),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkingRegistry:
        """Rebuild a registry stored with :meth:`to_dict` (built-ins plus the stored additions).

        Version 1 (before section 7) has no nicknames, controls, owners or NATO members.
        """
        expected = {"version", "sci_systems", "sap_ids", "groups", "cui_categories"}
        lists = ["sci_systems", "sap_ids", "cui_categories"]
        version = data.get("version") if isinstance(data, Mapping) else None
        if version == 2:
            lists += ["accm", "nonic_controls", "owners", "nato_members"]
            expected |= {"sap_nicknames", *lists}
        if not isinstance(data, Mapping) or set(data) != expected or version not in (1, 2):
            fail(
                "invalid-registry",
                detail=f"a stored registry has exactly the keys {sorted(expected)}",
            )
        groups = data["groups"]
        nicknames = data.get("sap_nicknames", {})
        if not isinstance(groups, Mapping) or not isinstance(nicknames, Mapping):
            fail("invalid-registry", detail="groups and sap_nicknames must be mappings")
        for key in lists:
            if not isinstance(data[key], list) or not all(isinstance(v, str) for v in data[key]):
                fail("invalid-registry", detail=f"{key} must be a list of strings")
        return BUILTIN_REGISTRY.with_additions(
            sci_systems=data["sci_systems"],
            sap_ids=data["sap_ids"],
            groups=groups,
            cui_categories=data["cui_categories"],
            sap_nicknames=nicknames,
            accm=data.get("accm", ()),
            nonic_controls=data.get("nonic_controls", ()),
            owners=data.get("owners", ()),
            nato_members=data.get("nato_members", ()),
        )


def _check_name(name: object, pattern: re.Pattern[str], what: str, *, words: bool = False) -> None:
    if (
        not isinstance(name, str)
        or len(name) > 64
        or not pattern.fullmatch(name)
        or name in _RESERVED
        or (words and name in _REGISTER_WORDS)
    ):
        fail("invalid-registry", detail=f"{name!r} is not a valid {what} name")


#: The registry of MARKINGS.md section 1, before any site additions.
BUILTIN_REGISTRY = MarkingRegistry(
    sci_systems=_BUILTIN_SCI,
    sap_ids=frozenset(),
    countries=ISO_3166_ALPHA3,
    groups=tuple(sorted(BUILTIN_GROUPS.items())),
    cui_categories=_BUILTIN_CUI,
)

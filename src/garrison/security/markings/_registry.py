"""The marking registry: which SCI systems, SAP ids, countries, groups and CUI categories exist.

A registry is immutable data. The built-in one holds what MARKINGS.md section 1 lists; a
workspace extends it with :meth:`MarkingRegistry.with_additions` and stores it with
:meth:`MarkingRegistry.to_dict`. Parsing consults the registry so that a token nobody registered
is an error (fail closed) rather than something silently ignored.
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

_BUILTIN_SCI = frozenset({"SI", "TK", "HCS", "KDK", "RSV"})
_BUILTIN_CUI = frozenset({"SP-PRVCY", "SP-EXPT", "PRVCY", "EXPT", "PROPIN", "LEI", "OPSEC"})

_SCI_SYSTEM = re.compile(r"[A-Z][A-Z0-9]*")
_SAP_ID = re.compile(r"[A-Z0-9][A-Z0-9-]*")
_TRIGRAPH = re.compile(r"[A-Z]{3}")
_TETRAGRAPH = re.compile(r"[A-Z][A-Z0-9]{3,15}")
_CUI_CATEGORY = re.compile(r"(SP-)?[A-Z][A-Z0-9]*(-[A-Z0-9]+)*")
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
    programs here for display and review.
    """

    sci_systems: frozenset[str]
    sap_ids: frozenset[str]
    countries: frozenset[str]
    groups: GroupDefs
    cui_categories: frozenset[str]

    # -- queries -------------------------------------------------------------------------------

    def group_map(self) -> dict[str, frozenset[str] | None]:
        """Return ``{group: members or None}`` for every registered group and opaque code."""
        return dict(self.groups)

    def is_release_code(self, code: str) -> bool:
        """Return whether ``code`` may appear in a REL TO or DISPLAY ONLY list."""
        return code in self.countries or code in self.group_map()

    # -- extension -----------------------------------------------------------------------------

    def with_additions(
        self,
        *,
        sci_systems: Iterable[str] = (),
        sap_ids: Iterable[str] = (),
        groups: Mapping[str, Iterable[str] | None] | None = None,
        cui_categories: Iterable[str] = (),
    ) -> MarkingRegistry:
        """Return a new registry with site additions; this one is unchanged.

        ``groups`` maps a tetragraph to its member trigraphs, or to ``None`` for an opaque code
        that only matches itself (like ``NATO``). Built-in names cannot be redefined: a marking
        stored under one meaning must not silently change meaning. Raises :class:`MarkingError`
        (rule ``invalid-registry``) for a malformed or clashing addition.
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
        clash = (new_sci & new_cui) | (new_sci & set(new_groups)) | (new_cui & set(new_groups))
        if clash:
            fail("invalid-registry", detail=f"{sorted(clash)} would name two kinds of token")
        return MarkingRegistry(
            sci_systems=frozenset(new_sci),
            sap_ids=frozenset(new_sap),
            countries=self.countries,
            groups=tuple(sorted(new_groups.items())),
            cui_categories=frozenset(new_cui),
        )

    # -- storage -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe form of the site additions (the built-ins are implied)."""
        builtin = BUILTIN_REGISTRY
        return {
            "version": 1,
            "sci_systems": sorted(self.sci_systems - builtin.sci_systems),
            "sap_ids": sorted(self.sap_ids - builtin.sap_ids),
            "groups": {
                name: None if members is None else sorted(members)
                for name, members in self.groups
                if name not in BUILTIN_GROUPS
            },
            "cui_categories": sorted(self.cui_categories - builtin.cui_categories),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkingRegistry:
        """Rebuild a registry stored with :meth:`to_dict` (built-ins plus the stored additions)."""
        expected = {"version", "sci_systems", "sap_ids", "groups", "cui_categories"}
        if not isinstance(data, Mapping) or set(data) != expected or data["version"] != 1:
            fail(
                "invalid-registry",
                detail=f"a stored registry has exactly the keys {sorted(expected)}",
            )
        groups = data["groups"]
        if not isinstance(groups, Mapping):
            fail("invalid-registry", detail="groups must be a mapping")
        for key in ("sci_systems", "sap_ids", "cui_categories"):
            if not isinstance(data[key], list) or not all(isinstance(v, str) for v in data[key]):
                fail("invalid-registry", detail=f"{key} must be a list of strings")
        return BUILTIN_REGISTRY.with_additions(
            sci_systems=data["sci_systems"],
            sap_ids=data["sap_ids"],
            groups=groups,
            cui_categories=data["cui_categories"],
        )


def _check_name(name: object, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(name, str) or not pattern.fullmatch(name) or name in _RESERVED:
        fail("invalid-registry", detail=f"{name!r} is not a valid {what} name")


#: The registry of MARKINGS.md section 1, before any site additions.
BUILTIN_REGISTRY = MarkingRegistry(
    sci_systems=_BUILTIN_SCI,
    sap_ids=frozenset(),
    countries=ISO_3166_ALPHA3,
    groups=tuple(sorted(BUILTIN_GROUPS.items())),
    cui_categories=_BUILTIN_CUI,
)

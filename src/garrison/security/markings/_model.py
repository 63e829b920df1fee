"""The structured marking: :class:`Marking`, validated and canonical from construction on.

Equality is semantic (MARKINGS.md section 3, "Dominance"): release lists compare with groups
expanded, so ``REL TO USA, FVEY`` equals ``REL TO USA, AUS, CAN, GBR, NZL`` although the two are
written differently. :meth:`Marking.identical` compares the written form as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from garrison.security.markings._format import (
    format_marking,
    order_cui_categories,
    order_release_list,
)
from garrison.security.markings._level import Level
from garrison.security.markings._registry import (
    BUILTIN_GROUPS,
    BUILTIN_REGISTRY,
    CUI_CONTROLS,
    GroupDefs,
    MarkingRegistry,
)
from garrison.security.markings._release import ReleaseParts, combine_release, expand
from garrison.security.markings._rules import fail
from garrison.security.markings._sci import reduce_sci, split_path, token_key

__all__ = ["CUI_MARKER", "DISSEM_FLAGS", "Marking"]

#: Dissemination flags in canonical order, with their banner spellings.
DISSEM_FLAGS: dict[str, str] = {
    "fouo": "FOUO",
    "orcon": "ORCON",
    "orcon_usgov": "ORCON-USGOV",
    "imcon": "IMCON",
    "noforn": "NOFORN",
    "propin": "PROPIN",
    "relido": "RELIDO",
    "fisa": "FISA",
}

#: In a classified marking's ``cui`` attribute, the bare ``CUI`` of a ``(CUI)`` part without
#: categories: the join must not forget that CUI went into it (the CUI grant is still needed).
CUI_MARKER = "CUI"

_SAP_ID = re.compile(r"[A-Z0-9][A-Z0-9-]*")
_CODE = re.compile(r"[A-Z]{3}|[A-Z][A-Z0-9]{3,15}")
_CUI_TOKEN = re.compile(r"(SP-)?[A-Z][A-Z0-9]*(-[A-Z0-9]+)*")
_DICT_KEYS = frozenset(
    {"version", "level", "sci", "sap", "dissem", "rel_to", "display_only", "cui", "groups"}
)


@dataclass(frozen=True, eq=False)
class Marking:
    """A security marking in structured form; construction validates and canonicalizes.

    - ``sci``: most specific SCI paths (``"SI-G ABCD"``); ``sap``: program ids without ``SAR-``.
    - dissemination flags; ``orcon_usgov`` is dropped when ``orcon`` is set (ORCON supersedes).
    - ``rel_to`` / ``display_only``: country trigraphs and group tetragraphs as written back by
      the release rules (a country covered by a group in the same list becomes the group).
    - ``cui``: CUI categories and CUI-only controls (``FED ONLY``...). Kept when the level is
      classified (rule 7) but never shown in a classified banner or portion. A classified roll-up
      of a bare ``(CUI)`` keeps the marker ``"CUI"`` here, so the CUI grant is still required.
    - ``groups``: members of each group named in the lists, so that a marking means the same
      thing wherever it travels (filled from the built-in groups when not given).

    Raises :class:`~garrison.core.errors.MarkingError` naming the rule a marking breaks.
    Registry membership (unknown tokens) is checked by :func:`parse_marking` and
    :meth:`from_dict`, not here.
    """

    level: Level
    _: KW_ONLY
    sci: frozenset[str] = frozenset()
    sap: frozenset[str] = frozenset()
    fouo: bool = False
    orcon: bool = False
    orcon_usgov: bool = False
    imcon: bool = False
    noforn: bool = False
    propin: bool = False
    relido: bool = False
    fisa: bool = False
    rel_to: frozenset[str] = frozenset()
    display_only: frozenset[str] = frozenset()
    cui: frozenset[str] = frozenset()
    groups: GroupDefs = ()
    _key: tuple[Any, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.level, Level):
            fail("syntax", detail=f"level must be a Level, not {self.level!r}")
        for name in DISSEM_FLAGS:
            if not isinstance(getattr(self, name), bool):
                fail("syntax", detail=f"{name} must be a bool")
        sets: dict[str, frozenset[str]] = {}
        for name in ("sci", "sap", "rel_to", "display_only", "cui"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                fail("syntax", detail=f"{name} must be a collection of strings")
            sets[name] = frozenset(value)
        self._check_forms(sets)
        self._check_rules(sets)

        groups = {n: m for n, m in BUILTIN_GROUPS.items() if m is not None}
        groups.update((n, frozenset(m)) for n, m in self.groups if m is not None)
        release = combine_release(
            [
                ReleaseParts(
                    counted=True,
                    noforn=self.noforn,
                    relido=self.relido,
                    rel_to=sets["rel_to"],
                    display_only=sets["display_only"],
                )
            ],
            groups,
        )
        used = release.rel_to | release.display_only
        set_ = object.__setattr__  # frozen dataclass: canonicalize once, here
        set_(self, "sci", reduce_sci(sets["sci"]))
        set_(self, "sap", sets["sap"])
        set_(self, "orcon_usgov", self.orcon_usgov and not self.orcon)
        set_(self, "relido", release.relido)
        set_(self, "rel_to", release.rel_to)
        set_(self, "display_only", release.display_only)
        set_(self, "cui", _canonical_cui(sets["cui"], self.level))
        set_(self, "groups", tuple(sorted((n, m) for n, m in groups.items() if n in used)))
        flags = tuple(getattr(self, name) for name in DISSEM_FLAGS)
        rel = expand(release.rel_to, groups)
        set_(
            self,
            "_key",
            (
                self.level,
                self.sci,
                self.sap,
                flags,
                rel,
                expand(release.display_only, groups) - rel - {"USA"},
                self.cui,
            ),
        )

    def _check_forms(self, sets: dict[str, frozenset[str]]) -> None:
        for path in sets["sci"]:
            split_path(path)
        for sap in sets["sap"]:
            if not _SAP_ID.fullmatch(sap) or sap.startswith("SAR-"):
                fail("syntax", detail=f"{sap!r} is not a SAP identifier (write it without SAR-)")
        for code in sets["rel_to"] | sets["display_only"]:
            if not _CODE.fullmatch(code):
                fail("syntax", detail=f"{code!r} is not a country trigraph or tetragraph")
        for token in sets["cui"]:
            if token not in CUI_CONTROLS and not _CUI_TOKEN.fullmatch(token):
                fail("syntax", detail=f"{token!r} is not a CUI category or control")

    def _check_rules(self, sets: dict[str, frozenset[str]]) -> None:
        """Section 2 validation, one rule at a time in a fixed order."""
        level = self.level
        rel, disp = sets["rel_to"], sets["display_only"]
        if self.noforn and (rel or disp or self.relido):
            fail("noforn-with-release")
        if rel and "USA" not in rel:
            fail("rel-to-needs-usa")
        if rel and not rel - {"USA"}:
            fail("rel-to-needs-foreign")
        if disp and not disp - {"USA"}:
            fail("display-only-needs-foreign")
        if self.fouo and level != Level.U:
            fail("fouo-requires-unclassified")
        if (self.orcon or self.orcon_usgov) and not level.is_classified:
            fail("orcon-requires-classified")
        if self.propin and not level.is_classified:
            fail("propin-requires-classified")
        if sets["cui"] and level == Level.U:
            fail("unclassified-cui")
        systems = {path: split_path(path) for path in sets["sci"]}
        if systems and not level.is_classified:
            fail("sci-requires-classified")
        if sets["sap"] and not level.is_classified:
            fail("sap-requires-classified")
        for system, comp, _sub in systems.values():
            if system == "SI" and comp == "G" and not (level == Level.TS and self.orcon):
                fail("si-g-requires-ts-orcon")
            if system == "TK" and level < Level.S:
                fail("tk-requires-secret")
            if system == "HCS" and not self.noforn:
                fail("hcs-requires-noforn")

    # -- equality ------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Marking):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def identical(self, other: Marking) -> bool:
        """Equal *and* written the same way (same groups in the lists)."""
        return self == other and self.to_dict() == other.to_dict()

    # -- views ---------------------------------------------------------------------------------

    @property
    def group_members(self) -> dict[str, frozenset[str]]:
        """Members of each group named in this marking's release lists."""
        return {name: members for name, members in self.groups if members is not None}

    @property
    def cui_categories(self) -> frozenset[str]:
        """The CUI categories (``SP-PRVCY``...) of the ``cui`` attribute."""
        return frozenset(c for c in self.cui if c not in CUI_CONTROLS and c != CUI_MARKER)

    @property
    def cui_controls(self) -> frozenset[str]:
        """The CUI-only controls (``FED ONLY``, ``FEDCON``, ``NOCON``, ``DL ONLY``)."""
        return frozenset(c for c in self.cui if c in CUI_CONTROLS)

    @property
    def has_cui(self) -> bool:
        """True when the data is CUI: level CUI, or CUI kept under a classified level."""
        return self.level == Level.CUI or bool(self.cui)

    def banner(self) -> str:
        """The canonical banner line (a classified banner never shows ``cui``, rule 7)."""
        return format_marking(self, portion=False)

    def portion(self) -> str:
        """The canonical portion mark, with parentheses: ``(TS//SI-G//OC/NF)``."""
        return format_marking(self, portion=True)

    def __str__(self) -> str:
        return self.banner()

    # -- storage -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe structured form (``version`` 1); :meth:`from_dict` round-trips it exactly."""
        return {
            "version": 1,
            "level": self.level.abbreviation,
            "sci": render_sci_paths(self.sci),
            "sap": sorted(self.sap, key=token_key),
            "dissem": [banner for name, banner in DISSEM_FLAGS.items() if getattr(self, name)],
            "rel_to": order_release_list(self.rel_to),
            "display_only": order_release_list(self.display_only),
            "cui": sorted(self.cui & {CUI_MARKER})
            + order_cui_categories(self.cui_categories)
            + [c for c in CUI_CONTROLS if c in self.cui],
            "groups": {name: sorted(members) for name, members in self.group_members.items()},
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, registry: MarkingRegistry = BUILTIN_REGISTRY
    ) -> Marking:
        """Rebuild a marking stored with :meth:`to_dict`, checking its tokens against
        ``registry`` (unknown tokens and redefined groups are errors, as when parsing)."""
        if not isinstance(data, Mapping) or set(data) != _DICT_KEYS or data["version"] != 1:
            fail("syntax", detail=f"a stored marking has exactly the keys {sorted(_DICT_KEYS)}")
        level = Level.__members__.get(data["level"]) if isinstance(data["level"], str) else None
        if level is None:
            fail("syntax", detail=f"unknown level {data['level']!r}")
        lists = {}
        for key in ("sci", "sap", "dissem", "rel_to", "display_only", "cui"):
            value = data[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                fail("syntax", detail=f"{key} must be a list of strings")
            lists[key] = value
        by_banner = {banner: name for name, banner in DISSEM_FLAGS.items()}
        unknown = [d for d in lists["dissem"] if d not in by_banner]
        if unknown:
            fail("unknown-token", detail=f"unknown dissemination controls {unknown}")
        raw_groups = data["groups"]
        if not isinstance(raw_groups, Mapping) or not all(
            isinstance(v, list) and all(isinstance(c, str) for c in v) for v in raw_groups.values()
        ):
            fail("syntax", detail="groups must map names to lists of country codes")
        marking = cls(
            level,
            sci=frozenset(lists["sci"]),
            sap=frozenset(lists["sap"]),
            rel_to=frozenset(lists["rel_to"]),
            display_only=frozenset(lists["display_only"]),
            cui=frozenset(lists["cui"]),
            groups=tuple(sorted((n, frozenset(m)) for n, m in raw_groups.items())),
            **{by_banner[d]: True for d in lists["dissem"]},
        )
        check_known(marking, registry)
        return marking


def _canonical_cui(cui: frozenset[str], level: Level) -> frozenset[str]:
    """Drop the bare ``CUI`` marker where the level or another CUI token already says it."""
    if CUI_MARKER in cui and (level == Level.CUI or len(cui) > 1):
        return cui - {CUI_MARKER}
    return cui


def render_sci_paths(paths: Iterable[str]) -> list[str]:
    """Canonical order of SCI paths for storage (system, then compartment, then sub)."""
    return sorted(paths, key=lambda p: tuple(token_key(part or "") for part in split_path(p)))


def check_known(marking: Marking, registry: MarkingRegistry) -> None:
    """Fail unless every token of ``marking`` is known to ``registry`` (fail closed)."""
    for path in marking.sci:
        system = split_path(path)[0]
        if system not in registry.sci_systems:
            fail("unknown-token", detail=f"SCI control system {system} is not registered")
    registered = registry.group_map()
    for code in marking.rel_to | marking.display_only:
        if not registry.is_release_code(code):
            fail("unknown-token", detail=f"{code} is not a known country or group")
    for name, members in marking.group_members.items():
        if registered.get(name) != members:
            fail("group-conflict", detail=f"{name} is defined differently in the registry")
    for token in marking.cui_categories:
        if token not in registry.cui_categories:
            fail("unknown-token", detail=f"CUI category {token} is not registered")

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
from garrison.security.markings._register import (
    JOINT,
    NATO_CONTROLS,
    NONIC_ORDER,
    US,
    canonical_register,
    order_list,
)
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
    "dsen": "DEA SENSITIVE",
    "fisa": "FISA",
    "waived": "WAIVED",
}

#: In a classified marking's ``cui`` attribute, the bare ``CUI`` of a ``(CUI)`` part without
#: categories: the join must not forget that CUI went into it (the CUI grant is still needed).
CUI_MARKER = "CUI"

_SAP_ID = re.compile(r"[A-Z0-9][A-Z0-9-]*( [A-Z0-9][A-Z0-9-]*)*")
_CODE = re.compile(r"[A-Z]{3}|[A-Z][A-Z0-9]{3,15}")
_CUI_TOKEN = re.compile(r"(SP-)?[A-Z][A-Z0-9]*(-[A-Z0-9]+)*")
_DICT_KEYS = frozenset(
    {"version", "level", "sci", "sap", "dissem", "rel_to", "display_only", "cui", "groups"}
)
#: Section 7 attributes, stored under ``register`` only when one differs from its default.
_REGISTER_DEFAULTS: dict[str, Any] = {
    "kind": US,
    "owners": [],
    "restricted": False,
    "nato": "",
    "fgi": [],
    "concealed": False,
    "nato_controls": [],
    "aea": [],
    "sigma": [],
    "hvsaco": False,
    "sap_multiple": False,
    "nonic": [],
    "accm": [],
}


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
    dsen: bool = False
    waived: bool = False
    kind: str = US
    owners: frozenset[str] = frozenset()
    restricted: bool = False
    nato: str = ""
    fgi: frozenset[str] = frozenset()
    concealed: bool = False
    nato_controls: frozenset[str] = frozenset()
    aea: frozenset[str] = frozenset()
    sigma: frozenset[int] = frozenset()
    hvsaco: bool = False
    sap_multiple: bool = False
    nonic: frozenset[str] = frozenset()
    accm: frozenset[str] = frozenset()
    _key: tuple[Any, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.level, Level):
            fail("syntax", detail=f"level must be a Level, not {self.level!r}")
        for name in (*DISSEM_FLAGS, "restricted", "concealed", "hvsaco", "sap_multiple"):
            if not isinstance(getattr(self, name), bool):
                fail("syntax", detail=f"{name} must be a bool")
        if not isinstance(self.kind, str) or not isinstance(self.nato, str):
            fail("syntax", detail="kind and nato are strings")
        if isinstance(self.sigma, str) or not all(isinstance(n, int) for n in self.sigma):
            fail("sigma-range", detail="SIGMA numbers are integers")
        sets: dict[str, frozenset[str]] = {}
        for name in (
            "sci", "sap", "rel_to", "display_only", "cui", "owners", "fgi", "nato_controls",
            "aea", "nonic", "accm",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                fail("syntax", detail=f"{name} must be a collection of strings")
            sets[name] = frozenset(value)
        self._check_forms(sets)
        self._check_rules(sets)
        canon = canonical_register(
            level=self.level,
            kind=self.kind,
            owners=sets["owners"],
            restricted=self.restricted,
            nato=self.nato,
            fgi=sets["fgi"],
            concealed=self.concealed,
            nato_controls=sets["nato_controls"],
            aea=sets["aea"],
            sigma=frozenset(self.sigma),
            hvsaco=self.hvsaco,
            sap=sets["sap"],
            sap_multiple=self.sap_multiple,
            waived=self.waived,
            dsen=self.dsen,
            nonic=sets["nonic"],
            accm=sets["accm"],
            noforn=self.noforn,
            fouo=self.fouo,
            has_release=bool(sets["rel_to"] or sets["display_only"]),
            relido=self.relido,
        )

        groups = {n: m for n, m in BUILTIN_GROUPS.items() if m is not None}
        groups.update((n, frozenset(m)) for n, m in self.groups if m is not None)
        release = combine_release(
            [
                ReleaseParts(
                    counted=True,
                    noforn=canon.noforn,
                    relido=self.relido,
                    rel_to=sets["rel_to"],
                    display_only=sets["display_only"],
                )
            ],
            groups,
        )
        used = release.rel_to | release.display_only
        if self.kind == JOINT:
            co_owners = sets["owners"] - {"USA"}
            if (
                canon.noforn
                or not co_owners <= expand(release.rel_to, groups)
                or any(split_path(p)[0] == "HCS" for p in sets["sci"])
            ):
                fail("joint-needs-relto")
        set_ = object.__setattr__  # frozen dataclass: canonicalize once, here
        set_(self, "noforn", canon.noforn)
        set_(self, "fouo", canon.fouo)
        set_(self, "nato", canon.nato)
        set_(self, "aea", canon.aea)
        set_(self, "nonic", canon.nonic)
        for name in ("owners", "fgi", "nato_controls", "accm"):
            set_(self, name, sets[name])
        set_(self, "sigma", frozenset(self.sigma))
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
                self._register_key(),
            ),
        )

    def _register_key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _REGISTER_DEFAULTS)

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
        if self.imcon and level < Level.S:
            fail("imcon-requires-secret")
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
        if (sets["sap"] or self.sap_multiple) and not level.is_classified:
            fail("sap-requires-classified")
        for system, comp, _sub in systems.values():
            if system == "SI" and comp == "G" and not (level == Level.TS and self.orcon):
                fail("si-g-requires-ts-orcon")
            if system == "TK" and level < Level.S:
                fail("tk-requires-secret")
            if system == "HCS" and not self.noforn and self.kind != JOINT:
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
        # A marking never changes (frozen): its banner is written once, on first use.
        found = self.__dict__.get("_banner")
        if found is None:
            found = format_marking(self, portion=False)
            object.__setattr__(self, "_banner", found)
        return str(found)

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
            **self._register_dict(),
        }

    def _register_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "kind": self.kind,
            "owners": order_list(self.owners),
            "restricted": self.restricted,
            "nato": self.nato,
            "fgi": order_list(self.fgi),
            "concealed": self.concealed,
            "nato_controls": [c for c in NATO_CONTROLS if c in self.nato_controls],
            "aea": sorted(self.aea),
            "sigma": sorted(self.sigma),
            "hvsaco": self.hvsaco,
            "sap_multiple": self.sap_multiple,
            "nonic": sorted(self.nonic, key=_nonic_key),
            "accm": sorted(self.accm),
        }
        return {"register": values} if values != _REGISTER_DEFAULTS else {}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, registry: MarkingRegistry = BUILTIN_REGISTRY
    ) -> Marking:
        """Rebuild a marking stored with :meth:`to_dict`, checking its tokens against
        ``registry`` (unknown tokens and redefined groups are errors, as when parsing)."""
        if (
            not isinstance(data, Mapping)
            or set(data) - {"register"} != _DICT_KEYS
            or data["version"] != 1
        ):
            fail("syntax", detail=f"a stored marking has exactly the keys {sorted(_DICT_KEYS)}")
        register = _register_from_dict(data.get("register"))
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
            **_flags({by_banner[d] for d in lists["dissem"]}),
            **register,
        )
        check_known(marking, registry)
        return marking


def _flags(names: Iterable[str]) -> dict[str, Any]:
    return dict.fromkeys(names, True)


def _nonic_key(control: str) -> tuple[int, str]:
    order = list(NONIC_ORDER)
    return (order.index(control), control) if control in NONIC_ORDER else (len(order), control)


def _register_from_dict(raw: object) -> dict[str, Any]:
    """The keyword arguments of a stored ``register`` mapping (absent: all defaults)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or set(raw) != set(_REGISTER_DEFAULTS):
        fail(
            "syntax", detail=f"a stored register has exactly the keys {sorted(_REGISTER_DEFAULTS)}"
        )
    out: dict[str, Any] = {}
    for key, default in _REGISTER_DEFAULTS.items():
        value = raw[key]
        if isinstance(default, list):
            kind: type = int if key == "sigma" else str
            if not isinstance(value, list) or not all(
                isinstance(v, kind) and not isinstance(v, bool) for v in value
            ):
                fail("syntax", detail=f"register {key} must be a list")
            out[key] = frozenset(value)
        elif type(value) is not type(default):
            fail("syntax", detail=f"register {key} has the wrong type")
        else:
            out[key] = value
    return out


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
    for owner in marking.owners - {"USA"}:
        if not registry.is_owner(owner):
            fail("nonus-owner", detail=f"{owner} is not a registered country")
    for code in marking.fgi:
        if not registry.is_fgi_source(code):
            fail("unknown-token", detail=f"{code} is not a known country or group")
    for control in marking.nonic - set(NONIC_ORDER):
        if control not in registry.nonic_controls:
            fail("unknown-token", detail=f"dissemination control {control} is not registered")

"""Roll-up of the section 7 attributes (MARKINGS.md 7.3, rules 8-14).

Every rule is a union, a maximum, or "the same in every part, else the US form", so the join
stays commutative, associative and idempotent. Controls the banner line drops stay in the
result's attributes (the canonical form of :mod:`._register` and the writer of :mod:`._format`
decide what the line shows), so a join never loosens an input's access terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from garrison.security.markings._level import Level
from garrison.security.markings._register import (
    JOINT,
    NATO,
    NATO_RANK,
    NF_FORMS,
    NONUS,
    SOFT_AEA,
    SOFT_NONIC,
    US,
)

if TYPE_CHECKING:
    from garrison.security.markings._model import Marking

__all__ = ["counted", "nf_only", "register_join", "soft"]


def _has_release(m: Marking) -> bool:
    return bool(m.noforn or m.rel_to or m.relido or m.display_only)


def counted(m: Marking) -> bool:
    """Rules 5 and 12: classified, non-US, NATO and JOINT parts count, and unclassified parts
    carrying a release control (SBU NOFORN and LES NOFORN are release controls)."""
    return (
        m.level.is_classified
        or m.kind != US
        or _has_release(m)
        or bool(m.nonic & set(NF_FORMS))
        # A roll-up that already holds foreign or NATO information counts as its parts did.
        or bool(m.fgi or m.concealed or m.nato)
    )


def nf_only(m: Marking) -> bool:
    """An unclassified US part counted only for its SBU NOFORN or LES NOFORN."""
    return (
        m.kind == US
        and not m.level.is_classified
        and not _has_release(m)
        and bool(m.nonic & set(NF_FORMS))
    )


def soft(m: Marking) -> bool:
    """Rule 12: an uncounted part whose controls are only LIMDIS, SBU, LES, SSI, DEA SENSITIVE
    or DOD/DOE UCNI; it counts as NOFORN beside another counted part."""
    return not counted(m) and bool(m.nonic & SOFT_NONIC or m.dsen or m.aea & SOFT_AEA)


def _signature(m: Marking) -> tuple[Any, ...]:
    if m.kind == NONUS:
        return (NONUS, m.owners, m.concealed)
    if m.kind == JOINT:
        return (JOINT, m.owners)
    return (m.kind,)


def _fgi_of(m: Marking) -> frozenset[str]:
    """Rule 9: what a part adds to the FGI list of a US result."""
    if m.kind == NONUS:
        return m.owners
    if m.kind == NATO:
        return frozenset({"NATO"})
    if m.kind == JOINT:
        return m.owners - {"USA"}
    return m.fgi


def _max_nato(markings: Sequence[Marking]) -> str:
    levels = [m.nato for m in markings if m.nato]
    return max(levels, key=NATO_RANK.__getitem__) if levels else ""


def register_join(markings: Sequence[Marking], level: Level, *, noforn: bool) -> dict[str, Any]:
    """The section 7 keyword arguments of the join of ``markings`` (at the joined ``level``)."""
    out: dict[str, Any] = {
        "nato_controls": frozenset().union(*(m.nato_controls for m in markings)),
        "aea": frozenset().union(*(m.aea for m in markings)),
        "sigma": frozenset().union(*(m.sigma for m in markings)),
        "hvsaco": any(m.hvsaco for m in markings),
        "sap_multiple": any(m.sap_multiple for m in markings),
        "nonic": frozenset().union(*(m.nonic for m in markings)),
        "accm": frozenset().union(*(m.accm for m in markings)),
    }
    signatures = {_signature(m) for m in markings}
    kind = next(iter(signatures))[0] if len(signatures) == 1 else US
    if kind == NATO and noforn:
        kind = US  # NOFORN cannot stand on a NATO marking: the result is a US one
    first = markings[0]
    out["kind"] = kind
    if kind == NONUS:
        out["owners"] = first.owners
        out["concealed"] = first.concealed
        out["restricted"] = level == Level.C and all(
            m.restricted for m in markings if m.level == Level.C
        )
    elif kind == JOINT:
        out["owners"] = first.owners
    elif kind == NATO:
        out["nato"] = _max_nato(markings)
    else:
        out["fgi"] = frozenset().union(*(_fgi_of(m) for m in markings))
        out["concealed"] = any(m.concealed for m in markings)
        out["nato"] = _max_nato(markings)
    return out

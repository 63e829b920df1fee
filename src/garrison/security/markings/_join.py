"""Roll-up (join) of markings and the dominance order built on it (MARKINGS.md section 3)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from garrison.security.markings._join_register import (
    counted,
    nf_only,
    register_join,
    soft,
)
from garrison.security.markings._level import Level
from garrison.security.markings._model import CUI_MARKER, DISSEM_FLAGS, Marking
from garrison.security.markings._release import ReleaseParts, combine_release, merge_groups

__all__ = ["UNCLASSIFIED", "dominates", "join", "system_high_dominates"]

#: ``UNCLASSIFIED`` with no controls: the join of nothing, and an identity of :func:`join`.
UNCLASSIFIED = Marking(Level.U)


def join(*markings: Marking) -> Marking:
    """Return the roll-up of ``markings`` (rules 1-7); the join of none is ``UNCLASSIFIED``.

    Commutative, associative and idempotent (up to semantic equality), and the result dominates
    every input. Raises :class:`MarkingError` (``group-conflict``) only if two inputs define the
    same country group with different members.
    """
    if not markings:
        return UNCLASSIFIED
    if len(markings) == 1:
        return markings[0]
    level = max(m.level for m in markings)
    groups = merge_groups(m.group_members for m in markings)
    base = [counted(m) for m in markings]
    any_counted = any(base)
    # Rule 12: a part whose only controls are LIMDIS, SBU, LES, SSI, DEA SENSITIVE or UCNI
    # counts as NOFORN beside another counted part; SBU NOFORN, LES NOFORN, EXDIS and NODIS
    # parts count as NOFORN.
    release = combine_release(
        [
            ReleaseParts(
                counted=c or (any_counted and soft(m)),
                noforn=m.noforn or nf_only(m) or (any_counted and soft(m)),
                relido=m.relido,
                rel_to=m.rel_to,
                display_only=m.display_only,
            )
            for m, c in zip(markings, base, strict=True)
        ],
        groups,
    )
    other = any(c and not nf_only(m) for m, c in zip(markings, base, strict=True))
    flags: dict[str, Any] = {name: any(getattr(m, name) for m in markings) for name in DISSEM_FLAGS}
    flags["fouo"] = flags["fouo"] and level == Level.U  # rule 3
    # Rule 13: SBU NOFORN / LES NOFORN stay written only in an UNCLASSIFIED result with no
    # other counted part; otherwise NOFORN goes to DISSEM (the Marking rewrites the forms).
    flags["noforn"] = release.noforn and (other or level != Level.U)
    flags["relido"] = release.relido
    extra = register_join(markings, level, noforn=flags["noforn"])
    return Marking(
        level,
        sci=frozenset().union(*(m.sci for m in markings)),
        sap=frozenset().union(*(m.sap for m in markings)),
        rel_to=release.rel_to,
        display_only=release.display_only,
        # A bare (CUI) part has no category to keep: the marker records that CUI went in.
        cui=frozenset().union(*(m.cui for m in markings))
        | ({CUI_MARKER} if any(m.level == Level.CUI for m in markings) else set()),
        groups=tuple(sorted(groups.items())),
        **flags,
        **extra,
    )


def dominates(
    a: Marking, b: Marking, *, ignore_cui: bool = False, as_written: bool = False
) -> bool:
    """True when ``a`` dominates ``b``: ``join(a, b) == a``, compared semantically.

    ``ignore_cui=True`` leaves out the ``cui`` attribute of both, for the banner checks of a
    classified document (a classified banner line cannot show CUI, rule 7). ``as_written=True``
    compares only what a banner line can show: the controls section 7.3 keeps in the marking but
    drops from the line (LIMDIS and SBU in a classified result, EXDIS under NODIS, SBU beside
    EXDIS or NODIS, DOD/DOE UCNI in a classified result, HVSACO beside a program) are left out,
    so that a banner written by the rules is never reported as under the portions it rolls up.
    """
    if as_written:
        joined = join(a, b)
        return dominates(_written(a), _written(joined), ignore_cui=ignore_cui)
    # Rule 9: FGI codes other than NATO are content indicators, not access (ignored here).
    if ignore_cui:
        a = _without_cui(a)
        return _fgi_indicators_off(_without_cui(join(a, b))) == _fgi_indicators_off(a)
    return _fgi_indicators_off(join(a, b)) == _fgi_indicators_off(a)


def system_high_dominates(system_high: Marking, m: Marking) -> bool:
    """True when data marked ``m`` may live under ``system_high`` (false means a spill).

    Section 5: a system high of CONFIDENTIAL or above dominates any CUI categories and CUI-only
    controls; CUI's release controls (NOFORN, REL TO, DISPLAY ONLY) still count. A system high
    is a banner line: it dominates the controls section 7.3 drops from a line it covers (SBU or
    LIMDIS data on a classified system, EXDIS on a NODIS one, HVSACO beside its programs).
    """
    ignore_cui = system_high.level.is_classified
    if dominates(system_high, m, ignore_cui=ignore_cui):
        return True
    return dominates(system_high, m, ignore_cui=ignore_cui, as_written=True)


#: Section 7.3: controls a classified banner line does not show (kept in the marking).
_CLASSIFIED_HIDDEN_NONIC = frozenset({"LIMDIS", "SBU", "SBU NOFORN"})
_CLASSIFIED_HIDDEN_AEA = frozenset({"DOD UCNI", "DOE UCNI"})


def _written(m: Marking) -> Marking:
    """``m`` without the controls its banner line leaves out (rules 11, 13, 14)."""
    nonic = set(m.nonic)
    if "NODIS" in nonic:
        nonic.discard("EXDIS")
    if nonic & {"EXDIS", "NODIS"}:
        nonic -= {"SBU", "SBU NOFORN"}
    aea = set(m.aea)
    if m.level.is_classified:
        nonic -= _CLASSIFIED_HIDDEN_NONIC
        aea -= _CLASSIFIED_HIDDEN_AEA
    hvsaco = m.hvsaco and not (m.sap or m.sap_multiple)
    if nonic == m.nonic and aea == m.aea and hvsaco == m.hvsaco:
        return m
    return replace(m, nonic=frozenset(nonic), aea=frozenset(aea), hvsaco=hvsaco)


def _fgi_indicators_off(m: Marking) -> Marking:
    if not (m.fgi - {"NATO"}) and not (m.concealed and m.kind == "US"):
        return m
    return replace(m, fgi=m.fgi & {"NATO"}, concealed=False if m.kind == "US" else m.concealed)


def _without_cui(m: Marking) -> Marking:
    return replace(m, cui=frozenset()) if m.cui else m

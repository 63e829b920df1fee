"""Roll-up (join) of markings and the dominance order built on it (MARKINGS.md section 3)."""

from __future__ import annotations

from dataclasses import replace

from garrison.security.markings._level import Level
from garrison.security.markings._model import CUI_MARKER, DISSEM_FLAGS, Marking
from garrison.security.markings._release import ReleaseParts, combine_release, merge_groups

__all__ = ["UNCLASSIFIED", "dominates", "join", "system_high_dominates"]

#: ``UNCLASSIFIED`` with no controls: the join of nothing, and an identity of :func:`join`.
UNCLASSIFIED = Marking(Level.U)


def _counted(m: Marking) -> bool:
    """Rule 5: classified parts count, and unclassified/CUI parts carrying release controls."""
    return m.level.is_classified or bool(m.noforn or m.rel_to or m.relido or m.display_only)


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
    release = combine_release(
        [
            ReleaseParts(
                counted=_counted(m),
                noforn=m.noforn,
                relido=m.relido,
                rel_to=m.rel_to,
                display_only=m.display_only,
            )
            for m in markings
        ],
        groups,
    )
    flags = {name: any(getattr(m, name) for m in markings) for name in DISSEM_FLAGS}
    flags["fouo"] = flags["fouo"] and level == Level.U  # rule 3
    flags["noforn"] = release.noforn
    flags["relido"] = release.relido
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
    )


def dominates(a: Marking, b: Marking, *, ignore_cui: bool = False) -> bool:
    """True when ``a`` dominates ``b``: ``join(a, b) == a``, compared semantically.

    ``ignore_cui=True`` leaves out the ``cui`` attribute of both, for the banner checks of a
    classified document (a classified banner line cannot show CUI, rule 7).
    """
    if ignore_cui:
        a = _without_cui(a)
        return _without_cui(join(a, b)) == a
    return join(a, b) == a


def system_high_dominates(system_high: Marking, m: Marking) -> bool:
    """True when data marked ``m`` may live under ``system_high`` (false means a spill).

    Section 5: a system high of CONFIDENTIAL or above dominates any CUI categories and CUI-only
    controls; CUI's release controls (NOFORN, REL TO, DISPLAY ONLY) still count.
    """
    if system_high.level.is_classified:
        return dominates(system_high, m, ignore_cui=True)
    return dominates(system_high, m)


def _without_cui(m: Marking) -> Marking:
    return replace(m, cui=frozenset()) if m.cui else m

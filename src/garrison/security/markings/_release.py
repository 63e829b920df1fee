"""Foreign disclosure and release (NOFORN, REL TO, RELIDO, DISPLAY ONLY): roll-up rule 5.

The same computation canonicalizes one marking and joins several, so ``join(m, m) == m`` holds by
construction. Release states form a semilattice (an absorbing NOFORN at the top, "not counted" as
the identity); keeping the computation in one place is what makes the join associative.

Group expansion: a group with members (``FVEY``) stands for its member trigraphs; an opaque code
(``NATO``) is an atom that only matches itself. ``USA`` is implicit in every release list (a REL
TO list must name it, and US citizens may always read US-marked data), so the per-country
computation works on *foreign* codes only and USA is written back first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from garrison.security.markings._rules import fail

__all__ = ["ReleaseParts", "ReleaseResult", "combine_release", "expand", "merge_groups"]

USA = "USA"

Groups = Mapping[str, frozenset[str] | None]


@dataclass(frozen=True)
class ReleaseParts:
    """The release controls of one part of a roll-up, and whether it is counted (rule 5)."""

    counted: bool
    noforn: bool
    relido: bool
    rel_to: frozenset[str]
    display_only: frozenset[str]

    @property
    def has_control(self) -> bool:
        return bool(self.rel_to or self.relido or self.display_only)

    @property
    def has_list(self) -> bool:
        return bool(self.rel_to or self.display_only)


@dataclass(frozen=True)
class ReleaseResult:
    """Canonical release controls: REL TO and DISPLAY ONLY written back with groups."""

    noforn: bool = False
    relido: bool = False
    rel_to: frozenset[str] = frozenset()
    display_only: frozenset[str] = frozenset()


_NOFORN = ReleaseResult(noforn=True)


def expand(codes: Iterable[str], groups: Groups) -> frozenset[str]:
    """Return ``codes`` with each group that has members replaced by its members."""
    out: set[str] = set()
    for code in codes:
        members = groups.get(code)
        out.update(members if members is not None else (code,))
    return frozenset(out)


def merge_groups(
    definitions: Iterable[Mapping[str, frozenset[str] | None]],
) -> dict[str, frozenset[str] | None]:
    """Union group definitions; one name defined two ways is an error (fail closed)."""
    merged: dict[str, frozenset[str] | None] = {}
    for defs in definitions:
        for name, members in defs.items():
            if name in merged and merged[name] != members:
                fail("group-conflict", detail=f"{name} has two different member lists")
            merged[name] = members
    return merged


def _write_back(countries: frozenset[str], candidates: Iterable[str], groups: Groups) -> set[str]:
    """Rewrite a set of foreign codes with the candidate groups whose members all survive.

    Largest group first (ties alphabetically); a group whose members are already covered by the
    groups written is skipped; the rest stay as trigraphs or opaque codes.
    """
    written: set[str] = set()
    covered: set[str] = set()
    ordered = sorted(
        (g for g in set(candidates) if groups.get(g) is not None),
        key=lambda g: (-len(groups[g] or ()), g),
    )
    for group in ordered:
        members = (groups[group] or frozenset()) - {USA}
        if members and members <= countries and not members <= covered:
            written.add(group)
            covered |= members
    return written | (countries - covered)


def combine_release(parts: Sequence[ReleaseParts], groups: Groups) -> ReleaseResult:
    """Roll up release controls of ``parts`` per MARKINGS.md section 3 rules 5 and 6.

    With a single part this is the canonical form of that part's controls.
    """
    counted = [p for p in parts if p.counted]
    if not counted:
        return ReleaseResult()
    if any(p.noforn for p in counted):
        return _NOFORN
    if not any(p.has_control for p in counted):
        # Every counted part is classified with no release control: not releasable, but the
        # marking line stays as written (``(C), (S) -> SECRET``, not ``SECRET//NOFORN``).
        return ReleaseResult()
    if not all(p.has_control for p in counted):
        return _NOFORN
    relido = all(p.relido for p in counted)
    listed = [p for p in counted if p.has_list]
    if not listed:
        return ReleaseResult(relido=relido)
    if len(listed) < len(counted):
        # A RELIDO-only part grants no country anything, so beside a REL TO (or DISPLAY ONLY)
        # part no foreign country keeps a grant.
        return _NOFORN
    # Per country, the most restrictive grant wins: released by every part, or at least
    # displayable by every part (a released country is also displayable).
    rels = [expand(p.rel_to, groups) - {USA} for p in listed]
    shows = [
        rel | (expand(p.display_only, groups) - {USA}) for rel, p in zip(rels, listed, strict=True)
    ]
    released = frozenset.intersection(*rels)
    shown = frozenset.intersection(*shows)
    display = shown - released
    if not released and not display:
        return _NOFORN
    candidates = {code for p in listed for code in p.rel_to | p.display_only}
    rel_out = _write_back(released, candidates, groups) | {USA} if released else set()
    disp_out = _write_back(display, candidates, groups) if display else set()
    return ReleaseResult(relido=relido, rel_to=frozenset(rel_out), display_only=frozenset(disp_out))

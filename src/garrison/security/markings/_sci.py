"""SCI paths (``SI``, ``SI-G``, ``SI-G ABCD``) and the canonical ordering of marking tokens.

A marking stores SCI as a set of *paths*: ``SYSTEM``, ``SYSTEM-COMPARTMENT`` or
``SYSTEM-COMPARTMENT SUBCOMPARTMENT`` (one sub-compartment per path). SCI is prefix-closed (a
path implies its prefixes), so a canonical set holds only the most specific paths. In a marking
line, paths of one system are written together: ``SI-G ABCD EFGH-ECRU`` is the paths
``SI-G ABCD``, ``SI-G EFGH`` and ``SI-ECRU``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from garrison.security.markings._rules import fail

__all__ = [
    "closure",
    "parse_sci_token",
    "prefixes",
    "reduce_sci",
    "render_sci",
    "split_path",
    "token_key",
]

_PART = re.compile(r"[A-Z0-9]+")
_PATH = re.compile(r"([A-Z][A-Z0-9]*)(?:-([A-Z0-9]+)(?: ([A-Z0-9]+))?)?")


def token_key(token: str) -> tuple[int, int, str]:
    """Sort key for tokens within one level: numbers first (by value), then letters."""
    if token.isdigit():
        return (0, int(token), token)
    return (1, 0, token)


def split_path(path: str) -> tuple[str, str | None, str | None]:
    """Return ``(system, compartment, sub-compartment)`` of a canonical SCI path."""
    match = _PATH.fullmatch(path)
    if match is None:
        fail("syntax", detail=f"{path!r} is not an SCI path like SI, SI-G or SI-G ABCD")
    return match.group(1), match.group(2), match.group(3)


def prefixes(path: str) -> list[str]:
    """Return the path and every path it implies, shortest first (``SI``, ``SI-G``, ...)."""
    system, comp, sub = split_path(path)
    out = [system]
    if comp is not None:
        out.append(f"{system}-{comp}")
        if sub is not None:
            out.append(f"{system}-{comp} {sub}")
    return out


def closure(paths: Iterable[str]) -> frozenset[str]:
    """Return every path implied by ``paths`` (the prefix closure)."""
    return frozenset(p for path in paths for p in prefixes(path))


def reduce_sci(paths: Iterable[str]) -> frozenset[str]:
    """Keep only the most specific paths: ``{SI, SI-G}`` becomes ``{SI-G}``."""
    closed = closure(paths)
    implied = {p for path in closed for p in prefixes(path)[:-1]}
    return frozenset(closed - implied)


def parse_sci_token(token: str) -> tuple[str, list[str]]:
    """Split one marking-line SCI token into its system and the paths it names.

    ``SI-G ABCD EFGH-ECRU`` -> ``("SI", ["SI-G ABCD", "SI-G EFGH", "SI-ECRU"])``. The system is
    returned separately so the caller can check it against the registry.
    """
    system, *compartments = token.split("-")
    if not _PART.fullmatch(system):
        fail("syntax", detail=f"{token!r} is not a valid SCI control")
    paths = [system]
    for compartment in compartments:
        name, *subs = compartment.split(" ")
        if not _PART.fullmatch(name) or not all(_PART.fullmatch(s) for s in subs):
            fail("syntax", detail=f"{token!r} is not a valid SCI control")
        paths.append(f"{system}-{name}")
        paths.extend(f"{system}-{name} {sub}" for sub in subs)
    return system, paths


def render_sci(paths: Iterable[str]) -> list[str]:
    """Return the marking-line tokens of a canonical SCI set, in canonical order."""
    tree: dict[str, dict[str, set[str]]] = {}
    for path in closure(paths):
        system, comp, sub = split_path(path)
        comps = tree.setdefault(system, {})
        if comp is not None:
            subs = comps.setdefault(comp, set())
            if sub is not None:
                subs.add(sub)
    tokens = []
    for system in sorted(tree, key=token_key):
        text = system
        for comp in sorted(tree[system], key=token_key):
            ordered = sorted(tree[system][comp], key=token_key)
            text += f"-{comp}" + "".join(f" {s}" for s in ordered)
        tokens.append(text)
    return tokens

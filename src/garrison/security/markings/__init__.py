"""Security markings: parse, write, roll up, compare and compile (MARKINGS.md sections 1-5, 7).

Pure logic, no I/O. The pieces::

    parse_marking(text)          banner or portion text -> Marking (validated, canonical)
    parse_with_findings(text)    ... and the findings of a valid marking (legacy-sigma ...)
    Marking.banner()/.portion()  canonical spellings; to_dict()/from_dict() for storage
    find_portion_mark(text)      is there a portion mark at the start of this text?
    is_banner_candidate(line)    does this whole line look like a banner (it must then validate)?
    normalize_marking_text(t)    the one normalization every reader of marks uses
    join(*markings)              roll-up (section 3); dominates(), system_high_dominates()
    access_expression(m)         Accumulo-syntax expression a reader must satisfy (section 4)
    MarkingRegistry              known SCI systems, countries, groups, CUI categories

Every violation raises :class:`~garrison.core.errors.MarkingError` whose ``rule`` is one of
:data:`MARKING_RULES`.
"""

from __future__ import annotations

from garrison.security.markings._countries import ISO_3166_ALPHA3
from garrison.security.markings._expr import access_expression, release_expression
from garrison.security.markings._join import UNCLASSIFIED, dominates, join, system_high_dominates
from garrison.security.markings._level import Level
from garrison.security.markings._model import Marking
from garrison.security.markings._parse import parse_marking, parse_with_findings
from garrison.security.markings._portion import (
    find_portion_mark,
    is_portion_candidate,
    leading_enumerator,
)
from garrison.security.markings._registry import (
    BUILTIN_GROUPS,
    BUILTIN_REGISTRY,
    CUI_CONTROLS,
    NATO_MEMBERS,
    NATO_MEMBERS_2024,
    MarkingRegistry,
)
from garrison.security.markings._rules import MARKING_FINDINGS, MARKING_RULES
from garrison.security.markings._text import is_banner_candidate, normalize_marking_text

__all__ = [
    "BUILTIN_GROUPS",
    "BUILTIN_REGISTRY",
    "CUI_CONTROLS",
    "ISO_3166_ALPHA3",
    "MARKING_FINDINGS",
    "MARKING_RULES",
    "NATO_MEMBERS",
    "NATO_MEMBERS_2024",
    "UNCLASSIFIED",
    "Level",
    "Marking",
    "MarkingRegistry",
    "access_expression",
    "dominates",
    "find_portion_mark",
    "is_banner_candidate",
    "is_portion_candidate",
    "join",
    "leading_enumerator",
    "normalize_marking_text",
    "parse_marking",
    "parse_with_findings",
    "release_expression",
    "system_high_dominates",
]

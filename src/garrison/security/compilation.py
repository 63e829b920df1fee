"""Classification by compilation (MARKINGS.md section 6): parts that are harmless alone, marked
higher together.

A site declares rules: "text matching A together with text matching B is SECRET//NOFORN". A
rule has a name, two matchers, a marking and a reason. A matcher is a set of alternatives, each

* a **term**: a word or phrase, matched case-insensitively on whole words (``falcon`` matches
  "Falcon's" but not "falconry"; the words of a phrase may be separated by any white space), or
* a **regular expression**, written with the prefix ``re:`` (``re:\\bop-\\d{3}\\b``), matched
  case-insensitively anywhere in the text.

:func:`matcher_from` reads what a person writes: each value is one regular expression when it
starts with ``re:``, otherwise a comma-separated list of terms.

Regular expressions run on the ``regex`` engine, which can stop a search after a time limit
(Python's ``re`` cannot), and are limited to a safe subset checked when a rule is made: Python
``re`` syntax, at most :data:`MAX_PATTERN` characters, no backreferences, no repetition inside an
unbounded repetition (``(a+)+``, ``(\\w*\\s?)*``, ``(a{2})*``; a bounded repetition inside a
bounded one, ``(\\d{3}-){2}``, is fine), no alternation inside an unbounded repetition
(``(a|ab)*``), and no pattern that matches empty text (it would match everything). A search
that still runs past its time limit counts as a match: the record is raised (fail closed) and
the finding says the rule could not be decided in time.

:func:`apply_rules` decides what a record that combines ``texts`` (a chunk's text; an answer's
question, context and sentences; ...) is marked with: the join of its own marking and the
marking of every rule whose two matchers each match somewhere in those texts; :func:`tally`
does the same for a view filled one part at a time (a page of search hits).

Pure logic, no I/O: rules are stored and loaded by :mod:`garrison.store.compilation`.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex  # type: ignore[import-untyped]

from garrison.core.errors import InvalidInput
from garrison.security.markings import UNCLASSIFIED, Marking, join

__all__ = [
    "FINDING_KIND",
    "MATCH_TIMEOUT",
    "MAX_PATTERN",
    "CompilationRule",
    "Compiled",
    "Matcher",
    "Tally",
    "apply_rules",
    "check_rule_name",
    "compilation_rule",
    "fired_details",
    "matcher_from",
    "normalize_text",
    "rules_digest",
    "tally",
]

#: The finding kind of a record raised by a rule (CLI.md's finding kinds).
FINDING_KIND = "compilation"
#: Longest regular expression a rule may hold (characters).
MAX_PATTERN = 256
#: Most alternatives (terms and expressions) in one matcher, and the longest term.
MAX_ALTERNATIVES = 64
MAX_TERM = 128
MAX_REASON = 500
#: Seconds one expression may search one text (plus one per million characters of text).
MATCH_TIMEOUT = 0.25
REGEX_PREFIX = "re:"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FLAGS = regex.IGNORECASE | regex.VERSION0
# Characters that are invisible in text but would split a word for a matcher.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))


def normalize_text(text: str) -> str:
    """The form every matcher reads: NFKC, invisible joiners and soft hyphens removed."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


# -- matchers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    """One side of a rule: matches a text when any of its terms or expressions does."""

    terms: tuple[str, ...]
    patterns: tuple[str, ...]
    _terms_re: Any = field(default=None, compare=False, repr=False)
    _patterns_re: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def spec(self) -> list[str]:
        """The matcher as written back: its terms, then each expression with ``re:``."""
        return [*self.terms, *(REGEX_PREFIX + p for p in self.patterns)]

    def search(self, text: str) -> bool | None:
        """True when it matches ``text`` (normalized), False when not, None when an expression
        ran out of time (the caller treats that as a match)."""
        if self._terms_re is not None and self._terms_re.search(text):
            return True
        timeout = MATCH_TIMEOUT + len(text) / 1_000_000
        undecided = False
        for pattern in self._patterns_re:
            try:
                if pattern.search(text, timeout=timeout):
                    return True
            except TimeoutError:
                undecided = True
        return None if undecided else False


def matcher_from(values: Iterable[str], *, side: str = "matcher") -> Matcher:
    """A matcher from what a person writes (see the module docs); InvalidInput when empty or
    malformed. ``side`` names the option in messages (``--when``, ``--and``)."""
    terms: dict[str, None] = {}
    patterns: dict[str, None] = {}
    for value in values:
        text = str(value).strip()
        if text[: len(REGEX_PREFIX)].lower() == REGEX_PREFIX:
            patterns[_check_pattern(text[len(REGEX_PREFIX) :], side)] = None
            continue
        for raw in text.split(","):
            term = " ".join(normalize_text(raw).split()).lower()
            if not raw.strip():
                continue
            if len(term) > MAX_TERM:
                raise InvalidInput(f"A {side} term is at most {MAX_TERM} characters.")
            if not any(ch.isalnum() for ch in term):
                raise InvalidInput(f"The {side} term {raw.strip()!r} has no letter or digit.")
            terms[term] = None
    if not terms and not patterns:
        raise InvalidInput(f"A compilation rule needs at least one {side} term or expression.")
    if len(terms) + len(patterns) > MAX_ALTERNATIVES:
        raise InvalidInput(f"A {side} holds at most {MAX_ALTERNATIVES} terms and expressions.")
    ordered = tuple(sorted(terms))
    return Matcher(
        terms=ordered,
        patterns=tuple(patterns),
        _terms_re=_terms_regex(ordered),
        _patterns_re=tuple(regex.compile(p, _FLAGS) for p in patterns),
    )


def _terms_regex(terms: Sequence[str]) -> Any:
    if not terms:
        return None
    # Literal alternatives only: linear time, whatever the text.
    words = [r"\s+".join(regex.escape(w) for w in t.split()) for t in terms]
    return regex.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", _FLAGS)


def _check_pattern(pattern: str, side: str) -> str:
    """``pattern`` when it is in the safe subset; InvalidInput naming what is wrong."""
    if not pattern.strip():
        raise InvalidInput(f"The {side} expression after 're:' is empty.")
    if len(pattern) > MAX_PATTERN:
        raise InvalidInput(f"A {side} expression is at most {MAX_PATTERN} characters.")
    parser = importlib.import_module("re._parser")
    try:
        tree = parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise InvalidInput(
            f"The {side} expression {pattern!r} is not a valid regular expression ({exc})."
        ) from None
    problem = _unsafe(tree, parser, inside=None)
    if problem is not None:
        raise InvalidInput(
            f"The {side} expression {pattern!r} is refused: {problem} can take exponential time."
        )
    try:
        compiled = regex.compile(pattern, _FLAGS)
    except (regex.error, OverflowError) as exc:
        raise InvalidInput(
            f"The {side} expression {pattern!r} is not a valid regular expression ({exc})."
        ) from None
    if compiled.search("") is not None:
        raise InvalidInput(
            f"The {side} expression {pattern!r} matches empty text, so it would match everything."
        )
    return pattern


def _unsafe(items: Any, parser: Any, *, inside: str | None) -> str | None:
    """What makes a parsed pattern unsafe, or None. ``inside`` is ``"bounded"`` or
    ``"unbounded"`` within a repetition."""
    consts = importlib.import_module("re._constants")
    repeats = {consts.MAX_REPEAT, consts.MIN_REPEAT, getattr(consts, "POSSESSIVE_REPEAT", None)}
    for op, arg in items:
        if op in (consts.GROUPREF, consts.GROUPREF_EXISTS):
            return "a backreference"
        if op in repeats:
            _low, high, body = arg
            unbounded = high == consts.MAXREPEAT
            if high > 1 and (inside == "unbounded" or (inside == "bounded" and unbounded)):
                return "a repetition inside an unbounded repetition"
            kind = inside
            if high > 1:
                kind = "unbounded" if unbounded or inside == "unbounded" else "bounded"
            found = _unsafe(body, parser, inside=kind)
        elif op is consts.SUBPATTERN:
            found = _unsafe(arg[-1], parser, inside=inside)
        elif op is consts.BRANCH:
            if inside == "unbounded":
                return "an alternation inside an unbounded repetition"
            found = None
            for branch in arg[1]:
                found = found or _unsafe(branch, parser, inside=inside)
        elif op in (consts.ASSERT, consts.ASSERT_NOT):
            found = _unsafe(arg[1], parser, inside=inside)
        elif op is getattr(consts, "ATOMIC_GROUP", None):
            found = _unsafe(arg, parser, inside=inside)
        else:
            found = None
        if found is not None:
            return found
    return None


# -- rules -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompilationRule:
    """Text matching ``when`` together with text matching ``and_`` is marked ``marking``."""

    name: str
    when: Matcher
    and_: Matcher
    marking: Marking
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``registry list --json``); the marking as its canonical banner."""
        return {
            "kind": FINDING_KIND,
            "name": self.name,
            "when": self.when.spec(),
            "and": self.and_.spec(),
            "marking": self.marking.banner(),
            "reason": self.reason,
        }


def check_rule_name(name: str) -> str:
    """``name`` stripped, when it is a valid rule name; InvalidInput otherwise."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"The rule name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def compilation_rule(
    name: str,
    when: Iterable[str],
    and_: Iterable[str],
    marking: Marking,
    reason: str | None,
) -> CompilationRule:
    """A validated rule; InvalidInput (one sentence) for a bad name, matcher or reason, or a
    marking that raises nothing."""
    name = check_rule_name(name)
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput("A compilation rule needs a reason (--reason).")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"A compilation rule's reason is at most {MAX_REASON} characters.")
    if marking == UNCLASSIFIED:
        raise InvalidInput("A compilation rule marked UNCLASSIFIED would raise nothing.")
    return CompilationRule(
        name=name,
        when=matcher_from(when, side="--when"),
        and_=matcher_from(and_, side="--and"),
        marking=marking,
        reason=reason,
    )


@dataclass(frozen=True)
class Compiled:
    """What :func:`apply_rules` decided: the record's marking and the rules that raised it
    (``undecided``: those whose expressions ran out of time, counted as matched)."""

    marking: Marking
    fired: tuple[CompilationRule, ...] = ()
    undecided: tuple[str, ...] = ()

    @property
    def raised(self) -> bool:
        return bool(self.fired)


def apply_rules(
    rules: Sequence[CompilationRule], texts: Iterable[str], marking: Marking
) -> Compiled:
    """``marking`` joined with the marking of every rule both of whose matchers match somewhere
    in ``texts`` (the parts one record combines). A rule whose marking ``marking`` already
    dominates still fires (its finding says the record combines the parts)."""
    if not rules:
        return Compiled(marking)
    return tally(rules, texts).compiled(marking)


@dataclass(frozen=True)
class Tally:
    """Which side of each rule matched somewhere in a set of texts, so a view filled one part
    at a time (a page of search hits) is judged without reading its earlier parts again:
    ``tally(rules, a).merged(tally(rules, b))`` decides as ``apply_rules(rules, a + b, ...)``.

    Per rule and side: True (matched), None (undecided in time: counts as matched), False.
    """

    rules: tuple[CompilationRule, ...]
    when: tuple[bool | None, ...]
    and_: tuple[bool | None, ...]

    def merged(self, other: Tally) -> Tally:
        """The tally of both sets of texts together (same rules)."""
        if other.rules != self.rules:
            raise ValueError("tallies of different rule sets cannot be merged")
        return Tally(
            self.rules,
            tuple(_either(a, b) for a, b in zip(self.when, other.when, strict=True)),
            tuple(_either(a, b) for a, b in zip(self.and_, other.and_, strict=True)),
        )

    def compiled(self, marking: Marking) -> Compiled:
        """``marking`` raised by every rule both of whose sides matched."""
        fired: list[CompilationRule] = []
        undecided: list[str] = []
        for rule, first, second in zip(self.rules, self.when, self.and_, strict=True):
            if first is False or second is False:
                continue
            fired.append(rule)
            if first is None or second is None:
                undecided.append(rule.name)
        if not fired:
            return Compiled(marking)
        return Compiled(join(marking, *(r.marking for r in fired)), tuple(fired), tuple(undecided))


def tally(rules: Sequence[CompilationRule], texts: Iterable[str]) -> Tally:
    """Which side of each rule matches somewhere in ``texts`` (see :class:`Tally`)."""
    parts = [normalize_text(t) for t in texts if t] if rules else []
    when: list[bool | None] = []
    and_: list[bool | None] = []
    for rule in rules:
        # Both sides are searched even when one does not match: a tally may be merged with
        # another whose texts match the other side.
        when.append(_any(rule.when, parts))
        and_.append(_any(rule.and_, parts))
    return Tally(tuple(rules), tuple(when), tuple(and_))


def _either(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _any(matcher: Matcher, parts: Sequence[str]) -> bool | None:
    undecided = False
    for text in parts:
        found = matcher.search(text)
        if found:
            return True
        if found is None:
            undecided = True
    return None if undecided else False


def fired_details(compiled: Compiled) -> list[dict[str, Any]]:
    """The ``compilation`` findings of a raised record: one per rule, naming it (never the
    matched text)."""
    return [
        {
            "kind": FINDING_KIND,
            "rule": rule.name,
            "marking": rule.marking.banner(),
            "detail": _detail(rule, rule.name in compiled.undecided),
        }
        for rule in compiled.fired
    ]


def _detail(rule: CompilationRule, undecided: bool) -> str:
    if undecided:
        return (
            f"compilation rule {rule.name} could not be decided in time and is counted as "
            f"matched: marked at least {rule.marking.banner()}"
        )
    return (
        f"combines the parts of compilation rule {rule.name}: marked at least "
        f"{rule.marking.banner()}"
    )


def rules_digest(rules: Sequence[CompilationRule]) -> str:
    """A short stable digest of a rule set (part of the keys of work that applied it)."""
    import hashlib
    import json

    data = json.dumps(
        [{**r.to_dict(), "marking": r.marking.to_dict()} for r in rules],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(data.encode()).hexdigest()[:16]

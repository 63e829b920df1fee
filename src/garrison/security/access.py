"""Access expressions: parse, evaluate, normalize and explain them.

Every marked record carries an access expression in the syntax of Apache Accumulo's access
expressions (``shared/spec/MARKINGS.md`` section 4)::

    CLS:TS&SCI:SI&(CTRY:GBR|CTRY:USA)

* An expression is empty (anyone may read it) or terms joined by ``&`` or by ``|``; the two
  never mix at one level without parentheses.
* A term is a token or a parenthesized expression.
* An unquoted token is one or more of ``A-Z a-z 0-9 _ - . : /``; any other token is written in
  double quotes, where ``\\"`` and ``\\\\`` are the only escapes. No whitespace anywhere.

An expression is parsed once into an immutable :class:`AccessExpression` (a tree of
:class:`Token`, :class:`And` and :class:`Or`) that compiles itself into a small closure, so
evaluating it for every record read costs a few set operations. :func:`compile_expression` caches
parsed expressions by text.

Canonical form (:func:`normalize`): nested groups of the same operator are flattened, duplicate
terms removed, a group left with one term replaced by that term, and the terms of each group
sorted by their rendering as they appear in the group (tokens quoted only when needed,
sub-expressions with their parentheses), compared by code point, which is the same order as
comparing their UTF-8 bytes. Parentheses appear only around a sub-expression inside a group.
No further boolean algebra is applied: ``a|(a&b)`` stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, TypeAlias

from garrison.core.errors import AccessExpressionError

__all__ = [
    "AccessExpression",
    "And",
    "Decision",
    "Node",
    "Or",
    "Token",
    "authorizations_expression_tokens",
    "compile_expression",
    "evaluate",
    "evaluate_all",
    "explain",
    "explain_all",
    "normalize",
    "parse_expression",
    "quote_token",
    "unquote_token",
]

#: Deepest nesting of parentheses accepted. Markings compile to depth 1 or 2; the cap keeps a
#: hostile expression from exhausting the interpreter's stack in the recursive parser and
#: evaluator (it would otherwise fail with RecursionError instead of a clear error).
MAX_DEPTH = 100

_UNQUOTED_TOKEN = re.compile(r"[A-Za-z0-9_\-.:/]+")
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:/")

_Evaluator: TypeAlias = Callable[[AbstractSet[str]], bool]


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One authorization token, held unquoted and unescaped (``value`` is what a subject holds)."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not self.value:
            raise ValueError("a token must be a non-empty string")

    def __str__(self) -> str:
        return quote_token(self.value)


@dataclass(frozen=True, slots=True)
class And:
    """All of ``terms`` (two or more) must hold."""

    terms: tuple[Node, ...]

    def __post_init__(self) -> None:
        _check_terms(self.terms, "And")

    def __str__(self) -> str:
        return _render(self)


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of ``terms`` (two or more) must hold."""

    terms: tuple[Node, ...]

    def __post_init__(self) -> None:
        _check_terms(self.terms, "Or")

    def __str__(self) -> str:
        return _render(self)


Node: TypeAlias = Token | And | Or


def _check_terms(terms: tuple[Node, ...], kind: str) -> None:
    # A one-term group has no syntax of its own (``(a)`` is just ``a``), so allowing it would
    # break parse(str(tree)) == tree.
    if not isinstance(terms, tuple) or len(terms) < 2:
        raise ValueError(f"{kind} needs a tuple of at least two terms")
    for term in terms:
        if not isinstance(term, Token | And | Or):
            raise ValueError(f"{kind} terms must be Token, And or Or, not {type(term).__name__}")


@dataclass(frozen=True)
class AccessExpression:
    """A parsed access expression; ``root`` is ``None`` for the empty expression.

    Immutable and hashable; two expressions are equal when their trees are equal (the text they
    were parsed from is not kept, so ``(a)`` and ``a`` are equal, ``a&b`` and ``b&a`` are not --
    compare :func:`normalize` results for that). ``str()`` renders the tree, quoting tokens only
    where needed.
    """

    root: Node | None = None
    _evaluator: _Evaluator = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.root is not None and not isinstance(self.root, Token | And | Or):
            raise ValueError("root must be a Token, And, Or or None")
        # Built once per expression so evaluating it per record does no tree walking.
        object.__setattr__(self, "_evaluator", _compile(self.root))

    def __str__(self) -> str:
        return "" if self.root is None else _render(self.root)

    def __reduce__(self) -> tuple[type[AccessExpression], tuple[Node | None]]:
        # The compiled closure cannot be pickled (workers on Ray, multiprocessing); rebuild it.
        return (AccessExpression, (self.root,))

    @property
    def is_empty(self) -> bool:
        """True for the empty expression, which anyone may read."""
        return self.root is None

    def evaluate(self, authorizations: AbstractSet[str]) -> bool:
        """True if ``authorizations`` (a set) satisfies the expression; see :func:`evaluate`."""
        return self._evaluator(authorizations)


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def quote_token(token: str) -> str:
    """Render ``token`` for an expression: as is when it needs no quotes, else double-quoted.

    Inside quotes ``"`` and ``\\`` are escaped with a backslash. Raises
    :class:`AccessExpressionError` for the empty token, which no expression can hold.
    """
    if not token:
        raise AccessExpressionError("empty token", offset=0, expression=token)
    if _UNQUOTED_TOKEN.fullmatch(token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote_token(text: str) -> str:
    """Return the token that ``text`` (one quoted or unquoted token) stands for.

    Raises :class:`AccessExpressionError` if ``text`` is not exactly one valid token.
    """
    if not text:
        raise AccessExpressionError("empty token", offset=0, expression=text)
    value, end = _scan_token(text, 0)
    if end != len(text):
        raise AccessExpressionError(
            f"unexpected character {text[end]!r}", offset=end, expression=text
        )
    return value


def _scan_token(text: str, pos: int) -> tuple[str, int]:
    """Read the token starting at ``pos``; return its value and the offset just after it."""
    if text[pos] == '"':
        return _scan_quoted(text, pos)
    match = _UNQUOTED_TOKEN.match(text, pos)
    if match is None:
        raise AccessExpressionError(
            f"unexpected character {text[pos]!r}", offset=pos, expression=text
        )
    return match.group(), match.end()


def _scan_quoted(text: str, start: int) -> tuple[str, int]:
    parts: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        # Copy runs of plain characters at once; only quotes and backslashes need a look.
        j = i
        while j < n and text[j] not in '"\\':
            j += 1
        parts.append(text[i:j])
        if j >= n:
            break
        if text[j] == '"':
            value = "".join(parts)
            if not value:
                raise AccessExpressionError("empty quoted token", offset=start, expression=text)
            return value, j + 1
        if j + 1 < n and text[j + 1] in '"\\':
            parts.append(text[j + 1])
            i = j + 2
            continue
        raise AccessExpressionError("invalid escape in quoted token", offset=j, expression=text)
    raise AccessExpressionError("unterminated quoted token", offset=start, expression=text)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

# What came just before the term being read; it decides which error a bad character is.
_Context = Literal["start", "open", "operator"]


class _Parser:
    """Recursive descent over ``expression := term (op term)*``, ``term := token | ( expr )``."""

    __slots__ = ("n", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.n = len(text)

    def error(self, message: str, offset: int) -> AccessExpressionError:
        return AccessExpressionError(message, offset=offset, expression=self.text)

    def parse(self) -> Node | None:
        if self.n == 0:
            return None
        node = self.expression(0, "start")
        if self.pos < self.n:
            # expression() stops early only at a ')' that no '(' opened.
            raise self.error("unbalanced parenthesis", self.pos)
        return node

    def expression(self, depth: int, context: _Context) -> Node:
        text = self.text
        terms = [self.term(depth, context)]
        operator = ""
        while self.pos < self.n:
            char = text[self.pos]
            if char in "&|":
                if not operator:
                    operator = char
                elif char != operator:
                    raise self.error("mixed & and | without parentheses", self.pos)
                self.pos += 1
                terms.append(self.term(depth, "operator"))
            elif char == ")":
                break
            elif char in '("' or char in _TOKEN_CHARS:
                raise self.error("juxtaposed terms", self.pos)
            else:
                raise self.error(f"unexpected character {char!r}", self.pos)
        if len(terms) == 1:
            return terms[0]
        return And(tuple(terms)) if operator == "&" else Or(tuple(terms))

    def term(self, depth: int, context: _Context) -> Node:
        pos = self.pos
        if pos >= self.n:
            if context == "operator":
                raise self.error("dangling operator", pos - 1)
            # context "open": the text ended right after a '('.
            raise self.error("unbalanced parenthesis", pos - 1)
        char = self.text[pos]
        if char == "(":
            if depth >= MAX_DEPTH:
                raise self.error(f"parentheses nested deeper than {MAX_DEPTH}", pos)
            self.pos += 1
            node = self.expression(depth + 1, "open")
            if self.pos >= self.n:
                raise self.error("unbalanced parenthesis", pos)
            self.pos += 1  # the ')' that expression() stopped at
            return node
        if char == ")":
            if context == "operator":
                raise self.error("dangling operator", pos - 1)
            if context == "open":
                raise self.error("empty parentheses", pos - 1)
            raise self.error("unbalanced parenthesis", pos)
        if char in "&|":
            if context == "operator":
                raise self.error("doubled operator", pos)
            raise self.error("dangling operator", pos)
        value, self.pos = _scan_token(self.text, pos)
        return Token(value)


def parse_expression(text: str) -> AccessExpression:
    """Parse ``text`` into an :class:`AccessExpression`.

    Raises :class:`AccessExpressionError` whose ``offset`` is the 0-based position of the
    offending character (for an unbalanced or empty pair of parentheses, the ``(``; for a
    dangling operator, the operator) and whose message is a short phrase such as
    ``"unbalanced parenthesis"`` or ``"mixed & and | without parentheses"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"an access expression must be a str, not {type(text).__name__}")
    return AccessExpression(_Parser(text).parse())


@lru_cache(maxsize=8192)
def compile_expression(text: str) -> AccessExpression:
    """Like :func:`parse_expression`, cached by text: use it on the per-record read path."""
    return parse_expression(text)


def _as_expression(expr: AccessExpression | str) -> AccessExpression:
    if isinstance(expr, AccessExpression):
        return expr
    return compile_expression(expr)


# --------------------------------------------------------------------------------------------
# Rendering and normalization
# --------------------------------------------------------------------------------------------


def _render(node: Node) -> str:
    if isinstance(node, Token):
        return quote_token(node.value)
    operator = "&" if isinstance(node, And) else "|"
    return operator.join(_render_term(term) for term in node.terms)


def _render_term(node: Node) -> str:
    """Render ``node`` as a term of a group: every sub-group keeps its parentheses.

    Parenthesizing same-operator sub-groups too (``(a&b)&c``) keeps the tree's shape, so
    ``parse(str(tree)) == tree``; :func:`normalize` flattens them first.
    """
    if isinstance(node, Token):
        return quote_token(node.value)
    return "(" + _render(node) + ")"


def _normalize_node(node: Node) -> Node:
    if isinstance(node, Token):
        return node
    kind = type(node)
    flat: list[Node] = []
    for term in node.terms:
        term = _normalize_node(term)
        # Checked after normalizing: a&a inside (a&a)|b has become a token by now, and
        # ((a|b)&(a|b))|c has become (a|b)|c, which must flatten too.
        if type(term) is kind:
            flat.extend(term.terms)
        else:
            flat.append(term)
    by_rendering = {_render_term(term): term for term in flat}
    if len(by_rendering) == 1:
        return next(iter(by_rendering.values()))
    return kind(tuple(by_rendering[key] for key in sorted(by_rendering)))


@lru_cache(maxsize=8192)
def _normalized(expr: AccessExpression) -> AccessExpression:
    return AccessExpression(None if expr.root is None else _normalize_node(expr.root))


def normalize(expr: AccessExpression | str) -> str:
    """Return the canonical text of ``expr`` (see the module docstring for the exact rules).

    Expressions that differ only in term order, duplicate terms, grouping of the same operator,
    redundant parentheses or needless quotes normalize to the same string; the empty
    expression normalizes to ``""``. Raises :class:`AccessExpressionError` for invalid text.
    """
    return str(_normalized(_as_expression(expr)))


def _walk_tokens(node: Node | None) -> Iterator[str]:
    if node is None:
        return
    if isinstance(node, Token):
        yield node.value
        return
    for term in node.terms:
        yield from _walk_tokens(term)


def authorizations_expression_tokens(expr: AccessExpression | str) -> frozenset[str]:
    """Every token (unquoted) that ``expr`` mentions."""
    return frozenset(_walk_tokens(_as_expression(expr).root))


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _always(_authorizations: AbstractSet[str]) -> bool:
    return True


def _compile(node: Node | None) -> _Evaluator:
    """Turn a tree into a closure over sets.

    The tokens directly under a group become one frozenset, so ``a&b&c`` is one ``issubset``
    call and ``a|b|c`` one ``isdisjoint`` call, done in C; only sub-groups cost a Python call.
    """
    if node is None:
        return _always
    if isinstance(node, Token):
        value = node.value
        return lambda authorizations: value in authorizations
    tokens = frozenset(term.value for term in node.terms if isinstance(term, Token))
    subs = tuple(_compile(term) for term in node.terms if not isinstance(term, Token))
    if isinstance(node, And):

        def all_of(authorizations: AbstractSet[str]) -> bool:
            return tokens.issubset(authorizations) and all(sub(authorizations) for sub in subs)

        return all_of

    def any_of(authorizations: AbstractSet[str]) -> bool:
        return not tokens.isdisjoint(authorizations) or any(sub(authorizations) for sub in subs)

    return any_of


def _as_set(authorizations: Iterable[str]) -> AbstractSet[str]:
    # A lone string is an iterable of characters; treating "CLS:TS" as {"C", "L", ...} would
    # be a silent and dangerous mistake.
    if isinstance(authorizations, str):
        raise TypeError("authorizations must be a collection of tokens, not a single str")
    if isinstance(authorizations, set | frozenset):
        return authorizations
    return frozenset(authorizations)


def _as_sets(authorization_sets: Sequence[Iterable[str]]) -> list[AbstractSet[str]]:
    if isinstance(authorization_sets, str):
        raise TypeError("authorization_sets must be a sequence of token collections")
    # No sets at all means a subject holding nothing, not a vacuous "every set agrees".
    return [_as_set(auths) for auths in authorization_sets] or [frozenset()]


def evaluate(expr: AccessExpression | str, authorizations: Iterable[str]) -> bool:
    """True if a subject holding ``authorizations`` may read what ``expr`` protects.

    A token holds when it is in ``authorizations`` (exact, case-sensitive match of the unquoted
    token). Text is parsed through :func:`compile_expression`'s cache; pass a set or frozenset to
    avoid a copy. Raises :class:`AccessExpressionError` for invalid text.
    """
    return _as_expression(expr)._evaluator(_as_set(authorizations))


def evaluate_all(expr: AccessExpression | str, authorization_sets: Sequence[Iterable[str]]) -> bool:
    """True if every set in ``authorization_sets`` satisfies ``expr``.

    Used when a service acts for a user: both must be able to read. An empty sequence counts
    as one empty set, so only the empty expression is readable.
    """
    compiled = _as_expression(expr)
    return all(compiled._evaluator(auths) for auths in _as_sets(authorization_sets))


# --------------------------------------------------------------------------------------------
# Explanation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The outcome of checking an expression against authorizations, with its reasons.

    ``expression`` is the normalized expression; ``failed`` lists, rendered without outer
    parentheses, the top-level terms that did not hold (each failing conjunct of an ``&``
    expression, or the whole expression when it is one token or an ``|`` group);
    ``reason`` is one sentence for people, e.g. ``"missing CLS:TS; needs one of
    CTRY:GBR|CTRY:USA"``.
    """

    accessible: bool
    expression: str
    failed: tuple[str, ...] = ()
    reason: str = ""


def _failed_terms(root: Node | None, authorizations: AbstractSet[str]) -> list[Node]:
    if root is None:
        return []
    # After normalization an And has no And terms, so its terms are tokens and Or groups.
    terms = root.terms if isinstance(root, And) else (root,)
    return [term for term in terms if not _compile(term)(authorizations)]


def _describe(failed: Sequence[Node]) -> str:
    missing = [str(term) for term in failed if isinstance(term, Token)]
    parts = ["missing " + ", ".join(missing)] if missing else []
    parts += [f"needs one of {term}" for term in failed if isinstance(term, Or)]
    # An And can fail at top level only as the whole expression, never after normalization;
    # kept for trees built by hand.
    parts += [f"needs all of {term}" for term in failed if isinstance(term, And)]
    return "; ".join(parts)


def explain(expr: AccessExpression | str, authorizations: Iterable[str]) -> Decision:
    """Evaluate ``expr`` for ``authorizations`` and say why the answer is what it is."""
    return explain_all(expr, [authorizations])


def explain_all(
    expr: AccessExpression | str, authorization_sets: Sequence[Iterable[str]]
) -> Decision:
    """Like :func:`explain` for several sets (all must satisfy ``expr``).

    ``failed`` holds the failing terms of all sets, each once, in order of first appearance;
    with more than one set, ``reason`` names the failing sets by 1-based position. An empty
    sequence counts as one empty set.
    """
    normalized = _normalized(_as_expression(expr))
    text = str(normalized)
    sets = _as_sets(authorization_sets)
    failed: dict[str, None] = {}
    reasons: list[str] = []
    for number, auths in enumerate(sets, start=1):
        terms = _failed_terms(normalized.root, auths)
        if not terms:
            continue
        for term in terms:
            failed.setdefault(str(term), None)
        description = _describe(terms)
        reasons.append(description if len(sets) == 1 else f"set {number}: {description}")
    if not reasons:
        if normalized.root is None:
            return Decision(True, text, (), "the expression is empty, so anyone may read")
        return Decision(True, text, (), "every condition of the expression holds")
    return Decision(False, text, tuple(failed), "; ".join(reasons))

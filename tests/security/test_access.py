"""Unit tests for garrison.security.access: errors, quoting, normalization, explanation."""

from __future__ import annotations

import pickle

import pytest

import garrison.security.access as access
from garrison.core.errors import AccessExpressionError, InvalidInput
from garrison.security.access import (
    AccessExpression,
    And,
    Decision,
    Or,
    Token,
    authorizations_expression_tokens,
    compile_expression,
    evaluate,
    evaluate_all,
    explain,
    explain_all,
    normalize,
    parse_expression,
    quote_token,
    unquote_token,
)


def test_public_surface() -> None:
    assert sorted(access.__all__) == [
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
    for name in access.__all__:
        assert hasattr(access, name)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_tree_shape() -> None:
    assert parse_expression("") == AccessExpression(None)
    assert parse_expression("").is_empty
    assert parse_expression("a").root == Token("a")
    assert parse_expression("((a))").root == Token("a")
    assert parse_expression("a&b|c".replace("|c", "&c")).root == And(
        (Token("a"), Token("b"), Token("c"))
    )
    # Grouping is kept as written; normalize() is what flattens.
    assert parse_expression("(a|b)|c").root == Or((Or((Token("a"), Token("b"))), Token("c")))
    assert parse_expression('"A\\"C"&"x y"').root == And((Token('A"C'), Token("x y")))


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("()", "empty parentheses", 0),
        ("a&()", "empty parentheses", 2),
        ("&", "dangling operator", 0),
        ("A|", "dangling operator", 1),
        ("(five)&", "dangling operator", 6),
        ("(&five)", "dangling operator", 1),
        ("(five|)", "dangling operator", 5),
        ("a&&b", "doubled operator", 2),
        ("a|&b", "doubled operator", 2),
        ("(", "unbalanced parenthesis", 0),
        (")", "unbalanced parenthesis", 0),
        ("b|a)", "unbalanced parenthesis", 3),
        ("((A)", "unbalanced parenthesis", 0),
        ("(a&(b|c)", "unbalanced parenthesis", 0),
        ("a|b&c", "mixed & and | without parentheses", 3),
        ("(A&B)|(C&D)&(E)", "mixed & and | without parentheses", 11),
        ("one(five)", "juxtaposed terms", 3),
        ("(five)one", "juxtaposed terms", 6),
        ("(one)(two)", "juxtaposed terms", 5),
        ('a"b"', "juxtaposed terms", 1),
        ("a#b", "unexpected character '#'", 1),
        (" ", "unexpected character ' '", 0),
        ("a& b", "unexpected character ' '", 2),
        ("a\n", "unexpected character '\\n'", 1),
        ("五", "unexpected character '五'", 0),
        ('""', "empty quoted token", 0),
        ('a&("")', "empty quoted token", 3),
        ('"a\\b"', "invalid escape in quoted token", 2),
        ('"a\\', "invalid escape in quoted token", 2),
        ('x|"abc', "unterminated quoted token", 2),
    ],
)
def test_parse_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(AccessExpressionError) as info:
        parse_expression(text)
    err = info.value
    assert (err.message, err.offset, err.expression) == (message, offset, text)
    assert isinstance(err, InvalidInput)
    assert err.code == "invalid-expression"


def test_nesting_limit() -> None:
    deep_ok = "(" * access.MAX_DEPTH + "a" + ")" * access.MAX_DEPTH
    assert parse_expression(deep_ok).root == Token("a")
    too_deep = "(" * (access.MAX_DEPTH + 1) + "a" + ")" * (access.MAX_DEPTH + 1)
    with pytest.raises(AccessExpressionError) as info:
        parse_expression(too_deep)
    assert info.value.offset == access.MAX_DEPTH
    # Deep but legal alternating nesting evaluates without hitting the recursion limit.
    text = "a"
    for i in range(access.MAX_DEPTH):
        text = f"(b{i}{'&' if i % 2 else '|'}{text})"
    auths = {"a"} | {f"b{i}" for i in range(1, access.MAX_DEPTH, 2)}
    assert evaluate(text, auths)
    assert not evaluate(text, auths - {"b1"})
    assert evaluate(normalize(text), auths)
    assert not explain(text, auths - {"b1"}).accessible


def test_parse_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        parse_expression(b"a")  # type: ignore[arg-type]


def test_node_validation() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Token("")
    with pytest.raises(ValueError, match="at least two"):
        And((Token("a"),))
    with pytest.raises(ValueError, match="at least two"):
        Or([Token("a"), Token("b")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be Token"):
        And((Token("a"), "b"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="root"):
        AccessExpression("a")  # type: ignore[arg-type]


# --- rendering and quoting -------------------------------------------------------------------


def test_str_renders_tree() -> None:
    assert str(parse_expression("")) == ""
    assert str(parse_expression('("a_b")')) == "a_b"
    assert str(parse_expression("(a&b)&c")) == "(a&b)&c"
    assert str(parse_expression("((a|b))&c")) == "(a|b)&c"
    assert str(parse_expression('"SCI:SI-G ABCD"|x')) == '"SCI:SI-G ABCD"|x'
    built = AccessExpression(And((Token("CLS:TS"), Or((Token("CTRY:USA"), Token("CTRY:GBR"))))))
    assert str(built) == "CLS:TS&(CTRY:USA|CTRY:GBR)"
    assert parse_expression(str(built)) == built


@pytest.mark.parametrize(
    ("token", "quoted"),
    [
        ("CLS:TS", "CLS:TS"),
        ("a_b-c/d:e.f", "a_b-c/d:e.f"),
        ("SCI:SI-G ABCD", '"SCI:SI-G ABCD"'),
        ('A"C', '"A\\"C"'),
        ("A\\C", '"A\\\\C"'),
        ("五", '"五"'),
        ("a#b", '"a#b"'),
        ("(", '"("'),
        ("\n", '"\n"'),
    ],
)
def test_quote_unquote(token: str, quoted: str) -> None:
    assert quote_token(token) == quoted
    assert unquote_token(quoted) == token
    assert evaluate(quoted, {token})


def test_unquote_accepts_needless_quotes() -> None:
    assert unquote_token('"abc"') == "abc"


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("", "empty token", 0),
        ('""', "empty quoted token", 0),
        ("a b", "unexpected character ' '", 1),
        ('"a"b', "unexpected character 'b'", 3),
        ("a&b", "unexpected character '&'", 1),
        ('"a\\x"', "invalid escape in quoted token", 2),
    ],
)
def test_unquote_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(AccessExpressionError) as info:
        unquote_token(text)
    assert (info.value.message, info.value.offset) == (message, offset)


def test_quote_empty_token_is_an_error() -> None:
    with pytest.raises(AccessExpressionError, match="empty token"):
        quote_token("")


# --- evaluation ------------------------------------------------------------------------------


def test_evaluate_basics() -> None:
    assert evaluate("", [])
    assert evaluate("a", ["a"])
    assert not evaluate("a", ["A"])  # case-sensitive
    assert evaluate("a&(b|c)", iter(["a", "c"]))
    assert not evaluate("a&(b|c)", {"b", "c"})
    assert evaluate('"A#C"|x', frozenset({"A#C"}))
    expr = parse_expression("CLS:S&CTRY:USA")
    assert expr.evaluate({"CLS:S", "CTRY:USA", "CLS:U"})


def test_evaluate_rejects_a_single_string() -> None:
    with pytest.raises(TypeError, match="single str"):
        evaluate("a", "a")
    with pytest.raises(TypeError):
        evaluate_all("a", "a")


def test_evaluate_all() -> None:
    assert evaluate_all("B|C", [["A", "B"], ["C", "D"]])
    assert not evaluate_all("A", [["A", "B"], ["C", "D"]])
    # No sets at all is one empty set: only the empty expression is readable.
    assert evaluate_all("", [])
    assert not evaluate_all("a", [])


def test_compile_expression_is_cached() -> None:
    assert compile_expression("x&y") is compile_expression("x&y")
    with pytest.raises(AccessExpressionError):
        compile_expression("x&")


def test_expression_pickles_and_hashes() -> None:
    expr = parse_expression('a&("b c"|d)')
    clone = pickle.loads(pickle.dumps(expr))
    assert clone == expr
    assert hash(clone) == hash(expr)
    assert clone.evaluate({"a", "b c"})


def test_tokens() -> None:
    assert authorizations_expression_tokens("") == frozenset()
    assert authorizations_expression_tokens('a&("b c"|a)&(d|e)') == {"a", "b c", "d", "e"}


# --- normalization ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("a", "a"),
        ("((a))", "a"),
        ('"a"', "a"),
        ("b&a", "a&b"),
        ("a&a", "a"),
        ("(a&a)|b", "a|b"),
        ("(b|a)|c|(a)", "a|b|c"),
        ("((b&a)&c)&(d&(e&a))", "a&b&c&d&e"),
        ("c&(b|a)", "(a|b)&c"),
        ("(b&c)|(a&d)|(c&b)", "(a&d)|(b&c)"),
        ("((a|b)&(b|a))|c", "a|b|c"),
        ('z&"x y"&"A#C"', '"A#C"&"x y"&z'),
        ("a|(a&b)", "(a&b)|a"),  # no absorption: only the documented rules apply
        (
            "CLS:TS&SCI:SI&SCI:SI-G&DISSEM:ORCON&(CTRY:USA|CTRY:GBR)",
            "(CTRY:GBR|CTRY:USA)&CLS:TS&DISSEM:ORCON&SCI:SI&SCI:SI-G",
        ),
    ],
)
def test_normalize(text: str, canonical: str) -> None:
    assert normalize(text) == canonical
    assert normalize(parse_expression(text)) == canonical
    assert normalize(canonical) == canonical


def test_normalize_orders_by_code_point() -> None:
    # Code point order equals UTF-8 byte order: '"' < '(' < digits < ':' < upper < lower.
    assert normalize('b|B|1|(x&y)|"五"|"#"') == '"#"|"五"|(x&y)|1|B|b'
    assert normalize('"é"|"z z"') == '"z z"|"é"'


def test_normalize_rejects_invalid() -> None:
    with pytest.raises(AccessExpressionError):
        normalize("a|b&c")


# --- explanation -----------------------------------------------------------------------------


def test_explain_missing_tokens_and_groups() -> None:
    decision = explain("CLS:TS&SCI:SI&(CTRY:USA|CTRY:GBR)", {"CLS:S", "CLS:TS"})
    assert decision == Decision(
        accessible=False,
        expression="(CTRY:GBR|CTRY:USA)&CLS:TS&SCI:SI",
        failed=("CTRY:GBR|CTRY:USA", "SCI:SI"),
        reason="missing SCI:SI; needs one of CTRY:GBR|CTRY:USA",
    )


def test_explain_single_token_and_or() -> None:
    assert explain("CLS:TS", []).reason == "missing CLS:TS"
    assert explain("CLS:TS", []).failed == ("CLS:TS",)
    decision = explain("(a&b)|c", ["a"])
    assert decision.failed == ("(a&b)|c",)
    assert decision.reason == "needs one of (a&b)|c"
    assert explain('"x y"', []).reason == 'missing "x y"'


def test_explain_accessible() -> None:
    decision = explain("a&(b|c)", ["a", "c"])
    assert decision.accessible
    assert decision.failed == ()
    assert decision.expression == "(b|c)&a"
    assert decision.reason
    empty = explain("", [])
    assert empty.accessible
    assert "empty" in empty.reason


def test_explain_all() -> None:
    decision = explain_all("A&B", [["A"], ["B"], ["A", "B"]])
    assert not decision.accessible
    assert decision.failed == ("B", "A")
    assert decision.reason == "set 1: missing B; set 2: missing A"
    assert explain_all("A", [["A"], ["A", "B"]]).accessible
    assert not explain_all("A", []).accessible
    assert explain_all("", []).accessible


def test_explain_hand_built_and_root() -> None:
    # A hand-built tree whose And holds an And: explain works on the normalized form.
    expr = AccessExpression(And((And((Token("a"), Token("b"))), Token("c"))))
    decision = explain(expr, {"c"})
    assert decision.expression == "a&b&c"
    assert decision.failed == ("a", "b")
    assert decision.reason == "missing a, b"

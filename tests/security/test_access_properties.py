"""Property-based tests for the access-expression algebra.

Expressions are generated as text together with an independent model of their meaning, so the
evaluator is checked against something other than itself.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.errors import AccessExpressionError
from garrison.security.access import (
    AccessExpression,
    authorizations_expression_tokens,
    evaluate,
    evaluate_all,
    explain,
    normalize,
    parse_expression,
    quote_token,
    unquote_token,
)

SETTINGS = settings(deadline=None, max_examples=300)

# A small pool so that random authorization sets hit and miss often; some need quoting.
POOL = ["a", "b", "c", "CLS:TS", "a_b-c/d:e.f", "x y", 'q"t', "b\\s", "五", "#"]

# Model: ("tok", value) | ("and", [model, ...]) | ("or", [model, ...])
Model = tuple[str, Any]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@st.composite
def token_texts(draw: st.DrawFn) -> tuple[str, Model]:
    value = draw(st.sampled_from(POOL))
    if quote_token(value) == value and not draw(st.booleans()):
        text = value
    else:  # needless quotes are legal too
        text = f'"{_escape(value)}"'
    return text, ("tok", value)


def _group(children: st.SearchStrategy[tuple[str, Model]]) -> st.SearchStrategy[tuple[str, Model]]:
    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, Model]:
        kind = draw(st.sampled_from(["and", "or"]))
        parts = draw(st.lists(children, min_size=2, max_size=4))
        rendered = []
        for text, model in parts:
            # A group inside a group needs parentheses; anything may get redundant ones.
            if model[0] != "tok" or draw(st.booleans()):
                text = f"({text})"
            rendered.append(text)
        return ("&" if kind == "and" else "|").join(rendered), (kind, [m for _, m in parts])

    return build()


expressions = st.recursive(token_texts(), _group, max_leaves=12)
maybe_empty = st.one_of(st.just(("", ("empty", None))), expressions)
auth_sets = st.frozensets(st.sampled_from(POOL))


def model_eval(model: Model, auths: frozenset[str]) -> bool:
    kind, body = model
    if kind == "empty":
        return True
    if kind == "tok":
        return body in auths
    results = [model_eval(m, auths) for m in body]
    return all(results) if kind == "and" else any(results)


@SETTINGS
@given(maybe_empty, auth_sets)
def test_evaluate_matches_model(generated: tuple[str, Model], auths: frozenset[str]) -> None:
    text, model = generated
    assert evaluate(text, auths) is model_eval(model, auths)
    assert explain(text, auths).accessible is model_eval(model, auths)


@SETTINGS
@given(maybe_empty, st.lists(auth_sets, max_size=3))
def test_evaluate_all_is_every_set(
    generated: tuple[str, Model], sets: list[frozenset[str]]
) -> None:
    text, model = generated
    expected = all(model_eval(model, s) for s in (sets or [frozenset()]))
    assert evaluate_all(text, sets) is expected


@SETTINGS
@given(maybe_empty)
def test_normalize_is_idempotent(generated: tuple[str, Model]) -> None:
    once = normalize(generated[0])
    assert normalize(once) == once
    assert normalize(parse_expression(once)) == once


@SETTINGS
@given(maybe_empty, auth_sets)
def test_normalized_decides_the_same(generated: tuple[str, Model], auths: frozenset[str]) -> None:
    text = generated[0]
    assert evaluate(normalize(text), auths) is evaluate(text, auths)


@SETTINGS
@given(expressions, expressions)
def test_normalize_ignores_order_and_duplicates(
    left: tuple[str, Model], right: tuple[str, Model]
) -> None:
    x, y = left[0], right[0]
    for op in "&|":
        assert normalize(f"({x}){op}({y})") == normalize(f"({y}){op}({x})")
        assert normalize(f"({x}){op}({x})") == normalize(x)
    assert authorizations_expression_tokens(normalize(x)) == authorizations_expression_tokens(x)


@SETTINGS
@given(maybe_empty)
def test_str_round_trips(generated: tuple[str, Model]) -> None:
    expr = parse_expression(generated[0])
    rendered = str(expr)
    assert parse_expression(rendered) == expr
    assert str(parse_expression(rendered)) == rendered
    assert AccessExpression(expr.root) == expr


@SETTINGS
@given(st.text(min_size=1))
def test_quote_unquote_round_trip(token: str) -> None:
    quoted = quote_token(token)
    assert unquote_token(quoted) == token
    assert parse_expression(quoted).root is not None
    assert evaluate(quoted, {token})
    assert authorizations_expression_tokens(quoted) == {token}


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list('ab&|()"\\ #五')), max_size=20))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    error: AccessExpressionError | None = None
    try:
        expr = parse_expression(text)
    except AccessExpressionError as err:
        error = err
    if error is None:
        assert parse_expression(str(expr)) == expr
    else:
        assert 0 <= error.offset < max(len(text), 1)
        assert error.expression == text

"""Fuzzing the marking and access-expression parsers: every text parses or names a rule.

A fixed, derandomized budget so CI is reproducible; ``python -m bench fuzz`` runs longer. The
contract each example checks is in :mod:`bench._fuzz`.
"""

from __future__ import annotations

import pytest
from bench import _fuzz
from bench._fuzz import EXPRESSION_ALPHABET, MARKING_TOKENS, check_expression, check_marking
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.security.markings import MARKING_RULES

#: Derandomized (the same examples every run) and no example database written anywhere.
FIXED = settings(max_examples=300, deadline=None, derandomize=True, database=None)

_tokens = st.lists(st.sampled_from(MARKING_TOKENS), max_size=14)
marking_texts = st.one_of(
    _tokens.map("".join),
    _tokens.map(" ".join),
    _tokens.map("//".join),
    _tokens.map(lambda parts: "(" + "/".join(parts) + ")"),
    st.text(max_size=40),
)
expression_texts = st.one_of(
    st.text(alphabet=EXPRESSION_ALPHABET, max_size=40),
    st.text(max_size=20),
    # Deep nesting: the parser must refuse it with an error, not a RecursionError.
    st.integers(min_value=1, max_value=3000).map(lambda n: "(" * n + "a" + ")" * n),
)


@FIXED
@given(marking_texts)
def test_marking_text_parses_or_names_a_rule(text: str) -> None:
    assert check_marking(text) in {"parsed"} | {f"rule:{rule}" for rule in MARKING_RULES}


@FIXED
@given(expression_texts)
def test_access_expression_parses_or_is_rejected_with_an_offset(text: str) -> None:
    assert check_expression(text) in {"parsed", "rejected"}


def test_the_checks_tell_outcomes_apart() -> None:
    assert check_marking("SECRET//NOFORN") == "parsed"
    assert check_marking("SECRET//FOUO") == "rule:fouo-requires-unclassified"
    # A banner may hold what no single portion can: its portion spelling is not required to
    # read back, a portion's is.
    assert check_marking("SECRET//FGI DEU//RELIDO") == "parsed"
    assert check_marking("(S//FGI DEU//RELIDO)") == "rule:foreign-no-relido"
    assert check_expression("a&(b|c)") == "parsed"
    assert check_expression("a&b|c") == "rejected"


def test_a_parser_that_raises_something_else_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str, **_: object) -> None:
        raise IndexError("a parser bug")

    monkeypatch.setattr(_fuzz, "parse_marking", broken)
    with pytest.raises(IndexError):
        check_marking("SECRET")

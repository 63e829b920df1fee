"""One normalization for every reader of marks: invisible characters and spacing never hide one.

Property: for any valid marking, its portion mark at the start of a text and its banner as a
whole line stay recognized, and read the same, whatever invisible characters and space variants
are put into them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_markings_properties import parts as markings  # valid markings of parts

from garrison.parse._banner import is_banner_line
from garrison.security.markings import (
    Marking,
    find_portion_mark,
    is_banner_candidate,
    normalize_marking_text,
    parse_marking,
)
from garrison.security.markings._text import _piece, map_normalized

SETTINGS = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
SPACES = [" ", "  ", "\u00a0", "\t", "\u2003", "\u3000", " \u00a0 ", "\u202f"]


@st.composite
def disguised(draw: st.DrawFn, text: str) -> str:
    """``text`` with invisible characters inserted and its spaces (and the room around ``//``)
    replaced by space variants."""
    out: list[str] = []
    for char in text:
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from(INVISIBLE)))
        if char == " ":
            out.append(draw(st.sampled_from(SPACES)))
        else:
            out.append(char)
    disguised_text = "".join(out)
    if draw(st.booleans()):
        disguised_text = disguised_text.replace("//", draw(st.sampled_from(SPACES)) + "//")
    return disguised_text


def _canonical(marking: Marking, spelling: str) -> str:
    return parse_marking(spelling).banner()


@SETTINGS
@given(st.data(), markings())
def test_a_disguised_portion_mark_is_still_found(data: st.DataObject, marking: Marking) -> None:
    portion = marking.portion()
    expected = _canonical(marking, portion)
    hidden = data.draw(disguised(portion))
    rest = "report " + data.draw(st.text(max_size=40))
    text = f"{hidden} {rest}"
    found = find_portion_mark(text)
    assert found is not None, repr(text)
    mark, end = found
    assert parse_marking(mark).banner() == expected
    assert text[end:].lstrip() == rest


@SETTINGS
@given(st.data(), markings())
def test_a_disguised_banner_line_is_still_a_banner(data: st.DataObject, marking: Marking) -> None:
    banner = marking.banner()
    hidden = data.draw(disguised(banner))
    assert parse_marking(hidden).banner() == _canonical(marking, banner)
    assert is_banner_line(hidden), repr(hidden)
    if "//" in banner:
        assert is_banner_candidate(hidden), repr(hidden)
        if not banner.startswith("//"):  # a "//" line needs an upper-case word (not a comment)
            assert is_banner_line(hidden.title()), repr(hidden.title())  # mixed case, with //


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("(TOP  SECRET//SI//NF)", "(TOP SECRET//SI//NF)"),
        ("(TOP\u00a0\tSECRET)", "(TOP SECRET)"),
        ("\ufeff(S\u200b//NF)", "(S//NF)"),
        ("（Ｓ//ＮＦ）", "(S//NF)"),  # full-width forms, NFKC
        ("line one\u2028(S)\fnext\vlast", "line one\u2028(S)\fnext\vlast"),  # breaks stay
    ],
)
def test_normalization(text: str, normalized: str) -> None:
    assert normalize_marking_text(text) == normalized


def test_line_breaks_are_line_boundaries() -> None:
    # a mark is read on its own line only; a banner is a whole line
    assert find_portion_mark("(S//NF\n) text") is not None  # strong, unclosed on its line
    assert find_portion_mark("x\u2028(S) text") is None
    assert not is_banner_candidate("SECRET//NOFORN\u2028more")


def _map_char_by_char(text: str) -> tuple[str, list[int]]:
    """:func:`map_normalized` without its shortcut for ASCII that needs no change."""
    out: list[str] = []
    ends: list[int] = []
    for index, char in enumerate(text):
        for c in _piece(char):
            if c == " " and out and out[-1] == " ":
                ends[-1] = index + 1
                continue
            out.append(c)
            ends.append(index + 1)
    return "".join(out), ends


@SETTINGS
@given(
    st.text(
        alphabet=st.sampled_from([*"(U)S//NF abc\t\x1f\n\r\x0b\x0c\x1c", "\u00a0", "\u200b", "é"]),
        max_size=40,
    )
    | st.text(alphabet=st.characters(max_codepoint=127), max_size=40)
)
def test_map_normalized_shortcut_is_exact(text: str) -> None:
    assert map_normalized(text) == _map_char_by_char(text)

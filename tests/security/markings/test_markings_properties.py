"""Property-based tests of the marking algebra (MARKINGS.md section 3 demands them).

``markings()`` builds valid markings structurally, covering every category of section 1: each
level including CUI, SCI with compartments and sub-compartments, SAP, each dissemination
control, REL TO lists with groups and opaque codes, DISPLAY ONLY, RELIDO, CUI categories and
CUI-only controls (also kept under classified levels).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st

from garrison.core.errors import MarkingError
from garrison.security.markings import (
    MARKING_RULES,
    UNCLASSIFIED,
    Level,
    Marking,
    access_expression,
    dominates,
    join,
    parse_marking,
    release_expression,
)

SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

# A small pool so that intersections are often non-empty and groups often cover countries.
TRIGRAPHS = ["GBR", "AUS", "CAN", "NZL", "JPN", "FRA", "IRQ"]
TETRAGRAPHS = ["FVEY", "ACGU", "TEYE", "NATO", "ISAF"]
SYSTEMS = ["SI", "TK", "HCS", "KDK", "RSV"]
COMPARTMENTS = ["G", "P", "ECRU", "3", "12"]
SUBS = ["ABCD", "EFGH", "7"]
CUI_CATEGORIES = ["SP-PRVCY", "SP-EXPT", "PRVCY", "EXPT", "PROPIN", "LEI", "OPSEC"]
CUI_CONTROLS = ["FED ONLY", "FEDCON", "NOCON", "DL ONLY"]

sci_paths = st.builds(
    lambda system, comp, sub: system + (f"-{comp}" + (f" {sub}" if sub else "") if comp else ""),
    st.sampled_from(SYSTEMS),
    st.none() | st.sampled_from(COMPARTMENTS),
    st.none() | st.sampled_from(SUBS),
)
release_codes = st.sets(st.sampled_from(TRIGRAPHS + TETRAGRAPHS), min_size=1, max_size=4)


@st.composite
def markings(draw: st.DrawFn) -> Marking:
    level = draw(st.sampled_from(list(Level)))
    classified = level.is_classified
    sci: set[str] = set()
    if classified and draw(st.booleans()):
        for path in draw(st.lists(sci_paths, min_size=1, max_size=3)):
            if path.startswith("SI-G") and level != Level.TS:
                continue
            if path.startswith("TK") and level < Level.S:
                continue
            sci.add(path)
    needs_orcon = any(p.startswith("SI-G") for p in sci)
    needs_noforn = any(p.startswith("HCS") for p in sci)
    sap = (
        draw(st.sets(st.sampled_from(["BP", "XYZ", "9", "A-1"]), max_size=2))
        if classified
        else set()
    )
    orcon = classified and (needs_orcon or draw(st.booleans()))
    release = "noforn" if needs_noforn else draw(st.sampled_from(["none", "noforn", "controls"]))
    rel_to: set[str] = set()
    display: set[str] = set()
    relido = False
    if release == "controls":
        kind = draw(st.sampled_from(["rel", "relido", "display", "rel+display", "all"]))
        relido = kind in ("relido", "all") or draw(st.booleans())
        if kind in ("rel", "rel+display", "all"):
            rel_to = draw(release_codes) | {"USA"}
        if kind in ("display", "rel+display", "all"):
            display = draw(release_codes)
    cui: set[str] = set()
    if level == Level.CUI or (classified and draw(st.integers(0, 3)) == 0):
        # "CUI" is the bare-CUI marker a classified roll-up keeps (dropped at the CUI level).
        pool = CUI_CATEGORIES + CUI_CONTROLS + ["CUI"]
        cui = draw(st.sets(st.sampled_from(pool), max_size=3))
    m = Marking(
        level,
        sci=frozenset(sci),
        sap=frozenset(sap),
        fouo=level == Level.U and draw(st.booleans()),
        orcon=orcon,
        orcon_usgov=classified and draw(st.booleans()),
        imcon=draw(st.booleans()),
        noforn=release == "noforn",
        propin=classified and draw(st.booleans()),
        relido=relido,
        fisa=draw(st.booleans()),
        rel_to=frozenset(rel_to),
        display_only=frozenset(display),
        cui=frozenset(cui),
    )
    event(f"level {level.name}; release {release}")
    return m


@pytest.mark.parametrize(
    ("what", "predicate"),
    [
        ("CUI level with categories", lambda m: m.level == Level.CUI and m.cui_categories),
        ("CUI-only control", lambda m: m.level == Level.CUI and m.cui_controls),
        ("classified with cui attribute", lambda m: m.level.is_classified and m.cui),
        ("classified with bare CUI", lambda m: m.level.is_classified and m.cui == {"CUI"}),
        ("sub-compartment", lambda m: any(" " in p for p in m.sci)),
        ("SI-G", lambda m: any(p.startswith("SI-G") for p in m.sci)),
        ("HCS", lambda m: any(p.startswith("HCS") for p in m.sci)),
        ("SAP", lambda m: m.sap),
        ("FOUO", lambda m: m.fouo),
        ("ORCON-USGOV", lambda m: m.orcon_usgov),
        ("IMCON and FISA", lambda m: m.imcon and m.fisa),
        ("PROPIN", lambda m: m.propin),
        ("NOFORN", lambda m: m.noforn),
        ("REL TO with a group", lambda m: m.rel_to & {"FVEY", "ACGU", "TEYE"}),
        ("REL TO with an opaque code", lambda m: m.rel_to & {"NATO", "ISAF"}),
        ("RELIDO only", lambda m: m.relido and not m.rel_to and not m.display_only),
        ("DISPLAY ONLY", lambda m: m.display_only),
        ("REL TO and DISPLAY ONLY", lambda m: m.rel_to and m.display_only),
        ("unclassified with REL TO", lambda m: m.level == Level.U and m.rel_to),
    ],
)
def test_strategy_reaches_every_category(what: str, predicate: Callable[[Marking], object]) -> None:
    find(
        markings(),
        lambda m: bool(predicate(m)),
        settings=settings(deadline=None, database=None, max_examples=5000),
    )


@SETTINGS
@given(markings(), markings())
def test_join_is_commutative(a: Marking, b: Marking) -> None:
    assert join(a, b).identical(join(b, a))


@SETTINGS
@given(markings(), markings(), markings())
def test_join_is_associative(a: Marking, b: Marking, c: Marking) -> None:
    left = join(join(a, b), c)
    assert left == join(a, join(b, c))
    assert left == join(a, b, c)


@SETTINGS
@given(markings())
def test_join_is_idempotent_and_unclassified_is_its_identity(m: Marking) -> None:
    assert join(m, m).identical(m)
    assert join(m, UNCLASSIFIED) == m
    assert join(UNCLASSIFIED, m) == m


@SETTINGS
@given(markings(), markings())
def test_join_dominates_each_input(a: Marking, b: Marking) -> None:
    j = join(a, b)
    assert dominates(j, a)
    assert dominates(j, b)
    assert j.level == max(a.level, b.level)


@SETTINGS
@given(markings(), markings())
def test_dominance_is_antisymmetric(a: Marking, b: Marking) -> None:
    assert dominates(a, a)
    if dominates(a, b) and dominates(b, a):
        assert a == b


@SETTINGS
@given(markings(), markings(), markings())
def test_dominance_is_transitive(x: Marking, y: Marking, c: Marking) -> None:
    # Build a chain a >= b >= c, then check a >= c (random triples rarely form chains).
    b = join(c, y)
    a = join(b, x)
    assert dominates(a, b)
    assert dominates(b, c)
    assert dominates(a, c)


@SETTINGS
@given(markings())
def test_marking_lines_round_trip(m: Marking) -> None:
    if m.level.is_classified and m.cui:
        # Rule 7: a classified line cannot show CUI; only the structured form keeps it.
        assert parse_marking(m.banner()) != m
        return
    assert parse_marking(m.banner()).identical(m)
    assert parse_marking(m.portion()).identical(m)
    assert parse_marking(m.portion().lower()).identical(m)


@SETTINGS
@given(markings())
def test_structured_form_round_trips(m: Marking) -> None:
    assert Marking.from_dict(m.to_dict()).identical(m)
    assert Marking.from_dict(m.to_dict()).to_dict() == m.to_dict()


@SETTINGS
@given(markings(), markings())
def test_expressions_are_deterministic_and_follow_equality(a: Marking, b: Marking) -> None:
    if a == b:
        assert access_expression(a) == access_expression(b)
    expr = access_expression(a)
    assert expr == access_expression(Marking.from_dict(a.to_dict()))
    assert expr.startswith(("(", '"', "CLS:"))
    assert ("CTRY:" in release_expression(a)) == ("CTRY:" in expr)


@SETTINGS
@given(markings(), markings())
def test_join_never_loosens_the_expression_terms(a: Marking, b: Marking) -> None:
    # Every non-country term needed to read a part is needed to read the whole.
    def terms(m: Marking) -> set[str]:
        return {t for t in access_expression(m).split("&") if "CTRY:" not in t}

    j = terms(join(a, b))
    for part in (a, b):
        for term in terms(part):
            assert term in j or term.startswith("CLS:") or "ORCON-USGOV" in term


TOKENS = [
    "U", "C", "S", "TS", "CUI", "SECRET", "NF", "NOFORN", "OC", "ORCON-USGOV", "FOUO", "PR",
    "IMC", "FISA", "RELIDO", "REL", "REL TO USA, GBR", "REL TO GBR", "REL TO USA",
    "DISPLAY ONLY IRQ", "SI", "SI-G", "SI-G ABCD", "TK", "HCS-P", "SAR-BP", "SP-PRVCY",
    "FED ONLY", "NATO SECRET", "FGI", "XYZ", "", " ",
]  # fmt: skip


@settings(deadline=None, max_examples=300)
@given(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6),
    st.lists(st.sampled_from(["//", "/", "///", " // "]), min_size=6, max_size=6),
    st.booleans(),
)
def test_parser_fails_closed_on_token_soup(tokens: list[str], seps: list[str], paren: bool) -> None:
    text = tokens[0] + "".join(sep + tok for sep, tok in zip(seps, tokens[1:], strict=False))
    if paren:
        text = f"({text})"
    try:
        m = parse_marking(text)
    except MarkingError as exc:
        rule = exc.rule
    else:
        event("accepted")
        # Anything accepted is canonical and stable.
        assert parse_marking(m.banner()) == m
        return
    event(f"rejected: {rule}")
    assert rule in MARKING_RULES


@SETTINGS
@given(st.text(max_size=40))
def test_parser_never_crashes(text: str) -> None:
    try:
        m = parse_marking(text)
    except MarkingError:
        return
    assert parse_marking(m.portion()) == m

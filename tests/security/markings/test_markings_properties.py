"""Property-based tests of the marking algebra (MARKINGS.md section 3 demands them).

``markings()`` builds valid markings structurally, covering every category of section 1: each
level including CUI, SCI with compartments and sub-compartments, SAP, each dissemination
control, REL TO lists with groups and opaque codes, DISPLAY ONLY, RELIDO, CUI categories and
CUI-only controls (also kept under classified levels); and of section 7: non-US owners
(segregated and concealed), NATO levels and controls, JOINT, FGI, atomic energy markings,
HVSACO, WAIVED, DEA SENSITIVE, the non-IC dissemination controls and ACCM, as parts and as
roll-ups (which keep controls their banner line drops).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

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
def us_markings(draw: st.DrawFn) -> Marking:
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
        imcon=level >= Level.S and draw(st.booleans()),
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


NATO_NAMES = ["NU", "NR", "NC", "NS", "CTS"]
NATO_US = {"NU": Level.U, "NR": Level.C, "NC": Level.C, "NS": Level.S, "CTS": Level.TS}
US_LEVELS = [Level.U, Level.C, Level.S, Level.TS]


def _foreign_release(draw: st.DrawFn, *, noforn_ok: bool) -> dict[str, object]:
    choice = draw(st.sampled_from(["none", "noforn", "rel"] if noforn_ok else ["none", "rel"]))
    if choice == "noforn":
        return {"noforn": True}
    if choice == "rel":
        return {"rel_to": frozenset(draw(release_codes) | {"USA"})}
    return {}


@st.composite
def register_parts(draw: st.DrawFn) -> Marking:
    """A part marked with the categories of MARKINGS.md section 7."""
    kind = draw(st.sampled_from(["US", "NONUS", "NATO", "JOINT"]))
    kwargs: dict[str, object] = {"kind": kind}
    if kind == "NATO":
        nato = draw(st.sampled_from(NATO_NAMES))
        level = NATO_US[nato]
        controls = set()
        if nato in ("CTS", "NS", "NC") and draw(st.booleans()):
            controls.add("ATOMAL")
        if nato == "CTS":
            controls |= draw(st.sets(st.sampled_from(["BOHEMIA", "BALK"])))
        kwargs.update(nato=nato, nato_controls=frozenset(controls))
        kwargs.update(_foreign_release(draw, noforn_ok=False))
        event(f"NATO {nato}")
        return Marking(level, **kwargs)  # type: ignore[arg-type]
    if kind == "NONUS":
        restricted = draw(st.booleans())
        level = Level.C if restricted else draw(st.sampled_from(US_LEVELS))
        if draw(st.integers(0, 3)) == 0:
            kwargs["concealed"] = True
        else:
            kwargs["owners"] = frozenset(
                draw(st.sets(st.sampled_from(["DEU", "GBR", "CAN"]), min_size=1))
            )
        kwargs["restricted"] = restricted
        kwargs.update(_foreign_release(draw, noforn_ok=True))
        return Marking(level, **kwargs)  # type: ignore[arg-type]
    if kind == "JOINT":
        level = draw(st.sampled_from(US_LEVELS))
        owners = draw(st.sets(st.sampled_from(["CAN", "GBR"]), min_size=1)) | {"USA"}
        extra = draw(st.sets(st.sampled_from(["AUS", "NATO"])))
        return Marking(
            level, kind="JOINT", owners=frozenset(owners), rel_to=frozenset(owners | extra)
        )
    level = draw(st.sampled_from(US_LEVELS))
    classified = level.is_classified
    fgi = set(draw(st.sets(st.sampled_from(["DEU", "GBR", "NATO"]), max_size=2)))
    concealed = draw(st.integers(0, 4)) == 0
    controls: set[str] = set()
    if "NATO" in fgi:
        if classified and draw(st.booleans()):
            controls.add("ATOMAL")
        if level == Level.TS:
            controls |= draw(st.sets(st.sampled_from(["BOHEMIA", "BALK"])))
    aea: set[str] = set()
    sigma: set[int] = set()
    if classified:
        aea |= draw(st.sets(st.sampled_from(["RD", "FRD", "TFNI"])))
        if "RD" in aea and level >= Level.S and draw(st.booleans()):
            aea.add("CNWDI")
        if aea & {"RD", "FRD"} and level >= Level.S and draw(st.booleans()):
            sigma = draw(st.sets(st.sampled_from([1, 14, 15, 18, 20, 99]), min_size=1))
    else:
        aea |= draw(st.sets(st.sampled_from(["DOD UCNI", "DOE UCNI"])))
    nonic: set[str] = set()
    pool = (
        ["LIMDIS", "SBU", "SBU NOFORN", "LES", "LES NOFORN", "SSI"]
        if not classified
        else [
            "LES",
            "LES NOFORN",
            "SSI",
        ]
    )
    for control in draw(st.sets(st.sampled_from(pool), max_size=2)):
        if control.endswith("NOFORN") and control.split()[0] in nonic:
            continue
        if control + " NOFORN" in nonic:
            continue
        nonic.add(control)
    exdis = draw(st.sampled_from([None, None, "EXDIS", "NODIS"]))
    release = draw(st.sampled_from(["none", "noforn", "rel"]))
    if exdis:
        nonic.add(exdis)
        release = "noforn"
    if sigma or nonic & {"SBU NOFORN", "LES NOFORN"}:
        release = "none" if release == "rel" else release
    sap = (
        frozenset(
            draw(st.sets(st.sampled_from(["BP", "GB", "TC", "9", "BUTTERED POPCORN"]), max_size=4))
        )
        if classified
        else frozenset()
    )
    hvsaco = not sap and draw(st.booleans())
    kwargs.update(
        fgi=frozenset(fgi),
        concealed=concealed,
        nato_controls=frozenset(controls),
        aea=frozenset(aea),
        sigma=frozenset(sigma),
        nonic=frozenset(nonic),
        sap=sap,
        hvsaco=hvsaco,
        waived=bool(sap) and draw(st.booleans()),
        dsen=draw(st.booleans()),
        accm=frozenset(draw(st.sets(st.sampled_from(["TEA LEAF", "PINE CONE"]))))
        if classified
        else frozenset(),
        noforn=release == "noforn",
        fouo=level == Level.U and draw(st.booleans()),
    )
    if release == "rel":
        kwargs["rel_to"] = frozenset(draw(release_codes) | {"USA"})
    return Marking(level, **kwargs)  # type: ignore[arg-type]


def parts() -> st.SearchStrategy[Marking]:
    """Markings as written on one part (sections 1 and 7)."""
    return st.one_of(us_markings(), register_parts())


def markings() -> st.SearchStrategy[Marking]:
    """Section 1 markings, section 7 parts, and roll-ups of section 7 parts."""
    return st.one_of(
        us_markings(),
        register_parts(),
        st.builds(join, register_parts(), register_parts()),
        st.builds(join, us_markings(), register_parts()),
    )


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
        ("non-US owners", lambda m: m.kind == "NONUS" and len(m.owners) > 1),
        ("concealed owner", lambda m: m.kind == "NONUS" and m.concealed),
        ("RESTRICTED", lambda m: m.restricted),
        ("NATO with ATOMAL", lambda m: m.kind == "NATO" and "ATOMAL" in m.nato_controls),
        ("NATO with BOHEMIA", lambda m: m.kind == "NATO" and "BOHEMIA" in m.nato_controls),
        ("JOINT", lambda m: m.kind == "JOINT"),
        ("FGI NATO in a US result", lambda m: m.kind == "US" and "NATO" in m.fgi),
        ("bare FGI", lambda m: m.kind == "US" and m.concealed),
        ("RD-CNWDI-SIGMA", lambda m: m.aea >= {"RD", "CNWDI"} and m.sigma),
        ("FRD", lambda m: "FRD" in m.aea),
        ("UCNI", lambda m: m.aea & {"DOD UCNI", "DOE UCNI"}),
        (
            "UCNI kept under a classified level",
            lambda m: m.level.is_classified and m.aea & {"DOD UCNI", "DOE UCNI"},
        ),
        ("HVSACO", lambda m: m.hvsaco and not m.sap),
        ("three programs", lambda m: len(m.sap) >= 3),
        ("WAIVED", lambda m: m.waived),
        ("DEA SENSITIVE", lambda m: m.dsen),
        ("NODIS over EXDIS", lambda m: {"EXDIS", "NODIS"} <= m.nonic),
        ("SBU NOFORN", lambda m: "SBU NOFORN" in m.nonic),
        (
            "LIMDIS kept under a classified level",
            lambda m: m.level.is_classified and "LIMDIS" in m.nonic,
        ),
        ("ACCM", lambda m: m.accm),
        ("SAP nickname", lambda m: "BUTTERED POPCORN" in m.sap),
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
    if m.kind == "US":
        assert join(m, UNCLASSIFIED) == m
        assert join(UNCLASSIFIED, m) == m
    else:
        # Rule 8: a non-US, NATO or JOINT marking beside a US part rolls up to a US marking.
        assert join(m, UNCLASSIFIED).kind == "US"
        assert dominates(join(m, UNCLASSIFIED), m)


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
        # Rule 9: dominance ignores FGI codes other than NATO (content indicators).
        assert _access_part(a) == _access_part(b)


def _access_part(m: Marking) -> Marking:
    if m.kind != "US":
        return m
    return replace(m, fgi=m.fgi & {"NATO"}, concealed=False)


def _line_shows_everything(m: Marking) -> bool:
    """Whether a marking line can say all of ``m`` (roll-ups keep what their line drops)."""
    hidden = m.nonic & {"LIMDIS", "SBU", "SBU NOFORN"} or m.aea & {"DOD UCNI", "DOE UCNI"}
    return not (
        (m.level.is_classified and m.cui)
        or (m.level != Level.U and hidden)
        or {"EXDIS", "NODIS"} <= m.nonic
        or (m.nonic & {"EXDIS", "NODIS"} and m.nonic & {"SBU", "SBU NOFORN"})
        or (m.hvsaco and m.sap)
        or m.sap_multiple
        or (m.concealed and m.fgi)
        or (m.kind == "US" and m.nato and m.nato != _NATO_OF[m.level])
        or ((m.relido or m.display_only) and (m.kind != "US" or m.fgi or m.concealed))
    )


_NATO_OF = {Level.U: "NU", Level.CUI: "NU", Level.C: "NC", Level.S: "NS", Level.TS: "CTS"}


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
    if not _line_shows_everything(m):
        # Rules 11, 13, 14: the line drops what the structured form keeps.
        event("line drops part of the marking")
        return
    if len(m.sap) < 3:
        assert parse_marking(m.banner()).identical(m)
    else:
        assert "SAR-MULTIPLE PROGRAMS" in m.banner()
    assert parse_marking(m.portion()).identical(m)
    assert parse_marking(m.portion().lower()).identical(m)


@SETTINGS
@given(markings())
def test_every_banner_line_reads_back(m: Marking) -> None:
    # A banner Garrison writes (an export, a roll-up) is never one it would quarantine, and it
    # never claims less than the line shows.
    read = parse_marking(m.banner())
    assert read.banner() == m.banner()
    assert read.level == m.level


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
    assert expr.startswith(("(", '"', "AEA:", "CLS:"))
    assert ("CTRY:" in release_expression(a)) == ("CTRY:" in expr)


@SETTINGS
@given(markings(), markings())
def test_join_never_loosens_the_expression_terms(a: Marking, b: Marking) -> None:
    # Every non-country term needed to read a part is needed to read the whole.
    # Levels are hierarchical (CLS:, and NATO levels: a CTS briefing covers NS ... NU).
    def terms(m: Marking) -> set[str]:
        return {t for t in access_expression(m).split("&") if "CTRY:" not in t}

    nato_rank = {f"NATO:{n}": i for i, n in enumerate(NATO_NAMES)}
    j = terms(join(a, b))
    top = max((nato_rank[t] for t in j if t in nato_rank), default=-1)
    for part in (a, b):
        for term in terms(part):
            if term in nato_rank:
                assert nato_rank[term] <= top
                continue
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

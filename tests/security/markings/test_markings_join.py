"""Roll-up (join), dominance and system high: MARKINGS.md sections 3 and 5."""

from __future__ import annotations

import pytest

from garrison.core.errors import MarkingError
from garrison.security.markings import (
    UNCLASSIFIED,
    Level,
    Marking,
    dominates,
    join,
    parse_marking,
    system_high_dominates,
)

# The worked examples table of section 3, row by row.
WORKED_EXAMPLES = [
    (["(U)", "(U)"], "UNCLASSIFIED"),
    (["(C)", "(S)", "(U)"], "SECRET"),
    (["(TS//SI//NF)", "(S//NF)"], "TOP SECRET//SI//NOFORN"),
    (["(TS//SI-G//OC/NF)", "(S//TK//NF)"], "TOP SECRET//SI-G/TK//ORCON/NOFORN"),
    (["(S//NF)", "(S//REL TO USA, GBR)"], "SECRET//NOFORN"),
    (["(S//REL TO USA, JPN, NZL)", "(S//REL TO USA, NZL)"], "SECRET//REL TO USA, NZL"),
    (["(S//REL TO USA, FVEY)", "(C)"], "SECRET//NOFORN"),
    (["(U)", "(S//REL TO USA, GBR)"], "SECRET//REL TO USA, GBR"),
    (
        ["(S//REL TO USA, FVEY/RELIDO)", "(C//REL TO USA, FVEY/RELIDO)"],
        "SECRET//REL TO USA, FVEY/RELIDO",
    ),
    (["(U//FOUO)", "(S//NF)"], "SECRET//NOFORN"),
    (["(U//FOUO)", "(U)"], "UNCLASSIFIED//FOUO"),
    (["(U//FOUO/NF)"], "UNCLASSIFIED//FOUO/NOFORN"),
    (["(CUI//SP-PRVCY)", "(CUI//SP-EXPT//NF)", "(U)"], "CUI//SP-EXPT/SP-PRVCY//NOFORN"),
]


@pytest.mark.parametrize(("portions", "banner"), WORKED_EXAMPLES)
def test_worked_examples(portions: list[str], banner: str) -> None:
    markings = [parse_marking(p) for p in portions]
    assert join(*markings).banner() == banner
    assert join(*reversed(markings)).banner() == banner


@pytest.mark.parametrize(
    ("portions", "banner"),
    [
        # Group write-back: a group from an input whose members all survive; largest first.
        (["S//REL TO USA, FVEY", "S//REL TO USA, ACGU"], "SECRET//REL TO USA, ACGU"),
        (["S//REL TO USA, FVEY", "S//REL TO USA, GBR, NZL, JPN"], "SECRET//REL TO USA, GBR, NZL"),
        (["S//REL TO USA, FVEY", "S//REL TO USA, AUS, CAN, GBR, NZL"], "SECRET//REL TO USA, FVEY"),
        (["S//REL TO USA, FVEY", "S//REL TO USA, TEYE, CAN"], "SECRET//REL TO USA, CAN, TEYE"),
        (["S//REL TO USA, FVEY, NATO", "S//REL TO USA, NATO, JPN"], "SECRET//REL TO USA, NATO"),
        # Opaque tetragraphs only match themselves.
        (["S//REL TO USA, NATO", "S//REL TO USA, GBR"], "SECRET//NOFORN"),
        # RELIDO.
        (["S//RELIDO", "C//RELIDO"], "SECRET//RELIDO"),
        (["S//RELIDO", "S//REL TO USA, GBR"], "SECRET//NOFORN"),
        (["S//RELIDO", "S"], "SECRET//NOFORN"),
        (["S//REL TO USA, GBR/RELIDO", "S//REL TO USA, GBR"], "SECRET//REL TO USA, GBR"),
        # DISPLAY ONLY: per country, the most restrictive grant.
        (
            ["S//REL TO USA, GBR, AUS", "S//REL TO USA, GBR/DISPLAY ONLY AUS"],
            "SECRET//REL TO USA, GBR/DISPLAY ONLY AUS",
        ),
        (["S//DISPLAY ONLY GBR", "S//REL TO USA, GBR"], "SECRET//DISPLAY ONLY GBR"),
        (["S//DISPLAY ONLY GBR", "S//DISPLAY ONLY FRA"], "SECRET//NOFORN"),
        (["S//DISPLAY ONLY FVEY", "S//REL TO USA, FVEY"], "SECRET//DISPLAY ONLY FVEY"),
        (["S//DISPLAY ONLY GBR", "C"], "SECRET//NOFORN"),
        # Unclassified parts count only when they carry release controls.
        (["U//REL TO USA, GBR", "U"], "UNCLASSIFIED//REL TO USA, GBR"),
        (["U//REL TO USA, GBR", "CUI//SP-PRVCY"], "CUI//SP-PRVCY//REL TO USA, GBR"),
        (["U//REL TO USA, GBR", "S"], "SECRET//NOFORN"),
        (["U//NF", "S//REL TO USA, GBR"], "SECRET//NOFORN"),
        (["CUI//NF", "S"], "SECRET//NOFORN"),
        # Rules 2-4.
        (["TS//SI//NF", "TS//SI-G ABCD//OC/NF"], "TOP SECRET//SI-G ABCD//ORCON/NOFORN"),
        (["S//OC-USGOV", "S//OC"], "SECRET//ORCON"),
        (["S//OC-USGOV", "S//IMC/FISA"], "SECRET//ORCON-USGOV/IMCON/FISA"),
        (["U//FOUO", "CUI"], "CUI"),
        (["S//SAR-BP", "C//SAR-AB"], "SECRET//SAR-AB/BP"),
    ],
)
def test_release_and_union_rules(portions: list[str], banner: str) -> None:
    assert join(*(parse_marking(p) for p in portions)).banner() == banner


def test_join_of_nothing_is_unclassified() -> None:
    assert join() == UNCLASSIFIED
    assert join().banner() == "UNCLASSIFIED"
    assert join().identical(Marking(Level.U))


def test_classified_join_keeps_cui_in_the_attribute() -> None:
    m = join(parse_marking("CUI//SP-PRVCY//FED ONLY"), parse_marking("S//NF"))
    assert m.banner() == "SECRET//NOFORN"
    assert m.portion() == "(S//NF)"
    assert m.cui == {"SP-PRVCY", "FED ONLY"}
    assert m.has_cui
    # The banner line cannot carry it, so only the structured form round-trips.
    assert parse_marking(m.banner()) != m
    assert Marking.from_dict(m.to_dict()) == m


def test_bare_cui_is_not_forgotten_under_a_classified_level() -> None:
    m = join(parse_marking("(CUI)"), parse_marking("(C)"))
    assert m.banner() == "CONFIDENTIAL"
    assert m.cui == {"CUI"}
    assert m.has_cui
    assert m.cui_categories == frozenset()
    assert Marking.from_dict(m.to_dict()).identical(m)
    # A category says it already: the bare marker is then redundant.
    both = join(m, parse_marking("CUI//SP-PRVCY"))
    assert both.cui == {"SP-PRVCY"}
    assert dominates(both, m)


def test_semantic_equality_expands_groups() -> None:
    grouped = parse_marking("S//REL TO USA, FVEY")
    listed = parse_marking("S//REL TO USA, AUS, CAN, GBR, NZL")
    assert grouped == listed
    assert hash(grouped) == hash(listed)
    assert not grouped.identical(listed)
    assert grouped.banner() != listed.banner()


def test_dominance() -> None:
    s_nf = parse_marking("S//NF")
    assert dominates(s_nf, parse_marking("C"))
    assert dominates(s_nf, parse_marking("S//REL TO USA, GBR"))
    assert not dominates(parse_marking("S//REL TO USA, GBR"), s_nf)
    assert not dominates(s_nf, parse_marking("TS//NF"))
    assert dominates(parse_marking("S//REL TO USA, GBR"), parse_marking("C//REL TO USA, FVEY"))
    # (S) has no release marking, so it is not releasable: REL TO does not dominate it.
    assert not dominates(parse_marking("S//REL TO USA, GBR"), parse_marking("S"))
    with_cui = join(parse_marking("CUI//SP-PRVCY"), s_nf)
    assert not dominates(s_nf, with_cui)
    assert dominates(s_nf, with_cui, ignore_cui=True)


@pytest.mark.parametrize(
    ("system_high", "marking", "expected"),
    [
        ("SECRET//REL TO USA, FVEY", "S//REL TO USA, FVEY", True),
        ("SECRET//REL TO USA, FVEY", "C//REL TO USA, AUS, CAN, GBR, NZL", True),
        # Not releasable to every country the network serves: the join is narrower.
        ("SECRET//REL TO USA, FVEY", "S//REL TO USA, GBR", False),
        ("SECRET//REL TO USA, FVEY", "S", False),  # section 5: (S) alone is a spill there
        ("SECRET//REL TO USA, FVEY", "TS//REL TO USA, GBR", False),
        ("SECRET//REL TO USA, FVEY", "CUI//SP-PRVCY", True),
        ("SECRET//REL TO USA, FVEY", "CUI//SP-PRVCY//REL TO USA, FVEY", True),
        ("SECRET//REL TO USA, FVEY", "CUI//SP-PRVCY//REL TO USA, GBR", False),
        ("SECRET//REL TO USA, FVEY", "CUI//SP-PRVCY//NF", False),  # CUI's NOFORN counts
        ("SECRET//NOFORN", "TS//SI//NF", False),
        ("SECRET//NOFORN", "C//REL TO USA, GBR", True),
        ("SECRET//NOFORN", "CUI//SP-EXPT//FEDCON", True),
        ("SECRET//NOFORN", "S//SAR-BP", False),
        ("CUI", "CUI//SP-PRVCY", False),  # the CUI exception needs CONFIDENTIAL or above
        ("CUI//SP-PRVCY", "CUI//SP-PRVCY", True),
        ("UNCLASSIFIED", "UNCLASSIFIED//FOUO", False),
    ],
)
def test_system_high(system_high: str, marking: str, expected: bool) -> None:
    assert system_high_dominates(parse_marking(system_high), parse_marking(marking)) is expected


def test_conflicting_group_definitions_fail_closed() -> None:
    a = Marking(Level.S, rel_to=frozenset({"USA", "QUAD"}), groups=(("QUAD", frozenset({"JPN"})),))
    b = Marking(Level.S, rel_to=frozenset({"USA", "QUAD"}), groups=(("QUAD", frozenset({"IND"})),))
    with pytest.raises(MarkingError) as info:
        join(a, b)
    assert info.value.rule == "group-conflict"


def test_stored_marking_with_redefined_group_fails_closed() -> None:
    data = parse_marking("S//REL TO USA, FVEY").to_dict()
    data["groups"] = {"FVEY": ["GBR", "USA"]}
    with pytest.raises(MarkingError) as info:
        Marking.from_dict(data)
    assert info.value.rule == "group-conflict"


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"level": "SECRET"},
        {"dissem": ["NOPE"]},
        {"sci": "SI"},
        {"extra": 1},
        {"rel_to": ["USA", "QQQ"]},
    ],
)
def test_from_dict_rejects_bad_input(change: dict[str, object]) -> None:
    data = {**parse_marking("S//NF").to_dict(), **change}
    with pytest.raises(MarkingError):
        Marking.from_dict(data)

"""The rest of the register (MARKINGS.md section 7): the worked examples of 7.5, read from the
spec itself, every rule id of 7.2, the findings, the access terms of 7.4 and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from garrison.core.errors import MarkingError
from garrison.security.markings import (
    MARKING_RULES,
    Marking,
    access_expression,
    dominates,
    join,
    parse_marking,
    parse_with_findings,
)


def _section(shared_dir: Path, title: str) -> str:
    text = (shared_dir / "spec/MARKINGS.md").read_text()
    start = text.index(title)
    end = text.find("\n### ", start + len(title))
    return text[start : end if end >= 0 else len(text)]


def _tables(shared_dir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    rollups: list[tuple[str, str]] = []
    checks: list[tuple[str, str]] = []
    for line in _section(shared_dir, "### 7.5 Worked examples").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or set(cells[0]) <= {"-"} or cells[0] in ("portions", "marking"):
            continue
        if cells[0].startswith("`"):
            checks.append((cells[0].strip("`"), cells[1]))
        else:
            rollups.append((cells[0], cells[1]))
    return rollups, checks


def _portions(cell: str) -> list[str]:
    twice = cell.endswith(" twice")
    cell = cell.removesuffix(" twice")
    portions = re.findall(r"\([^()]*\)", cell)
    return portions * 2 if twice else portions


def test_worked_roll_ups(shared_dir: Path) -> None:
    rollups, _ = _tables(shared_dir)
    assert len(rollups) >= 23
    for cell, banner in rollups:
        parts = [parse_marking(p) for p in _portions(cell)]
        assert parts, cell
        result = join(*parts)
        assert result.banner() == banner, cell
        for part in parts:
            assert dominates(result, part), cell
        # The structured form keeps everything; the result stays a valid marking.
        assert Marking.from_dict(result.to_dict()).identical(result)


def test_worked_validity(shared_dir: Path) -> None:
    _, checks = _tables(shared_dir)
    assert len(checks) >= 28
    for text, result in checks:
        if result.startswith("valid"):
            marking, findings = parse_with_findings(text)
            rewritten = re.search(r"`([^`]+)`", result)
            if rewritten:
                assert marking.portion() == rewritten.group(1), text
            for finding in re.findall(r"finding ([a-z-]+)", result):
                assert finding in findings, text
            if "as SI" in result:
                assert marking.sci == {"SI"}
            continue
        assert result in MARKING_RULES, result
        with pytest.raises(MarkingError) as info:
            parse_marking(text)
        assert info.value.rule == result, text


# -- bad input through the CLI: exit 2, one line naming the rule -------------------------------


def _register_rule_cases() -> list[tuple[str, str]]:
    from test_markings_parse import REGISTER_RULE_CASES

    return list(REGISTER_RULE_CASES)


def test_every_invalid_form_exits_2_naming_its_rule(capsys: pytest.CaptureFixture[str]) -> None:
    from garrison.cli.main import main

    cases = _register_rule_cases()
    assert {rule for rule, _ in cases} >= {
        "class-exclusive", "nonus-owner", "fgi-no-usa", "fgi-concealed-alone",
        "foreign-no-relido", "joint-list", "joint-needs-relto", "nato-controls",
        "nato-no-noforn", "rd-requires-confidential", "cnwdi-requires-rd",
        "sigma-requires-parent", "sigma-level", "sigma-range", "sigma-no-release",
        "ucni-unclassified", "sap-multiple", "hvsaco-non-sap", "waived-needs-sap",
        "exdis-nodis-exclusive", "exdis-nodis-noforn", "nonic-unclassified",
        "nonic-nf-exclusive", "accm-classified",
    }  # fmt: skip
    for rule, text in [*cases, ("imcon-requires-secret", "C//IMC")]:
        code = main(["marking", "check", text])
        out, err = capsys.readouterr()
        assert code == 2, text
        assert out == ""
        assert err.count("\n") == 1, err
        assert f"(rule: {rule})" in err, (text, err)


# -- spellings read, canonical form written ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "banner", "portion"),
    [
        ("//DEU SECRET", "//DEU SECRET", "(//DEU S)"),
        ("(//gbr can s)", "//CAN GBR SECRET", "(//CAN GBR S)"),
        ("(//FGI S)", "//FGI SECRET", "(//FGI S)"),
        ("(//DEU R)", "//DEU RESTRICTED", "(//DEU R)"),
        ("//NATO RESTRICTED", "//NATO RESTRICTED", "(//NR)"),
        ("(//NU)", "//NATO UNCLASSIFIED", "(//NU)"),
        ("//COSMIC TOP SECRET BOHEMIA", "//COSMIC TOP SECRET//BOHEMIA", "(//CTS//BOHEMIA)"),
        ("(//CTS-BALK)", "//COSMIC TOP SECRET//BALK", "(//CTS//BALK)"),
        ("(//CTSA)", "//COSMIC TOP SECRET//ATOMAL", "(//CTS//ATOMAL)"),
        ("(//CTS-A)", "//COSMIC TOP SECRET//ATOMAL", "(//CTS//ATOMAL)"),
        ("//SECRET ATOMAL", "//NATO SECRET//ATOMAL", "(//NS//ATOMAL)"),
        ("(//NSAT)", "//NATO SECRET//ATOMAL", "(//NS//ATOMAL)"),
        ("(//NS-A)", "//NATO SECRET//ATOMAL", "(//NS//ATOMAL)"),
        ("//CONFIDENTIAL ATOMAL", "//NATO CONFIDENTIAL//ATOMAL", "(//NC//ATOMAL)"),
        ("(//NCA)", "//NATO CONFIDENTIAL//ATOMAL", "(//NC//ATOMAL)"),
        ("(//NC-A)", "//NATO CONFIDENTIAL//ATOMAL", "(//NC//ATOMAL)"),
        (
            "//JOINT SECRET USA GBR CAN//REL TO USA, CAN, GBR",
            "//JOINT SECRET CAN GBR USA//REL TO USA, CAN, GBR",
            "(//JOINT S CAN GBR USA//REL TO USA, CAN, GBR)",
        ),
        ("(S//FGI DEU)", "SECRET//FGI DEU", "(S//FGI DEU)"),
        ("(TS//FGI)", "TOP SECRET//FGI", "(TS//FGI)"),
        ("SECRET//SPECIAL ACCESS REQUIRED-BUTTERED POPCORN", "SECRET//SAR-BUTTERED POPCORN", None),
        ("(S//SAR-TC/9/BP)", "SECRET//SAR-MULTIPLE PROGRAMS", "(S//SAR-9/BP/TC)"),
        ("S//SAR-GB/SAR-BP", "SECRET//SAR-BP/GB", "(S//SAR-BP/GB)"),
        ("(U//HVSACO)", "UNCLASSIFIED//HVSACO", "(U//HVSACO)"),
        ("(S//SAR-BP//WAIVED)", "SECRET//SAR-BP//WAIVED", "(S//SAR-BP//WAIVED)"),
        (
            "TS//RESTRICTED DATA-N-SIGMA 18 14",
            "TOP SECRET//RD-CNWDI-SIGMA 14 18",
            "(TS//RD-CNWDI-SG 14 18)",
        ),
        ("S//FORMERLY RESTRICTED DATA-SG 15", "SECRET//FRD-SIGMA 15", "(S//FRD-SG 15)"),
        ("S//RD/FRD-SG 15/TFNI", "SECRET//RD-SIGMA 15", "(S//RD-SG 15)"),
        ("(S//FRD/TFNI)", "SECRET//FRD", "(S//FRD)"),
        ("(U//DCNI/UCNI)", "UNCLASSIFIED//DOD UCNI/DOE UCNI", "(U//DCNI/UCNI)"),
        ("(C//TFNI)", "CONFIDENTIAL//TFNI", "(C//TFNI)"),
        ("(U//DSEN)", "UNCLASSIFIED//DEA SENSITIVE", "(U//DSEN)"),
        ("(U//FOUO/DSEN)", "UNCLASSIFIED//DEA SENSITIVE", "(U//DSEN)"),
        ("U//LIMITED DISTRIBUTION", "UNCLASSIFIED//LIMDIS", "(U//DS)"),
        ("S//NF//EXCLUSIVE DISTRIBUTION", "SECRET//NOFORN//EXDIS", "(S//NF//XD)"),
        ("S//NF//NO DISTRIBUTION", "SECRET//NOFORN//NODIS", "(S//NF//ND)"),
        ("U//SENSITIVE BUT UNCLASSIFIED", "UNCLASSIFIED//SBU", "(U//SBU)"),
        ("(U//LES-NF)", "UNCLASSIFIED//LES NOFORN", "(U//LES-NF)"),
        ("(S//LES-NF)", "SECRET//NOFORN//LES", "(S//NF//LES)"),
        ("(U//SSI/LES)", "UNCLASSIFIED//LES/SSI", "(U//LES/SSI)"),
        ("C//ACCM-TEA LEAF/PINE CONE", "CONFIDENTIAL//ACCM-PINE CONE/TEA LEAF", None),
        ("SECRET//COMINT//NOFORN", "SECRET//SI//NOFORN", "(S//SI//NF)"),
        (
            "TS//SI//SAR-BP//RD//FGI GBR//NF//NODIS",
            "TOP SECRET//SI//SAR-BP//RD//FGI GBR//NOFORN//NODIS",
            "(TS//SI//SAR-BP//RD//FGI GBR//NF//ND)",
        ),
    ],
)
def test_spellings_are_read_and_written_canonically(
    text: str, banner: str, portion: str | None
) -> None:
    marking = parse_marking(text)
    assert marking.banner() == banner
    if portion is not None:
        assert marking.portion() == portion
        assert parse_marking(portion) == marking
    assert Marking.from_dict(marking.to_dict()).identical(marking)


def test_findings() -> None:
    assert parse_with_findings("SECRET//RD-SIGMA 3//NOFORN")[1] == ("legacy-sigma",)
    assert parse_with_findings("SECRET//RD-SIGMA 14 20//NOFORN")[1] == ()
    assert parse_with_findings("(TS//COMINT//NF)")[1] == ("legacy-marking",)
    assert parse_with_findings("(TS//COMINT//FRD-SG 9//NF)")[1] == (
        "legacy-marking",
        "legacy-sigma",
    )
    assert "COMINT" not in parse_marking("(TS//COMINT//NF)").banner()


# -- 7.4 access terms: each control compiles to a term subjects cannot hold yet ------------------


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("//NATO SECRET//ATOMAL", "CLS:S&CTRY:USA&NATO:ATOMAL&NATO:NS"),
        ("(//NU)", "CLS:U&CTRY:USA&NATO:NU"),
        ("(//NR)", "CLS:C&CTRY:USA&NATO:NR"),
        ("(//CTS//BOHEMIA/BALK)", "CLS:TS&CTRY:USA&NATO:BALK&NATO:BOHEMIA&NATO:CTS"),
        ("(S//FGI NATO)", "CLS:S&CTRY:USA&NATO:NS"),
        ("(S//FGI DEU)", "CLS:S&CTRY:USA"),
        ("(//DEU S//REL TO USA, DEU)", "(CTRY:DEU|CTRY:USA)&CLS:S"),
        ("(//DEU R)", "CLS:C&CTRY:USA"),
        ("(//DEU U)", "CLS:U&CTRY:USA"),
        ("(//JOINT S CAN USA//REL TO USA, CAN)", "(CTRY:CAN|CTRY:USA)&CLS:S"),
        (
            "(TS//RD-CNWDI-SG 14 20//NF)",
            "AEA:CNWDI&AEA:RD&AEA:SIGMA-14&AEA:SIGMA-20&CLS:TS&CTRY:USA",
        ),
        ("(S//FRD-SG 14)", "AEA:SIGMA-14&CLS:S&CTRY:USA"),
        ("(C//TFNI)", "CLS:C&CTRY:USA"),
        ("(U//DCNI)", "AEA:DCNI&CLS:U"),
        ("(U//UCNI)", "AEA:UCNI&CLS:U"),
        ("(U//HVSACO)", "CLS:U&SAP:HVSACO"),
        ("SECRET//SAR-MULTIPLE PROGRAMS", "CLS:S&CTRY:USA&SAP:MULTIPLE"),
        ("(S//SAR-BUTTERED POPCORN//WAIVED)", '"SAP:BUTTERED POPCORN"&CLS:S&CTRY:USA'),
        ("(S//ACCM-TEA LEAF)", '"ACCM:TEA LEAF"&CLS:S&CTRY:USA'),
        ("(U//DS)", "CLS:U&CTRY:USA&NONIC:LIMDIS"),
        ("(U//DSEN)", "CLS:U&CTRY:USA&DISSEM:DSEN"),
        ("(S//NF//XD)", "CLS:S&CTRY:USA&NONIC:EXDIS"),
        ("(S//NF//ND)", "CLS:S&CTRY:USA&NONIC:NODIS"),
        ("(U//SSI)", "CLS:U&NONIC:SSI"),
        ("(U//SBU)", "CLS:U&NONIC:SBU"),
        ("(U//SBU-NF)", "CLS:U&CTRY:USA&NONIC:SBU"),
        ("(U//LES-NF)", "CLS:U&CTRY:USA&NONIC:LES"),
    ],
)
def test_access_terms(text: str, expression: str) -> None:
    assert access_expression(parse_marking(text)) == expression


def test_controls_dropped_from_the_line_keep_their_terms() -> None:
    cases = [
        (["(S//HVSACO)", "(S//SAR-BP)"], "SAP:HVSACO"),
        (["(S//NF//XD)", "(C//NF//ND)"], "NONIC:EXDIS"),
        (["(U//SBU)", "(U//NF//XD)"], "NONIC:SBU"),
        (["(U//DCNI)", "(S)"], "AEA:DCNI"),
        (["(U//DS)", "(S//NF)"], "NONIC:LIMDIS"),
        (["(U//SBU)", "(C)"], "NONIC:SBU"),
        (["(TS//SAR-BP)", "(S//SAR-GB)", "(S//SAR-TC)"], "SAP:TC"),
        (["(//FGI S//NF)", "(//NS)"], "NATO:NS"),
    ]
    for portions, term in cases:
        rolled = join(*(parse_marking(p) for p in portions))
        dropped = term.split(":", 1)[1]
        assert dropped not in rolled.banner().replace("SAR-MULTIPLE", ""), portions
        assert term in access_expression(rolled).split("&"), portions
        stored = Marking.from_dict(rolled.to_dict())
        assert term in access_expression(stored).split("&")


def test_new_terms_are_not_held_by_any_current_subject() -> None:
    # Without the NATO, AEA, NONIC, ACCM, HVSACO and DEA SENSITIVE briefings of 7.4, such data
    # is readable by nobody, even a TOP SECRET US subject with every other dissemination grant
    # (fail closed; tests/security/test_register_grants.py grants them).
    from garrison.security.access import compile_expression
    from garrison.security.markings import Level
    from garrison.security.subjects import GRANTS, Subject

    subject = Subject(
        name="all", clearance=Level.TS, citizenship="USA", sci=frozenset({"SI"}),
        sap=frozenset({"SAR-BP"}), grants=GRANTS - {"DSEN"},
    )  # fmt: skip
    tokens = subject.authorizations

    def evaluate(expression: str, sets: list[frozenset[str]]) -> bool:
        return all(compile_expression(expression).evaluate(s) for s in sets)

    for text in [
        "//NATO SECRET", "(//NU)", "(S//FGI NATO)", "(S//RD//NF)", "(U//DCNI)", "(U//HVSACO)",
        "SECRET//SAR-MULTIPLE PROGRAMS", "(S//ACCM-TEA LEAF)", "(U//DS)", "(U//DSEN)",
        "(S//NF//XD)", "(U//SSI)", "(U//LES)", "(S//RD-SG 14//NF)",
    ]:  # fmt: skip
        assert not evaluate(access_expression(parse_marking(text)), [tokens]), text
    for text in ["(//DEU S)", "(S//FGI DEU)", "(S//FRD//NF)", "(C//TFNI)", "(S//SAR-BP//WAIVED)"]:
        assert evaluate(access_expression(parse_marking(text)), [tokens]), text


def test_ambiguous_readings_take_the_fail_closed_choice() -> None:
    # NOFORN: accepted on FGI, rejected on NATO (7.6).
    assert parse_marking("(//DEU S//NF)").banner() == "//DEU SECRET//NOFORN"
    # RESTRICTED joins as CONFIDENTIAL and needs CLS:C.
    assert join(parse_marking("(//DEU R)"), parse_marking("(U)")).banner() == (
        "CONFIDENTIAL//FGI DEU"
    )
    # SIGMA outside 14, 15, 18, 20 is read (with a finding), and its term is still required.
    assert "AEA:SIGMA-5" in access_expression(parse_marking("(S//RD-SG 5//NF)"))
    # Three listed programs are read from a banner; MULTIPLE is written at three.
    assert parse_marking("SECRET//SAR-A/B/C").sap == {"A", "B", "C"}
    # A mix of NATO parts, one without release control: NOFORN, so a US banner.
    mixed = join(parse_marking("(//NS)"), parse_marking("(//NS//REL TO USA, NATO)"))
    assert mixed.banner() == "SECRET//FGI NATO//NOFORN"
    # Concealed FGI with a NATO control keeps the NATO term.
    concealed = parse_marking("(S//ATOMAL//FGI)")
    assert "NATO:NS" in access_expression(concealed)


def test_the_multiple_programs_term_cannot_be_granted() -> None:
    from garrison.core.errors import InvalidInput
    from garrison.security.markings import BUILTIN_REGISTRY, Level
    from garrison.security.subjects import Subject

    subject = Subject(name="x", clearance=Level.TS, sap=frozenset({"SAR-MULTIPLE"}))
    with pytest.raises(InvalidInput, match="SAR-MULTIPLE"):
        subject.validate(BUILTIN_REGISTRY)


def test_joint_and_accm_portions_take_the_banner_lists() -> None:
    joint = parse_marking("//JOINT SECRET CAN USA//REL TO USA, CAN")
    assert parse_marking("(//JOINT S//REL)", banner_rel_to=joint) == joint
    with pytest.raises(MarkingError) as info:
        parse_marking("(//JOINT S//REL)")
    assert info.value.rule == "rel-needs-banner-list"
    banner = parse_marking("SECRET//ACCM-TEA LEAF")
    assert parse_marking("(S//ACCM)", banner_rel_to=banner).accm == {"TEA LEAF"}


@pytest.mark.parametrize(
    "mark",
    [
        "(//NS)",
        "(//DEU S//REL TO USA, DEU)",
        "(//JOINT S CAN USA//REL TO USA, CAN)",
        "(//CTS//BOHEMIA)",
        "(S//RD-SG 14//NF)",
        "(U//SBU-NF)",
        "(S//ACCM-TEA LEAF)",
    ],
)
def test_register_portions_are_found_in_text(mark: str) -> None:
    from garrison.security.markings import find_portion_mark

    found = find_portion_mark(f"{mark} The convoy leaves at dawn.")
    assert found is not None and found[0] == mark
    parse_marking(found[0])


@pytest.mark.parametrize(
    "line",
    [
        "//NATO SECRET//ATOMAL",
        "//COSMIC TOP SECRET//BOHEMIA",
        "//DEU SECRET",
        "//CAN GBR SECRET",
        "//FGI CONFIDENTIAL",
        "//JOINT SECRET CAN USA//REL TO USA, CAN",
        "SECRET//RD-SIGMA 14 18//NOFORN",
        "UNCLASSIFIED//SBU NOFORN",
    ],
)
def test_register_banners_are_banner_lines(line: str) -> None:
    from garrison.parse._banner import is_banner_line
    from garrison.security.markings import is_banner_candidate

    assert is_banner_candidate(line)
    assert is_banner_line(line)
    assert parse_marking(line).banner() == line

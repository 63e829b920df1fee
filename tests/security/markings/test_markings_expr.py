"""Compiling markings to Accumulo-syntax access expressions (MARKINGS.md section 4)."""

from __future__ import annotations

import pytest

from garrison.security.markings import (
    BUILTIN_REGISTRY,
    access_expression,
    parse_marking,
    release_expression,
)


@pytest.mark.parametrize(
    ("marking", "expression"),
    [
        ("SECRET", "CLS:S&CTRY:USA"),
        ("UNCLASSIFIED", "CLS:U"),
        ("UNCLASSIFIED//FOUO", "CLS:U"),
        ("UNCLASSIFIED//RELIDO", "CLS:U"),
        (
            "TOP SECRET//SI-G//ORCON/REL TO USA, GBR",
            "(CTRY:GBR|CTRY:USA)&CLS:TS&DISSEM:ORCON&SCI:SI&SCI:SI-G",
        ),
        ("CONFIDENTIAL//NOFORN", "CLS:C&CTRY:USA"),
        ("SECRET//RELIDO", "CLS:S&CTRY:USA"),
        ("UNCLASSIFIED//NOFORN", "CLS:U&CTRY:USA"),
        ("UNCLASSIFIED//REL TO USA, GBR", "(CTRY:GBR|CTRY:USA)&CLS:U"),
        ("CUI", "CLS:U&DISSEM:CUI"),
        ("CUI//SP-PRVCY//NOFORN", "CLS:U&CTRY:USA&DISSEM:CUI"),
        (
            "SECRET//REL TO USA, FVEY",
            "(CTRY:AUS|CTRY:CAN|CTRY:GBR|CTRY:NZL|CTRY:USA)&CLS:S",
        ),
        ("SECRET//REL TO USA, NATO", "(CTRY:NATO|CTRY:USA)&CLS:S"),
        ("SECRET//ORCON-USGOV", "(DISSEM:ORCON|DISSEM:ORCON-USGOV)&CLS:S&CTRY:USA"),
        (
            "SECRET//SAR-BP//IMCON/PROPIN/FISA",
            "CLS:S&CTRY:USA&DISSEM:FISA&DISSEM:IMCON&DISSEM:PROPIN&SAP:BP",
        ),
        (
            "TOP SECRET//SI-G ABCD//ORCON/NOFORN",
            '"SCI:SI-G ABCD"&CLS:TS&CTRY:USA&DISSEM:ORCON&SCI:SI&SCI:SI-G',
        ),
        ("SECRET//DISPLAY ONLY IRQ", "(CTRY:IRQ|CTRY:USA)&CLS:S"),
        (
            "SECRET//REL TO USA, GBR/DISPLAY ONLY AUS",
            "(CTRY:AUS|CTRY:GBR|CTRY:USA)&CLS:S",
        ),
    ],
)
def test_access_expression(marking: str, expression: str) -> None:
    assert access_expression(parse_marking(marking)) == expression


@pytest.mark.parametrize(
    ("marking", "expression"),
    [
        ("SECRET//REL TO USA, GBR/DISPLAY ONLY AUS", "(CTRY:GBR|CTRY:USA)&CLS:S"),
        ("SECRET//DISPLAY ONLY IRQ", "CLS:S&CTRY:USA"),
        ("UNCLASSIFIED//DISPLAY ONLY IRQ", "CLS:U&CTRY:USA"),
        ("UNCLASSIFIED", "CLS:U"),
        ("SECRET//NOFORN", "CLS:S&CTRY:USA"),
    ],
)
def test_release_expression_ignores_display_only(marking: str, expression: str) -> None:
    assert release_expression(parse_marking(marking)) == expression


def test_classified_cui_needs_the_cui_grant() -> None:
    from garrison.security.markings import join

    m = join(parse_marking("CUI//SP-PRVCY"), parse_marking("S//NF"))
    assert access_expression(m) == "CLS:S&CTRY:USA&DISSEM:CUI"
    bare = join(parse_marking("(CUI)"), parse_marking("(C)"))
    assert access_expression(bare) == "CLS:C&CTRY:USA&DISSEM:CUI"


def test_site_group_expands_to_its_members() -> None:
    site = BUILTIN_REGISTRY.with_additions(groups={"QUAD": ["AUS", "IND", "JPN", "USA"]})
    m = parse_marking("S//REL TO USA, QUAD", registry=site)
    assert access_expression(m) == "(CTRY:AUS|CTRY:IND|CTRY:JPN|CTRY:USA)&CLS:S"


def test_tokens_with_odd_characters_are_quoted_and_escaped() -> None:
    from garrison.security.markings._expr import _token

    assert _token("SCI:SI-G ABCD") == '"SCI:SI-G ABCD"'
    assert _token('a"b\\c') == '"a\\"b\\\\c"'
    assert _token("CLS:TS") == "CLS:TS"

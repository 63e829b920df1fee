"""The public surface of garrison.security.markings is exactly what other modules code against."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import garrison.security.markings as markings


def test_exports_are_what_we_mean() -> None:
    assert sorted(markings.__all__) == sorted(
        [
            "BUILTIN_GROUPS",
            "BUILTIN_REGISTRY",
            "CUI_CONTROLS",
            "ISO_3166_ALPHA3",
            "MARKING_FINDINGS",
            "MARKING_RULES",
            "NATO_MEMBERS",
            "NATO_MEMBERS_2024",
            "UNCLASSIFIED",
            "Level",
            "Marking",
            "MarkingRegistry",
            "access_expression",
            "dominates",
            "find_portion_mark",
            "is_banner_candidate",
            "is_portion_candidate",
            "join",
            "leading_enumerator",
            "normalize_marking_text",
            "parse_marking",
            "parse_with_findings",
            "release_expression",
            "system_high_dominates",
        ]
    )
    for name in markings.__all__:
        assert hasattr(markings, name), name


def test_public_callables_are_documented() -> None:
    for name in markings.__all__:
        obj = getattr(markings, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), name


def test_level_spellings() -> None:
    level = markings.Level
    assert [lv.abbreviation for lv in level] == ["U", "CUI", "C", "S", "TS"]
    assert [lv.banner_name for lv in level] == [
        "UNCLASSIFIED",
        "CUI",
        "CONFIDENTIAL",
        "SECRET",
        "TOP SECRET",
    ]
    assert level.U < level.CUI < level.C < level.S < level.TS
    assert level.from_text("TOP SECRET") is level.TS
    assert level.from_text("SECRET//NF") is None


def test_marking_is_frozen_and_hashable() -> None:
    m = markings.parse_marking("S//NF")
    assert {m: 1}[markings.parse_marking("(S//NF)")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.noforn = False  # type: ignore[misc]


def test_to_dict_shape() -> None:
    m = markings.parse_marking("TOP SECRET//SI-G ABCD/TK//ORCON/REL TO USA, FVEY")
    assert m.to_dict() == {
        "version": 1,
        "level": "TS",
        "sci": ["SI-G ABCD", "TK"],
        "sap": [],
        "dissem": ["ORCON"],
        "rel_to": ["USA", "FVEY"],
        "display_only": [],
        "cui": [],
        "groups": {"FVEY": ["AUS", "CAN", "GBR", "NZL", "USA"]},
    }

"""Parsing markings: spellings, canonical order, redundancy removal and every rule id."""

from __future__ import annotations

import pytest

from garrison.core.errors import MarkingError, UnsupportedMarking
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    MARKING_RULES,
    Level,
    Marking,
    MarkingRegistry,
    parse_marking,
)


@pytest.mark.parametrize(
    ("text", "banner"),
    [
        ("Secret//NoForn", "SECRET//NOFORN"),
        ("S // NF", "SECRET//NOFORN"),
        ("(s//nf)", "SECRET//NOFORN"),
        ("  ( S//NF )  ", "SECRET//NOFORN"),
        ("TOP SECRET//SI-G//OC/NF", "TOP SECRET//SI-G//ORCON/NOFORN"),
        ("(TS//SI-G//OC/NF)", "TOP SECRET//SI-G//ORCON/NOFORN"),
        ("top   secret // si-g // orcon / noforn", "TOP SECRET//SI-G//ORCON/NOFORN"),
        ("(U//FOUO)", "UNCLASSIFIED//FOUO"),
        ("(FOUO)", "UNCLASSIFIED//FOUO"),
        ("FOUO", "UNCLASSIFIED//FOUO"),
        ("(U)", "UNCLASSIFIED"),
        ("unclassified", "UNCLASSIFIED"),
        ("(C)", "CONFIDENTIAL"),
        ("CUI//SP-PRVCY//NF", "CUI//SP-PRVCY//NOFORN"),
        ("(CUI)", "CUI"),
        ("(cui//sp-prvcy)", "CUI//SP-PRVCY"),
        ("(S//REL TO USA, GBR)", "SECRET//REL TO USA, GBR"),
        ("S//REL TO USA,GBR", "SECRET//REL TO USA, GBR"),
        ("S//REL TO  USA , GBR", "SECRET//REL TO USA, GBR"),
        ("S//SAR-BP/SAR-XYZ//NF", "SECRET//SAR-BP/XYZ//NOFORN"),
        ("S//SAR-BP/XYZ//NF", "SECRET//SAR-BP/XYZ//NOFORN"),
        ("S//SPECIAL ACCESS REQUIRED-BP", "SECRET//SAR-BP"),
        ("(S//NF//SAR-BP)", "SECRET//SAR-BP//NOFORN"),  # input order of categories is free
        ("(TS//OC/NF//SI-G)", "TOP SECRET//SI-G//ORCON/NOFORN"),
        ("CUI//PROPIN", "CUI//PROPIN"),  # at the CUI level PROPIN is the CUI category
        ("(S//PR)", "SECRET//PROPIN"),
        ("(U//FOUO/NF)", "UNCLASSIFIED//FOUO/NOFORN"),
        ("U//REL TO USA, GBR", "UNCLASSIFIED//REL TO USA, GBR"),
        ("U//RELIDO", "UNCLASSIFIED//RELIDO"),
        ("(U//FISA)", "UNCLASSIFIED//FISA"),
        ("(S//DISPLAY ONLY IRQ, AFG)", "SECRET//DISPLAY ONLY AFG, IRQ"),
        ("CUI//SP-EXPT//FEDCON/REL TO USA, CAN", "CUI//SP-EXPT//FEDCON/REL TO USA, CAN"),
    ],
)
def test_spellings_parse_to_the_canonical_banner(text: str, banner: str) -> None:
    assert parse_marking(text).banner() == banner


@pytest.mark.parametrize(
    ("text", "banner", "portion"),
    [
        # SCI: systems alphabetically; within a level numbers first (by value), then letters.
        (
            "TS//TK/SI-G/HCS-P//NF/OC",
            "TOP SECRET//HCS-P/SI-G/TK//ORCON/NOFORN",
            "(TS//HCS-P/SI-G/TK//OC/NF)",
        ),
        ("TS//SI-B/SI-12/SI-3//NF", "TOP SECRET//SI-3-12-B//NOFORN", "(TS//SI-3-12-B//NF)"),
        (
            "TS//SI-G EFGH/SI-G ABCD/SI-ECRU//OC",
            "TOP SECRET//SI-ECRU-G ABCD EFGH//ORCON",
            "(TS//SI-ECRU-G ABCD EFGH//OC)",
        ),
        ("(S//SAR-ZED/SAR-10/SAR-9/SAR-ABC)", "SECRET//SAR-MULTIPLE PROGRAMS", None),
        # Dissemination controls in section 1 order, portion abbreviations.
        (
            "S//FISA/RELIDO/REL TO GBR, USA/PR/IMC/OC-USGOV",
            "SECRET//ORCON-USGOV/IMCON/PROPIN/REL TO USA, GBR/RELIDO/FISA",
            "(S//OC-USGOV/IMC/PR/REL TO USA, GBR/RELIDO/FISA)",
        ),
        # REL TO: USA, then trigraphs, then tetragraphs, each alphabetically.
        (
            "S//REL TO NATO, GBR, USA, AUS, ISAF",
            "SECRET//REL TO USA, AUS, GBR, ISAF, NATO",
            "(S//REL TO USA, AUS, GBR, ISAF, NATO)",
        ),
        # CUI: SP- categories first, then basic ones; CUI controls after NOFORN.
        (
            "CUI//PRVCY/SP-PRVCY/EXPT/SP-EXPT//DL ONLY/NF/FED ONLY",
            "CUI//SP-EXPT/SP-PRVCY/EXPT/PRVCY//NOFORN/FED ONLY/DL ONLY",
            "(CUI//SP-EXPT/SP-PRVCY/EXPT/PRVCY//NF/FED ONLY/DL ONLY)",
        ),
    ],
)
def test_canonical_order(text: str, banner: str, portion: str | None) -> None:
    marking = parse_marking(text)
    assert marking.banner() == banner
    assert str(marking) == banner
    if portion is not None:
        assert marking.portion() == portion


@pytest.mark.parametrize(
    ("text", "banner"),
    [
        ("S//OC/OC-USGOV", "SECRET//ORCON"),
        ("TS//SI/SI-G//OC", "TOP SECRET//SI-G//ORCON"),
        ("TS//SI-G/SI-G ABCD/SI//OC", "TOP SECRET//SI-G ABCD//ORCON"),
        ("S//REL TO USA, GBR, FVEY", "SECRET//REL TO USA, FVEY"),
        ("S//REL TO USA, AUS, GBR, TEYE, FVEY", "SECRET//REL TO USA, FVEY"),
        ("S//REL TO USA, AUS, GBR", "SECRET//REL TO USA, AUS, GBR"),  # no group is invented
        ("S//NF/NF", "SECRET//NOFORN"),
        ("S//REL TO USA, GBR/DISPLAY ONLY GBR, FRA", "SECRET//REL TO USA, GBR/DISPLAY ONLY FRA"),
        ("S//REL TO USA, GBR/DISPLAY ONLY GBR", "SECRET//REL TO USA, GBR"),
        ("S//DISPLAY ONLY USA, IRQ", "SECRET//DISPLAY ONLY IRQ"),
    ],
)
def test_parsing_removes_redundancy(text: str, banner: str) -> None:
    assert parse_marking(text).banner() == banner


def test_structured_fields() -> None:
    m = parse_marking("(TS//SI-G ABCD/TK//OC/REL TO USA, FVEY)")
    assert m.level is Level.TS
    assert m.sci == {"SI-G ABCD", "TK"}
    assert m.orcon and not m.noforn
    assert m.rel_to == {"USA", "FVEY"}
    assert m.group_members == {"FVEY": frozenset({"AUS", "CAN", "GBR", "NZL", "USA"})}
    assert parse_marking("S//SAR-BP").sap == {"BP"}
    cui = parse_marking("CUI//SP-PRVCY//FED ONLY")
    assert cui.cui_categories == {"SP-PRVCY"}
    assert cui.cui_controls == {"FED ONLY"}


# MARKINGS.md section 7.2, each rule in banner and portion spellings where both exist.
REGISTER_RULE_CASES = [
    ("class-exclusive", "SECRET//NATO SECRET"),
    ("class-exclusive", "(S//NS)"),
    ("class-exclusive", "//DEU SECRET//GBR SECRET"),
    ("class-exclusive", "(//NS//SECRET)"),
    ("nonus-owner", "//USA SECRET"),
    ("nonus-owner", "(//USA S)"),
    ("nonus-owner", "(//QQQ S)"),
    ("nonus-owner", "//NATO S"),
    ("fgi-no-usa", "TOP SECRET//FGI GBR USA"),
    ("fgi-no-usa", "(S//FGI USA)"),
    ("fgi-concealed-alone", "(//FGI GBR S)"),
    ("fgi-concealed-alone", "//FGI DEU SECRET"),
    ("fgi-concealed-alone", "(S//FGI FGI)"),
    ("foreign-no-relido", "(//DEU S//RELIDO)"),
    ("foreign-no-relido", "//NATO SECRET//DISPLAY ONLY GBR"),
    ("foreign-no-relido", "(S//FGI DEU//RELIDO)"),
    ("foreign-no-relido", "(//JOINT S CAN USA//REL TO USA, CAN/RELIDO)"),
    ("joint-list", "//JOINT SECRET USA//REL TO USA, GBR"),
    ("joint-list", "(//JOINT S GBR//REL TO USA, GBR)"),
    ("joint-list", "//JOINT RESTRICTED GBR USA//REL TO USA, GBR"),
    ("joint-list", "(//JOINT R GBR USA//REL TO USA, GBR)"),
    ("joint-needs-relto", "//JOINT SECRET CAN GBR USA//REL TO USA, CAN"),
    ("joint-needs-relto", "(//JOINT S CAN USA)"),
    ("joint-needs-relto", "(//JOINT S CAN USA//NF)"),
    ("joint-needs-relto", "(//JOINT TS CAN USA//HCS//REL TO USA, CAN)"),
    ("nato-controls", "//NATO RESTRICTED//ATOMAL"),
    ("nato-controls", "(//NU//ATOMAL)"),
    ("nato-controls", "//NATO SECRET//BOHEMIA"),
    ("nato-controls", "(//NC//BALK)"),
    ("nato-controls", "SECRET//ATOMAL//NOFORN"),
    ("nato-controls", "(S//BOHEMIA//FGI NATO)"),
    ("nato-controls", "(U//ATOMAL//FGI NATO)"),
    ("nato-controls", "(//DEU S//ATOMAL)"),
    ("nato-no-noforn", "(//NS//NF)"),
    ("nato-no-noforn", "//COSMIC TOP SECRET//NOFORN"),
    ("nato-no-noforn", "(//NU//LES-NF)"),
    ("rd-requires-confidential", "UNCLASSIFIED//RD"),
    ("rd-requires-confidential", "(U//FRD)"),
    ("rd-requires-confidential", "(U//TFNI)"),
    ("cnwdi-requires-rd", "CONFIDENTIAL//RD-CNWDI"),
    ("cnwdi-requires-rd", "SECRET//FRD-CNWDI"),
    ("cnwdi-requires-rd", "(S//CNWDI)"),
    ("cnwdi-requires-rd", "(C//RD-N)"),
    ("sigma-requires-parent", "SECRET//SIGMA 14"),
    ("sigma-requires-parent", "(S//SG 14)"),
    ("sigma-level", "CONFIDENTIAL//RD-SIGMA 14"),
    ("sigma-level", "(C//FRD-SG 14)"),
    ("sigma-range", "SECRET//RD-SIGMA 100"),
    ("sigma-range", "(S//RD-SG 0)"),
    ("sigma-range", "(S//FRD-SG 07)"),
    ("sigma-no-release", "SECRET//FRD-SIGMA 14//REL TO USA, GBR"),
    ("sigma-no-release", "(S//RD-SG 14//DISPLAY ONLY GBR)"),
    ("ucni-unclassified", "SECRET//DOD UCNI"),
    ("ucni-unclassified", "(C//UCNI)"),
    ("ucni-unclassified", "(CUI//DCNI)"),
    ("sap-multiple", "(S//SAR-MULTIPLE PROGRAMS)"),
    ("sap-multiple", "SECRET//SAR-BP/GB/TC/XY"),
    ("sap-multiple", "SECRET//SAR-MULTIPLE PROGRAMS/BP"),
    ("hvsaco-non-sap", "SECRET//SAR-BP/HVSACO"),
    ("hvsaco-non-sap", "(S//HVSACO/SAR-BP)"),
    ("waived-needs-sap", "SECRET//WAIVED"),
    ("waived-needs-sap", "(S//HVSACO//WAIVED)"),
    ("exdis-nodis-exclusive", "SECRET//NOFORN//EXDIS/NODIS"),
    ("exdis-nodis-exclusive", "(S//NF//XD/ND)"),
    ("exdis-nodis-noforn", "SECRET//EXDIS"),
    ("exdis-nodis-noforn", "(C//ND)"),
    ("exdis-nodis-noforn", "(S//REL TO USA, GBR//XD)"),
    ("nonic-unclassified", "SECRET//SBU"),
    ("nonic-unclassified", "(C//DS)"),
    ("nonic-unclassified", "(S//SBU-NF)"),
    ("nonic-nf-exclusive", "UNCLASSIFIED//LES/LES NOFORN"),
    ("nonic-nf-exclusive", "(U//SBU/SBU-NF)"),
    ("accm-classified", "UNCLASSIFIED//ACCM-TEA LEAF"),
    ("accm-classified", "(U//ACCM-PINE CONE)"),
    ("accm-needs-banner-list", "(S//ACCM)"),
]

RULE_CASES = [
    ("noforn-with-release", "S//NF/REL TO USA, GBR"),
    ("noforn-with-release", "(S//NF/RELIDO)"),
    ("noforn-with-release", "S//NF/DISPLAY ONLY GBR"),
    ("noforn-with-release", "CUI//NF/REL TO USA, GBR"),
    ("rel-to-needs-foreign", "S//REL TO USA"),
    ("rel-to-needs-foreign", "S//REL TO USA, USA"),
    ("rel-to-needs-usa", "S//REL TO GBR"),
    ("rel-to-needs-usa", "S//REL TO FVEY"),
    ("display-only-needs-foreign", "S//DISPLAY ONLY USA"),
    ("fouo-requires-unclassified", "S//FOUO"),
    ("fouo-requires-unclassified", "CUI//FOUO"),
    ("orcon-requires-classified", "U//OC"),
    ("orcon-requires-classified", "CUI//ORCON-USGOV"),
    ("propin-requires-classified", "U//PR"),
    ("si-g-requires-ts-orcon", "TS//SI-G//NF"),
    ("si-g-requires-ts-orcon", "S//SI-G//OC"),
    ("si-g-requires-ts-orcon", "TS//SI-G ABCD//OC-USGOV"),
    ("tk-requires-secret", "C//TK"),
    ("hcs-requires-noforn", "TS//HCS-P"),
    ("hcs-requires-noforn", "TS//HCS//REL TO USA, GBR"),
    ("sci-requires-classified", "U//SI"),
    ("sci-requires-classified", "CUI//SI"),
    ("sap-requires-classified", "U//SAR-BP"),
    ("unknown-token", "S//XYZZY"),
    ("unknown-token", "S//REL TO USA, QQQ"),
    ("unknown-token", "S//REL TO USA, ZZZZ"),
    ("unknown-token", "TS//ZZ-G//NF"),
    ("unknown-token", "CUI//SP-NOPE"),
    ("syntax", ""),
    ("syntax", "   "),
    ("syntax", "()"),
    ("syntax", "S////NF"),
    ("syntax", "S//"),
    ("syntax", "S///NF"),
    ("syntax", "(S/NF)"),
    ("syntax", "(TS/SI)"),
    ("syntax", "(S//NF"),
    ("syntax", "S//NF)"),
    ("syntax", "S//NF/SI"),  # an SCI token in the dissemination category
    ("syntax", "TS//SI//TK"),  # one category written twice
    ("syntax", "S//REL TO USA, GBR/REL TO USA, AUS"),
    ("syntax", "S//REL TO"),
    ("syntax", "(NF)"),
    ("syntax", "SECRET NOFORN"),
    ("syntax", "TS//SI-G-//OC"),
    ("unsupported-marking", "NATO SECRET"),
    ("unsupported-marking", "JOINT SECRET USA GBR"),
    ("unsupported-marking", "COSMIC TOP SECRET"),
    ("imcon-requires-secret", "C//IMC"),
    ("imcon-requires-secret", "CONFIDENTIAL//IMCON"),
    ("imcon-requires-secret", "U//IMCON"),
    *REGISTER_RULE_CASES,
    ("unclassified-cui", "UNCLASSIFIED//CUI"),
    ("unclassified-cui", "U//SP-PRVCY"),
    ("unclassified-cui", "(U//FED ONLY)"),
    ("cui-in-classified", "S//SP-PRVCY"),
    ("cui-in-classified", "S//FEDCON"),
    ("cui-in-classified", "S//CUI"),
    ("rel-needs-banner-list", "(S//REL)"),
]


@pytest.mark.parametrize(("rule", "text"), RULE_CASES)
def test_each_rule_fails_with_its_id(rule: str, text: str) -> None:
    with pytest.raises(MarkingError) as info:
        parse_marking(text)
    assert info.value.rule == rule
    assert info.value.text == text
    # One sentence that starts with the rule's own sentence.
    assert info.value.message.startswith(MARKING_RULES[rule][:-1])
    assert info.value.message.endswith(".")
    assert isinstance(info.value, UnsupportedMarking) == (rule == "unsupported-marking")


def test_every_rule_has_a_test_case() -> None:
    covered = {rule for rule, _ in RULE_CASES} | {"group-conflict", "invalid-registry"}
    assert covered == set(MARKING_RULES)


def test_noforn_message_names_the_rule() -> None:
    with pytest.raises(MarkingError, match=r"^NOFORN cannot be combined with REL TO, RELIDO"):
        parse_marking("S//NF/REL TO USA, GBR")


def test_rel_portion_resolves_against_the_banner_list() -> None:
    banner = parse_marking("SECRET//REL TO USA, FVEY")
    assert parse_marking("(S//REL)", banner_rel_to=banner) == banner
    assert parse_marking("(C//REL)", banner_rel_to="USA, GBR").rel_to == {"USA", "GBR"}
    m = parse_marking("(C//REL)", banner_rel_to=["USA", "GBR"])
    assert m.banner() == "CONFIDENTIAL//REL TO USA, GBR"
    sources: list[Marking | list[str]] = [parse_marking("SECRET//NOFORN"), []]
    for source in sources:
        with pytest.raises(MarkingError) as info:
            parse_marking("(S//REL)", banner_rel_to=source)
        assert info.value.rule == "rel-needs-banner-list"
    with pytest.raises(MarkingError) as info:
        parse_marking("(S//REL)", banner_rel_to=["USA", "QQQ"])
    assert info.value.rule == "unknown-token"


def test_marking_constructor_validates() -> None:
    with pytest.raises(MarkingError) as info:
        Marking(Level.S, noforn=True, rel_to=frozenset({"USA", "GBR"}))
    assert info.value.rule == "noforn-with-release"
    with pytest.raises(MarkingError):
        Marking(Level.S, sap=frozenset({"SAR-BP"}))  # ids are stored without SAR-
    with pytest.raises(MarkingError):
        Marking(Level.S, sci=frozenset({"si"}))
    assert Marking(Level.S, rel_to=frozenset({"USA", "GBR", "FVEY"})).rel_to == {"USA", "FVEY"}


# -- registry ---------------------------------------------------------------------------------


SITE = BUILTIN_REGISTRY.with_additions(
    sci_systems=["ABC"],
    sap_ids=["BP"],
    groups={"QUAD": ["AUS", "IND", "JPN", "USA"], "KFOR": None},
    cui_categories=["SP-NUC", "CRIT"],
)


def test_site_additions_parse_only_with_the_site_registry() -> None:
    text = "TS//ABC-X//NF"
    with pytest.raises(MarkingError) as info:
        parse_marking(text)
    assert info.value.rule == "unknown-token"
    assert parse_marking(text, registry=SITE).banner() == "TOP SECRET//ABC-X//NOFORN"
    m = parse_marking("S//REL TO USA, JPN, IND, AUS, QUAD, KFOR", registry=SITE)
    assert m.banner() == "SECRET//REL TO USA, KFOR, QUAD"
    assert m == parse_marking("S//REL TO USA, AUS, IND, JPN, KFOR", registry=SITE)
    assert parse_marking("CUI//CRIT/SP-NUC", registry=SITE).banner() == "CUI//SP-NUC/CRIT"


def test_registry_round_trip_and_immutability() -> None:
    assert MarkingRegistry.from_dict(SITE.to_dict()) == SITE
    assert BUILTIN_REGISTRY.to_dict()["sci_systems"] == []
    assert "ABC" not in BUILTIN_REGISTRY.sci_systems
    assert len(BUILTIN_REGISTRY.countries) == 249
    assert {"USA", "GBR", "NZL", "JPN", "ZWE"} <= BUILTIN_REGISTRY.countries


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sci_systems": ["si lower"]},
        {"sci_systems": ["NF"]},
        {"groups": {"XX": ["GBR"]}},
        {"groups": {"FVEY": ["GBR", "USA"]}},  # built-ins cannot be redefined
        {"groups": {"ABCD": ["QQQ"]}},
        {"cui_categories": ["FED ONLY"]},
        {"cui_categories": ["SI"], "sci_systems": ["SI"]},
    ],
)
def test_bad_registry_additions(kwargs: dict[str, object]) -> None:
    with pytest.raises(MarkingError) as info:
        BUILTIN_REGISTRY.with_additions(**kwargs)  # type: ignore[arg-type]
    assert info.value.rule == "invalid-registry"


def test_stored_registry_must_be_well_formed() -> None:
    with pytest.raises(MarkingError) as info:
        MarkingRegistry.from_dict({"version": 2})
    assert info.value.rule == "invalid-registry"

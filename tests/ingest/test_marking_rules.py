"""The marking rules at ingest, on synthetic documents and on the marked corpus's truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison.core.records import ElementType, Extraction, ParsedDocument, ParsedElement
from garrison.ingest import apply_markings
from garrison.security.markings import parse_marking

SH = parse_marking("SECRET//NOFORN")
DEFAULT = parse_marking("CONFIDENTIAL//NOFORN")
SECRET_TEXT = "The supply ship MERIDIAN changed course at dawn."


def doc(*texts: str, banners: tuple[str, ...] = ()) -> ParsedDocument:
    return ParsedDocument(
        media_type="text/plain",
        elements=tuple(ParsedElement(type=ElementType.NARRATIVE_TEXT, text=t) for t in texts),
        banners=banners,
        extraction=Extraction(method="test", parser="test", parser_version="0"),
    )


def kinds(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.kind for f in result.findings}


def test_portions_are_stripped_and_rolled_up() -> None:
    result = apply_markings(
        doc("SECRET//NOFORN", "(U) Fuel rose.", "(S//NF) Point LANTERN.", "SECRET//NOFORN"),
        default=DEFAULT,
        system_high=SH,
    )
    assert result.status == "parsed"
    assert result.banner == SH and result.marking == SH
    assert [(e.text, e.marking.banner(), e.marking_source) for e in result.elements] == [
        ("Fuel rose.", "UNCLASSIFIED", "portion"),
        ("Point LANTERN.", "SECRET//NOFORN", "portion"),
    ]
    assert kinds(result) == set()


def test_unmarked_document_takes_the_source_default() -> None:
    result = apply_markings(doc("Plain text.", "More."), default=DEFAULT, system_high=SH)
    assert result.marking == DEFAULT
    assert {e.marking_source for e in result.elements} == {"source-default"}
    assert kinds(result) == set()


def test_unmarked_portion_inherits_the_banner() -> None:
    result = apply_markings(doc("SECRET", "(S) One.", "Two."), default=DEFAULT, system_high=SH)
    assert kinds(result) == {"unmarked-portion"}
    assert result.elements[1].marking.banner() == "SECRET"
    assert result.elements[1].marking_source == "banner"


def test_under_and_over_marked() -> None:
    under = apply_markings(doc("CONFIDENTIAL", "(S//NF) x."), default=DEFAULT, system_high=SH)
    assert kinds(under) == {"under-marked"}
    assert under.marking == SH  # the document takes the join
    over = apply_markings(doc("SECRET", "(U) x.", "(U) y."), default=DEFAULT, system_high=SH)
    assert kinds(over) == {"over-marked"}
    assert over.marking is not None and over.marking.banner() == "SECRET"  # never lowered


def test_banner_mismatch_is_joined() -> None:
    result = apply_markings(
        doc("(C) x.", banners=("CONFIDENTIAL", "SECRET")), default=DEFAULT, system_high=SH
    )
    assert "banner-mismatch" in kinds(result)
    assert result.banner is not None and result.banner.banner() == "SECRET"


def test_invalid_mark_quarantines_the_document() -> None:
    result = apply_markings(doc("(S/NF) x.", "(U) y."), default=DEFAULT, system_high=SH)
    assert result.status == "quarantined" and result.reason == "invalid-marking"
    assert result.marking is None and result.elements == ()
    assert kinds(result) == {"invalid-marking"}


def test_spill_keeps_nothing_and_never_echoes_content() -> None:
    result = apply_markings(
        doc(f"(TS//SI//NF) {SECRET_TEXT}", "(S/NF) bad mark too."), default=DEFAULT, system_high=SH
    )
    assert result.status == "spilled" and result.reason == "spill"
    assert result.marking is None and result.banner is None and result.elements == ()
    assert kinds(result) == {"spill", "invalid-marking"}
    assert all("MERIDIAN" not in f.detail for f in result.findings)


def test_enumerators_and_copyright_are_not_marks() -> None:
    result = apply_markings(
        doc("UNCLASSIFIED", "(U) Title", "(a) one", "(b) two", "(c) three", "(C) 2024 Handbook"),
        default=DEFAULT,
        system_high=SH,
    )
    assert result.status == "parsed"
    assert [e.text for e in result.elements][1:] == [
        "(a) one",
        "(b) two",
        "(c) three",
        "(C) 2024 Handbook",
    ]


def test_marked_corpus_matches_truth(shared_dir: Path) -> None:
    from garrison.parse import parse_bytes

    root = shared_dir / "corpus" / "marked"
    truth = json.loads((root / "truth.json").read_text())
    system_high = parse_marking(truth["system_high"])
    default = parse_marking(truth["default_marking"])
    checked = 0
    for expected in truth["docs"]:
        if expected["format"] in ("pdf", "sqlite"):  # PDF and database sources: later
            continue
        path = root / "docs" / expected["file"]
        result = apply_markings(
            parse_bytes(path.read_bytes(), filename=path.name),
            default=default,
            system_high=system_high,
        )
        name = expected["file"]
        assert result.status == expected["status"], name
        assert (result.marking.banner() if result.marking else None) == expected["marking"], name
        assert kinds(result) == set(expected["findings"]), name
        by_text = {e.text.strip(): e.marking.banner() for e in result.elements}
        for para in expected["paragraphs"]:
            if para["marking"] is not None:
                assert by_text.get(para["text"]) == para["marking"], (name, para["text"])
        checked += 1
    assert checked == 9


@pytest.mark.parametrize("mark", ["(TS//SI//NF)", "(S//NF)", "(CUI//SP-PRVCY)"])
def test_element_marking_is_dominated_by_document_marking(mark: str) -> None:
    result = apply_markings(
        doc(f"{mark} x", "(U) y"),
        default=DEFAULT,
        system_high=parse_marking("TOP SECRET//SI//NOFORN"),
    )
    from garrison.security.markings import dominates

    assert result.marking is not None
    assert all(dominates(result.marking, e.marking) for e in result.elements)

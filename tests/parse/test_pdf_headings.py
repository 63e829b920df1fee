"""PDF heads (size, weight, numbering, outline) and running headers/footers, on PDFs built here
with known fonts and bookmarks, and on a real corpus PDF with an outline."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.pdf import Text
from bench.pdf import write_styled_pdf as build_pdf

from garrison.core.records import ElementType, ParsedDocument, ParsedElement
from garrison.ingest import apply_markings
from garrison.parse import ParseContext
from garrison.parse._pdf_headings import numbering_depth
from garrison.parse.pdf import PDF, parse_pdf
from garrison.security.markings import parse_marking
from tests.conftest import require

SAMPLES = Path(__file__).resolve().parents[3] / "shared/corpus/public/pdf-samples"


def _parse(data: bytes, **options: object) -> ParsedDocument:
    return parse_pdf(data, ParseContext(media_type=PDF, options={"ocr": False, **options}))


def _kinds(doc: ParsedDocument) -> list[tuple[ElementType, str, int | None]]:
    return [(e.type, e.text, e.heading_level) for e in doc.elements]


def _body(y: float, n: int = 3, words: str = "Supply convoys reached the depot") -> list[Text]:
    """A paragraph of ``n`` lines of body text from ``y`` down (10 pt, 13 pt leading)."""
    return [Text(72, y - 13 * k, 10, f"{words} on day {k} of the move and") for k in range(n)]


#: Words that differ from page to page: body text that repeats is a running line.
WORDS = ["Convoys", "Fuel stocks", "Relief columns", "Engineers", "Signals", "Medics"]
T, N, L = ElementType.TITLE, ElementType.NARRATIVE_TEXT, ElementType.LIST_ITEM


def test_larger_bold_and_numbered_heads_with_levels() -> None:
    page = [
        Text(72, 720, 20, "Logistics Review"),
        *_body(690),
        Text(72, 640, 10, "Background", bold=True),  # no extra space below: bold sets it apart
        *_body(625),
        Text(72, 575, 10, "2.1 Scope of the review"),
        *_body(550),
        Text(72, 500, 10, "2.1.3 Fuel stocks"),
        *_body(475),
        Text(72, 420, 10, "Annex B Routes"),
        Text(72, 395, 10, "1. First step"),
        Text(72, 370, 10, "Definition 3", bold=True),
        Text(72, 345, 10, "A bold sentence that ends like prose.", bold=True),
    ]
    doc = _parse(build_pdf([page]))
    heads = [(e.text, e.heading_level) for e in doc.elements if e.type is T]
    # Styled heads rank first (larger, then bold); numbered body-style heads after them, by
    # the depth of their number (Annex B: 1, 2.1: 2, 2.1.3: 3).
    assert heads == [
        ("Logistics Review", 1),
        ("Background", 2),
        ("2.1 Scope of the review", 4),
        ("2.1.3 Fuel stocks", 5),
        ("Annex B Routes", 3),
    ]
    by_text = {e.text: e for e in doc.elements}
    assert by_text["1. First step"].type is L  # one level of number in body style: a list
    assert by_text["Definition 3"].type is N  # a statement's label, not a section
    assert by_text["A bold sentence that ends like prose."].type is N
    index = next(i for i, e in enumerate(doc.elements) if e.text == "2.1 Scope of the review")
    under = doc.elements[index + 1]
    assert under.type is N and under.parent == index
    assert under.section_path == ("Logistics Review", "Background", "2.1 Scope of the review")
    # The bold head is its own element, not the first words of the paragraph below it.
    assert not any(e.text.startswith("Background ") for e in doc.elements)


def test_heads_read_as_words_and_body_size_comes_from_most_characters() -> None:
    # Many small lines and a few large symbols: neither the symbols nor the footnote size win.
    page = [Text(72, 720, 24, "= + = +"), Text(72, 690, 24, "X")]
    page += _body(660, n=12)
    page += [Text(72, 480 - 9 * k, 7, f"note {k}.") for k in range(5)]
    doc = _parse(build_pdf([page]))
    assert not any(e.type is T for e in doc.elements)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("2.3 Scope", 2),
        ("2.3.4. Fuel", 3),
        ("A.1 Terms", 2),
        ("Chapter 3 Plans", 1),
        ("Section IV", 1),
        ("Annex B: Routes", 1),
        ("(S//NF) 4.2 Sources", 2),
        ("1. First step", None),
        ("Phase two", None),
        ("3.5 km north of the ford", 2),
    ],
)
def test_numbering_depth(text: str, depth: int | None) -> None:
    assert numbering_depth(text) == depth


def test_outline_marks_plain_lines_as_heads_at_its_depth() -> None:
    # Heads set exactly like body text, glued to the paragraph below: only the outline knows.
    p1 = [Text(72, 720, 10, "Overview"), *_body(707), Text(72, 600, 10, "1 Movement plan")]
    p1 += _body(587)
    p2 = [Text(72, 720, 10, "Timing and routes"), *_body(707)]
    outline = [(0, "Overview", 0), (1, "Movement plan", 0), (1, "Timing and routes", 1)]
    data = build_pdf([p1, p2], outline)
    doc = _parse(data)
    heads = [(e.text, e.heading_level, e.page) for e in doc.elements if e.type is T]
    assert heads == [("Overview", 1, 1), ("1 Movement plan", 2, 1), ("Timing and routes", 2, 2)]
    last = doc.elements[-1]
    assert last.type is N and last.section_path == ("Overview", "Timing and routes")
    # Switched off, the same lines are body text: nothing else made them heads.
    off = _parse(data, outline=False)
    assert not any(e.type is T for e in off.elements)
    assert off.elements[0].text.startswith("Overview Supply convoys")


def test_outline_entry_for_another_page_or_absent_text_marks_nothing() -> None:
    p1 = [Text(72, 720, 10, "Overview"), *_body(707)]
    p2 = [*_body(720)]
    doc = _parse(build_pdf([p1, p2], [(0, "Overview", 1), (0, "Not in the text", 0)]))
    assert not any(e.type is T for e in doc.elements)


def test_looped_outline_does_not_hang() -> None:
    data = build_pdf([[Text(72, 720, 10, "Overview"), *_body(707)]], [(0, "Overview", 0)])
    # Point the entry's /Next back at itself: an endless sibling chain.
    data = data.replace(b"/Dest [10 0 R", b"/Next 12 0 R /Dest [10 0 R", 1)
    doc = _parse(data)
    assert doc.elements[0].type is T and doc.elements[0].text == "Overview"


def _report_page(number: int, pages: int, body: list[Text]) -> list[Text]:
    return [
        Text(250, 770, 10, "SECRET//NOFORN"),
        Text(72, 748, 9, "Logistics Review - Northern Sector"),
        *body,
        Text(280, 40, 9, f"Page {number} of {pages}"),
        Text(250, 22, 10, "SECRET//NOFORN"),
    ]


def test_running_headers_and_footers_leave_the_body_and_banners_stay_banners() -> None:
    pages = [
        _report_page(
            n + 1,
            4,
            [Text(72, 700, 10, f"(S//NF) {WORDS[n]} moved north"), *_body(687, 2, WORDS[n])],
        )
        for n in range(4)
    ]
    # A line that repeats on every page, but in the middle of it, is body text.
    for page in pages:
        page.append(Text(72, 400, 10, "(U) See the annex for the routes"))
    doc = _parse(build_pdf(pages))
    assert doc.banners == ("SECRET//NOFORN",)
    headers = [e for e in doc.elements if e.type is ElementType.HEADER]
    footers = [e for e in doc.elements if e.type is ElementType.FOOTER]
    assert [e.text for e in headers] == ["Logistics Review - Northern Sector"] * 4
    assert [e.text for e in footers] == [f"Page {n} of 4" for n in range(1, 5)]
    body = [e for e in doc.elements if e.type not in (ElementType.HEADER, ElementType.FOOTER)]
    text = "\n".join(e.text for e in body)
    assert "SECRET//NOFORN" not in text and "Page 1 of 4" not in text
    assert "Northern Sector" not in text
    assert text.count("(U) See the annex for the routes") == 4
    # The banner still decides the document's marking, exactly as before.
    marked = apply_markings(
        doc, default=parse_marking("CONFIDENTIAL"), system_high=parse_marking("SECRET//NOFORN")
    )
    assert marked.status == "parsed" and marked.banner is not None
    assert marked.banner.banner() == "SECRET//NOFORN"


def test_book_running_head_names_the_chapter() -> None:
    # A running head set apart from the body at the top of the page, naming the section: each
    # repeats on fewer than half of the pages, and is still a header.
    pages: list[list[Text]] = []
    for n in range(6):
        chapter = "1.1 MOVEMENT" if n < 2 else ("1.2 SUPPLY" if n < 4 else "1.3 RELIEF")
        # The first body line of pages 1 and 2 is the same, but it is not set apart.
        first = "Orders for the week" if n < 2 else f"{WORDS[n]} in reserve"
        lines = [Text(72, 760, 9, f"{n + 1} {chapter}"), Text(72, 730, 10, first)]
        pages.append(lines + _body(717, 4, WORDS[n]))
    doc = _parse(build_pdf(pages))
    headers = [e.text for e in doc.elements if e.type is ElementType.HEADER]
    assert headers == [
        "1 1.1 MOVEMENT",
        "2 1.1 MOVEMENT",
        "3 1.2 SUPPLY",
        "4 1.2 SUPPLY",
        "5 1.3 RELIEF",
        "6 1.3 RELIEF",
    ]
    assert sum(e.text.startswith("Orders for the week") for e in doc.elements) == 2


def test_portion_marked_head_keeps_its_own_mark() -> None:
    page = [
        Text(250, 770, 10, "SECRET//NOFORN"),
        Text(72, 720, 16, "(U) Movement Plan"),
        Text(72, 690, 10, "(S//NF) Convoys leave at dawn."),
        Text(72, 660, 10, "(U) Weather permitting.", bold=False),
        Text(250, 22, 10, "SECRET//NOFORN"),
    ]
    doc = _parse(build_pdf([page]))
    head = doc.elements[0]
    assert (head.type, head.text, head.heading_level) == (T, "(U) Movement Plan", 1)
    marked = apply_markings(
        doc, default=parse_marking("CONFIDENTIAL"), system_high=parse_marking("SECRET//NOFORN")
    )
    assert marked.status == "parsed"
    got = [(e.text, e.marking.banner()) for e in marked.elements]
    assert got == [
        ("Movement Plan", "UNCLASSIFIED"),
        ("Convoys leave at dawn.", "SECRET//NOFORN"),
        ("Weather permitting.", "UNCLASSIFIED"),
    ]
    under: ParsedElement = marked.elements[1].parsed
    assert under.section_path == ("(U) Movement Plan",)
    assert [m.banner() for m in marked.elements[1].section_markings] == ["UNCLASSIFIED"]


def test_corpus_pdf_with_an_outline() -> None:
    path = SAMPLES / "006-pdflatex-outline_pdflatex-outline.pdf"
    require(path.is_file(), f"{path} is absent")
    data = path.read_bytes()
    want = [f"{n} {name}" for n, name in enumerate(["Foo", "Bar", "Baz"] * 3, start=1)]
    for options in ({}, {"outline": False}):
        doc = _parse(data, **options)
        heads = [e.text for e in doc.elements if e.type is T and e.page != 1]
        assert heads == want, options
        # The page numbers at the foot are footers, and the table of contents is no head.
        assert [e.text for e in doc.elements if e.type is ElementType.FOOTER] == [
            "1",
            "2",
            "3",
            "4",
        ]
    with_outline = _parse(data)
    assert {e.heading_level for e in with_outline.elements if e.text in want} == {1}


def test_banner_under_a_line_that_is_no_running_head_is_still_a_banner() -> None:
    # "Field copy" repeats at the top of two pages of six, right above the banner: it is no
    # running head (not on most pages, not set apart), but the banner below it is still read.
    pages = [
        [Text(72, 778, 10, "Field copy"), Text(250, 765, 10, "SECRET//NOFORN")] if n < 2 else []
        for n in range(6)
    ]
    for n, page in enumerate(pages):
        page.extend(_body(700, 3, WORDS[n]))
    doc = _parse(build_pdf(pages))
    assert doc.banners == ("SECRET//NOFORN",)
    assert not any("SECRET//NOFORN" in e.text for e in doc.elements)
    field = [e for e in doc.elements if e.text == "Field copy"]
    assert [e.type for e in field] == [N, N]

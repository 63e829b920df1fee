"""Where portion marks and banner lines are recognized, and what the marking rules decide.

Every class is tried in each format it applies to (plain text, Markdown, CSV, JSON, and parsed
elements as the structured parsers hand them over), each with a canary above the default that
must never end up below its level; each positive has its negative next to it.
"""

from __future__ import annotations

import pytest

from garrison.core.records import (
    ElementType,
    Extraction,
    ParsedDocument,
    ParsedElement,
    TableCell,
)
from garrison.ingest import MarkedDocument, apply_markings
from garrison.parse import parse_bytes
from garrison.security.markings import dominates, parse_marking

SH = parse_marking("TOP SECRET//SI/TK//NOFORN")
DEFAULT = parse_marking("UNCLASSIFIED")
TS = parse_marking("TOP SECRET//SI//NOFORN")
SECRET = parse_marking("SECRET//NOFORN")
CANARY = "grid coordinates KINGFISHER 7781"


def ingest(name: str, data: str | bytes) -> MarkedDocument:
    raw = data.encode() if isinstance(data, str) else data
    return apply_markings(
        parse_bytes(raw, filename=name), default=DEFAULT, system_high=SH, names=(name,)
    )


def synthetic(*elements: ParsedElement, **doc: object) -> MarkedDocument:
    parsed = ParsedDocument(
        media_type="application/octet-stream",
        elements=elements,
        extraction=Extraction(method="test", parser="test", parser_version="0"),
        **doc,  # type: ignore[arg-type]
    )
    return apply_markings(parsed, default=DEFAULT, system_high=SH)


def kinds(result: MarkedDocument) -> set[str]:
    return {f.kind for f in result.findings}


def marking_of(result: MarkedDocument, needle: str) -> str:
    """The marking of the element holding ``needle``; it must be there, without its mark."""
    hits = [e for e in result.elements if needle in e.text]
    assert hits, f"{needle!r} not found in {[e.text for e in result.elements]}"
    assert all("(" not in e.text.split(needle)[0][-3:] for e in hits)
    return hits[0].marking.banner()


def assert_canary_covered(result: MarkedDocument, level: str = "TOP SECRET//SI//NOFORN") -> None:
    """The canary is marked at least at its level, or the document is quarantined."""
    if result.status != "parsed":
        return
    floor = parse_marking(level)
    assert result.marking is not None and dominates(result.marking, floor)
    for element in result.elements:
        if CANARY in element.text:
            assert dominates(element.marking, floor), element.text
        for cell in element.parsed.table_cells:
            if CANARY in cell.text:
                assert cell.marking is not None
                assert dominates(parse_marking(cell.marking), floor)


# -- (2) one normalization: case, spacing, separators ----------------------------------------

SPACED = [
    "(TOP  SECRET//SI//NF)",
    "(TOP\u00a0SECRET//SI//NF)",
    "(TOP\tSECRET//SI//NF)",
    "(TOP\u2003SECRET // SI // NF)",
    "(top secret//si//nf)",
    "( TS//SI//NF )",
]


@pytest.mark.parametrize("mark", SPACED)
@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_spacing_variants_are_marks(mark: str, fmt: str) -> None:
    result = ingest(f"a.{fmt}", f"(U) Opening.\n\n{mark} {CANARY}.\n")
    assert result.status == "parsed"
    assert marking_of(result, CANARY) == "TOP SECRET//SI//NOFORN"
    assert_canary_covered(result)


@pytest.mark.parametrize("mark", SPACED)
def test_marking_check_reads_what_detection_reads(mark: str) -> None:
    from typer.testing import CliRunner

    from garrison.cli._marking import app

    out = CliRunner().invoke(app, ["check", mark])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == "TOP SECRET//SI//NOFORN"


@pytest.mark.parametrize("banner", ["Top Secret//SI//NoForn", "top secret // si // noforn"])
@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_mixed_case_banner_lines_are_banners(banner: str, fmt: str) -> None:
    result = ingest(f"a.{fmt}", f"{banner}\n\n{CANARY}.\n\n{banner}\n")
    assert result.status == "parsed"
    assert result.banner == TS
    assert marking_of(result, CANARY) == "TOP SECRET//SI//NOFORN"
    assert all("Secret" not in e.text and "SI//" not in e.text for e in result.elements)


@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_a_lone_word_secret_is_text(fmt: str) -> None:
    result = ingest(f"a.{fmt}", "Secret\n\nThe Secret Garden is a novel.\n\nSecret\n")
    assert result.status == "parsed" and result.banner is None
    assert result.marking == DEFAULT


# -- (2b) a banner-looking line that does not validate -----------------------------------------

INVALID_BANNERS = [
    "SECRET//RD-SIGMA 100//NOFORN",
    "TOP SECRET//ZZ-Q//NOFORN",
    "Secret//Bogus",
    "//NATO SECRET//NOFORN",
]


@pytest.mark.parametrize("banner", INVALID_BANNERS)
@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_invalid_banner_lines_quarantine(banner: str, fmt: str) -> None:
    result = ingest(f"a.{fmt}", f"{banner}\n\n{CANARY}.\n\n{banner}\n")
    assert result.status == "quarantined" and result.reason == "invalid-marking"
    assert result.elements == ()
    assert all(CANARY not in f.detail and banner not in f.detail for f in result.findings)


@pytest.mark.parametrize("banner", INVALID_BANNERS)
def test_invalid_banner_line_in_the_middle_or_in_an_element_quarantines(banner: str) -> None:
    middle = ingest("a.txt", f"Intro.\n\n{banner}\n\n{CANARY}.\n\nOutro.\n")
    assert middle.reason == "invalid-marking"
    inline = synthetic(
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="Intro."),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text=f"{CANARY}\n{banner}\nmore"),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="Outro."),
    )
    assert inline.reason == "invalid-marking"


@pytest.mark.parametrize(
    "line",
    [
        "//ACCORDION BUTTON ACTION",
        "// can be removed later",
        "See http://example.org//path for details",
        "ftp://host//share",
        "// TODO: secret handshake",
    ],
)
@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_comments_and_urls_are_not_banners(line: str, fmt: str) -> None:
    result = ingest(f"a.{fmt}", f"{line}\n\nBody text.\n\n{line}\n")
    assert result.status == "parsed" and result.banner is None
    assert result.marking == DEFAULT


# -- (3) invisible and formatting prefixes -----------------------------------------------------

PREFIXED = [
    "\u200b(TS//SI//NF)",
    "\u200c\u200d(TS//SI//NF)",
    "\u2060(TS//SI//NF)",
    "\ufeff(TS//SI//NF)",
    "(T\u200bS//S\u2060I//NF)",
    "**(TS//SI//NF)**",
    "*(TS//SI//NF)*",
    "<b>(TS//SI//NF)</b>",
    '<span class="mark">(TS//SI//NF)</span>',
]


@pytest.mark.parametrize("mark", PREFIXED)
@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_invisible_and_formatting_prefixes(mark: str, fmt: str) -> None:
    result = ingest(f"a.{fmt}", f"(U) Opening.\n\n{mark} {CANARY}.\n")
    assert result.status == "parsed"
    assert marking_of(result, CANARY) == "TOP SECRET//SI//NOFORN"
    element = next(e for e in result.elements if CANARY in e.text)
    assert element.text.startswith(CANARY)


@pytest.mark.parametrize("prefix", ["> ", "- ", "* ", "1. ", "> **"])
@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_block_quotes_and_bullets(prefix: str, fmt: str) -> None:
    closing = "**" if prefix.endswith("**") else ""
    result = ingest(f"a.{fmt}", f"(U) Opening.\n\n{prefix}(TS//SI//NF){closing} {CANARY}.\n")
    assert result.status == "parsed"
    assert marking_of(result, CANARY) == "TOP SECRET//SI//NOFORN"


def test_a_byte_order_mark_before_the_first_mark() -> None:
    for encoding in ("utf-8-sig", "utf-16"):
        result = ingest("a.txt", f"(TS//SI//NF) {CANARY}.\n\n(U) Rest.\n".encode(encoding))
        assert marking_of(result, CANARY) == "TOP SECRET//SI//NOFORN"


@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_formatting_around_non_marks_stays_text(fmt: str) -> None:
    result = ingest(f"a.{fmt}", "(U) Opening.\n\n**(a)** first step\n\n> (c) 2024 Acme\n")
    assert result.status == "parsed"
    assert {e.marking for e in result.elements} == {DEFAULT}
    assert any("first step" in e.text and "(a)" in e.text for e in result.elements)


# -- (4) marks inside a paragraph ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.txt", f"(U) first line\n(TS//SI//NF) {CANARY}\n"),
        ("a.md", f"(U) first line\n(TS//SI//NF) {CANARY}\n"),
        ("b.md", f"- (U) first line\n  (TS//SI//NF) {CANARY}\n"),
    ],
)
def test_a_marked_line_inside_a_paragraph_starts_a_portion(name: str, data: str) -> None:
    result = ingest(name, data)
    assert result.status == "parsed"
    assert marking_of(result, "first line") == "UNCLASSIFIED"
    assert marking_of(result, CANARY) == "TOP SECRET//SI//NOFORN"
    assert not any("first line" in e.text and CANARY in e.text for e in result.elements)


def test_a_soft_line_break_splits_a_parsed_element() -> None:
    element = ParsedElement(
        type=ElementType.NARRATIVE_TEXT,
        text=f"(U) first line\n(TS//SI//NF) {CANARY}\u2028(S//NF) third",
        text_html=f"<p>(U) first line<br/>(TS//SI//NF) {CANARY}</p>",
        locator={"paragraph": 3},
    )
    result = synthetic(element)
    parts = [(e.text, e.marking.banner()) for e in result.elements]
    assert parts == [
        ("first line", "UNCLASSIFIED"),
        (CANARY, "TOP SECRET//SI//NOFORN"),
        ("third", "SECRET//NOFORN"),
    ]
    for part in result.elements:
        assert part.parsed.locator == {"paragraph": 3}
        assert part.parsed.text_html is None  # it held every part's text
        assert part.origin is element


def test_an_unmarked_line_does_not_split() -> None:
    result = synthetic(
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="(S//NF) one\ncontinued (a) here")
    )
    assert [e.marking.banner() for e in result.elements] == ["SECRET//NOFORN"]


# -- (5) banners not at the document's edges ---------------------------------------------------


def test_form_feed_pages_each_with_banners_join() -> None:
    text = (
        "UNCLASSIFIED\n\nPage one text.\n\nUNCLASSIFIED\n"
        "\fTOP SECRET//SI//NOFORN\n\n"
        f"{CANARY}.\n\nTOP SECRET//SI//NOFORN\n"
        "\fSECRET\n\nPage three text.\n\nSECRET\n"
    )
    parsed = parse_bytes(text.encode(), filename="pages.txt")
    assert [e.page for e in parsed.elements] == [1, 2, 3]
    assert len(parsed.banners) == 6
    result = apply_markings(parsed, default=DEFAULT, system_high=SH)
    assert "banner-mismatch" in kinds(result)
    assert result.banner == TS
    # unmarked content inherits the joined banner, never its own page's lower banner
    assert {e.marking for e in result.elements} == {TS}
    assert_canary_covered(result)


def test_a_banner_line_in_the_middle_of_a_text_file() -> None:
    result = ingest("a.txt", f"Intro.\n\nTOP SECRET//SI//NOFORN\n{CANARY}.\n\nOutro.\n")
    assert result.banner == TS
    assert marking_of(result, CANARY) == "TOP SECRET//SI//NOFORN"
    assert all("TOP SECRET" not in e.text for e in result.elements)


def test_a_whole_line_banner_element_anywhere_is_a_banner() -> None:
    result = synthetic(
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="alpha,beta"),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="Top Secret//SI//NoForn"),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text=CANARY),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="gamma,delta"),
    )
    assert result.banner == TS and len(result.elements) == 3
    assert_canary_covered(result)


def test_an_upper_case_word_line_in_the_middle_is_not_a_banner() -> None:
    result = ingest("a.txt", "Intro.\n\nCONFIDENTIAL\n\nOutro.\n")
    assert result.banner is None and result.marking == DEFAULT


# -- (1) table cells and records ---------------------------------------------------------------


def test_markdown_table_cells_are_marked_per_cell() -> None:
    result = ingest(
        "t.md", f"(U) Intro.\n\n| name | note |\n|---|---|\n| alpha | (TS//SI//NF) {CANARY} |\n"
    )
    table = next(e for e in result.elements if e.parsed.type is ElementType.TABLE)
    assert table.marking == TS
    cells = {c.text: c.marking for c in table.parsed.table_cells}
    assert cells == {
        "name": "UNCLASSIFIED",
        "note": "UNCLASSIFIED",
        "alpha": "UNCLASSIFIED",
        CANARY: "TOP SECRET//SI//NOFORN",
    }
    assert "(TS" not in table.text
    assert_canary_covered(result)
    assert "unmarked-portion" not in kinds(result)


def test_csv_cell_mark() -> None:
    result = ingest("t.csv", f"name,note\nalpha,(TS//SI//NF) {CANARY}\nbeta,(U) fine\n")
    assert result.status == "parsed"
    assert_canary_covered(result)
    assert result.marking is not None and result.marking == TS


def test_json_string_values_at_any_depth() -> None:
    data = (
        '{"ops": {"items": [{"note": "(TS//SI//NF) ' + CANARY + '", "n": 3}]},'
        ' "list": ["(S//NF) deep leaf"]}'
    )
    result = ingest("t.json", data)
    assert result.status == "parsed"
    assert_canary_covered(result)
    record = next(e for e in result.elements if CANARY in e.text)
    assert record.field_markings == {"/note": "TOP SECRET//SI//NOFORN"}
    assert record.parsed.fields["note"] == CANARY
    assert marking_of(result, "deep leaf") == "SECRET//NOFORN"


def test_record_fields_keyed_by_pointer_and_nested() -> None:
    record = ParsedElement(
        type=ElementType.RECORD,
        text=f"id: 7\nmeta.note: (TS//SI//NF) {CANARY}",
        fields={"/id": 7, "/meta": {"note": f"(TS//SI//NF) {CANARY}", "tags": ["(S//NF) x"]}},
    )
    result = synthetic(record, ParsedElement(type=ElementType.NARRATIVE_TEXT, text="(U) y"))
    element = result.elements[0]
    assert element.field_markings == {
        "/meta/note": "TOP SECRET//SI//NOFORN",
        "/meta/tags/0": "SECRET//NOFORN",
    }
    assert element.parsed.fields == {"/id": 7, "/meta": {"note": CANARY, "tags": ["x"]}}
    assert element.text == f"id: 7\nmeta.note: {CANARY}"
    # the join of its cells' marks and, for the unmarked id, the default
    assert element.marking == TS and element.marking_source == "portion"


@pytest.mark.parametrize(
    "text",
    [
        f"note: (TS//SI//NF) {CANARY}",
        f"id: 1; note: (TS//SI//NF) {CANARY}; when: today",
        f"alpha | (TS//SI//NF) {CANARY}",
        f"alpha\t(TS//SI//NF) {CANARY}",
    ],
)
def test_record_rows_rendered_as_text(text: str) -> None:
    result = synthetic(ParsedElement(type=ElementType.RECORD, text=text))
    assert result.elements[0].marking == TS
    assert "(TS" not in result.elements[0].text and CANARY in result.elements[0].text


def test_table_cells_from_structured_parsers() -> None:
    cells = (
        TableCell(row=0, col=0, text="(U) Name", is_header=True),
        TableCell(row=0, col=1, text="(U) Value", is_header=True),
        TableCell(row=1, col=0, text="alpha"),
        TableCell(row=1, col=1, text=f"(TS//SI//NF) {CANARY}"),
        TableCell(row=2, col=0, text="(A)"),
        TableCell(row=3, col=0, text="(B)"),
        TableCell(row=4, col=0, text="(C)"),
    )
    table = ParsedElement(
        type=ElementType.TABLE,
        text=f"(U) Name | (U) Value\nalpha | (TS//SI//NF) {CANARY}\n(A)\n(B)\n(C)",
        table_cells=cells,
    )
    result = synthetic(table)
    element = result.elements[0]
    assert element.marking == TS
    marks = [(c.text, c.marking) for c in element.parsed.table_cells]
    assert marks[3] == (CANARY, "TOP SECRET//SI//NOFORN")
    assert marks[0] == ("Name", "UNCLASSIFIED")
    # an enumerated run down a column: (C) after (B) is an enumerator, not CONFIDENTIAL
    assert marks[6] == ("(C)", "UNCLASSIFIED")
    assert element.text.startswith("Name | Value\nalpha | " + CANARY)


def test_unmarked_cells_give_at_most_one_finding_per_element() -> None:
    rows = [
        ParsedElement(
            type=ElementType.RECORD,
            text=f"a: {i}\nb: (S//NF) x{i}\nc: plain",
            fields={"a": i, "b": f"(S//NF) x{i}", "c": "plain"},
        )
        for i in range(3)
    ]
    unmarked = ParsedElement(
        type=ElementType.RECORD, text="a: 9\nb: y\nc: z", fields={"a": 9, "b": "y", "c": "z"}
    )
    result = synthetic(*rows, unmarked)
    findings = [f for f in result.findings if f.kind == "unmarked-portion"]
    assert [f.element_index for f in findings] == [3]
    assert result.elements[3].marking == DEFAULT


@pytest.mark.parametrize("cell", ["(a) first", "(c) 2024 Acme", "(s/he) said", "(C) Copyright"])
def test_cell_negatives_stay_text(cell: str) -> None:
    result = synthetic(
        ParsedElement(
            type=ElementType.TABLE,
            text=f"x | {cell}",
            table_cells=(TableCell(row=0, col=0, text="x"), TableCell(row=0, col=1, text=cell)),
        )
    )
    assert result.status == "parsed" and result.elements[0].marking == DEFAULT
    assert result.elements[0].parsed.table_cells[1].text == cell


def test_invalid_cell_mark_quarantines() -> None:
    for fmt, data in [
        ("csv", "a,b\nx,(S/NF) bad\n"),
        ("json", '{"a": "(TS/SI) bad"}'),
        ("md", "| a | b |\n|---|---|\n| x | (S/NF) bad |\n"),
    ]:
        result = ingest(f"t.{fmt}", data)
        assert result.reason == "invalid-marking", fmt


# -- (7) markings stated in structure ----------------------------------------------------------


@pytest.mark.parametrize("stated", ["TOP SECRET//SI//NOFORN", "(TS//SI//NF)", "ts//si//nf"])
def test_declared_marking_is_the_portion_marking(stated: str) -> None:
    result = synthetic(
        ParsedElement(type=ElementType.RECORD, text=CANARY, declared_marking=stated),
        ParsedElement(type=ElementType.RECORD, text="other", declared_marking="(U)"),
    )
    assert [e.marking for e in result.elements] == [TS, DEFAULT]
    assert result.elements[0].marking_source == "portion"
    assert_canary_covered(result)


def test_declared_marking_invalid_or_empty() -> None:
    bad = synthetic(ParsedElement(type=ElementType.RECORD, text="x", declared_marking="S//ZZZ"))
    assert bad.reason == "invalid-marking"
    empty = synthetic(
        ParsedElement(type=ElementType.RECORD, text="x", declared_marking=""),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="y", declared_marking="  "),
    )
    assert empty.status == "parsed"
    assert [f.kind for f in empty.findings] == ["unmarked-portion", "unmarked-portion"]
    assert {e.marking for e in empty.elements} == {DEFAULT}


# -- (8) what is not a mark stays text ---------------------------------------------------------


@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_negatives_next_to_the_positives(fmt: str) -> None:
    text = (
        "(U) Opening.\n\n(a) first\n\n(c) 2024 Acme Corp.\n\n(s/he) will decide.\n\n"
        "(A) alpha\n\n(B) bravo\n\n(C) charlie\n\n(c/o the embassy)\n"
    )
    result = ingest(f"a.{fmt}", text)
    assert result.status == "parsed"
    texts = {e.text for e in result.elements}
    for kept in ["(a) first", "(c) 2024 Acme Corp.", "(s/he) will decide.", "(C) charlie"]:
        assert kept in texts
    assert {e.marking for e in result.elements} == {DEFAULT}


@pytest.mark.parametrize("fmt", ["txt", "md"])
def test_an_invalid_candidate_still_quarantines(fmt: str) -> None:
    for bad in ["(S/NF) one slash", "**(TS/SI)** emphasised", "\u200b(S//ZZZ) hidden"]:
        assert ingest(f"a.{fmt}", f"(U) ok\n\n{bad}\n").reason == "invalid-marking", bad


# -- (9) section headings and metadata ---------------------------------------------------------


def test_headings_carry_their_marking_in_section_path() -> None:
    result = ingest(
        "h.md",
        "# (S//NF) Operation GLASS\n\n(U) Intro.\n\n## Logistics\n\n(U) Fuel.\n\n"
        "# (U) Annex\n\n(U) Plain.\n",
    )
    by_text = {e.text: e for e in result.elements}
    intro = by_text["Intro."]
    assert intro.section_path == ("Operation GLASS",)
    assert intro.section_markings == (SECRET,)
    fuel = by_text["Fuel."]
    assert fuel.section_path == ("Operation GLASS", "Logistics")
    # a heading without a mark takes the banner or default
    assert fuel.section_markings == (SECRET, DEFAULT)
    assert by_text["Plain."].section_markings == (DEFAULT,)
    assert by_text["Plain."].marking == DEFAULT


def test_heading_marking_from_a_declared_marking() -> None:
    result = synthetic(
        ParsedElement(type=ElementType.TITLE, text="Ops", declared_marking="SECRET//NOFORN"),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="(U) body", section_path=("Ops",)),
    )
    assert result.elements[1].section_markings == (SECRET,)


def test_metadata_marks_raise_the_document_and_are_stripped() -> None:
    result = synthetic(
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="Plain."),
        title=f"(TS//SI//NF) {CANARY}",
        author="(S//NF) J. Smith",
        metadata={"subject": {"deep": ["TOP SECRET//SI//NOFORN"]}, "pages": 2},
    )
    assert result.status == "parsed" and result.marking == TS
    assert result.title == CANARY and result.author == "J. Smith"
    assert result.elements[0].marking == DEFAULT  # content stays at its own marking
    assert kinds(result) == set()  # metadata is not a portion
    assert all(CANARY not in f.detail for f in result.findings)


def test_a_file_name_mark_raises_the_document() -> None:
    result = ingest("(S//NF) plan.txt", "Plain.\n")
    assert result.marking == SECRET
    assert ingest("plan (a) draft.txt", "Plain.\n").marking == DEFAULT


def test_invalid_metadata_mark_quarantines_without_quoting() -> None:
    result = synthetic(
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="Plain."), title="(S/NF) KESTREL"
    )
    assert result.reason == "invalid-marking"
    assert all("KESTREL" not in f.detail for f in result.findings)


# -- (11) e-mail headers are metadata ---------------------------------------------------------


def test_email_headers_never_get_unmarked_portion() -> None:
    result = ingest(
        "m.eml",
        "From: a@example.org\nTo: b@example.org\nSubject: (U) Status\n\n"
        f"(U) Hello.\n\n(TS//SI//NF) {CANARY}.\n",
    )
    assert result.status == "parsed"
    assert "unmarked-portion" not in kinds(result)
    assert_canary_covered(result)


def test_a_marked_subject_in_the_header_element_raises_it() -> None:
    result = synthetic(
        ParsedElement(type=ElementType.EMAIL_HEADER, text="From: a\nSubject: (S//NF) Plans"),
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text="(U) Hello."),
    )
    assert result.elements[0].marking == SECRET
    assert result.elements[0].text == "From: a\nSubject: Plans"
    assert "unmarked-portion" not in kinds(result)


def test_rewritten_elements_keep_the_parser_element_as_origin() -> None:
    """Parent links go through ``origin``: a banner line taken out or a split keeps it."""
    with_banner = ParsedElement(type=ElementType.NARRATIVE_TEXT, text="SECRET//NOFORN\n(S//NF) a")
    split = ParsedElement(type=ElementType.NARRATIVE_TEXT, text="(U) b\n(S//NF) c")
    result = synthetic(with_banner, split)
    assert [(e.text, e.origin) for e in result.elements] == [
        ("a", with_banner),
        ("b", split),
        ("c", split),
    ]
    assert result.elements[0].origin is with_banner

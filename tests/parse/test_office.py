"""DOCX/PPTX/XLSX parsers: structure from files built in memory, hostile input, the corpus."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from garrison.core.records import ElementType, ParsedDocument
from garrison.parse import ParseContext, ParseFailure, parser_for
from garrison.parse.office import (
    DOCX,
    ENCRYPTED_OOXML,
    PPTX,
    XLSX,
    check_zip,
    is_banner_line,
    is_encrypted_ooxml,
    parse_docx,
    parse_pptx,
    parse_xlsx,
    sniff_office,
    split_banner_lines,
)
from tests.conftest import require

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpus/public/unstructured"
MARKED = Path(__file__).resolve().parents[3] / "shared/corpus/marked/docs"
CTX = ParseContext()
# Files in the corpus that hold no text at all (an empty workbook, pictures only).
EMPTY_OK = {"empty.xlsx", "test-image-jpg-mime.pptx"}


def _require(path: Path) -> None:
    require(path.is_dir(), f"{path} is absent")


def _types(doc: ParsedDocument) -> list[ElementType]:
    return [e.type for e in doc.elements]


# -- DOCX ----------------------------------------------------------------------------------------


def _docx_bytes() -> bytes:
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    d = docx.Document()
    d.core_properties.title = "Ops plan"
    d.core_properties.author = "J. Smith"
    d.core_properties.created = datetime(2024, 1, 2, 3, 4, 5)
    d.sections[0].header.paragraphs[0].text = "SECRET//NOFORN"
    d.sections[0].footer.paragraphs[0].text = "SECRET//NOFORN\nPage footer text"
    d.add_paragraph("SECRET//NOFORN")
    d.add_heading("Plan", level=1)
    d.add_paragraph("(U) Intro paragraph.")
    d.add_heading("Logistics", level=2)
    d.add_paragraph("(S) First item", style="List Bullet")
    d.add_paragraph("Second item", style="List Number")
    table = d.add_table(rows=3, cols=3)
    for r in range(3):
        for c in range(3):
            table.cell(r, c).text = f"r{r}c{c}"
    table.cell(1, 0).merge(table.cell(2, 0))  # vertical merge
    table.cell(0, 1).merge(table.cell(0, 2))  # horizontal merge
    table.cell(0, 1).text = "wide"
    tr_pr = table.rows[0]._tr.get_or_add_trPr()
    tr_pr.append(OxmlElement("w:tblHeader"))
    assert tr_pr.find(qn("w:tblHeader")) is not None
    d.add_heading("Annex", level=1)
    d.add_paragraph("After the table.")
    d.add_paragraph("SECRET//NOFORN")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def docx_doc() -> ParsedDocument:
    return parse_docx(_docx_bytes(), CTX)


def test_docx_reading_order_and_types(docx_doc: ParsedDocument) -> None:
    texts = [(e.type, e.text) for e in docx_doc.elements]
    assert texts[0] == (ElementType.HEADER, "SECRET//NOFORN")
    body = [t for t in texts if t[0] not in (ElementType.HEADER, ElementType.FOOTER)]
    assert [t[0] for t in body] == [
        ElementType.TITLE,
        ElementType.NARRATIVE_TEXT,
        ElementType.TITLE,
        ElementType.LIST_ITEM,
        ElementType.LIST_ITEM,
        ElementType.TABLE,
        ElementType.TITLE,
        ElementType.NARRATIVE_TEXT,
    ]
    assert body[1][1] == "(U) Intro paragraph."  # portion marks stay for ingest
    assert texts[-1][0] == ElementType.FOOTER


def test_docx_banners_leave_the_body(docx_doc: ParsedDocument) -> None:
    assert docx_doc.banners == ("SECRET//NOFORN",)
    body = [e for e in docx_doc.elements if e.type not in (ElementType.HEADER, ElementType.FOOTER)]
    assert all("NOFORN" not in e.text for e in body)


def test_docx_headings_and_section_paths(docx_doc: ParsedDocument) -> None:
    by_text = {e.text: e for e in docx_doc.elements}
    assert by_text["Plan"].heading_level == 1
    assert by_text["Logistics"].heading_level == 2
    assert by_text["Logistics"].section_path == ("Plan",)
    assert by_text["(S) First item"].section_path == ("Plan", "Logistics")
    assert by_text["Annex"].section_path == ()
    assert by_text["After the table."].section_path == ("Annex",)
    plan = docx_doc.elements.index(by_text["Plan"])
    assert by_text["(U) Intro paragraph."].parent == plan


def test_docx_table_cells_and_spans(docx_doc: ParsedDocument) -> None:
    (table,) = [e for e in docx_doc.elements if e.type == ElementType.TABLE]
    cells = {(c.row, c.col): c for c in table.table_cells}
    assert cells[(0, 1)].text == "wide"
    assert cells[(0, 1)].col_span == 2
    assert cells[(0, 0)].is_header
    assert not cells[(1, 1)].is_header
    assert cells[(1, 0)].row_span == 2
    assert (2, 0) not in cells
    assert table.text_html is not None
    assert '<th colspan="2">wide</th>' in table.text_html
    assert "r1c1" in table.text


def test_docx_properties(docx_doc: ParsedDocument) -> None:
    assert docx_doc.title == "Ops plan"
    assert docx_doc.author == "J. Smith"
    assert docx_doc.created == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert docx_doc.media_type == DOCX
    assert docx_doc.extraction.parser == "garrison.office"


# -- PPTX ----------------------------------------------------------------------------------------


def _pptx_bytes() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
    slide.shapes.title.text = "(U) Mission"
    body = slide.placeholders[1].text_frame
    body.text = "First point"
    body.add_paragraph().text = "Second point"
    slide.notes_slide.notes_text_frame.text = "Speaker notes here."
    box = slide.shapes.add_textbox(Inches(1), Inches(6), Inches(4), Inches(1))
    box.text_frame.text = "TOP SECRET"
    slide2 = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    slide2.shapes.title.text = "Numbers"
    shape = slide2.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(2))
    for r in range(2):
        for c in range(2):
            shape.table.cell(r, c).text = f"{r}/{c}"
    note = slide2.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1))
    note.text_frame.text = "A plain note."
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def test_pptx_slides() -> None:
    doc = parse_pptx(_pptx_bytes(), CTX)
    got = [(e.type, e.text, e.locator) for e in doc.elements]
    assert got == [
        (ElementType.TITLE, "(U) Mission", {"slide": 1}),
        (ElementType.LIST_ITEM, "First point", {"slide": 1}),
        (ElementType.LIST_ITEM, "Second point", {"slide": 1}),
        (ElementType.NARRATIVE_TEXT, "Speaker notes here.", {"slide": 1, "part": "notes"}),
        (ElementType.TITLE, "Numbers", {"slide": 2}),
        (ElementType.TABLE, "0/0 | 0/1\n1/0 | 1/1", {"slide": 2}),
        (ElementType.NARRATIVE_TEXT, "A plain note.", {"slide": 2}),
    ]
    table = doc.elements[5]
    assert len(table.table_cells) == 4
    assert table.table_cells[0].is_header  # python-pptx tables mark the first row by default
    assert doc.elements[1].section_path == ("(U) Mission",)
    assert doc.elements[6].section_path == ("Numbers",)
    assert doc.banners == ("TOP SECRET",)


# -- XLSX ----------------------------------------------------------------------------------------


def _xlsx_bytes() -> bytes:
    import openpyxl  # type: ignore[import-untyped]

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Roster"
    ws.append(["Name", "Age", "Joined"])
    ws.append(["Ann", 31, datetime(2020, 5, 1)])
    ws.append(["Bob", 2.5, None])
    ws.append([])
    ws.append([None, 1, 2])
    ws.append([None, 3, 4])
    wb.create_sheet("Empty")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_xlsx_tables_and_records() -> None:
    doc = parse_xlsx(_xlsx_bytes(), CTX)
    assert _types(doc) == [
        ElementType.TABLE,
        ElementType.RECORD,
        ElementType.RECORD,
        ElementType.TABLE,
        ElementType.RECORD,
        ElementType.RECORD,
    ]
    first = doc.elements[0]
    assert first.locator == {"sheet": "Roster", "range": "A1:C3"}
    header = [c for c in first.table_cells if c.is_header]
    assert [c.text for c in header] == ["Name", "Age", "Joined"]
    ann = doc.elements[1]
    assert ann.fields == {"Name": "Ann", "Age": 31, "Joined": datetime(2020, 5, 1)}
    assert ann.locator == {"sheet": "Roster", "row": 2}
    assert ann.parent == 0
    assert doc.elements[2].fields == {"Name": "Bob", "Age": 2.5}
    # A block without a text header row is keyed by column letter.
    assert doc.elements[4].fields == {"B": 1, "C": 2}
    assert doc.elements[3].locator["range"] == "B5:C6"


def test_xlsx_cell_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import garrison.parse.office as office

    monkeypatch.setattr(office, "MAX_XLSX_CELLS", 5)
    with pytest.raises(ParseFailure) as info:
        parse_xlsx(_xlsx_bytes(), CTX)
    assert info.value.reason == "too-large"


# -- containers, banners, hostile input ----------------------------------------------------------


def test_sniff_office() -> None:
    assert sniff_office(_docx_bytes()) == DOCX
    assert sniff_office(_pptx_bytes()) == PPTX
    assert sniff_office(_xlsx_bytes()) == XLSX
    assert sniff_office(b"plain text") is None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "x")
    assert sniff_office(buf.getvalue()) is None
    assert sniff_office(b"PK\x03\x04 broken") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("SECRET//NOFORN", True),
        ("TOP SECRET//SI//NOFORN", True),
        ("UNCLASSIFIED", True),
        ("NATO SECRET", True),  # unsupported: kept as a banner so ingest rejects it
        ("Secret", False),
        ("(U) Portion text", False),
        ("(S)", False),
        ("PLAN OF ACTION", False),
        ("", False),
        ("1234", False),
    ],
)
def test_is_banner_line(line: str, expected: bool) -> None:
    assert is_banner_line(line) is expected


def test_split_banner_lines() -> None:
    assert split_banner_lines("SECRET\n\nBody text") == (["SECRET"], "Body text")
    assert split_banner_lines("Body text\nSECRET", from_end=True) == (["SECRET"], "Body text")
    assert split_banner_lines("Body text") == ([], "Body text")
    assert split_banner_lines("SECRET") == (["SECRET"], "")


@pytest.mark.parametrize("parse", [parse_docx, parse_pptx, parse_xlsx])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a zip at all",
        b"PK\x03\x04garbage",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
    ],
    ids=["empty", "text", "bad-zip", "ole2"],
)
def test_bad_input_is_corrupt(parse: Any, data: bytes) -> None:
    with pytest.raises(ParseFailure) as info:
        parse(data, CTX)
    assert info.value.reason == "corrupt"


@pytest.mark.parametrize("parse", [parse_docx, parse_pptx, parse_xlsx])
def test_truncated_file_is_corrupt(parse: Any) -> None:
    data = {parse_docx: _docx_bytes, parse_pptx: _pptx_bytes, parse_xlsx: _xlsx_bytes}[parse]()
    with pytest.raises(ParseFailure) as info:
        parse(data[: len(data) // 2], CTX)
    assert info.value.reason == "corrupt"


def test_zip_without_office_parts_is_corrupt() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    for parse in (parse_docx, parse_pptx, parse_xlsx):
        with pytest.raises(ParseFailure) as info:
            parse(buf.getvalue(), CTX)
        assert info.value.reason == "corrupt"


def test_zip_bomb_ratio_is_hostile() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("word/document.xml", b"\0" * (40 * 1024 * 1024))
    data = buf.getvalue()
    assert len(data) < 200 * 1024
    with pytest.raises(ParseFailure) as info:
        check_zip(data)
    assert info.value.reason == "hostile-content"
    with pytest.raises(ParseFailure) as info:
        parse_docx(data, CTX)
    assert info.value.reason == "hostile-content"


def test_zip_declared_size_limit_is_hostile(monkeypatch: pytest.MonkeyPatch) -> None:
    import garrison.parse.office as office

    monkeypatch.setattr(office, "MAX_UNCOMPRESSED", 1000)
    with pytest.raises(ParseFailure) as info:
        parse_docx(_docx_bytes(), CTX)
    assert info.value.reason == "hostile-content"


def test_encrypted_ooxml() -> None:
    fake = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "EncryptionInfo".encode("utf-16-le") + b"\0" * 64
    assert is_encrypted_ooxml(fake)
    assert sniff_office(fake) == ENCRYPTED_OOXML
    assert not is_encrypted_ooxml(_docx_bytes())
    for media_type in (ENCRYPTED_OOXML, DOCX, XLSX):
        parser = parser_for(media_type)
        assert parser is not None
        with pytest.raises(ParseFailure) as info:
            parser(fake, CTX)
        assert info.value.reason == "encrypted"


def test_registered() -> None:
    assert parser_for(DOCX) is parse_docx
    assert parser_for(PPTX) is parse_pptx
    assert parser_for(XLSX) is parse_xlsx


# -- corpus --------------------------------------------------------------------------------------


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.suffix in (".docx", ".pptx", ".xlsx"))


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: p.name)
def test_corpus_file_parses_or_fails_cleanly(path: Path) -> None:
    data = path.read_bytes()
    parser = parser_for(sniff_office(data) or "")
    assert parser is not None, f"{path.name} not recognised as an Office file"
    try:
        doc = parser(data, CTX)
    except ParseFailure as exc:
        reason: str | None = exc.reason
    else:
        reason = None
    if reason is not None:
        assert reason in {"encrypted", "corrupt", "too-large", "hostile-content"}
    elif path.name not in EMPTY_OK:
        assert any(e.text.strip() for e in doc.elements)


def test_corpus_present() -> None:
    _require(CORPUS)
    assert _corpus_files()


def test_corpus_facts() -> None:
    _require(CORPUS)
    vodafone = parse_xlsx((CORPUS / "vodafone.xlsx").read_bytes(), CTX)
    tables = [e for e in vodafone.elements if e.type == ElementType.TABLE]
    assert tables
    assert all(t.table_cells for t in tables)
    pptx = parse_pptx((CORPUS / "fake-power-point-table.pptx").read_bytes(), CTX)
    assert ElementType.TABLE in _types(pptx)
    protected = (CORPUS / "password_protected.xlsx").read_bytes()
    assert sniff_office(protected) == ENCRYPTED_OOXML
    with pytest.raises(ParseFailure) as info:
        parse_xlsx(protected, CTX)
    assert info.value.reason == "encrypted"
    hdr = parse_docx((CORPUS / "docx-hdrftr.docx").read_bytes(), CTX)
    assert {ElementType.HEADER, ElementType.FOOTER} <= set(_types(hdr))


def test_marked_corpus_docx() -> None:
    _require(MARKED)
    files = sorted(MARKED.glob("*.docx"))
    assert files
    for path in files:
        doc = parse_docx(path.read_bytes(), CTX)
        assert doc.banners, path.name
        body = [e for e in doc.elements if e.type not in (ElementType.HEADER, ElementType.FOOTER)]
        assert body and all(e.text.startswith("(") for e in body), path.name

"""Every place a reader sees a mark, per format, handed to the marking rules where they look.

The marking rules read a mark at the start of an element's text, of each table cell's text and
of each string value in ``fields`` (at any depth), every entry of ``banners``, and each
element's ``declared_marking``; a warning ``unreadable-content: <part>`` names what could not be
read. Each test puts a mark in a place the parsers used to skip and checks it arrives there.
Fixtures are written by real software where it can: LibreOffice (DOCX text boxes, comments,
footnotes), openpyxl (XLSX headers, footers, comments), python-pptx, pypdf (annotations, form
fields), the stdlib e-mail package.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from garrison.core.errors import GarrisonError, InvalidInput, MarkingError
from garrison.core.records import ElementType, ParsedDocument, ParsedElement
from garrison.parse import ParseContext, ParseFailure, parse_bytes
from garrison.parse.office import XLSX, parse_xlsx
from garrison.parse.xml import ism_marking
from garrison.security.markings import parse_marking
from tests.conftest import require
from tests.parse.test_pdf import make_pdf

TS = "(TS//SI//NF)"
S = "(S//NF)"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def places(element: ParsedElement) -> list[str]:
    """The starts the marking rules look at for one element."""
    return [
        element.text,
        *(cell.text for cell in element.table_cells),
        *_strings(element.fields),
    ]


def marked_at_start(doc: ParsedDocument, mark: str, canary: str) -> list[ParsedElement]:
    """Elements holding ``canary`` with ``mark`` at the start of a place the rules look at."""
    return [e for e in doc.elements if any(p.startswith(mark) and canary in p for p in places(e))]


# -- ParseFailure is a GarrisonError --------------------------------------------------------------


def test_parse_failure_joins_the_error_tree_and_pickles() -> None:
    failure = ParseFailure("corrupt", "the file is empty")
    assert isinstance(failure, InvalidInput) and isinstance(failure, GarrisonError)
    assert (failure.reason, failure.detail, failure.code) == (
        "corrupt",
        "the file is empty",
        "parse-failure",
    )
    back = pickle.loads(pickle.dumps(failure))  # parsers run in worker processes
    assert (back.reason, back.detail, str(back)) == (failure.reason, failure.detail, str(failure))


# -- CSV / TSV ------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_delimited_cell_mark_is_at_the_start_of_its_cell(delimiter: str) -> None:
    rows = [["name", "note"], ["alpha", f"{TS} grid coordinates"], ["beta", "(U) routine"]]
    data = "\n".join(delimiter.join(r) for r in rows).encode() + b"\n"
    doc = parse_bytes(data, filename="t.tsv" if delimiter == "\t" else "t.csv")
    (record,) = marked_at_start(doc, TS, "grid coordinates")
    assert record.type == ElementType.RECORD
    assert [c.text for c in record.table_cells] == ["alpha", f"{TS} grid coordinates"]
    assert record.fields["note"].startswith(TS)


@pytest.mark.parametrize(
    ("top", "bottom"),
    [
        ("SECRET//NOFORN", "SECRET//NOFORN"),
        ("TOP SECRET//SI//NOFORN,,", "TOP SECRET//SI//NOFORN,,"),  # a spreadsheet export
        ('"SECRET//REL TO USA, GBR"', "SECRET//REL TO USA, GBR"),  # the comma splits a cell
    ],
)
def test_csv_banner_rows_go_to_banners_not_data(top: str, bottom: str) -> None:
    data = f"{top}\nname,qty,note\nalpha,1,x\nbeta,2,y\n{bottom}\n".encode()
    doc = parse_bytes(data, filename="t.csv")
    assert doc.media_type == "text/csv"
    banner = top.strip('"').rstrip(",")
    assert doc.banners == (banner, bottom.rstrip(","))
    assert [e.fields["name"] for e in doc.elements] == ["alpha", "beta"]
    assert not any(banner in e.text for e in doc.elements)


def test_csv_marking_column_is_declared_and_left_out() -> None:
    data = (
        b"name,note,classification\n"
        b"alpha,grid 7,TOP SECRET//SI//NOFORN\n"
        b"beta,(S//NF) note,(S//NF)\n"
        b"gamma,plain,\n"
    )
    doc = parse_bytes(data, filename="t.csv", marking_column="classification")
    assert [e.declared_marking for e in doc.elements] == ["TOP SECRET//SI//NOFORN", "(S//NF)", ""]
    for element in doc.elements:
        assert "classification" not in element.fields
        assert "classification" not in element.text and "TOP SECRET" not in element.text
        assert all("TOP SECRET" not in c.text for c in element.table_cells)
    assert doc.metadata["columns"] == ["name", "note"]
    # Without the option the column is ordinary data.
    plain = parse_bytes(data, filename="t.csv")
    assert all(e.declared_marking is None for e in plain.elements)


@pytest.mark.parametrize("filename", ["t.csv", "t.tsv"])
def test_missing_marking_column_fails_closed(filename: str) -> None:
    sep = "\t" if filename.endswith("tsv") else ","
    data = f"name{sep}note\nalpha{sep}x\nbeta{sep}y\n".encode()
    with pytest.raises(ParseFailure, match="marking column 'level'"):
        parse_bytes(data, filename=filename, marking_column="level")


# -- XLSX -----------------------------------------------------------------------------------------


def _xlsx(build: Any) -> bytes:
    import openpyxl  # type: ignore[import-untyped]

    wb = openpyxl.Workbook()
    build(wb.active)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _parse_xlsx(data: bytes, **options: object) -> ParsedDocument:
    return parse_xlsx(data, ParseContext(media_type=XLSX, options=dict(options)))


def test_xlsx_header_and_footer_banners() -> None:
    def build(ws: Any) -> None:
        ws.title = "Plan"
        ws.append(["name", "qty"])
        ws.append(["alpha", 1])
        ws.oddHeader.center.text = "TOP SECRET//SI//NOFORN"
        ws.oddFooter.left.text = "Page &P of &N"
        ws.oddFooter.center.text = "TOP SECRET//SI//NOFORN"

    doc = _parse_xlsx(_xlsx(build))
    assert doc.banners == ("TOP SECRET//SI//NOFORN",)
    kinds = {(e.type, e.locator.get("part")) for e in doc.elements if e.locator.get("part")}
    assert (ElementType.HEADER, "oddHeader") in kinds
    assert (ElementType.FOOTER, "oddFooter") in kinds
    footer = next(e for e in doc.elements if e.locator.get("part") == "oddFooter")
    assert footer.text == "Page of\nTOP SECRET//SI//NOFORN"  # codes (&P, &N) removed


def test_xlsx_comment_and_cell_marks() -> None:
    from openpyxl.comments import Comment  # type: ignore[import-untyped]

    def build(ws: Any) -> None:
        ws.title = "Grid"
        ws.append(["name", "note"])
        ws.append(["alpha", f"{S} cell canary"])
        ws["A2"].comment = Comment(f"{TS} comment canary", "analyst")

    doc = _parse_xlsx(_xlsx(build))
    (comment,) = marked_at_start(doc, TS, "comment canary")
    assert comment.locator == {"sheet": "Grid", "part": "comment", "cell": "A2"}
    cell = marked_at_start(doc, S, "cell canary")
    assert {e.type for e in cell} == {ElementType.TABLE, ElementType.RECORD}


def test_xlsx_marking_column() -> None:
    def build(ws: Any) -> None:
        ws.append(["name", "note", "classification"])
        ws.append(["alpha", "grid 7", "TOP SECRET//SI//NOFORN"])
        ws.append(["beta", "plain", None])

    doc = _parse_xlsx(_xlsx(build), marking_column="classification")
    records = [e for e in doc.elements if e.type == ElementType.RECORD]
    assert [r.declared_marking for r in records] == ["TOP SECRET//SI//NOFORN", ""]
    assert all("classification" not in r.fields and "TOP" not in r.text for r in records)
    # No Table element joins rows whose markings are stated one by one.
    assert not any(e.type == ElementType.TABLE for e in doc.elements)
    with pytest.raises(ParseFailure, match="marking column 'level'"):
        _parse_xlsx(_xlsx(build), marking_column="level")


def _with_member(data: bytes, name: str, payload: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr(name, payload)
    return buf.getvalue()


def _docx_bytes() -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph("(U) Body.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _pptx_bytes() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "(U) Slide"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    table.cell(0, 0).text = "name"
    table.cell(0, 1).text = "note"
    table.cell(1, 0).text = "alpha"
    table.cell(1, 1).text = f"{TS} pptx cell canary"
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("make", "member", "filename"),
    [
        (_docx_bytes, "word/embeddings/oleObject1.bin", "x.docx"),
        (_pptx_bytes, "ppt/embeddings/oleObject1.bin", "x.pptx"),
        (lambda: _xlsx(lambda ws: ws.append(["a", "b"])), "xl/embeddings/Doc1.docx", "x.xlsx"),
    ],
)
def test_embedded_objects_are_unreadable_content(make: Any, member: str, filename: str) -> None:
    data = _with_member(make(), member, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 ole")
    doc = parse_bytes(data, filename=filename)
    assert f"unreadable-content: embedded object {member}" in doc.warnings
    assert doc.elements  # the document itself stays parsed


def test_pptx_table_cell_mark() -> None:
    doc = parse_bytes(_pptx_bytes(), filename="x.pptx")
    (table,) = marked_at_start(doc, TS, "pptx cell canary")
    assert table.type == ElementType.TABLE


# -- DOCX, written by LibreOffice ----------------------------------------------------------------

FODT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
 xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.text">
<office:body><office:text>
<text:p>(U) Body paragraph.<office:annotation><dc:creator>Reviewer</dc:creator>
<text:p>(TS//SI//NF) comment canary</text:p></office:annotation></text:p>
<text:p>(U) A noted line<text:note text:id="ftn1" text:note-class="footnote">
<text:note-citation>1</text:note-citation><text:note-body>
<text:p>(S//NF) footnote canary</text:p></text:note-body></text:note>.</text:p>
<text:p>(U) An endnote<text:note text:id="edn1" text:note-class="endnote">
<text:note-citation>i</text:note-citation><text:note-body>
<text:p>(S//NF) endnote canary</text:p></text:note-body></text:note>.</text:p>
<text:p><draw:frame text:anchor-type="paragraph" svg:width="6cm" svg:height="2cm"
 draw:name="Box1"><draw:text-box><text:p>(TS//SI//NF) text box canary</text:p>
</draw:text-box></draw:frame>(U) Anchor paragraph.</text:p>
<table:table table:name="T1"><table:table-column table:number-columns-repeated="2"/>
<table:table-row><table:table-cell><text:p>(U) name</text:p></table:table-cell>
<table:table-cell><text:p>(S//NF) cell canary</text:p></table:table-cell></table:table-row>
</table:table>
</office:text></office:body></office:document>
"""


@pytest.fixture(scope="session")
def libreoffice_docx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    require(soffice is not None, "LibreOffice (soffice) is not installed")
    assert soffice is not None
    folder = tmp_path_factory.mktemp("libreoffice")
    (folder / "marks.fodt").write_text(FODT, encoding="utf-8")
    profile = folder / "profile"
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "docx",
            "--outdir",
            str(folder),
            str(folder / "marks.fodt"),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return (folder / "marks.docx").read_bytes()


@pytest.mark.parametrize(
    ("mark", "canary", "part"),
    [
        (TS, "text box canary", "text-box"),
        (TS, "comment canary", "comment"),
        (S, "footnote canary", "footnote"),
        (S, "endnote canary", "endnote"),
        (S, "cell canary", None),
    ],
)
def test_docx_parts_written_by_libreoffice(
    libreoffice_docx: bytes, mark: str, canary: str, part: str | None
) -> None:
    doc = parse_bytes(libreoffice_docx, filename="marks.docx")
    found = marked_at_start(doc, mark, canary)
    assert len(found) == 1, [e.text for e in doc.elements]
    assert found[0].locator.get("part") == part
    if part is None:
        assert found[0].type == ElementType.TABLE


@pytest.mark.parametrize("kind", ["text-box", "watermark"])
def test_docx_text_box_or_watermark_in_a_header_is_a_banner(kind: str) -> None:
    import docx

    d = docx.Document()
    d.add_paragraph("(U) Body.")
    d.sections[0].header.paragraphs[0].text = "Header"
    buf = io.BytesIO()
    d.save(buf)
    data = buf.getvalue()
    # Put a text box holding the banner into the header part python-docx wrote.
    src = zipfile.ZipFile(io.BytesIO(data))
    header = next(n for n in src.namelist() if n.startswith("word/header"))
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    if kind == "text-box":
        inner = (
            "<w:txbxContent><w:p><w:r><w:t>TOP SECRET//SI//NOFORN</w:t></w:r></w:p></w:txbxContent>"
        )
    else:  # a WordArt watermark, as Word writes it (VML)
        inner = (
            '<v:shape xmlns:v="urn:schemas-microsoft-com:vml">'
            '<v:textpath string="TOP SECRET//SI//NOFORN"/></v:shape>'
        )
    xml = f'<w:hdr xmlns:w="{w}"><w:p><w:r><w:pict>{inner}</w:pict></w:r></w:p></w:hdr>'

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info, xml.encode() if info.filename == header else src.read(info))
    doc = parse_bytes(out.getvalue(), filename="x.docx")
    assert "TOP SECRET//SI//NOFORN" in doc.banners
    assert any(e.locator.get("part") == kind for e in doc.elements)


# -- HTML and Markdown tables, JSON values --------------------------------------------------------


def test_html_table_cell_mark() -> None:
    data = (
        b"<html><body><p>(U) Intro.</p><table><tr><th>name</th><th>note</th></tr>"
        b"<tr><td>alpha</td><td><b>(TS//SI//NF)</b> html cell canary</td></tr></table>"
        b"</body></html>"
    )
    doc = parse_bytes(data, filename="x.html")
    (table,) = marked_at_start(doc, TS, "html cell canary")
    assert table.type == ElementType.TABLE


def test_markdown_table_cell_mark() -> None:
    data = b"# (U) Title\n\n| name | note |\n|---|---|\n| alpha | (TS//SI//NF) md canary |\n"
    doc = parse_bytes(data, filename="x.md")
    (table,) = marked_at_start(doc, TS, "md canary")
    assert table.type == ElementType.TABLE


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"b": {"c": f"{TS} deep canary"}}},
        {"rows": [{"id": 1, "note": f"{TS} deep canary"}]},
        {"id": 1, "tags": ["x", f"{TS} deep canary"]},
        [[f"{TS} deep canary"]],
        {"mixed": {"n": 1, "inner": {"list": [1, {"v": f"{TS} deep canary"}]}}},
    ],
)
def test_json_string_at_any_depth_starts_a_place(value: Any) -> None:
    doc = parse_bytes(json.dumps(value).encode(), filename="x.json")
    assert marked_at_start(doc, TS, "deep canary"), [places(e) for e in doc.elements]


def test_jsonl_record_values() -> None:
    lines = [{"id": 1, "note": "(U) fine"}, {"id": 2, "note": f"{TS} line canary"}]
    data = "\n".join(json.dumps(x) for x in lines).encode() + b"\n"
    doc = parse_bytes(data, filename="x.jsonl")
    (record,) = marked_at_start(doc, TS, "line canary")
    assert record.locator == {"line": 2, "json_pointer": "/1"}


# -- XML with IC-ISM attributes -------------------------------------------------------------------

ISM_XML = b"""<?xml version="1.0"?>
<doc xmlns:ism="urn:us:gov:ic:ism" ism:classification="U" ism:ownerProducer="USA">
  <title>Report</title>
  <p ism:classification="TS" ism:SCIcontrols="SI TK" ism:disseminationControls="NF"
     ism:ownerProducer="USA">one canary</p>
  <sec ism:classification="S" ism:disseminationControls="REL" ism:releasableTo="USA GBR AUS">
    <p>child canary</p>
  </sec>
  <p ism:classification="S" ism:SARIdentifier="BP" ism:disseminationControls="OC NF">sap</p>
  <m ism:classification="U">mixed <b ism:classification="S" ism:disseminationControls="NF">
     inner</b> end</m>
  <f ism:classification="S" ism:ownerProducer="GBR">foreign canary</f>
</doc>
"""


def _declared(doc: ParsedDocument) -> dict[str, str | None]:
    return {e.text: e.declared_marking for e in doc.elements}


def test_ism_attributes_declare_element_and_child_markings() -> None:
    doc = parse_bytes(ISM_XML, filename="x.xml")
    declared = _declared(doc)
    assert parse_marking(declared["Report"] or "").banner() == "UNCLASSIFIED"  # inherited
    assert parse_marking(declared["one canary"] or "").banner() == "TOP SECRET//SI/TK//NOFORN"
    assert (
        parse_marking(declared["child canary"] or "").banner()
        == "SECRET//REL TO USA, AUS, GBR"  # inherited from <sec>
    )
    assert parse_marking(declared["sap"] or "").banner() == "SECRET//SAR-BP//ORCON/NOFORN"
    # An element kept whole over marked children declares the join of them.
    assert parse_marking(declared["mixed inner end"] or "").banner() == "SECRET//NOFORN"


@pytest.mark.parametrize(
    ("owner", "rule"), [("GBR USA", "joint-needs-relto"), ("GBR NATO", "nonus-owner")]
)
def test_ism_foreign_owner_is_a_marking_the_model_rejects(owner: str, rule: str) -> None:
    spelling = ism_marking({"classification": "S", "ownerProducer": owner})
    with pytest.raises(MarkingError) as info:
        parse_marking(spelling)  # so ingest quarantines the document invalid-marking
    assert info.value.rule == rule


def test_ism_foreign_owner_in_a_document_is_declared_in_its_non_us_spelling() -> None:
    doc = parse_bytes(ISM_XML, filename="x.xml")
    assert parse_marking(_declared(doc)["foreign canary"] or "").banner() == "//GBR SECRET"


@pytest.mark.parametrize(
    ("attrs", "banner"),
    [
        ({"classification": "C"}, "CONFIDENTIAL"),
        (
            {"classification": "TS", "SCIcontrols": "SI-G TK", "disseminationControls": "NF OC"},
            "TOP SECRET//SI-G/TK//ORCON/NOFORN",
        ),
        ({"classification": "U", "disseminationControls": "FOUO"}, "UNCLASSIFIED//FOUO"),
        (
            {"classification": "S", "disseminationControls": "NF OC", "ownerProducer": "USA"},
            "SECRET//ORCON/NOFORN",
        ),
        (
            {
                "classification": "S",
                "disseminationControls": "RELIDO REL",
                "releasableTo": "GBR USA",
            },
            "SECRET//REL TO USA, GBR/RELIDO",
        ),
    ],
)
def test_ism_value_spellings(attrs: dict[str, str], banner: str) -> None:
    assert parse_marking(ism_marking(attrs)).banner() == banner


def test_ism_unknown_value_is_rejected_not_dropped() -> None:
    with pytest.raises(MarkingError):
        parse_marking(ism_marking({"classification": "S", "disseminationControls": "ZZZ"}))
    with pytest.raises(MarkingError):
        parse_marking(ism_marking({"classification": "Q"}))


def test_xml_without_ism_declares_nothing() -> None:
    doc = parse_bytes(b"<doc><p>(S//NF) text mark</p></doc>", filename="x.xml")
    assert [e.declared_marking for e in doc.elements] == [None]
    assert marked_at_start(doc, S, "text mark")


# -- PDF annotations, form fields, page banners ---------------------------------------------------


def _annotated_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter
    from pypdf.annotations import FreeText, Text
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject
    from pypdf.generic import TextStringObject as Str

    base = make_pdf([(72, 700, 10, "(U) Plain page text.")], [(72, 700, 10, "(U) Page two.")])
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(base)))
    writer.add_annotation(0, Text(rect=(50, 550, 200, 650), text=f"{TS} sticky canary"))
    writer.add_annotation(1, FreeText(text=f"{S} free text canary", rect=(50, 400, 300, 450)))
    # A form with two text fields: one merged with its widget, one whose value is in a parent.
    merged = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/T"): Str("grid"),
            NameObject("/V"): Str(f"{TS} form canary"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (50, 300, 250, 320)]),
        }
    )
    merged_ref = writer._add_object(merged)
    parent = DictionaryObject(
        {
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/T"): Str("remarks"),
            NameObject("/V"): Str(f"{S} parent canary"),
        }
    )
    parent_ref = writer._add_object(parent)
    kid = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/Parent"): parent_ref,
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (50, 200, 250, 220)]),
        }
    )
    kid_ref = writer._add_object(kid)
    parent[NameObject("/Kids")] = ArrayObject([kid_ref])
    writer.pages[0][NameObject("/Annots")].append(merged_ref)
    writer.pages[0][NameObject("/Annots")].append(kid_ref)
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([merged_ref, parent_ref])}
    )
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("mark", "canary", "part", "page"),
    [
        (TS, "sticky canary", "annotation", 1),
        (S, "free text canary", "annotation", 2),
        (TS, "form canary", "form-field", 1),
        (S, "parent canary", "form-field", None),
    ],
)
def test_pdf_annotations_and_form_fields(
    mark: str, canary: str, part: str, page: int | None
) -> None:
    doc = parse_bytes(_annotated_pdf(), filename="x.pdf")
    (element,) = marked_at_start(doc, mark, canary)
    assert element.locator["part"] == part
    assert element.page == page


def test_pdf_banners_on_every_page_are_all_found() -> None:
    doc = parse_bytes(
        make_pdf(
            [
                (230, 760, 10, "SECRET//NOFORN"),
                (72, 700, 10, "(S//NF) one"),
                (230, 20, 10, "SECRET//NOFORN"),
            ],
            [(230, 760, 10, "TOP SECRET//SI//NOFORN"), (72, 700, 10, "(U) two")],
        ),
        filename="x.pdf",
    )
    assert set(doc.banners) == {"SECRET//NOFORN", "TOP SECRET//SI//NOFORN"}
    assert not any("SECRET//" in e.text for e in doc.elements)


# -- e-mail ---------------------------------------------------------------------------------------


def test_eml_subject_is_its_own_title() -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "a@example.mil"
    msg["Subject"] = f"{S} subject canary"
    msg.set_content("(U) Body.\n")
    doc = parse_bytes(msg.as_bytes(), filename="x.eml")
    (subject,) = marked_at_start(doc, S, "subject canary")
    assert (subject.type, subject.locator) == (ElementType.TITLE, {"part": "subject"})
    header = next(e for e in doc.elements if e.type == ElementType.EMAIL_HEADER)
    assert "subject canary" not in json.dumps(header.model_dump(mode="json"))


def test_docx_runs_python_docx_skips() -> None:
    """Tracked insertions and deletions, content controls, nested table cells."""
    import docx
    from docx.oxml import parse_xml

    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    d = docx.Document()
    p = d.add_paragraph("(U) start ")
    p._p.append(
        parse_xml(f'<w:ins {w} w:id="1" w:author="a"><w:r><w:t>ins canary</w:t></w:r></w:ins>')
    )
    d.add_paragraph()._p.append(
        parse_xml(
            f'<w:del {w} w:id="2" w:author="a"><w:r><w:delText>{TS} deleted canary</w:delText>'
            "</w:r></w:del>"
        )
    )
    sdt = parse_xml(
        f"<w:sdt {w}><w:sdtContent><w:p><w:r><w:t>SECRET//NOFORN</w:t></w:r></w:p>"
        f"<w:p><w:r><w:t>{S} control canary</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    )
    d.element.body.insert(0, sdt)
    table = d.add_table(rows=1, cols=1)
    inner = table.cell(0, 0).add_table(rows=1, cols=1)
    inner.cell(0, 0).text = f"{TS} nested cell canary"
    buf = io.BytesIO()
    d.save(buf)
    doc = parse_bytes(buf.getvalue(), filename="x.docx")
    assert any(e.text == "(U) start ins canary" for e in doc.elements)
    (deleted,) = marked_at_start(doc, TS, "deleted canary")
    assert deleted.locator == {"part": "tracked-deletion"}
    assert doc.banners == ("SECRET//NOFORN",)
    assert marked_at_start(doc, S, "control canary")
    assert [e.type for e in marked_at_start(doc, TS, "nested cell canary")] == [ElementType.TABLE]


def test_pptx_chart_title_and_comment() -> None:
    from pptx import Presentation
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "(U) Chart"
    data = CategoryChartData()
    data.categories = ["a", "b"]
    data.add_series("s", (1, 2))
    chart = slide.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1), Inches(6), Inches(4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = f"{S} chart canary"
    buf = io.BytesIO()
    prs.save(buf)
    comment = (
        '<p:cmLst xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
        f'<p:cm authorId="0" idx="1"><p:pos x="10" y="10"/><p:text>{TS} comment canary</p:text>'
        "</p:cm></p:cmLst>"
    )
    doc = parse_bytes(
        _with_member(buf.getvalue(), "ppt/comments/comment1.xml", comment.encode()),
        filename="x.pptx",
    )
    (title,) = marked_at_start(doc, S, "chart canary")
    assert title.locator["part"] == "chart"
    (note,) = marked_at_start(doc, TS, "comment canary")
    assert note.locator == {"part": "comment", "in": "ppt/comments/comment1.xml"}


def test_xlsx_banner_rows_at_the_edges_are_banners() -> None:
    def build(ws: Any) -> None:
        ws.append(["SECRET//NOFORN"])
        ws.append(["name", "note"])
        ws.append(["alpha", "grid 7"])
        ws.append([None, "TOP SECRET//SI//NOFORN"])

    doc = _parse_xlsx(_xlsx(build))
    assert doc.banners == ("SECRET//NOFORN", "TOP SECRET//SI//NOFORN")
    records = [e for e in doc.elements if e.type == ElementType.RECORD]
    assert [r.fields for r in records] == [{"name": "alpha", "note": "grid 7"}]


def test_parquet_marking_column() -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"note": [f"{S} cell canary", "plain"], "classification": ["(S//NF)", None]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    doc = parse_bytes(buf.getvalue(), filename="x.parquet", marking_column="classification")
    assert [e.declared_marking for e in doc.elements] == ["(S//NF)", ""]
    assert all("classification" not in e.fields for e in doc.elements)
    assert marked_at_start(doc, S, "cell canary")
    with pytest.raises(ParseFailure, match="marking column 'level'"):
        parse_bytes(buf.getvalue(), filename="x.parquet", marking_column="level")


def test_pdf_xfa_form_is_unreadable_content() -> None:
    data = make_pdf([(72, 700, 10, "(U) A form.")]).replace(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [] /XFA (xdp) >> >>",
    )
    doc = parse_bytes(data, filename="x.pdf")
    assert "unreadable-content: XFA form data" in doc.warnings
    assert doc.elements


def test_zip_member_with_a_bad_checksum_is_unreadable_content() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("good.txt", "(U) fine\n")
        z.writestr("bad.txt", "(TS//SI//NF) damaged canary\n")
    data = buf.getvalue()
    at = data.index(b"(TS//SI//NF) damaged")
    damaged = data[:at] + b"X" + data[at + 1 :]  # the stored CRC no longer matches
    doc = parse_bytes(damaged, filename="x.zip")
    assert [a.filename for a in doc.attachments] == ["good.txt"]
    assert doc.warnings == ("unreadable-content: member bad.txt",)

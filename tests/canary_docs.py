"""Documents that hide a canary word in a TOP SECRET or SECRET portion, one per place a reader
sees a mark, each format written by the software that writes it (LibreOffice for DOCX parts,
openpyxl, python-docx, python-pptx, pypdf, the stdlib e-mail package, sqlite3).

``build_corpus`` writes them into folders and returns what each one hides, so that a test can
ingest them at an UNCLASSIFIED default and prove no UNCLASSIFIED reader ever sees a canary.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import sqlite3
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import require
from tests.parse.test_pdf import make_pdf

TS = "(TS//SI//NF)"
S = "(S//NF)"
TS_BANNER = "TOP SECRET//SI//NOFORN"
S_BANNER = "SECRET//NOFORN"


@dataclass(frozen=True)
class Hidden:
    """One document: its file (or database) name, the canary it hides and at what marking.

    ``expect`` is ``"raise"`` (the document must be marked at least at ``marking``, or be
    quarantined or spilled), ``"quarantine"`` (the mark is invalid: only quarantine will do) or
    ``"text"`` (a negative: nothing here is a mark, the canary must stay readable to everyone).
    ``ingest`` names the ingest call that reads it: ``files``, ``marking-column`` (files read
    with ``--marking-column classification``), ``sql`` or ``sql-marking-column``.
    """

    name: str
    canary: str
    marking: str
    expect: str = "raise"
    ingest: str = "files"
    what: str = ""


def _canary(tag: str) -> str:
    return f"canary{tag}{secrets.token_hex(4)}"


# -- office formats ------------------------------------------------------------------------------


def _xlsx(build: Callable[[object], None]) -> bytes:
    import openpyxl  # type: ignore[import-untyped]

    wb = openpyxl.Workbook()
    build(wb.active)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _xlsx_cell(c: str) -> bytes:
    def build(ws: object) -> None:
        ws.append(["name", "note"])  # type: ignore[attr-defined]
        ws.append(["alpha", f"{TS} {c}"])  # type: ignore[attr-defined]
        ws.append(["beta", "plain"])  # type: ignore[attr-defined]

    return _xlsx(build)


def _xlsx_header(c: str) -> bytes:
    def build(ws: object) -> None:
        ws.append(["name", "note"])  # type: ignore[attr-defined]
        ws.append(["alpha", f"grid {c}"])  # type: ignore[attr-defined]
        ws.oddHeader.center.text = TS_BANNER  # type: ignore[attr-defined]

    return _xlsx(build)


def _xlsx_footer(c: str) -> bytes:
    def build(ws: object) -> None:
        ws.append(["name", "note"])  # type: ignore[attr-defined]
        ws.append(["alpha", f"grid {c}"])  # type: ignore[attr-defined]
        ws.oddFooter.center.text = TS_BANNER  # type: ignore[attr-defined]

    return _xlsx(build)


def _xlsx_comment(c: str) -> bytes:
    from openpyxl.comments import Comment  # type: ignore[import-untyped]

    def build(ws: object) -> None:
        ws.append(["name", "note"])  # type: ignore[attr-defined]
        ws.append(["alpha", "plain"])  # type: ignore[attr-defined]
        ws["A2"].comment = Comment(f"{TS} {c}", "analyst")  # type: ignore[index]

    return _xlsx(build)


def _pptx_cell(c: str) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "(U) Slide"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    table.cell(0, 0).text = "name"
    table.cell(0, 1).text = "note"
    table.cell(1, 0).text = "alpha"
    table.cell(1, 1).text = f"{TS} {c}"
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def _docx_title(c: str) -> bytes:
    import docx

    d = docx.Document()
    d.core_properties.title = f"{S} {c}"
    d.add_paragraph("(U) The body of this memo is unclassified.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _docx_author(c: str) -> bytes:
    import docx

    d = docx.Document()
    d.core_properties.author = f"{S} {c}"
    d.add_paragraph("(U) The body of this memo is unclassified.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _docx_heading(c: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(f"{S} Operation {c}", level=1)
    d.add_paragraph("(U) The harbor paragraph under the heading is plain.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _xlsx_title(c: str) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.properties.title = f"{S} {c}"
    wb.active.append(["name", "note"])
    wb.active.append(["alpha", "plain"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _pptx_title(c: str) -> bytes:
    from pptx import Presentation

    prs = Presentation()
    prs.core_properties.title = f"{S} {c}"
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "(U) Slide"
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def _zip_member_name(c: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(f"(S) {c}.txt", "(U) The member's text is plain.\n")
    return buf.getvalue()


def _tar_member_name(c: str) -> bytes:
    buf = io.BytesIO()
    data = b"(U) The member's text is plain.\n"
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo(f"(S) {c}.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _eml_attachment_name(c: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.mil"
    msg["To"] = "b@example.mil"
    msg["Subject"] = "(U) Weekly note"
    msg.set_content("(U) The body is plain.\n")
    msg.add_attachment(
        b"(U) The attached text is plain.\n",
        maintype="text",
        subtype="plain",
        filename=f"(S) {c}.txt",
    )
    return msg.as_bytes()


def _docx_soft_break(c: str) -> bytes:
    import docx

    d = docx.Document()
    run = d.add_paragraph().add_run("(U) The first line is unclassified.")
    run.add_break()
    d.paragraphs[0].add_run(f"{TS} The second line holds {c}.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


FODT_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
 xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.text">
<office:body><office:text>
<text:p>(U) Body paragraph.</text:p>
"""
FODT_TAIL = "</office:text></office:body></office:document>\n"
FODT_PARTS: dict[str, Callable[[str], str]] = {
    "docx-table-cell": lambda c: (
        '<table:table table:name="T1"><table:table-column table:number-columns-repeated="2"/>'
        "<table:table-row><table:table-cell><text:p>alpha</text:p></table:table-cell>"
        f"<table:table-cell><text:p>{TS} {c}</text:p></table:table-cell></table:table-row>"
        "</table:table>"
    ),
    "docx-text-box": lambda c: (
        '<text:p><draw:frame text:anchor-type="paragraph" svg:width="6cm" svg:height="2cm" '
        f'draw:name="Box1"><draw:text-box><text:p>{TS} {c}</text:p></draw:text-box>'
        "</draw:frame>(U) Anchor paragraph.</text:p>"
    ),
    "docx-comment": lambda c: (
        "<text:p>(U) Reviewed line.<office:annotation><dc:creator>Reviewer</dc:creator>"
        f"<text:p>{TS} {c}</text:p></office:annotation></text:p>"
    ),
    "docx-footnote": lambda c: (
        '<text:p>(U) A noted line<text:note text:id="ftn1" text:note-class="footnote">'
        "<text:note-citation>1</text:note-citation><text:note-body>"
        f"<text:p>{S} {c}</text:p></text:note-body></text:note>.</text:p>"
    ),
}


def _libreoffice_docx(folder: Path, canaries: dict[str, str]) -> dict[str, bytes]:
    """Every FODT part converted to DOCX in one LibreOffice call: name -> DOCX bytes."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    require(soffice is not None, "LibreOffice (soffice) is not installed")
    assert soffice is not None
    work = folder / "fodt"
    work.mkdir()
    sources = []
    for name, part in FODT_PARTS.items():
        path = work / f"{name}.fodt"
        path.write_text(FODT_HEAD + part(canaries[name]) + "\n" + FODT_TAIL, encoding="utf-8")
        sources.append(str(path))
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{work / 'profile'}",
            "--headless",
            "--convert-to",
            "docx",
            "--outdir",
            str(work),
            *sources,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {name: (work / f"{name}.docx").read_bytes() for name in FODT_PARTS}


# -- PDF -----------------------------------------------------------------------------------------


def _pdf_page_banner(c: str) -> bytes:
    return make_pdf(
        [(72, 700, 10, "(U) Page one is plain.")],
        [
            (230, 760, 10, TS_BANNER),
            (72, 700, 10, f"Page two holds {c} without a portion mark."),
            (230, 20, 10, TS_BANNER),
        ],
    )


def _pdf_with(c: str, edit: Callable[[object, str], None]) -> bytes:
    from pypdf import PdfReader, PdfWriter

    base = make_pdf([(72, 700, 10, "(U) Plain page text.")])
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(base)))
    edit(writer, c)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _annotate(writer: object, c: str) -> None:
    from pypdf.annotations import FreeText

    annotation = FreeText(text=f"{TS} {c}", rect=(50, 400, 300, 450))
    writer.add_annotation(0, annotation)  # type: ignore[attr-defined]


def _form_field(writer: object, c: str) -> None:
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject
    from pypdf.generic import TextStringObject as Str

    field = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/T"): Str("grid"),
            NameObject("/V"): Str(f"{TS} {c}"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (50, 300, 250, 320)]),
        }
    )
    ref = writer._add_object(field)  # type: ignore[attr-defined]
    page = writer.pages[0]  # type: ignore[attr-defined]
    page[NameObject("/Annots")] = ArrayObject([ref])
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(  # type: ignore[attr-defined]
        {NameObject("/Fields"): ArrayObject([ref])}
    )


def _pdf_title(writer: object, c: str) -> None:
    writer.add_metadata({"/Title": f"{S} {c}"})  # type: ignore[attr-defined]


# -- e-mail --------------------------------------------------------------------------------------


def _eml_alternative(c: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.mil"
    msg["To"] = "b@example.mil"
    msg["Subject"] = "(U) Weekly note"
    msg.set_content("(U) The plain part says nothing of note.\n")
    msg.add_alternative(f"<html><body><p>{S} The fuel moves to {c}.</p></body></html>", "html")
    return msg.as_bytes()


def _eml_subject(c: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.mil"
    msg["To"] = "b@example.mil"
    msg["Subject"] = f"{S} {c}"
    msg.set_content("(U) The body is unclassified.\n")
    return msg.as_bytes()


# -- SQLite --------------------------------------------------------------------------------------


def _sqlite(path: Path, rows: list[tuple[int, str, str | None]], marking_column: bool) -> None:
    conn = sqlite3.connect(path)
    if marking_column:
        conn.execute(
            "CREATE TABLE reports (id INTEGER PRIMARY KEY, note TEXT, classification TEXT)"
        )
        conn.executemany("INSERT INTO reports VALUES (?, ?, ?)", rows)
    else:
        conn.execute("CREATE TABLE reports (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany("INSERT INTO reports VALUES (?, ?)", [(i, n) for i, n, _ in rows])
    conn.commit()
    conn.close()


# -- the corpus ----------------------------------------------------------------------------------

#: Text documents: name -> (hidden marking, expectation, content built from the canary).
TEXTS: dict[str, tuple[str, str, Callable[[str], str]]] = {
    "cell.csv": (TS_BANNER, "raise", lambda c: f"name,note\nalpha,{TS} {c}\nbeta,plain\n"),
    "cell.tsv": (TS_BANNER, "raise", lambda c: f"name\tnote\nalpha\t{TS} {c}\nbeta\tplain\n"),
    "csv-edge-banners.csv": (
        S_BANNER,
        "raise",
        lambda c: f"{S_BANNER}\nname,note\nalpha,{c}\nbeta,plain\n{S_BANNER}\n",
    ),
    "records.jsonl": (
        TS_BANNER,
        "raise",
        lambda c: (
            json.dumps({"id": 1, "note": "plain"})
            + "\n"
            + json.dumps({"id": 2, "meta": {"tags": ["x", f"{TS} {c}"]}})
            + "\n"
        ),
    ),
    "table.md": (
        TS_BANNER,
        "raise",
        lambda c: f"(U) A table follows.\n\n| name | note |\n|---|---|\n| alpha | {TS} {c} |\n",
    ),
    "table.html": (
        TS_BANNER,
        "raise",
        lambda c: (
            "<html><body><p>(U) A table follows.</p><table><tr><th>name</th><th>note</th></tr>"
            f"<tr><td>alpha</td><td>{TS} {c}</td></tr></table></body></html>\n"
        ),
    ),
    "nested.json": (
        TS_BANNER,
        "raise",
        lambda c: json.dumps({"a": {"b": [{"id": 1, "note": f"{TS} {c}"}], "x": "plain"}}),
    ),
    "ism.xml": (
        TS_BANNER,
        "raise",
        lambda c: (
            '<doc xmlns:ism="urn:us:gov:ic:ism" ism:classification="U" '
            'ism:ownerProducer="USA"><p ism:classification="U">The opening is plain.</p>'
            '<p ism:classification="TS" ism:SCIcontrols="SI" ism:disseminationControls="NF" '
            f'ism:ownerProducer="USA">The grid point is {c}.</p></doc>\n'
        ),
    ),
    "mixed-case-banner.txt": (
        TS_BANNER,
        "raise",
        lambda c: f"Top Secret//SI//NoForn\n\nThe plan names {c} here.\n\nTop Secret//SI//NoForn\n",
    ),
    "two-spaces.txt": (
        TS_BANNER,
        "raise",
        lambda c: f"(TOP  SECRET//SI//NF) The plan names {c}.\n",
    ),
    "nbsp.txt": (TS_BANNER, "raise", lambda c: f"(TOP\u00a0SECRET//SI//NF) The plan names {c}.\n"),
    "tab.txt": (TS_BANNER, "raise", lambda c: f"(TOP\tSECRET//SI//NF) The plan names {c}.\n"),
    "full-width.txt": (
        S_BANNER,
        "raise",
        lambda c: f"\uff08\uff33//\uff2e\uff26\uff09 Plan {c}.\n",
    ),
    "zero-width.txt": (TS_BANNER, "raise", lambda c: f"\u200b{TS} The plan names {c}.\n"),
    "word-joiner.md": (TS_BANNER, "raise", lambda c: f"\u2060{TS} The plan names {c}.\n"),
    "bom.txt": (S_BANNER, "raise", lambda c: f"\ufeff{S} The plan names {c}.\n"),
    "block-quote.md": (
        TS_BANNER,
        "raise",
        lambda c: f"(U) Opening.\n\n> {TS} The quoted plan names {c}.\n",
    ),
    "bullet.md": (S_BANNER, "raise", lambda c: f"(U) Opening.\n\n- {S} The listed plan {c}.\n"),
    "emphasis.md": (S_BANNER, "raise", lambda c: f"(U) Opening.\n\n**{S}** The plan names {c}.\n"),
    "single-emphasis.md": (
        S_BANNER,
        "raise",
        lambda c: f"(U) Opening.\n\n*{S}* The plan names {c}.\n",
    ),
    "bold-tag.html": (
        S_BANNER,
        "raise",
        lambda c: (
            f"<html><body><p>(U) Opening.</p><p><b>{S}</b> The plan names {c}.</p></body></html>\n"
        ),
    ),
    "inner-line.txt": (
        TS_BANNER,
        "raise",
        lambda c: f"(U) The first line is plain.\n{TS} The second line names {c}.\n",
    ),
    "inner-line.md": (
        TS_BANNER,
        "raise",
        lambda c: f"(U) The first line is plain.\n{TS} The second line names {c}.\n",
    ),
    "form-feed.txt": (
        TS_BANNER,
        "raise",
        lambda c: (
            "UNCLASSIFIED\n\n(U) Page one is plain.\n\nUNCLASSIFIED\n\f"
            f"{TS_BANNER}\n\nPage two names {c} without a portion mark.\n\n{TS_BANNER}\n"
        ),
    ),
    "mid-banner.txt": (
        S_BANNER,
        "raise",
        lambda c: f"The opening is plain.\n\n{S_BANNER}\n\nThe middle names {c}.\n\nThe end.\n",
    ),
    "heading.md": (
        S_BANNER,
        "raise",
        lambda c: (
            f"# {S} Operation {c}\n\n(U) The harbor paragraph under the heading is plain "
            "and mentions the north pier and the crane schedule.\n"
        ),
    ),
    "heading.html": (
        S_BANNER,
        "raise",
        lambda c: (
            f"<html><body><h1>{S} Operation {c}</h1><p>(U) The harbor paragraph under the "
            "heading is plain and mentions the north pier.</p></body></html>\n"
        ),
    ),
    "unknown-token.txt": (
        TS_BANNER,
        "quarantine",
        lambda c: f"SECRET//ZZ-Q//NOFORN\n\nThe plan names {c}.\n\nSECRET//ZZ-Q//NOFORN\n",
    ),
    "unknown-token-ts.md": (
        TS_BANNER,
        "quarantine",
        lambda c: f"TOP SECRET//ZZ-Q//NOFORN\n\nThe plan names {c}.\n",
    ),
    "neg-enumerator.txt": (
        "UNCLASSIFIED",
        "text",
        lambda c: f"(a) The first step names {c} in the harbor.\n",
    ),
    "neg-copyright.txt": ("UNCLASSIFIED", "text", lambda c: f"(c) 2024 Acme harbor {c}.\n"),
    "neg-pronoun.txt": (
        "UNCLASSIFIED",
        "text",
        lambda c: f"(s/he) will inspect the harbor crane {c}.\n",
    ),
    "neg-enumerated.txt": (
        "UNCLASSIFIED",
        "text",
        lambda c: f"(A) first harbor item\n\n(B) second harbor item\n\n(C) third harbor {c}\n",
    ),
}
#: Binary documents: name -> (hidden marking, builder).
BINARIES: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "cell.xlsx": (TS_BANNER, _xlsx_cell),
    "page-header.xlsx": (TS_BANNER, _xlsx_header),
    "page-footer.xlsx": (TS_BANNER, _xlsx_footer),
    "comment.xlsx": (TS_BANNER, _xlsx_comment),
    "cell.pptx": (TS_BANNER, _pptx_cell),
    "title.docx": (S_BANNER, _docx_title),
    "author.docx": (S_BANNER, _docx_author),
    "soft-break.docx": (TS_BANNER, _docx_soft_break),
    "heading.docx": (S_BANNER, _docx_heading),
    "title.xlsx": (S_BANNER, _xlsx_title),
    "title.pptx": (S_BANNER, _pptx_title),
    "member-name.zip": ("SECRET", _zip_member_name),
    "member-name.tar": ("SECRET", _tar_member_name),
    "attachment-name.eml": ("SECRET", _eml_attachment_name),
    "page-banner.pdf": (TS_BANNER, _pdf_page_banner),
    "annotation.pdf": (TS_BANNER, lambda c: _pdf_with(c, _annotate)),
    "form-field.pdf": (TS_BANNER, lambda c: _pdf_with(c, _form_field)),
    "title.pdf": (S_BANNER, lambda c: _pdf_with(c, _pdf_title)),
    "alternative.eml": (S_BANNER, _eml_alternative),
    "subject.eml": (S_BANNER, _eml_subject),
}


def _tag(name: str) -> str:
    return "".join(ch for ch in name if ch.isalnum())[:10]


def build_corpus(root: Path) -> tuple[dict[str, Path], list[Hidden]]:
    """Write every document under ``root``; returns the inputs per ingest call and the list."""
    files = root / "files"
    column = root / "column"
    for folder in (files, column):
        folder.mkdir(parents=True)
    hidden: list[Hidden] = []
    for name, (marking, expect, make) in TEXTS.items():
        c = _canary(_tag(name))
        (files / name).write_text(make(c), encoding="utf-8")
        hidden.append(Hidden(name, c, marking, expect, what=name))
    for name, (marking, build) in BINARIES.items():
        c = _canary(_tag(name))
        (files / name).write_bytes(build(c))
        hidden.append(Hidden(name, c, marking, what=name))
    lo = {name: _canary(_tag(name)) for name in FODT_PARTS}
    for name, data in _libreoffice_docx(root, lo).items():
        (files / f"{name}.docx").write_bytes(data)
        marking = S_BANNER if name == "docx-footnote" else TS_BANNER
        hidden.append(Hidden(f"{name}.docx", lo[name], marking, what=f"{name}.docx"))
    # A file name is metadata at the document's marking; a mark at its start raises it.
    c = _canary("filename")
    (files / f"(S) {c}.txt").write_text("(U) The body of this file is plain.\n", encoding="utf-8")
    hidden.append(Hidden(f"(S) {c}.txt", c, "SECRET", what="file name"))
    # A marking column: a CSV read with --marking-column, and a SQLite table (below).
    c = _canary("csvcolumn")
    (column / "column.csv").write_text(
        f"name,note,classification\nalpha,{c},{TS_BANNER}\nbeta,plain,UNCLASSIFIED\n",
        encoding="utf-8",
    )
    hidden.append(Hidden("column.csv", c, TS_BANNER, ingest="marking-column", what="column.csv"))
    c = _canary("sqlvalue")
    _sqlite(root / "sql-value.db", [(1, f"{TS} {c}", None), (2, "plain", None)], False)
    hidden.append(Hidden("sql-value.db", c, TS_BANNER, ingest="sql", what="SQL column value"))
    c = _canary("sqlcolumn")
    _sqlite(root / "sql-column.db", [(1, c, "TS//SI//NF"), (2, "plain", "U")], True)
    hidden.append(
        Hidden(
            "sql-column.db", c, TS_BANNER, ingest="sql-marking-column", what="SQL marking column"
        )
    )
    inputs = {
        "files": files,
        "marking-column": column,
        "sql": root / "sql-value.db",
        "sql-marking-column": root / "sql-column.db",
    }
    return inputs, hidden

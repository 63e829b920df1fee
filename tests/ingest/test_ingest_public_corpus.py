"""The whole public corpus -- PDFs and images included -- ingested end to end in one workspace.

Every input must end parsed with some text or an ``Image`` element, quarantined for a reason
listed, with a sentence saying why, in ``expected_quarantine.json``, or unchanged (the same bytes
as another input); any other quarantine is a parser regression.

OCR is turned off for this run (``parse_options={"ocr": False}``, what ``--no-ocr`` sets):
Tesseract over the corpus images and image-only PDF pages takes about half a minute on two
cores, too slow for every CI run. With OCR off, images parse to their ``Image`` element and
image-only PDFs to a ``no-text-layer`` finding. The OCR path itself is covered by
``tests/parse/test_image.py``, ``tests/parse/test_pdf.py`` and the end-to-end OCR test in
``test_ingest_pdf_images.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from garrison.ingest.engine import IngestOptions, IngestReport, ingest_paths
from garrison.store.documents import Documents
from garrison.store.workspace import Workspace
from tests.conftest import SHARED, require

CORPUS = SHARED / "corpus/public"
EXPECTED_QUARANTINE = Path(__file__).with_name("expected_quarantine.json")
#: Parsed files that legitimately hold no text at all.
NO_TEXT = {
    "unstructured/empty.xlsx": "a workbook whose only sheet is empty",
    "unstructured/test-image-jpg-mime.pptx": "one slide holding only a picture",
}
#: PDFs whose every page is a scanned image: with OCR off they parse to no element at all and
#: a ``no-text-layer`` finding.
IMAGE_ONLY_PDFS = {
    "pdf-samples/007-imagemagick-images_imagemagick-ASCII85Decode.pdf",
    "pdf-samples/007-imagemagick-images_imagemagick-CCITTFaxDecode.pdf",
    "pdf-samples/007-imagemagick-images_imagemagick-lzw.pdf",
    "pdf-samples/019-grayscale-image_grayscale-image.pdf",
    "pdf-samples/023-cmyk-image_cmyk-image.pdf",
    "unstructured/pdf/loremipsum-flat.pdf",
}
#: Byte-identical to another input (eng_spa_mult.md): one document, a second location.
UNCHANGED = {
    "unstructured/language-docs/eng_spa_mult.org",
    "unstructured/language-docs/eng_spa_mult.rst",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".heic", ".gif")


@dataclass
class Ingested:
    report: IngestReport
    docs: Documents
    by_uri: dict[str, dict[str, Any]]  # every document, keyed by the path relative to CORPUS

    def show(self, rel: str) -> dict[str, Any]:
        return self.docs.show(self.by_uri[rel]["id"], elements=True)


def rel(uri: str) -> str:
    return Path(uri.split("#", 1)[0]).relative_to(CORPUS).as_posix() + (
        "#" + uri.split("#", 1)[1] if "#" in uri else ""
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    require(CORPUS.is_dir(), f"{CORPUS} is absent")
    ws = Workspace.init(tmp_path_factory.mktemp("corpus") / "ws", system_high="SECRET//NOFORN")
    session = ws.session()
    # OCR off (see the module docstring): the parsers' own option, as `--no-ocr` sets it.
    report = ingest_paths(
        session,
        [str(CORPUS)],
        IngestOptions(default_marking="UNCLASSIFIED", workers=2, parse_options={"ocr": False}),
    )
    docs = Documents(session)
    by_uri = {rel(d["uri"]): d for d in docs.list()}
    return Ingested(report, docs, by_uri)


def test_every_input_is_accounted_for(ingested: Ingested) -> None:
    results = ingested.report.results
    inputs = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file()}
    assert inputs, "the corpus holds no input"
    assert {rel(r.uri) for r in results} == inputs
    for kind in ("unstructured/pdf/", "unstructured/img/", "pdf-samples/"):
        assert any(rel(r.uri).startswith(kind) for r in results), kind
    counts = ingested.report.counts
    assert counts["files"] == len(inputs)
    assert counts["parsed"] + counts["quarantined"] + counts["unchanged"] == len(inputs)
    assert counts["spilled"] == 0
    assert {rel(r.uri) for r in results if r.outcome == "unchanged"} == UNCHANGED
    for result in results:
        name = rel(result.uri)
        assert result.outcome in ("parsed", "quarantined", "unchanged"), result
        if result.outcome == "quarantined":
            assert result.reason, result
        if result.outcome == "parsed":
            assert result.elements > 0 or name in NO_TEXT.keys() | IMAGE_ONLY_PDFS, result
        if result.outcome == "unchanged":
            twin = next(d for d in ingested.by_uri.values() if d["id"] == result.doc_id)
            assert twin["status"] == "parsed"


def test_parsed_documents_have_text_or_an_image(ingested: Ingested) -> None:
    parsed = [r for r, d in ingested.by_uri.items() if d["status"] == "parsed"]
    assert len(parsed) > 130
    empty = set()
    for name in parsed:
        elements = ingested.show(name)["elements"]
        has_text = any(e["text"].strip() and e["type"] != "Image" for e in elements)
        has_image = any(e["type"] == "Image" for e in elements)
        if not elements:
            empty.add(name)
        assert has_text or has_image or name in NO_TEXT.keys() | IMAGE_ONLY_PDFS, (
            f"{name}: no content"
        )
        assert all(e["marking"] == "UNCLASSIFIED" for e in elements), name
    assert empty == IMAGE_ONLY_PDFS | NO_TEXT.keys()


def _unread_image_findings(doc: dict[str, Any]) -> bool:
    """``no-text-layer``, and ``unreadable-content`` once the marking rules report it."""
    kinds = {f["kind"] for f in doc["findings"]}
    return "no-text-layer" in kinds and kinds <= {"no-text-layer", "unreadable-content"}


def test_images_parse_to_an_image_element_without_ocr(ingested: Ingested) -> None:
    images = [n for n in ingested.by_uri if n.lower().endswith(IMAGE_SUFFIXES)]
    # 13 files under img/, the PNG attached to 025-attachment, the logo in email-with-image.eml.
    assert len(images) == 15
    for name in images:
        doc = ingested.by_uri[name]
        assert doc["status"] == "parsed", name
        elements = ingested.show(name)["elements"]
        assert elements and all(e["type"] == "Image" for e in elements), name
        assert elements[0]["fields"]["width"] > 0 and elements[0]["fields"]["height"] > 0, name
        assert _unread_image_findings(doc), name
    tiff = ingested.show("unstructured/img/layout-parser-paper-combined.tiff")["elements"]
    assert len(tiff) == 2  # one Image element per frame


def test_image_only_pdfs_report_no_text_layer(ingested: Ingested) -> None:
    for name in IMAGE_ONLY_PDFS:
        doc = ingested.by_uri[name]
        assert doc["status"] == "parsed", name
        assert _unread_image_findings(doc), name
    text_pdfs = [
        n
        for n, d in ingested.by_uri.items()
        if n.endswith(".pdf") and d["status"] == "parsed" and n not in IMAGE_ONLY_PDFS
    ]
    assert len(text_pdfs) > 35
    for name in text_pdfs:
        assert any(e["text"].strip() for e in ingested.show(name)["elements"]), name


def test_active_content_is_found_only_where_there_is_some(ingested: Ingested) -> None:
    flagged = {
        n
        for n, d in ingested.by_uri.items()
        if any(f["kind"] == "active-content" for f in d["findings"])
    }
    # Its pages and annotations carry automatic (/AA) actions.
    assert flagged == {"unstructured/pdf/pdf-bad-color-space.pdf"}


def test_quarantine_is_exactly_the_expected_list(ingested: Ingested) -> None:
    expected = json.loads(EXPECTED_QUARANTINE.read_text(encoding="utf-8"))
    for name, entry in expected.items():
        assert entry["reason"] and entry["why"].strip(), name
    quarantined = {
        name: d["reason"] for name, d in ingested.by_uri.items() if d["status"] == "quarantined"
    }
    assert quarantined == {name: entry["reason"] for name, entry in expected.items()}
    for name in quarantined:
        assert ingested.by_uri[name].get("reason_detail"), name


def test_pdf_attachment_is_a_child_document(ingested: Ingested) -> None:
    parent = ingested.by_uri["pdf-samples/025-attachment_with-attachment.pdf"]
    assert parent["status"] == "parsed"
    children = [d for d in ingested.by_uri.values() if d["parent_id"] == parent["id"]]
    assert [rel(c["uri"]) for c in children] == [
        "pdf-samples/025-attachment_with-attachment.pdf#image.png"
    ]
    assert children[0]["status"] == "parsed"


def test_email_header_fields(ingested: Ingested) -> None:
    doc = ingested.show("unstructured/fake-email.eml")
    headers = [e for e in doc["elements"] if e["type"] == "EmailHeader"]
    assert len(headers) == 1
    fields = headers[0]["fields"]
    assert fields["From"] == "Matthew Robinson <mrobinson@unstructured.io>"
    assert fields["To"] == "NotMatthew <NotMatthew@notunstructured.com>"
    # The subject is an element of its own (its portion mark marks it), not a header field.
    assert "Subject" not in fields
    subjects = [e for e in doc["elements"] if e["locator"] == {"part": "subject"}]
    assert [(e["type"], e["text"]) for e in subjects] == [("Title", "Test Email")]
    assert any("test email to use for unit tests" in e["text"] for e in doc["elements"])


def test_email_attachment_is_a_child_document(ingested: Ingested) -> None:
    parent = ingested.by_uri["unstructured/eml/fake-email-attachment.eml"]
    assert parent["status"] == "parsed"
    children = [d for d in ingested.by_uri.values() if d["parent_id"] == parent["id"]]
    assert [rel(c["uri"]) for c in children] == [
        "unstructured/eml/fake-email-attachment.eml#fake-attachment.txt"
    ]
    child = ingested.docs.show(children[0]["id"], elements=True)
    assert child["status"] == "parsed"
    assert child["filename"] == "fake-attachment.txt"
    assert any(e["text"].strip() for e in child["elements"])


def test_csv_records_have_the_columns(ingested: Ingested) -> None:
    doc = ingested.show("unstructured/stanley-cups-with-emoji.csv")
    records = [e for e in doc["elements"] if e["type"] == "Record"]
    assert records
    for record in records:
        assert {"Team", "Location", "Stanley Cups"} <= set(record["fields"])
    assert {"Team": "Blues", "Location": "STL", "Stanley Cups": 1} in [
        {k: r["fields"][k] for k in ("Team", "Location", "Stanley Cups")} for r in records
    ]


def test_xlsx_tables_have_cells(ingested: Ingested) -> None:
    doc = ingested.show("unstructured/vodafone.xlsx")
    tables = [e for e in doc["elements"] if e["type"] == "Table"]
    assert tables
    for table in tables:
        cells = table["table_cells"]
        assert cells and all({"row", "col", "text"} <= set(c) for c in cells)
    assert any(c["text"] == "Financial performance" for c in tables[0]["table_cells"])


def test_pptx_table(ingested: Ingested) -> None:
    doc = ingested.show("unstructured/fake-power-point-table.pptx")
    tables = [e for e in doc["elements"] if e["type"] == "Table"]
    assert len(tables) == 1
    assert "Red | Green | Blue" in tables[0]["text"]
    assert tables[0]["table_cells"]


@pytest.mark.parametrize(
    ("name", "media_type", "text"),
    [
        ("unstructured/fake-doc.rtf", "application/rtf", "My first paragraph."),
        ("unstructured/fake.odt", "application/vnd.oasis.opendocument.text", "Lorem ipsum"),
        ("unstructured/simple.odt", "application/vnd.oasis.opendocument.text", "Parrots"),
        (
            "unstructured/language-docs/eng_spa_mult.odt",
            "application/vnd.oasis.opendocument.text",
            "Todos los seres humanos nacen libres",
        ),
    ],
)
def test_rtf_and_odt_are_read_through_libreoffice(
    ingested: Ingested, name: str, media_type: str, text: str
) -> None:
    doc = ingested.show(name)
    assert doc["media_type"] == media_type
    assert any(text in e["text"] for e in doc["elements"]), [e["text"] for e in doc["elements"]]


def test_odt_tables_keep_their_cells(ingested: Ingested) -> None:
    elements = ingested.show("unstructured/fake.odt")["elements"]
    tables = [e for e in elements if e["type"] == "Table"]
    assert len(tables) == 1
    assert {"Mon", "Blue"} <= {c["text"] for c in tables[0]["table_cells"]}


def test_html_titles_without_script(ingested: Ingested) -> None:
    for name in ("unstructured/example-10k-1p.html", "unstructured/example-with-scripts.html"):
        elements = ingested.show(name)["elements"]
        assert any(e["type"] == "Title" for e in elements), name
        for element in elements:
            text = element["text"]
            for code in ("function(", "function (", "var ", "<script", "</script"):
                assert code not in text, (name, code, text[:200])


def test_password_protected_xlsx_is_encrypted(ingested: Ingested) -> None:
    doc = ingested.by_uri["unstructured/password_protected.xlsx"]
    assert (doc["status"], doc["reason"]) == ("quarantined", "encrypted")
    assert doc["marking"] is None
    assert "elements" not in ingested.docs.show(doc["id"], elements=True)


def test_msg_sender_and_subject(ingested: Ingested) -> None:
    doc = ingested.show("unstructured/fake-email.msg")
    headers = [e for e in doc["elements"] if e["type"] == "EmailHeader"]
    assert len(headers) == 1
    fields = headers[0]["fields"]
    assert "mrobinson@unstructured.io" in fields["From"]
    subjects = [e for e in doc["elements"] if e["locator"] == {"part": "subject"}]
    assert [(e["type"], e["text"]) for e in subjects] == [("Title", "Test Email")]
    assert "mrobinson@unstructured.io" in headers[0]["email"]["sender"]

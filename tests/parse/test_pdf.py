"""PDF parser: hand-built PDFs with known layouts, hostile input, the public and marked corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bench.pdf import write_pdf

from garrison.core.records import ElementType, ParsedDocument
from garrison.parse import ParseContext, ParseFailure, _pdf_active, parse_bytes, parser_for
from garrison.parse import pdf as pdf_module
from garrison.parse.pdf import PDF, parse_pdf
from tests.conftest import require

SHARED = Path(__file__).resolve().parents[3] / "shared/corpus"
PUBLIC = [SHARED / "public/unstructured/pdf", SHARED / "public/pdf-samples"]
MARKED = SHARED / "marked"
#: Corpus files PDFium cannot open (a damaged xref) or that need a password.
FAILS = {
    "password.pdf": "encrypted",
    "005-libreoffice-writer-password_libreoffice-writer-password.pdf": "encrypted",
    "017-unreadable-meta-data_unreadablemetadata.pdf": "corrupt",
}
#: Pictures without any text: nothing to extract once OCR is off.
NO_TEXT = {
    "007-imagemagick-images_imagemagick-ASCII85Decode.pdf",
    "007-imagemagick-images_imagemagick-CCITTFaxDecode.pdf",
    "007-imagemagick-images_imagemagick-lzw.pdf",
    "008-reportlab-inline-image_inline-image.pdf",
    "019-grayscale-image_grayscale-image.pdf",
    "023-cmyk-image_cmyk-image.pdf",
    "loremipsum-flat.pdf",
}


def make_pdf(*page_lines: list[tuple[float, float, float, str]]) -> bytes:
    """A minimal PDF, a page per list: Helvetica ``text`` at ``(x, y)`` in ``size`` points.

    The same writer the PDF benchmark generates its corpus with.
    """
    return write_pdf(list(page_lines))


def _parse(data: bytes, **options: object) -> ParsedDocument:
    return parse_pdf(data, ParseContext(media_type=PDF, options=dict(options)))


def _text(doc: ParsedDocument) -> str:
    return "\n".join(e.text for e in doc.elements)


def test_registered() -> None:
    assert parser_for(PDF) is parse_pdf


def test_structure_banners_headers_and_marks() -> None:
    body = [
        (230, 760, 10, "SECRET//NOFORN"),
        (72, 700, 20, "Operations Plan"),
        (72, 660, 10, "(S//NF) First paragraph line one"),
        (72, 648, 10, "continues on line two."),
        (72, 620, 10, "(U) Second paragraph."),
        (72, 590, 10, "1. First step"),
        (72, 575, 10, "- A bulleted point"),
        (72, 40, 9, "Garrison test document"),
        (230, 20, 10, "SECRET//NOFORN"),
    ]
    second = [(230, 760, 10, "SECRET//NOFORN"), (72, 700, 10, "(U) Page two text.")]
    second += [(72, 40, 9, "Garrison test document"), (230, 20, 10, "SECRET//NOFORN")]
    doc = _parse(make_pdf(body, second))
    assert doc.banners == ("SECRET//NOFORN",)
    assert "SECRET//NOFORN" not in _text(doc)
    first = [e for e in doc.elements if e.page == 1]
    assert [(e.type, e.text) for e in first] == [
        (ElementType.FOOTER, "Garrison test document"),
        (ElementType.TITLE, "Operations Plan"),
        (ElementType.NARRATIVE_TEXT, "(S//NF) First paragraph line one continues on line two."),
        (ElementType.NARRATIVE_TEXT, "(U) Second paragraph."),
        (ElementType.LIST_ITEM, "1. First step"),
        (ElementType.LIST_ITEM, "- A bulleted point"),
    ]
    title = first[1]
    assert title.heading_level == 1
    assert first[2].section_path == ("Operations Plan",)
    assert first[2].bbox is not None and first[2].bbox.coordinate_system == "pdf-points"
    assert first[2].locator == {"page": 1}
    assert doc.metadata["pages"] == 2


def test_columns_left_before_right() -> None:
    left = [(72, 700 - 14 * i, 10, f"Left column line {i} with words") for i in range(30)]
    right = [(320, 700 - 14 * i, 10, f"Right column line {i} with words") for i in range(30)]
    doc = _parse(make_pdf(left + right))
    text = _text(doc)
    assert text.index("Left column line 29") < text.index("Right column line 0")


def test_table_detected_and_not_repeated() -> None:
    rows = [(72, 600, 10, "Intro paragraph before the table.")]
    for i, (a, b, c) in enumerate(
        [
            ("Name", "Qty", "Notes"),
            ("Alpha", "3", "ok"),
            ("Bravo", "5", "late"),
            ("Charlie", "7", "spare"),
        ]
    ):
        y = 560 - 14 * i
        rows += [(72, y, 10, a), (200, y, 10, b), (300, y, 10, c)]
    doc = _parse(make_pdf(rows))
    tables = [e for e in doc.elements if e.type is ElementType.TABLE]
    assert len(tables) == 1
    cells = {(c.row, c.col): c.text for c in tables[0].table_cells}
    assert cells[(2, 0)] == "Bravo" and cells[(2, 2)] == "late"
    assert tables[0].text_html is not None and "<td>Bravo</td>" in tables[0].text_html
    assert [e.type for e in doc.elements] == [ElementType.NARRATIVE_TEXT, ElementType.TABLE]


def test_hostile_and_limits() -> None:
    with pytest.raises(ParseFailure) as exc:
        _parse(b"%PDF-1.4\nnot really a pdf")
    assert exc.value.reason == "corrupt"
    with pytest.raises(ParseFailure) as exc:
        _parse(make_pdf(*[[(72, 700, 10, "x")]] * 3), max_pages=2)
    assert exc.value.reason == "too-large"


def test_active_content_warning() -> None:
    data = make_pdf([(72, 700, 10, "Hello")]).replace(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>",
    )
    # Object offsets moved: PDFium and pypdf both repair the cross-reference table.
    doc = _parse(data)
    assert any(w.startswith("active-content: a JavaScript action") for w in doc.warnings)


def _corpus() -> list[Path]:
    return sorted(p for d in PUBLIC if d.is_dir() for p in d.glob("*.pdf"))


def test_public_corpus_parses_or_fails_cleanly() -> None:
    files = _corpus()
    require(bool(files), f"{PUBLIC} is absent")
    for path in files:
        if path.name in FAILS:
            with pytest.raises(ParseFailure) as exc:
                parse_bytes(path.read_bytes(), path.name, ocr=False)
            assert exc.value.reason == FAILS[path.name], path.name
            continue
        doc = parse_bytes(path.read_bytes(), path.name, ocr=False)
        if path.name not in NO_TEXT:
            assert any(e.text.strip() for e in doc.elements), path.name
        if "attachment" in path.name:
            assert doc.attachments and doc.attachments[0].data, path.name


def _public(name: str) -> bytes:
    path = PUBLIC[0] / name
    require(path.is_file(), f"{path} is absent")
    return path.read_bytes()


def test_password_pdf_is_encrypted() -> None:
    with pytest.raises(ParseFailure) as exc:
        _parse(_public("password.pdf"))
    assert exc.value.reason == "encrypted"


def test_multi_column_reading_order() -> None:
    text = _text(_parse(_public("multi-column.pdf")))
    intro = text.index("Open-domain question answering (QA)")
    assert text.index("1 Introduction") < intro < text.index("Retrieval in open-domain QA")


def test_layout_parser_table() -> None:
    doc = _parse(_public("layout-parser-paper-with-table.pdf"))
    table = next(e for e in doc.elements if e.type is ElementType.TABLE)
    cells = table.table_cells
    pub = next(c for c in cells if c.text == "PubLayNet [38]")
    assert any(
        c.row == pub.row and c.text == "Layouts of modern scientific documents" for c in cells
    )
    assert any(c.text == "HJDataset [31]" and c.col == 0 for c in cells)
    paragraphs = [e.text for e in doc.elements if e.type is not ElementType.TABLE]
    assert not any("HJDataset" in t for t in paragraphs)


def test_no_text_layer_without_ocr() -> None:
    path = PUBLIC[1] / "019-grayscale-image_grayscale-image.pdf"
    require(path.is_file(), f"{path} is absent")
    doc = _parse(path.read_bytes(), ocr=False)
    assert doc.warnings == (
        "no-text-layer: page 1 has no text layer and OCR is unavailable",
        "unreadable-content: page 1 (an image, OCR unavailable)",
    )


def test_ocr_page() -> None:
    require(shutil.which("tesseract") is not None, "tesseract is not installed")
    try:
        from garrison.parse.ocr import ocr_available
    except ImportError:
        pytest.skip("garrison.parse.ocr is absent")
    require(ocr_available(), "Tesseract English data is not installed")
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (1200, 400), "white")
    ImageDraw.Draw(image).text(
        (60, 150), "Convoy departs at noon", fill="black", font=ImageFont.load_default(size=64)
    )
    import io

    buf = io.BytesIO()
    image.save(buf, format="PDF", resolution=150)
    doc = _parse(buf.getvalue())
    assert "Convoy departs" in _text(doc)
    assert doc.extraction.method == "ocr"
    assert doc.elements[0].locator == {"page": 1, "method": "ocr"}


@pytest.mark.parametrize(
    ("name", "banner"),
    [
        ("coalition-air.pdf", "SECRET//REL TO USA, FVEY"),
        ("sigint-excerpt.pdf", "TOP SECRET//SI//NOFORN"),
    ],
)
def test_marked_corpus(name: str, banner: str) -> None:
    import json

    path = MARKED / "docs" / name
    require(path.is_file(), f"{path} is absent")
    truth = json.loads((MARKED / "truth.json").read_text())
    want = next(d for d in truth["docs"] if d["file"] == name)
    doc = _parse(path.read_bytes())
    assert doc.banners == (banner,)
    assert [e.text for e in doc.elements] == [
        f"({p['portion']}) {p['text']}" for p in want["paragraphs"]
    ]


def test_module_is_monkeypatchable_for_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OCR reported missing, an image-only page is a warning, never an error."""
    path = PUBLIC[1] / "019-grayscale-image_grayscale-image.pdf"
    require(path.is_file(), f"{path} is absent")
    monkeypatch.setattr(pdf_module, "_ocr_page", lambda *args: None)
    doc = _parse(path.read_bytes())
    assert doc.warnings[0].startswith("no-text-layer: page 1")


def _object_stream(body: bytes, filters: bytes = b"/Filter /FlateDecode") -> bytes:
    import zlib

    packed = zlib.compress(body)
    return (
        b"%PDF-1.5\n7 0 obj\n<< /Type /ObjStm /N 1 /First 4 "
        + filters
        + b" /Length %d >>\nstream\n" % len(packed)
        + packed
        + b"\nendstream\nendobj\n"
    )


def test_active_content_prefilter() -> None:
    """The cheap byte check skips pypdf only when no dictionary can name an action."""
    may = _pdf_active._may_hold_active_content
    plain = make_pdf([(72, 700, 10, "Hello")])
    assert not may(plain)
    # A subset font prefix is not the /AA key.
    assert not may(plain.replace(b"/Helvetica", b"/AAAAAB+Helvetica"))
    assert may(plain.replace(b"/Type /Catalog", b"/Type /Catalog /AA << >>"))
    # Name escapes are decoded: /J#53 is /JS.
    assert may(plain.replace(b"/Type /Catalog", b"/Type /Catalog /J#53 (x)"))
    # Dictionaries packed in a compressed object stream are inflated and read; when one names
    # an action, the (unchanged) pypdf scan reads the object stream as before.
    assert may(_object_stream(b"5 0 << /S /JavaScript /JS (app.alert(1)) >>"))
    assert not may(_object_stream(b"5 0 << /Type /Font /BaseFont /Helvetica >>"))
    # A stream this check cannot read is left to pypdf.
    assert may(_object_stream(b"5 0 << >>", b"/Filter [/FlateDecode /ASCIIHexDecode]"))
    assert may(_object_stream(b"5 0 << >>", b"/Filter /FlateDecode /DecodeParms << >>"))

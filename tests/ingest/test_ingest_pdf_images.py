"""PDFs and images ingested end to end: Workspace.init, ingest_paths, then what Documents shows.

The parsers have their own unit tests (``tests/parse/test_pdf.py``, ``tests/parse/test_image.py``);
these check that what they find survives ingest: quarantine reasons, table cells, reading order,
attachments as child documents, EXIF fields, OCR'd text with its portion markings, findings.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont
from PIL.TiffImagePlugin import IFDRational

from garrison.ingest.engine import IngestOptions, IngestReport, ingest_paths
from garrison.store.documents import Documents
from garrison.store.workspace import Workspace
from tests.conftest import SHARED, require
from tests.parse.test_pdf import make_pdf

SYSTEM_HIGH = "SECRET//NOFORN"
DEFAULT = "UNCLASSIFIED"
UNSTRUCTURED = SHARED / "corpus/public/unstructured"
PDF_SAMPLES = SHARED / "corpus/public/pdf-samples"
CORPUS_FILES = (
    UNSTRUCTURED / "pdf/password.pdf",
    UNSTRUCTURED / "pdf/layout-parser-paper-with-table.pdf",
    UNSTRUCTURED / "pdf/multi-column.pdf",
)
#: 38°53'22.2"N 77°2'7.1"W
GPS_LAT, GPS_LON = 38 + 53 / 60 + 22.2 / 3600, -(77 + 2 / 60 + 7.1 / 3600)
SCANNED_LINES = ("(S//NF) The convoy departs at dawn.", "(U) Weather is clear.")


@dataclass
class Ingested:
    report: IngestReport
    docs: Documents
    by_name: dict[str, dict[str, Any]]  # every document, keyed by file name (#attachment kept)

    def show(self, name: str) -> dict[str, Any]:
        return self.docs.show(self.by_name[name]["id"], elements=True)


def _ingest(ws: Workspace, paths: list[Path]) -> Ingested:
    session = ws.session()
    report = ingest_paths(
        session, [str(p) for p in paths], IngestOptions(default_marking=DEFAULT, workers=2)
    )
    docs = Documents(session)
    by_name = {d["uri"].rsplit("/", 1)[-1]: d for d in docs.list()}
    return Ingested(report, docs, by_name)


# -- generated inputs ----------------------------------------------------------------------------


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _rational(value: float) -> IFDRational:
    return IFDRational(round(value * 100), 100)


def gps_jpeg() -> bytes:
    """A small JPEG whose EXIF places it at 38°53'22.2"N 77°2'7.1"W."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (_rational(38), _rational(53), _rational(22.2))
    gps[3] = "W"
    gps[4] = (_rational(77), _rational(2), _rational(7.1))
    return _save(Image.new("RGB", (64, 48), "white"), "JPEG", exif=exif)


def scanned_page() -> bytes:
    """A 'scanned' page (PNG): banners and two portion-marked paragraphs, no text layer."""
    font = ImageFont.load_default(size=44)
    page = Image.new("L", (1600, 900), 255)
    draw = ImageDraw.Draw(page)
    draw.text((500, 40), SYSTEM_HIGH, font=font, fill=0)
    draw.text((100, 250), SCANNED_LINES[0], font=font, fill=0)
    draw.text((100, 450), SCANNED_LINES[1], font=font, fill=0)
    draw.text((500, 780), SYSTEM_HIGH, font=font, fill=0)
    return _save(page, "PNG")


def javascript_pdf() -> bytes:
    data = make_pdf([(72, 700, 12, "(U) The range opens at noon.")])
    return data.replace(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>",
    )


def truncated_jpeg() -> bytes:
    data = _save(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    return data[: len(data) // 2]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png() -> bytes:
    """A real decompression bomb: ~30 KB of PNG inflating to 14,000 x 14,000 one-bit pixels."""
    side = 14_000  # 196 M pixels: past Pillow's (and Garrison's) 178,956,970-pixel limit
    row = b"\x00" * (1 + side // 8)  # filter byte + the row's bits
    pixels = zlib.compress(row * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


GENERATED = {
    "gps.jpg": gps_jpeg,
    "scanned.png": scanned_page,
    "javascript.pdf": javascript_pdf,
    "truncated.jpg": truncated_jpeg,
    "bomb.png": bomb_png,
    "notes.txt": lambda: b"(U) A plain note, ingested after the broken files.\n",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    folder = tmp_path_factory.mktemp("generated")
    inputs = folder / "in"
    inputs.mkdir()
    for name, make in GENERATED.items():
        (inputs / name).write_bytes(make())
    ws = Workspace.init(folder / "ws", system_high=SYSTEM_HIGH)
    yield _ingest(ws, [inputs])
    ws.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    require(UNSTRUCTURED.is_dir() and PDF_SAMPLES.is_dir(), f"{SHARED / 'corpus'} is absent")
    attachments = sorted(PDF_SAMPLES.glob("*attachment*.pdf"))
    assert attachments, f"no *attachment*.pdf under {PDF_SAMPLES}"
    ws = Workspace.init(tmp_path_factory.mktemp("corpus") / "ws", system_high=SYSTEM_HIGH)
    yield _ingest(ws, [*CORPUS_FILES, *attachments])
    ws.close()


# -- the public corpus ---------------------------------------------------------------------------


def test_password_pdf_is_quarantined_encrypted(corpus: Ingested) -> None:
    doc = corpus.by_name["password.pdf"]
    assert (doc["status"], doc["reason"]) == ("quarantined", "encrypted")
    assert doc["marking"] is None
    assert "elements" not in corpus.docs.show(doc["id"], elements=True)


def test_table_cells_survive_ingest(corpus: Ingested) -> None:
    elements = corpus.show("layout-parser-paper-with-table.pdf")["elements"]
    tables = [e for e in elements if e["type"] == "Table"]
    assert tables
    cells = tables[0]["table_cells"]
    assert cells and all({"row", "col", "text"} <= set(c) for c in cells)
    assert all(isinstance(c["row"], int) and isinstance(c["col"], int) for c in cells)
    pub = next(c for c in cells if c["text"] == "PubLayNet [38]")
    assert any(
        c["row"] == pub["row"] and c["text"] == "Layouts of modern scientific documents"
        for c in cells
    )
    assert any(c["text"] == "HJDataset [31]" and c["col"] == 0 for c in cells)
    assert all(e["marking"] == DEFAULT for e in elements)


def test_multi_column_first_column_before_second(corpus: Ingested) -> None:
    elements = corpus.show("multi-column.pdf")["elements"]
    text = " ".join(" ".join(e["text"] for e in elements).split())
    first_column = (
        text.index("Open-domain question answering (QA)"),
        text.index("of improving retrieval."),  # the last line of page 1's left column
    )
    second_column = text.index("Retrieval in open-domain QA is usually implemented")
    assert first_column[0] < first_column[1] < second_column


def test_pdf_attachment_is_a_child_document(corpus: Ingested) -> None:
    parents = [n for n in corpus.by_name if "attachment" in n and "#" not in n]
    assert parents
    for name in parents:
        parent = corpus.by_name[name]
        assert parent["status"] == "parsed", name
        children = [d for d in corpus.by_name.values() if d["parent_id"] == parent["id"]]
        assert children, name
        for child in children:
            assert child["uri"].startswith(parent["uri"] + "#"), child["uri"]
            assert child["status"] == "parsed", child["uri"]
            shown = corpus.docs.show(child["id"], elements=True)
            assert any(e["type"] == "Image" for e in shown["elements"]), child["uri"]


# -- generated files -----------------------------------------------------------------------------


def test_gps_exif_becomes_decimal_coordinates(generated: Ingested) -> None:
    doc = generated.show("gps.jpg")
    assert doc["status"] == "parsed"
    image = next(e for e in doc["elements"] if e["type"] == "Image")
    assert image["fields"]["gps_lat"] == pytest.approx(GPS_LAT, abs=1e-4)
    assert image["fields"]["gps_lon"] == pytest.approx(GPS_LON, abs=1e-4)
    assert image["marking"] == DEFAULT


def test_scanned_page_is_ocrd_and_marked(generated: Ingested) -> None:
    from garrison.parse.ocr import ocr_available

    require(
        shutil.which("tesseract") is not None and ocr_available(),
        "Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)",
    )
    doc = generated.show("scanned.png")
    assert doc["status"] == "parsed"
    assert doc["marking"] == SYSTEM_HIGH
    texts = [e for e in doc["elements"] if e["type"] != "Image"]

    def marking_of(words: str) -> str:
        found = [e for e in texts if words in " ".join(e["text"].split())]
        assert len(found) == 1, (words, [e["text"] for e in texts])
        return str(found[0]["marking"])

    assert marking_of("convoy departs at dawn") == "SECRET//NOFORN"
    assert marking_of("Weather is clear") == "UNCLASSIFIED"


def test_javascript_pdf_is_parsed_with_an_active_content_finding(generated: Ingested) -> None:
    doc = generated.show("javascript.pdf")
    assert doc["status"] == "parsed"
    assert {f["kind"] for f in doc["findings"]} == {"active-content"}
    assert any("The range opens at noon." in e["text"] for e in doc["elements"])
    assert {e["marking"] for e in doc["elements"]} == {"UNCLASSIFIED"}


def test_broken_and_hostile_images_are_quarantined_and_the_run_goes_on(
    generated: Ingested,
) -> None:
    outcomes = {r.uri.rsplit("/", 1)[-1]: (r.outcome, r.reason) for r in generated.report.results}
    assert outcomes["truncated.jpg"] == ("quarantined", "corrupt")
    assert outcomes["bomb.png"] == ("quarantined", "hostile-content")
    assert set(outcomes) == set(GENERATED)
    for name in set(GENERATED) - {"truncated.jpg", "bomb.png"}:
        assert outcomes[name] == ("parsed", None), name
    for name in ("truncated.jpg", "bomb.png"):
        doc = generated.by_name[name]
        assert doc["marking"] is None and doc["reason_detail"], name

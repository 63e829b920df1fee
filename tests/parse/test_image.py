"""Image parser and OCR: metadata (EXIF, GPS), hostile and broken files, OCR'd text and marks."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from PIL.TiffImagePlugin import IFDRational

import garrison.parse.ocr
from garrison.core.records import ElementType
from garrison.parse import ParseFailure, detect_media_type, parse_bytes
from garrison.parse import image as image_parser
from garrison.parse.image import gps_decimal
from garrison.parse.ocr import OcrResult, ocr_available, ocr_image
from tests.conftest import require

CORPUS_IMG = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".heic", ".heif")
MARKED_LINES = ("(S//NF) The convoy departs at dawn.", "(U) Weather is clear.")


def _tesseract() -> None:
    require(
        shutil.which("tesseract") is not None and ocr_available(),
        "Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)",
    )


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _rational(value: float) -> IFDRational:
    return IFDRational(round(value * 100), 100)


def gps_jpeg(*, below_sea_level: bool) -> bytes:
    """A small JPEG with camera, time, orientation and GPS EXIF (38°53'22.2"N 77°2'7.1"W)."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 80D"
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:22:03"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (_rational(38), _rational(53), _rational(22.2))
    gps[3] = "W"
    gps[4] = (_rational(77), _rational(2), _rational(7.1))
    gps[5] = b"\x01" if below_sea_level else b"\x00"
    gps[6] = _rational(12.5)
    return _save(Image.new("RGB", (64, 48), "white"), "JPEG", exif=exif)


def scanned_page() -> bytes:
    """A 'scanned' page (PNG, ~300 dpi scale): two portion-marked paragraphs and banners."""
    font = ImageFont.load_default(size=44)
    page = Image.new("L", (1600, 900), 255)
    draw = ImageDraw.Draw(page)
    draw.text((500, 40), "SECRET//NOFORN", font=font, fill=0)
    draw.text((100, 250), MARKED_LINES[0], font=font, fill=0)
    draw.text((100, 450), MARKED_LINES[1], font=font, fill=0)
    draw.text((500, 780), "SECRET//NOFORN", font=font, fill=0)
    return _save(page, "PNG")


@pytest.fixture
def no_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(garrison.parse.ocr, "ocr_available", lambda lang="eng": False)


# -- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("below", [False, True])
def test_jpeg_exif_and_gps(below: bool, no_ocr: None) -> None:
    doc = parse_bytes(gps_jpeg(below_sea_level=below), "drone.jpg")
    assert doc.media_type == "image/jpeg"
    (element,) = doc.elements
    assert element.type is ElementType.IMAGE and element.locator == {"frame": 0}
    info = element.image
    assert info is not None
    assert (info.width, info.height, info.orientation) == (64, 48, 6)
    assert (info.camera_make, info.camera_model) == ("Canon", "Canon EOS 80D")
    assert info.exif_time == datetime(2024, 5, 1, 10, 22, 3)
    assert info.gps_lat == pytest.approx(38.8895, abs=1e-4)
    assert info.gps_lon == pytest.approx(-77.0353, abs=1e-4)
    assert info.gps_alt == pytest.approx(-12.5 if below else 12.5)
    assert element.fields["exif_time"] == "2024-05-01T10:22:03"
    assert element.fields["gps_lat"] == info.gps_lat and element.fields["camera_make"] == "Canon"
    assert element.text.startswith("Image 64x48, captured 2024-05-01T10:22:03, Canon EOS 80D, at ")
    assert "38.8895, -77.0353" in element.text
    assert doc.created == info.exif_time


def test_exif_offset_time_becomes_utc(no_ocr: None) -> None:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:01 10:22:03"
    sub[0x9011] = "+02:00"
    doc = parse_bytes(_save(Image.new("RGB", (8, 8)), "JPEG", exif=exif))
    assert doc.elements[0].image is not None
    assert doc.elements[0].image.exif_time == datetime(2024, 5, 1, 8, 22, 3, tzinfo=UTC)


def test_gps_decimal_edge_cases() -> None:
    assert gps_decimal((10, 30, 0), "S") == -10.5
    assert gps_decimal((IFDRational(1, 0), 0, 0), "N") is None  # 0/0 is not a position
    assert gps_decimal((-1, 0, 0), "N") is None
    assert gps_decimal("junk", "N") is None


@pytest.mark.parametrize(
    ("fmt", "media_type", "mode"),
    [
        ("PNG", "image/png", "RGBA"),
        ("TIFF", "image/tiff", "RGB"),
        ("BMP", "image/bmp", "RGB"),
        ("GIF", "image/gif", "P"),
        ("WEBP", "image/webp", "RGB"),
    ],
)
def test_basic_formats(fmt: str, media_type: str, mode: str, no_ocr: None) -> None:
    doc = parse_bytes(_save(Image.new(mode, (40, 30)), fmt))
    assert doc.media_type == media_type
    (element,) = doc.elements
    assert element.text == "Image 40x30"
    assert (element.fields["width"], element.fields["height"]) == (40, 30)
    # What the picture shows is unread: its marks cannot be found.
    assert doc.warnings == (
        "no-text-layer: no text layer and OCR is unavailable",
        "unreadable-content: the image (OCR unavailable)",
    )
    assert doc.extraction.method == "native"


def test_multi_frame_tiff_gives_one_element_per_frame(
    no_ocr: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [Image.new("L", (20 + i, 10)) for i in range(4)]
    data = _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    doc = parse_bytes(data)
    assert [e.locator for e in doc.elements] == [{"frame": i} for i in range(4)]
    assert [e.fields["width"] for e in doc.elements] == [20, 21, 22, 23]
    assert doc.elements[2].text == "Image 22x10 (frame 3 of 4)"
    monkeypatch.setattr(image_parser, "MAX_FRAMES", 2)
    capped = parse_bytes(data)
    assert len(capped.elements) == 2
    assert "frames-capped: only the first 2 of 4 frames read" in capped.warnings


def test_animated_gif_gives_first_frame(no_ocr: None) -> None:
    frames = [Image.new("RGB", (10, 10), (80 * i, 0, 0)) for i in range(3)]
    doc = parse_bytes(_save(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    (element,) = doc.elements
    assert element.fields["frames"] == 3


def test_heic_from_corpus(shared_dir: Path, no_ocr: None) -> None:
    path = shared_dir / "corpus/public/unstructured/img/DA-1p.heic"
    require(path.is_file(), f"{path} is absent")
    data = path.read_bytes()
    assert detect_media_type(data, None) == "image/heic"
    doc = parse_bytes(data)
    assert doc.media_type == "image/heic"
    assert doc.elements[0].text == "Image 595x842"


# -- broken and hostile files --------------------------------------------------------------------


def test_truncated_jpeg_is_corrupt(no_ocr: None) -> None:
    data = _save(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    with pytest.raises(ParseFailure) as info:
        parse_bytes(data[: len(data) // 2])
    assert info.value.reason == "corrupt"


def test_garbage_after_magic_is_corrupt() -> None:
    with pytest.raises(ParseFailure) as info:
        parse_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert info.value.reason == "corrupt"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_png_claiming_huge_dimensions_is_hostile() -> None:
    header = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")
    with pytest.raises(ParseFailure) as info:
        parse_bytes(data)
    assert info.value.reason == "hostile-content"


@pytest.mark.parametrize("limit", [1000, 4000])  # past 2x the limit (error) and past 1x (warning)
def test_pixel_limit_option(limit: int) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ParseFailure) as info:
        parse_bytes(_save(Image.new("RGB", (80, 80)), "PNG"), max_image_pixels=limit)
    assert info.value.reason == "hostile-content"
    assert before == Image.MAX_IMAGE_PIXELS  # the process-wide limit is restored


def test_corpus_images_parse_or_fail_with_a_reason(shared_dir: Path) -> None:
    root = shared_dir / "corpus/public"
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in CORPUS_IMG)
    require(bool(files), f"no images under {root}")
    outcomes: dict[str, str] = {}
    for path in files:
        try:
            doc = parse_bytes(path.read_bytes(), path.name, ocr=False)
        except ParseFailure as exc:  # anything else escapes and fails the test
            outcomes[path.name] = exc.reason
            continue
        outcomes[path.name] = doc.elements[0].type.value
    allowed = {"Image", "corrupt", "hostile-content", "unsupported-type"}
    assert set(outcomes.values()) <= allowed, outcomes


# -- OCR -----------------------------------------------------------------------------------------


def test_ocr_image_api() -> None:
    _tesseract()
    img = Image.open(io.BytesIO(scanned_page()))
    result = ocr_image(img, max_side=1200)
    assert isinstance(result, OcrResult)
    assert "convoy departs at dawn" in result.text
    assert 50 < result.mean_confidence <= 100
    line = next(x for x in result.lines if "convoy" in x.text)
    assert line.words and line.words[0].text.startswith("(S")
    left, top, right, bottom = line.bbox
    assert 80 < left < 140 and 230 < top < bottom < 330 and right > 800  # full-size pixels
    assert len(result.paragraphs()) >= 3


def test_ocr_elements_keep_portion_marks_and_banners() -> None:
    _tesseract()
    doc = parse_bytes(scanned_page(), "scan.png")
    texts = [e.text for e in doc.elements if e.type is ElementType.NARRATIVE_TEXT]
    assert texts == list(MARKED_LINES)
    assert doc.banners == ("SECRET//NOFORN",)
    text_el = doc.elements[1]
    assert text_el.locator == {"frame": 0}
    assert text_el.bbox is not None and text_el.bbox.coordinate_system == "pixels"
    assert 0 < text_el.fields["ocr_confidence"] <= 1
    assert doc.extraction.method == "ocr" and doc.extraction.confidence is not None
    assert doc.warnings == ()


def test_ocr_respects_exif_orientation() -> None:
    _tesseract()
    upright = Image.open(io.BytesIO(scanned_page()))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90° clockwise
    data = _save(upright.rotate(90, expand=True), "PNG", exif=exif)
    doc = parse_bytes(data)
    assert MARKED_LINES[1] in [e.text for e in doc.elements]


def test_blank_and_tiny_images_have_no_text_elements() -> None:
    _tesseract()
    for size in ((20, 20), (400, 300)):
        doc = parse_bytes(_save(Image.new("L", size, 255), "PNG"))
        assert [e.type for e in doc.elements] == [ElementType.IMAGE]
        assert doc.warnings == ()


def test_without_ocr_only_the_image_element_and_a_warning(no_ocr: None) -> None:
    doc = parse_bytes(scanned_page())
    assert [e.type for e in doc.elements] == [ElementType.IMAGE]
    assert "no-text-layer: no text layer and OCR is unavailable" in doc.warnings
    assert "unreadable-content: the image (OCR unavailable)" in doc.warnings


def test_ingest_marks_ocr_portions(tmp_path: Path) -> None:
    _tesseract()
    from garrison.ingest.engine import IngestOptions, ingest_paths
    from garrison.store.documents import Documents
    from garrison.store.workspace import Workspace

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scan.png").write_bytes(scanned_page())
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    try:
        session = ws.session()
        ingest_paths(session, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
        (doc,) = Documents(session).list()
        shown = Documents(session).show(doc["id"], elements=True)
        marks = {e["text"]: e["marking"] for e in shown["elements"] if e["type"] != "Image"}
        assert marks == {
            "The convoy departs at dawn.": "SECRET//NOFORN",
            "Weather is clear.": "UNCLASSIFIED",
        }
        assert shown["marking"] == "SECRET//NOFORN"
    finally:
        ws.close()

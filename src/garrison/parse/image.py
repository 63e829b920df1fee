"""Image parser: JPEG, PNG, TIFF, BMP, GIF, WebP (Pillow) and HEIC/HEIF (pi-heif).

Each frame yields an ``Image`` element whose text is a short readable description and whose
:class:`ImageFields` (and ``fields``, JSON-safe, so they can be searched) hold the size, EXIF
capture time, camera, orientation and GPS position. A multi-page TIFF or multi-image HEIF gives
one element per frame (at most :data:`MAX_FRAMES`); an animation (GIF, WebP, APNG) gives its
first frame only, with the frame count in ``fields["frames"]``.

When Tesseract is installed (:func:`garrison.parse.ocr.ocr_available`) each frame is OCR'd
upright (EXIF orientation applied) and every OCR paragraph becomes a ``NarrativeText`` element
with its box in pixels of the upright frame; paragraphs that are banner lines go to
:attr:`ParsedDocument.banners`, and portion marks stay at the start of the element text for
ingest to read. Without Tesseract the document carries a ``no-text-layer`` warning.

EXIF times: ``DateTimeOriginal`` with ``OffsetTimeOriginal`` becomes an aware UTC datetime;
without an offset (most cameras) it is the camera's clock, kept naive and treated as UTC.

Options (``ParseContext.options``): ``ocr`` (bool, default True), ``ocr_lang`` (default
``eng``), ``max_image_pixels`` (decompression-bomb limit, default
:data:`MAX_IMAGE_PIXELS`). Images past that limit are refused as ``hostile-content``;
truncated or undecodable ones as ``corrupt``.
"""

from __future__ import annotations

import math
import struct
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from garrison.core.records import (
    BBox,
    ElementType,
    Extraction,
    ImageFields,
    ParsedDocument,
    ParsedElement,
)
from garrison.parse import ocr as _ocr
from garrison.parse._banner import is_banner_line
from garrison.parse._registry import ParseContext, ParseFailure, library_version, register_parser
from garrison.parse.ocr import ocr_image, tesseract_version

if TYPE_CHECKING:
    from PIL.Image import Exif, Image

__all__ = [
    "IMAGE_MEDIA_TYPES",
    "MAX_FRAMES",
    "MAX_IMAGE_PIXELS",
    "MIN_OCR_SIDE",
    "OCR_LOW_CONFIDENCE",
    "OCR_MAX_SIDE",
    "gps_decimal",
    "parse_image",
]

IMAGE_MEDIA_TYPES = (
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/bmp",
    "image/gif",
    "image/webp",
    "image/heic",
)
#: Pixels one frame may have before it is refused as a decompression bomb (Pillow's default).
MAX_IMAGE_PIXELS = 178_956_970
#: Frames read from one multi-frame file; the rest are left out (with a warning).
MAX_FRAMES = 200
#: Frames smaller than this (either side, pixels) are not OCR'd: they cannot hold text.
MIN_OCR_SIDE = 32
#: Larger frames are downscaled to this longest side before OCR, to bound its time.
OCR_MAX_SIDE = 4000
#: Mean OCR confidence (0-100) below which the document gets an ``ocr-low-confidence`` warning.
OCR_LOW_CONFIDENCE = 50.0
OCR_TIMEOUT_S = 120.0

_MULTI_FRAME = {"image/tiff", "image/heic"}
# What Pillow's decoders raise on malformed input (they are not total).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)

# EXIF tags.
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011


# -- EXIF ----------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:200] or None


def _float(value: object) -> float | None:
    try:
        out: float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def gps_decimal(dms: object, ref: object) -> float | None:
    """Degrees-minutes-seconds rationals and an ``N``/``S``/``E``/``W`` ref -> signed degrees.

    Accepts one to three components (some writers store decimal degrees or degrees and decimal
    minutes). Returns None for anything malformed.
    """
    parts = dms if isinstance(dms, tuple | list) else (dms,)
    values: list[float] = []
    for part in parts[:3]:
        value = _float(part)
        if value is None or value < 0:
            return None
        values.append(value)
    if not values:
        return None
    degrees = sum(v / 60.0**i for i, v in enumerate(values))
    direction = (_text(ref) or "").upper()[:1]
    return -degrees if direction in ("S", "W") else degrees


def _exif_time(exif: Exif) -> datetime | None:
    sub = exif.get_ifd(_EXIF_IFD)
    raw = _text(sub.get(_DATETIME_ORIGINAL)) or _text(exif.get(_DATETIME))
    if raw is None:
        return None
    try:
        when = datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = _text(sub.get(_OFFSET_TIME_ORIGINAL))
    if offset and len(offset) == 6 and offset[0] in "+-" and offset[3] == ":":
        try:
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        except ValueError:
            return when
        tz = timezone(-delta if offset[0] == "-" else delta)
        return when.replace(tzinfo=tz).astimezone(UTC)
    return when


def _image_fields(frame: Image) -> ImageFields:
    """Size, EXIF time, camera, orientation and GPS of one frame."""
    exif = frame.getexif()
    orientation = exif.get(_ORIENTATION)
    gps = exif.get_ifd(_GPS_IFD)
    lat = gps_decimal(gps.get(2), gps.get(1)) if 2 in gps else None
    lon = gps_decimal(gps.get(4), gps.get(3)) if 4 in gps else None
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        lat = lon = None
    alt = _float(gps.get(6)) if 6 in gps else None
    alt_ref = gps.get(5)
    if alt is not None and alt_ref in (1, b"\x01", "\x01"):
        alt = -alt
    return ImageFields(
        width=frame.width,
        height=frame.height,
        exif_time=_exif_time(exif),
        camera_make=_text(exif.get(_MAKE)),
        camera_model=_text(exif.get(_MODEL)),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        gps_lat=None if lat is None else round(lat, 7),
        gps_lon=None if lon is None else round(lon, 7),
        gps_alt=None if alt is None else round(alt, 3),
    )


def _describe(info: ImageFields, frame: int, frames: int) -> str:
    parts = [f"Image {info.width}x{info.height}"]
    if frames > 1:
        parts[0] += f" (frame {frame + 1} of {frames})"
    if info.exif_time is not None:
        parts.append(f"captured {info.exif_time.isoformat()}")
    make, model = info.camera_make, info.camera_model
    if make and model and model.lower().startswith(make.lower()):
        make = None
    camera = " ".join(p for p in (make, model) if p)
    if camera:
        parts.append(camera)
    if info.gps_lat is not None and info.gps_lon is not None:
        where = f"at {info.gps_lat:.4f}, {info.gps_lon:.4f}"
        if info.gps_alt is not None:
            where += f", altitude {info.gps_alt:g} m"
        parts.append(where)
    return ", ".join(parts)


# -- OCR -----------------------------------------------------------------------------------------


def _ocr_elements(
    frame: Image, index: int, lang: str, banners: list[str], confidences: list[float]
) -> list[ParsedElement]:
    """OCR paragraphs of one upright frame as NarrativeText elements (banner lines aside)."""
    from PIL import ImageOps

    upright = ImageOps.exif_transpose(frame)
    result = ocr_image(upright, lang=lang, timeout_s=OCR_TIMEOUT_S, max_side=OCR_MAX_SIDE)
    out: list[ParsedElement] = []
    for para in result.paragraphs():
        confidences.extend(w.confidence for line in para.lines for w in line.words)
        text = para.text.strip()
        if not text:
            continue
        if all(is_banner_line(line) for line in text.splitlines()):
            banners.extend(line.strip() for line in text.splitlines())
            continue
        x0, y0, x1, y1 = para.bbox
        out.append(
            ParsedElement(
                type=ElementType.NARRATIVE_TEXT,
                text=text,
                bbox=BBox(x0=x0, y0=y0, x1=x1, y1=y1, coordinate_system="pixels"),
                locator={"frame": index},
                fields={"ocr_confidence": round(para.confidence / 100, 4)},
            )
        )
    return out


# -- the parser ----------------------------------------------------------------------------------


def _open(data: bytes, ctx: ParseContext) -> Image:
    import io

    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if ctx.media_type == "image/heic":
        import pi_heif  # type: ignore[import-untyped]

        pi_heif.register_heif_opener()
    try:
        image = PILImage.open(io.BytesIO(data))
        image.load()  # surfaces truncation and decoder errors now, inside this try
    except UnidentifiedImageError as exc:
        raise ParseFailure("corrupt", "the image format could not be identified") from exc
    except _DECODE_ERRORS as exc:
        raise ParseFailure("corrupt", "the image is truncated or cannot be decoded") from exc
    return image


def _parse(data: bytes, ctx: ParseContext) -> ParsedDocument:

    do_ocr = bool(ctx.options.get("ocr", True))
    lang = str(ctx.options.get("ocr_lang", "eng"))
    # Looked up at call time, like the PDF parser does, so one switch turns OCR off everywhere.
    ocr = do_ocr and _ocr.ocr_available(lang)
    image = _open(data, ctx)
    frames = int(getattr(image, "n_frames", 1) or 1)
    readable = min(frames, MAX_FRAMES) if ctx.media_type in _MULTI_FRAME else 1
    elements: list[ParsedElement] = []
    banners: list[str] = []
    confidences: list[float] = []
    doc_warnings: list[str] = []
    first: ImageFields | None = None
    for index in range(readable):
        try:
            if index:
                image.seek(index)
                image.load()
            info = _image_fields(image)
        except EOFError:  # fewer frames than the header claimed
            break
        except _DECODE_ERRORS as exc:
            raise ParseFailure("corrupt", f"frame {index + 1} cannot be decoded") from exc
        first = first or info
        fields: dict[str, Any] = info.model_dump(mode="json")
        if frames > 1:
            fields["frames"] = frames
        elements.append(
            ParsedElement(
                type=ElementType.IMAGE,
                text=_describe(info, index, readable),
                image=info,
                fields=fields,
                locator={"frame": index},
            )
        )
        if ocr and min(image.size) >= MIN_OCR_SIDE:
            try:
                elements.extend(_ocr_elements(image, index, lang, banners, confidences))
            except _DECODE_ERRORS as exc:
                raise ParseFailure("corrupt", f"frame {index + 1} cannot be OCR'd") from exc
    if frames > readable and ctx.media_type in _MULTI_FRAME:
        doc_warnings.append(f"frames-capped: only the first {readable} of {frames} frames read")
        doc_warnings.append(f"unreadable-content: frames {readable + 1} to {frames} (not read)")
    mean = sum(confidences) / len(confidences) if confidences else None
    # Text in the picture (a banner, a portion mark) is unseen unless OCR reads it.
    if not do_ocr:
        doc_warnings.append("no-text-layer: no text layer and OCR is turned off")
        doc_warnings.append("unreadable-content: the image (OCR turned off)")
    elif not ocr:
        doc_warnings.append("no-text-layer: no text layer and OCR is unavailable")
        doc_warnings.append("unreadable-content: the image (OCR unavailable)")
    elif mean is not None and mean < OCR_LOW_CONFIDENCE:
        doc_warnings.append(f"ocr-low-confidence: mean OCR confidence {mean:.0f}%")
    ocr_used = ocr and any(e.type is ElementType.NARRATIVE_TEXT for e in elements)
    return ParsedDocument(
        media_type=ctx.media_type,
        elements=tuple(elements),
        created=None if first is None else first.exif_time,
        banners=tuple(dict.fromkeys(banners)),
        metadata={"format": image.format, "mode": image.mode, "frames": frames},
        extraction=Extraction(
            method="ocr" if ocr_used else "native",
            parser="garrison.image",
            parser_version=(
                f"tesseract {tesseract_version()}" if ocr_used else library_version("pillow")
            ),
            confidence=None if not ocr_used or mean is None else round(mean / 100, 4),
        ),
        warnings=tuple(doc_warnings),
    )


@register_parser(*IMAGE_MEDIA_TYPES, libraries=("PIL.Image",))
def parse_image(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse one image file: an ``Image`` element per frame, plus OCR'd text when available.

    Raises :class:`ParseFailure`: ``hostile-content`` for a decompression bomb (more pixels
    than ``max_image_pixels``), ``corrupt`` for a truncated or undecodable image or a failed
    OCR run.
    """
    from PIL import Image as PILImage

    limit = ctx.options.get("max_image_pixels", MAX_IMAGE_PIXELS)
    saved = PILImage.MAX_IMAGE_PIXELS
    # Pillow's limit is process-global; parsers run one file at a time per worker process.
    PILImage.MAX_IMAGE_PIXELS = limit if isinstance(limit, int) and limit > 0 else MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns about odd EXIF and the like: not ours to print. A bomb warning is an
            # error here, so it stops the parse.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            return _parse(data, ctx)
    except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as exc:
        raise ParseFailure(
            "hostile-content",
            f"the image claims more pixels than the {PILImage.MAX_IMAGE_PIXELS:,} allowed "
            "(a decompression bomb)",
        ) from exc
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved

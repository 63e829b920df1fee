"""OCR with Tesseract (through pytesseract): an image in, words and lines with boxes out.

Used by the image parser and by the PDF parser for pages without a text layer. Nothing here
downloads anything: the ``tesseract`` binary and its language data (Debian ``tesseract-ocr``,
``tesseract-ocr-eng``) must already be installed; :func:`ocr_available` says whether they are.

Coordinates are pixels of the image passed in, origin top-left, ``(left, top, right, bottom)``.
Confidences are Tesseract's, 0-100. Lines carry Tesseract's block and paragraph numbers so a
caller can rebuild paragraphs (:meth:`OcrResult.paragraphs`).
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from garrison.parse._registry import ParseFailure

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "OcrLine",
    "OcrParagraph",
    "OcrResult",
    "OcrWord",
    "ocr_available",
    "ocr_image",
    "tesseract_version",
]

BBoxTuple = tuple[float, float, float, float]


@dataclass(frozen=True)
class OcrWord:
    """One recognised word."""

    text: str
    #: Tesseract's confidence, 0-100.
    confidence: float
    #: Pixels ``(left, top, right, bottom)``, origin top-left.
    bbox: BBoxTuple


@dataclass(frozen=True)
class OcrLine:
    """One text line: its words joined by single spaces."""

    text: str
    #: Mean of the words' confidences, 0-100.
    confidence: float
    #: Pixels ``(left, top, right, bottom)``, origin top-left: the union of the words' boxes.
    bbox: BBoxTuple
    words: tuple[OcrWord, ...]
    #: Tesseract's block number (a column or region of the page).
    block: int = 0
    #: Tesseract's paragraph number inside ``block``.
    paragraph: int = 0


@dataclass(frozen=True)
class OcrParagraph:
    """Consecutive lines with the same ``(block, paragraph)``; text lines joined by newlines."""

    text: str
    #: Mean of the words' confidences, 0-100.
    confidence: float
    bbox: BBoxTuple
    lines: tuple[OcrLine, ...]


@dataclass(frozen=True)
class OcrResult:
    """Everything Tesseract found on one image, in reading order."""

    lines: tuple[OcrLine, ...]
    #: Lines joined by newlines, paragraphs separated by a blank line.
    text: str
    #: Mean confidence of all words, 0-100 (0 when no words were found).
    mean_confidence: float

    def paragraphs(self) -> tuple[OcrParagraph, ...]:
        """The lines grouped into paragraphs by Tesseract's ``(block, paragraph)`` numbers."""
        groups: list[list[OcrLine]] = []
        for line in self.lines:
            if groups and (groups[-1][0].block, groups[-1][0].paragraph) == (
                line.block,
                line.paragraph,
            ):
                groups[-1].append(line)
            else:
                groups.append([line])
        return tuple(
            OcrParagraph(
                text="\n".join(line.text for line in group),
                confidence=_mean([w.confidence for line in group for w in line.words]),
                bbox=_union([line.bbox for line in group]),
                lines=tuple(group),
            )
            for group in groups
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _union(boxes: list[BBoxTuple]) -> BBoxTuple:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@functools.cache
def _installed_languages() -> frozenset[str] | None:
    """Tesseract's installed languages, or None when pytesseract or the binary is missing."""
    try:
        import pytesseract  # type: ignore[import-untyped]
    except ImportError:
        return None
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        return None
    try:
        return frozenset(pytesseract.get_languages(config=""))
    except (OSError, RuntimeError, pytesseract.TesseractError):
        return None


@functools.cache
def ocr_available(lang: str = "eng") -> bool:
    """Whether OCR can run: pytesseract importable, ``tesseract`` on PATH, ``lang`` installed.

    ``lang`` is Tesseract's: ``eng``, or several joined by ``+`` (``eng+fra``). Cached for the
    life of the process.
    """
    languages = _installed_languages()
    if languages is None:
        return False
    return all(part in languages for part in lang.split("+") if part)


@functools.cache
def tesseract_version() -> str:
    """The installed Tesseract's version (``"unknown"`` when it cannot be asked)."""
    try:
        import pytesseract

        return str(pytesseract.get_tesseract_version())
    except Exception:  # any failure here only loses a version string
        return "unknown"


def _prepare(image: Image, max_side: int | None) -> tuple[Image, float]:
    """A mode Tesseract reads, downscaled to ``max_side``; returns it and the scale used."""
    from PIL import Image as PILImage

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # Wide greyscale: stretch to 8 bits (Pillow's plain conversion clips).
        extrema: Any = image.getextrema()
        lo, hi = float(extrema[0]), float(extrema[1])
        span = hi - lo or 1.0
        image = image.convert("F").point(lambda v: (v - lo) * 255.0 / span).convert("L")
    elif image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")
    scale = 1.0
    if max_side is not None and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, PILImage.Resampling.LANCZOS)
    return image, scale


def ocr_image(
    image: Image,
    *,
    lang: str = "eng",
    timeout_s: float = 60,
    max_side: int | None = None,
) -> OcrResult:
    """OCR ``image`` with Tesseract (automatic page segmentation) and return its lines.

    Words are grouped into lines by Tesseract's ``(block_num, par_num, line_num)``; empty
    words are dropped. ``max_side`` downscales a larger image before OCR to bound the time;
    boxes are still given in pixels of ``image`` as passed. The caller should apply EXIF
    orientation first (``PIL.ImageOps.exif_transpose``). Raises :class:`ParseFailure`
    (``corrupt``) when Tesseract fails or runs past ``timeout_s``; call :func:`ocr_available`
    first -- a missing Tesseract is also reported as ``corrupt`` here.
    """
    try:
        import pytesseract
    except ImportError as exc:
        raise ParseFailure("corrupt", "OCR is unavailable: pytesseract is not installed") from exc
    prepared, scale = _prepare(image, max_side)
    try:
        data: dict[str, list[Any]] = pytesseract.image_to_data(
            prepared, lang=lang, output_type=pytesseract.Output.DICT, timeout=timeout_s
        )
    except RuntimeError as exc:  # pytesseract's timeout is a bare RuntimeError
        if "timeout" in str(exc).lower():
            raise ParseFailure("corrupt", f"OCR ran past its {timeout_s:g} s limit") from exc
        raise ParseFailure("corrupt", "Tesseract failed to read the image") from exc
    except (OSError, pytesseract.TesseractError, pytesseract.TesseractNotFoundError) as exc:
        raise ParseFailure("corrupt", "Tesseract failed to read the image") from exc
    return _result(data, 1.0 / scale)


def _result(data: dict[str, list[Any]], factor: float) -> OcrResult:
    """Group ``image_to_data`` rows into lines (in Tesseract's order), boxes scaled by factor."""
    lines: dict[tuple[int, int, int, int], list[OcrWord]] = {}
    for i, raw in enumerate(data.get("text", [])):
        text = str(raw).strip()
        if not text or int(data["level"][i]) != 5:
            continue
        try:
            confidence = max(0.0, float(data["conf"][i]))
        except (TypeError, ValueError):
            confidence = 0.0
        left, top = float(data["left"][i]), float(data["top"][i])
        right, bottom = left + float(data["width"][i]), top + float(data["height"][i])
        bbox = (left * factor, top * factor, right * factor, bottom * factor)
        key = (
            int(data["page_num"][i]),
            int(data["block_num"][i]),
            int(data["par_num"][i]),
            int(data["line_num"][i]),
        )
        lines.setdefault(key, []).append(OcrWord(text=text, confidence=confidence, bbox=bbox))
    out = tuple(
        OcrLine(
            text=" ".join(w.text for w in words),
            confidence=_mean([w.confidence for w in words]),
            bbox=_union([w.bbox for w in words]),
            words=tuple(words),
            block=key[1],
            paragraph=key[2],
        )
        for key, words in lines.items()
    )
    result = OcrResult(
        lines=out,
        text="",
        mean_confidence=_mean([w.confidence for line in out for w in line.words]),
    )
    text = "\n\n".join(p.text for p in result.paragraphs())
    return OcrResult(lines=out, text=text, mean_confidence=result.mean_confidence)

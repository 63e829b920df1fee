"""PDF parser: pypdfium2 for text and layout, pypdf only for the active-content scan.

Text comes from PDFium's text page at the level of its *rects* (runs of characters on one line
in one style), never character by character, so a page costs a few hundred library calls. Runs
are grouped into lines, columns are found from a vertical whitespace band that no run crosses
(:func:`_gutters`), and lines become titles, list items, tables (runs aligned on the same
x-positions over several lines) and paragraphs, in reading order: left column first. Titles
are the heads the outline (bookmarks) names, and blocks that look like heads: larger or bolder
than body text, or numbered as sections (:mod:`garrison.parse._pdf_headings`).

Banner lines (``SECRET//NOFORN``) at the top or bottom of a page go to
:attr:`ParsedDocument.banners` and are not emitted; other lines repeating in the top or bottom
band of pages (digits ignored: page numbers) become Header/Footer elements, out of the body
text. Portion marks stay at the start of element text; ingest strips them. Pages without a
text layer are OCRed when Tesseract is installed (:mod:`garrison.parse.ocr`); otherwise the
page is ``unreadable-content``. Annotations (sticky notes, free text, popups...) become
elements located by page and ``part: annotation``, and filled-in form fields KeyValue elements
(``part: form-field``), so their marks are found. JavaScript, launch and automatic actions are
recorded as ``active-content`` warnings, never run.

The work is split: :mod:`garrison.parse._pdf_layout` (runs, lines, columns, tables, OCR pages),
:mod:`garrison.parse._pdf_structure` (elements, page banners, annotations, form fields),
:mod:`garrison.parse._pdf_headings` (which blocks are heads, at what level) and
:mod:`garrison.parse._pdf_active` (the active-content scan).
"""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from garrison.core.records import (
    ElementType,
    Extraction,
    ParsedAttachment,
    ParsedDocument,
    ParsedElement,
)
from garrison.parse._pdf_active import _active_content
from garrison.parse._pdf_headings import OutlineEntry
from garrison.parse._pdf_layout import _has_images, _ocr_page, _order, _Page, _page_runs
from garrison.parse._pdf_structure import _Doc, _emit, form_fields, page_annotations
from garrison.parse._registry import ParseContext, ParseFailure, library_version, register_parser

__all__ = ["DEFAULT_MAX_PAGES", "PDF", "parse_pdf"]

PDF = "application/pdf"
#: Pages above which a PDF is refused as ``too-large`` (``ctx.options["max_pages"]``).
DEFAULT_MAX_PAGES = 10_000
#: A page with fewer non-blank characters than this has no usable text layer.
_MIN_TEXT_CHARS = 10
#: Outline entries read at most, and how deep (a hostile outline may be endless or looped).
_MAX_OUTLINE = 10_000
_MAX_OUTLINE_DEPTH = 15
_PDF_DATE = re.compile(
    r"(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?\s*([Zz+\-])?(\d{2})?'?(\d{2})?"
)


def _pdf_date(value: str | None) -> datetime | None:
    """A PDF date string (``D:20240102030405+01'00'``) as an aware datetime, or None."""
    if not value:
        return None
    m = _PDF_DATE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, sign, tzh, tzm = m.groups()
    tz: timezone = UTC
    if sign in ("+", "-") and tzh:
        offset = timedelta(hours=int(tzh), minutes=int(tzm or 0))
        tz = timezone(offset if sign == "+" else -offset)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:  # a malformed date is just absent metadata
        return None


# -- the parser ----------------------------------------------------------------------------------


def _open(data: bytes) -> Any:
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    try:
        # PDFium tries the empty user password itself; only a real password fails here.
        return pdfium.PdfDocument(data, password=None)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseFailure("encrypted", "The PDF is password-protected.") from exc
        raise ParseFailure("corrupt", "The PDF could not be read (PDFium load error).") from exc


def _outline(pdf: Any, pages: int) -> tuple[list[OutlineEntry], list[str]]:
    """The outline's entries (bookmarks) with their depth and page; warnings if unreadable."""
    entries: list[OutlineEntry] = []
    try:
        for item in pdf.get_toc(max_depth=_MAX_OUTLINE_DEPTH):
            if len(entries) >= _MAX_OUTLINE:
                break
            title = (item.get_title() or "").strip()
            if not title:
                continue
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            page = index + 1 if isinstance(index, int) and 0 <= index < pages else None
            entries.append(OutlineEntry(title=title, level=min(6, item.level + 1), page=page))
    except Exception:  # a broken outline costs its heads, not the document
        return entries, ["unreadable-content: outline"]
    return entries, []


def _text_page(page: Any, raw: Any, number: int) -> _Page:
    width, height = page.get_size()
    textpage = page.get_textpage()
    try:
        runs = _page_runs(textpage, raw)
    finally:
        textpage.close()
    return _Page(number, width, height, _order(runs))


@register_parser(PDF, libraries=("pypdfium2",))
def parse_pdf(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse a PDF: text in reading order, titles, lists, tables, banners, attachments.

    Options (``ctx.options``): ``max_pages`` (default 10,000), ``ocr`` (False: never OCR),
    ``ocr_lang`` (default ``eng``) and ``outline`` (False: heads from layout alone, the PDF's
    bookmarks ignored). Raises :class:`ParseFailure`: ``encrypted`` (a user
    password is needed), ``corrupt``, ``too-large`` (too many pages), ``hostile-content``
    (endless nesting).
    """
    import pypdfium2.raw as raw  # type: ignore[import-untyped]

    max_pages_opt = ctx.options.get("max_pages", DEFAULT_MAX_PAGES)
    max_pages = max_pages_opt if isinstance(max_pages_opt, int) else DEFAULT_MAX_PAGES
    lang_opt = ctx.options.get("ocr_lang", "eng")
    lang = lang_opt if isinstance(lang_opt, str) else "eng"
    use_ocr = ctx.options.get("ocr", True) is not False
    use_outline = ctx.options.get("outline", True) is not False
    outline: list[OutlineEntry] = []
    doc = _Doc()
    pdf = _open(data)
    try:
        count = len(pdf)
        if count > max_pages:
            raise ParseFailure("too-large", f"The PDF has {count} pages (limit {max_pages}).")
        meta = pdf.get_metadata_dict(skip_empty=True)
        if use_outline:
            outline, problems = _outline(pdf, count)
            doc.warnings.extend(problems)
        encrypted = raw.FPDF_GetSecurityHandlerRevision(pdf.raw) != -1
        attachments: list[ParsedAttachment] = []
        for a in range(pdf.count_attachments()):
            att = pdf.get_attachment(a)
            name = att.get_name()
            try:
                payload = bytes(att.get_data())
            except Exception:  # a broken embedded file is skipped, not fatal
                doc.warnings.append(f"unreadable-content: attachment {name or a + 1}")
                continue
            attachments.append(
                ParsedAttachment(
                    filename=name or None,
                    data=payload,
                    locator={"part": "attachment", "name": name},
                )
            )
        pages: list[_Page] = []
        no_text: list[int] = []
        notes: list[ParsedElement] = []
        has_form = False
        for index in range(count):
            page = pdf[index]
            try:
                page_notes, widgets = page_annotations(page, raw, index + 1)
                notes.extend(page_notes)
                has_form |= widgets
                parsed = _text_page(page, raw, index + 1)
                chars = sum(len(ln.text.strip()) for ln in parsed.lines)
                if chars < _MIN_TEXT_CHARS and _has_images(page, raw):
                    ocred = (
                        _ocr_page(page, index + 1, parsed.width, parsed.height, lang)
                        if use_ocr
                        else None
                    )
                    if ocred is None:
                        no_text.append(index + 1)
                    else:
                        parsed = ocred
                        if ocred.confidence is not None and ocred.confidence < 60:
                            doc.warnings.append(
                                f"ocr-low-confidence: page {index + 1} mean confidence "
                                f"{ocred.confidence:.0f}"
                            )
                pages.append(parsed)
            finally:
                page.close()
    except ParseFailure:
        raise
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "The PDF nests without end.") from exc
    except Exception as exc:  # PDFium errors mid-document mean a broken file
        raise ParseFailure("corrupt", f"The PDF could not be read ({type(exc).__name__}).") from exc
    finally:
        pdf.close()
    for n in no_text:
        doc.warnings.append(f"no-text-layer: page {n} has no text layer and OCR is unavailable")
        doc.warnings.append(f"unreadable-content: page {n} (an image, OCR unavailable)")
    doc.warnings.extend(_active_content(data, max_pages))
    _emit(pages, doc, outline)
    doc.elements.extend(notes)
    if has_form:
        known = {e.text for e in notes if e.type == ElementType.KEY_VALUE}
        filled, problems = form_fields(data, known)
        doc.elements.extend(filled)
        doc.warnings.extend(problems)
    ocr_pages = [p.number for p in pages if p.method == "ocr"]
    confs = [p.confidence for p in pages if p.confidence is not None]
    metadata: dict[str, Any] = {"pages": count, "encrypted": encrypted}
    for key in ("Subject", "Keywords", "Creator", "Producer"):
        if meta.get(key):
            metadata[key.lower()] = meta[key]
    if ocr_pages:
        metadata["ocr_pages"] = ocr_pages
    return ParsedDocument(
        media_type=PDF,
        elements=tuple(doc.elements),
        title=meta.get("Title") or None,
        author=meta.get("Author") or None,
        created=_pdf_date(meta.get("CreationDate")),
        modified=_pdf_date(meta.get("ModDate")),
        banners=tuple(doc.banners),
        attachments=tuple(attachments),
        metadata=metadata,
        extraction=Extraction(
            method="ocr"
            if ocr_pages and len(ocr_pages) == len(pages)
            else ("text+ocr" if ocr_pages else "native"),
            parser="garrison.pdf",
            parser_version=library_version("pypdfium2"),
            confidence=round(statistics.fmean(confs) / 100, 3) if confs else None,
        ),
        warnings=tuple(doc.warnings),
    )

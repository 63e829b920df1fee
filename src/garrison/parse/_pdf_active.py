"""PDF active content: JavaScript, launch and automatic actions, found with pypdf, never run."""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

from garrison.parse._registry import ParseFailure

#: Depth bound for walking pypdf objects (a hostile file can nest or loop forever).
_MAX_WALK = 64


#: Names whose presence means pypdf must look. ``/OpenAction`` and ``/Next`` are not here: they
#: matter only when they lead to a JavaScript or launch action, and that action's dictionary
#: names ``/S /JavaScript``, ``/JS`` or ``/Launch`` itself.
_ACTIVE_NAMES = frozenset({b"JavaScript", b"JS", b"Launch", b"AA", b"XFA"})
_NAME_END = rb"(?=[\s/<>\[\]()%{}]|$)"
# A whole name (not a prefix: subset fonts are called /AAAAAB+Times) among the active ones.
_ACTIVE_NAME = re.compile(rb"/(?:JavaScript|JS|Launch|AA|XFA)" + _NAME_END)
_OBJSTM_NAME = re.compile(rb"/ObjStm" + _NAME_END)
# A name written with #xx escapes (/J#53 is /JS): decoded before comparing.
_ESCAPED_NAME = re.compile(rb"/([^\s/<>\[\]()%{}]*#[^\s/<>\[\]()%{}]*)")
_HEX_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_NAME = re.compile(rb"/[^\s/<>\[\]()%{}]*")
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[^\s/<>\[\]()%{}]*)")
_STREAM_START = re.compile(rb"stream(?:\r\n|\n|\r)")
#: Decompressed object-stream bytes read at most; a bigger one goes to pypdf.
_MAX_OBJSTM = 64 * 1024 * 1024


def _names_active(text: bytes) -> bool:
    """Whether ``text`` names an active-content key, plainly or with ``#xx`` escapes."""
    if _ACTIVE_NAME.search(text):
        return True
    for m in _ESCAPED_NAME.finditer(text):
        name = _HEX_ESCAPE.sub(lambda h: bytes([int(h.group(1), 16)]), m.group(1))
        if name in _ACTIVE_NAMES or name == b"ObjStm":
            return True
    return False


def _may_hold_active_content(data: bytes) -> bool:
    """False only when no dictionary in the file can name JavaScript, launch or auto actions.

    Dictionaries are either plain bytes in the file or packed in Flate-compressed object
    streams (``/ObjStm``), which are inflated here; keys are never encrypted. Anything this
    cheap check cannot read (another filter, predictors, a broken or huge stream) is left to
    the pypdf scan, which costs far more than parsing a text page: most PDFs skip it.
    """
    import zlib

    if _names_active(data):
        return True
    view = memoryview(data)
    for m in _OBJSTM_NAME.finditer(data):
        start = _STREAM_START.search(data, m.end())
        if start is None:
            return True
        head = data[data.rfind(b"<<", 0, m.start()) : start.start()]
        filters = _FILTER.search(head)
        if filters is None or b"/DecodeParms" in head:
            return True
        if _NAME.findall(filters.group(1)) != [b"/FlateDecode"]:
            return True
        # Fed in chunks until the deflate stream ends: no /Length to trust, and no copy of
        # the rest of the file per object stream.
        inflate = zlib.decompressobj()
        body = bytearray()
        pos = start.end()
        try:
            while not inflate.eof and pos < len(view) and len(body) <= _MAX_OBJSTM:
                body += inflate.decompress(view[pos : pos + 65536], _MAX_OBJSTM)
                if inflate.unconsumed_tail:
                    return True
                pos += 65536
        except zlib.error:
            return True
        if not inflate.eof or len(body) > _MAX_OBJSTM or _names_active(bytes(body)):
            return True
    return False


def _active_content(data: bytes, max_pages: int) -> list[str]:
    """``active-content`` warnings for JavaScript, launch and automatic actions (never run)."""
    if not _may_hold_active_content(data):
        return []
    from pypdf import PdfReader
    from pypdf.generic import ArrayObject, DictionaryObject

    found: list[str] = []

    def note(what: str) -> None:
        if f"active-content: {what}" not in found:
            found.append(f"active-content: {what}")

    def action(obj: Any, where: str, depth: int = 0) -> None:
        obj = obj.get_object() if hasattr(obj, "get_object") else obj
        if depth > _MAX_WALK:
            return
        if isinstance(obj, ArrayObject):
            for item in obj:
                action(item, where, depth + 1)
            return
        if not isinstance(obj, DictionaryObject):
            return
        kind = obj.get("/S")
        if kind == "/JavaScript" or "/JS" in obj:
            note(f"a JavaScript action ({where})")
        elif kind == "/Launch":
            note(f"a launch action ({where})")
        if "/Next" in obj:
            action(obj["/Next"], where, depth + 1)

    def additional(obj: Any, where: str) -> None:
        aa = obj.get("/AA")
        if aa is not None:
            aa = aa.get_object()
            note(f"automatic actions ({where})")
            if isinstance(aa, DictionaryObject):
                for value in aa.values():
                    action(value, where)

    with warnings.catch_warnings():
        # pypdf warns about every repairable defect; the file already opened in PDFium.
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                reader.decrypt("")
            root: Any = reader.trailer["/Root"].get_object()
            if "/OpenAction" in root:
                action(root["/OpenAction"], "on open")
            additional(root, "document")
            names = root.get("/Names")
            if names is not None and "/JavaScript" in names.get_object():
                note("document-level JavaScript")
            if "/AcroForm" in root:
                form = root["/AcroForm"].get_object()
                if "/XFA" in form:
                    note("an XFA form (may hold scripts)")
                    # Its fields live in XML packets Garrison does not read.
                    found.append("unreadable-content: XFA form data")
            for n, page in enumerate(reader.pages, start=1):
                if n > max_pages:
                    break
                additional(page, f"page {n}")
                annots = page.get("/Annots")
                annots = annots.get_object() if annots is not None else None
                if isinstance(annots, ArrayObject):
                    for annot in annots:
                        annot = annot.get_object()
                        if isinstance(annot, DictionaryObject):
                            if "/A" in annot:
                                action(annot["/A"], f"page {n}")
                            additional(annot, f"page {n}")
        except RecursionError as exc:
            raise ParseFailure(
                "hostile-content", "The PDF's object structure nests without end."
            ) from exc
        except ParseFailure:
            raise
        except Exception as exc:  # PDFium read the file; pypdf choking is not fatal
            found.append(f"scan-incomplete: active-content scan stopped ({type(exc).__name__})")
    return found

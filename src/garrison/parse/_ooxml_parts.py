"""Parts of an OOXML package that the document libraries do not read, read from the zip.

python-docx and openpyxl (read-only) skip DOCX text boxes, tracked deletions, comments,
footnotes and endnotes, and XLSX comments, headers, footers and drawing text; a mark in any of
them is seen by a reader all the same. Each text found here becomes an element whose locator
names its part, so the marking rules find its marks. An embedded OLE object or package
(``*/embeddings/*``) cannot be read at all: it becomes a warning ``unreadable-content: <part>``.

The zip has passed :func:`garrison.parse.office.check_zip` before anything here opens it;
the XML parser resolves no entities and reaches no network.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from garrison.core.records import ElementType, ParsedElement

__all__ = [
    "OoxmlExtras",
    "docx_blocks",
    "docx_cell_text",
    "docx_extras",
    "docx_text",
    "embedded_warnings",
    "graphic_parts",
    "header_footer_lines",
    "pptx_extras",
    "xlsx_extras",
]

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_V = "urn:schemas-microsoft-com:vml"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PR = "http://schemas.openxmlformats.org/package/2006/relationships"
_TC = "http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments"

#: Largest part read (declared size); the zip check bounds the total already.
_MAX_PART = 64 * 1024 * 1024
_NOTE_SKIP = frozenset({"separator", "continuationSeparator", "continuationNotice"})
#: Header/footer codes (``&P``, ``&"Arial,Bold"``, ``&12``, ``&KFF0000``); ``&&`` is an ``&``.
_HF_CODE = re.compile(r'&"[^"]*"|&K[0-9A-Fa-f]{6}|&K\d\d[+-]\d{3}|&\d+|&[A-Za-z]')
_HF_SECTION = re.compile(r"&[LCR]")


@dataclass
class OoxmlExtras:
    """What the extra parts yielded: elements, banner candidate lines, warnings."""

    elements: list[ParsedElement] = field(default_factory=list)
    header_lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _parser() -> Any:
    from lxml import etree  # type: ignore[import-untyped]

    return etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False
    )


def _read_xml(zf: zipfile.ZipFile, name: str) -> Any | None:
    """The parsed root of member ``name``, or None when absent, too large or not XML."""
    from lxml import etree

    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > _MAX_PART:
        return None
    try:
        return etree.fromstring(zf.read(info), _parser())
    except (etree.XMLSyntaxError, ValueError, OSError, zipfile.BadZipFile):
        return None


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _in_fallback(el: Any) -> bool:
    """Whether ``el`` sits in an ``mc:Fallback`` (a second rendering of the same content)."""
    parent = el.getparent()
    while parent is not None:
        if parent.tag == _q(_MC, "Fallback"):
            return True
        parent = parent.getparent()
    return False


def _w_paragraph_text(p: Any) -> str:
    """Text of a ``w:p``: runs' text, tabs and line breaks (not nested text boxes)."""
    parts: list[str] = []
    for el in p.iter(_q(_W, "t"), _q(_W, "tab"), _q(_W, "br"), _q(_W, "cr")):
        if _nearest(el, _q(_W, "p")) is not p:
            continue  # inside a text box anchored in this paragraph: read on its own
        if el.tag == _q(_W, "t"):
            parts.append(el.text or "")
        elif el.tag == _q(_W, "tab"):
            parts.append("\t")
        else:
            parts.append("\n")
    return "".join(parts).strip()


def _nearest(el: Any, tag: str) -> Any | None:
    parent = el.getparent()
    while parent is not None and parent.tag != tag:
        parent = parent.getparent()
    return parent


def _w_paragraphs(root: Any) -> Iterator[str]:
    for p in root.iter(_q(_W, "p")):
        text = _w_paragraph_text(p)
        if text:
            yield text


def _element(kind: ElementType, text: str, locator: dict[str, Any]) -> ParsedElement:
    return ParsedElement(type=kind, text=text, locator=locator)


_GRAPHIC_PART = re.compile(r"(?:word|ppt|xl)/(diagrams/data|charts/chart)\d*\.xml")


def graphic_parts(zf: zipfile.ZipFile, extras: OoxmlExtras) -> None:
    """Text of SmartArt diagrams and charts (titles, labels), which the libraries skip."""
    for name in sorted(zf.namelist()):
        m = _GRAPHIC_PART.fullmatch(name)
        if m is None:
            continue
        root = _read_xml(zf, name)
        if root is None:
            extras.warnings.append(f"unreadable-content: {name}")
            continue
        part = "diagram" if m.group(1).startswith("diagrams") else "chart"
        for text in _drawing_paragraphs(root):
            extras.elements.append(
                _element(ElementType.NARRATIVE_TEXT, text, {"part": part, "in": name})
            )


# -- DOCX text python-docx does not read -----------------------------------------------------------

_DOCX_SKIPPED_RUNS = ("del", "moveFrom", "txbxContent", "Fallback")


def docx_text(p: Any) -> str:
    """A ``w:p``'s text as a reader sees it: its runs, also those inside tracked insertions,
    smart tags, fields, content controls and hyperlinks (python-docx reads only direct runs);
    not deleted runs (read on their own) nor text boxes anchored here (read on their own)."""
    from docx.oxml.ns import qn

    parts: list[str] = []
    for run in p.iter(qn("w:r")):
        parent = run.getparent()
        skip = False
        while parent is not None and parent is not p:
            if str(parent.tag).rsplit("}", 1)[-1] in _DOCX_SKIPPED_RUNS or parent.tag == qn("w:p"):
                skip = True
                break
            parent = parent.getparent()
        if not skip:
            parts.append(str(run.text) if hasattr(run, "text") else "")
    return "".join(parts)


def docx_cell_text(tc: Any) -> str:
    """Every paragraph of a cell, nested tables included (python-docx skips them)."""
    from docx.oxml.ns import qn

    texts = []
    for p in tc.iter(qn("w:p")):
        parent = p.getparent()
        boxed = False
        while parent is not None and parent is not tc:
            if str(parent.tag).rsplit("}", 1)[-1] in ("txbxContent", "Fallback"):
                boxed = True
                break
            parent = parent.getparent()
        if not boxed:
            texts.append(docx_text(p))
    return "\n".join(texts)


def docx_blocks(container: Any) -> Iterator[Any]:
    """Block children (``w:p``, ``w:tbl``) of the body, inside content controls too."""
    from docx.oxml.ns import qn

    for child in container.iterchildren():
        if child.tag in (qn("w:p"), qn("w:tbl")):
            yield child
        elif child.tag == qn("w:sdt"):
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from docx_blocks(content)
        elif child.tag == qn("w:customXml"):
            yield from docx_blocks(child)


def embedded_warnings(zf: zipfile.ZipFile) -> list[str]:
    """``unreadable-content`` for each embedded object or package (OLE, nested Office file)."""
    warnings: list[str] = []
    for name in zf.namelist():
        if "/embeddings/" in name and not name.endswith("/"):
            warnings.append(f"unreadable-content: embedded object {name}")
    return warnings


def _text_boxes(root: Any) -> Iterator[tuple[int, str]]:
    """Paragraphs of every text box in ``root`` (each box once: fallback copies skipped)."""
    for number, box in enumerate(
        (b for b in root.iter(_q(_W, "txbxContent")) if not _in_fallback(b)), 1
    ):
        for text in _w_paragraphs(box):
            yield number, text


def _deleted_text(root: Any) -> Iterator[str]:
    """Per paragraph, the text of its tracked deletions (shown to a reviewer in markup view)."""
    for p in root.iter(_q(_W, "p")):
        if _in_fallback(p):
            continue
        parts = [t.text or "" for t in p.iter(_q(_W, "delText")) if _nearest(t, _q(_W, "p")) is p]
        text = "".join(parts).strip()
        if text:
            yield text


def _vml_text(root: Any) -> Iterator[str]:
    """WordArt and watermark strings (``v:textpath/@string``), often a banner in a header."""
    for path in root.iter(_q(_V, "textpath")):
        if _in_fallback(path):
            continue
        value = (path.get("string") or "").strip()
        if value:
            yield value


def docx_extras(data: bytes) -> OoxmlExtras:
    """DOCX text boxes (body, headers, footers), tracked deletions, comments, footnotes,
    endnotes, watermarks."""
    import io

    extras = OoxmlExtras()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        body = _read_xml(zf, "word/document.xml")
        if body is not None:
            for number, text in _text_boxes(body):
                extras.elements.append(
                    _element(ElementType.NARRATIVE_TEXT, text, {"part": "text-box", "box": number})
                )
            for text in _deleted_text(body):
                extras.elements.append(
                    _element(ElementType.NARRATIVE_TEXT, text, {"part": "tracked-deletion"})
                )
        for name in sorted(n for n in names if re.fullmatch(r"word/(header|footer)\d*\.xml", n)):
            root = _read_xml(zf, name)
            if root is None:
                continue
            kind = ElementType.FOOTER if "footer" in name else ElementType.HEADER
            for number, text in _text_boxes(root):
                extras.header_lines.extend(text.splitlines())
                extras.elements.append(
                    _element(kind, text, {"part": "text-box", "box": number, "in": name})
                )
            for text in _vml_text(root):
                extras.header_lines.append(text)
                extras.elements.append(_element(kind, text, {"part": "watermark", "in": name}))
        for name, part, tag in (
            ("word/comments.xml", "comment", "comment"),
            ("word/footnotes.xml", "footnote", "footnote"),
            ("word/endnotes.xml", "endnote", "endnote"),
        ):
            root = _read_xml(zf, name)
            if root is None:
                if name in names:
                    extras.warnings.append(f"unreadable-content: {name}")
                continue
            for note in root.iter(_q(_W, tag)):
                if note.get(_q(_W, "type")) in _NOTE_SKIP:
                    continue
                locator: dict[str, Any] = {"part": part, "id": note.get(_q(_W, "id"))}
                for text in _w_paragraphs(note):
                    extras.elements.append(_element(ElementType.NARRATIVE_TEXT, text, locator))
        graphic_parts(zf, extras)
        extras.warnings.extend(embedded_warnings(zf))
    return extras


_PPT_COMMENT = re.compile(r"ppt/comments/(?:comment|modernComment)[^/]*\.xml")


def pptx_extras(data: bytes) -> OoxmlExtras:
    """PPTX comments (legacy and modern), SmartArt and chart text, embedded objects."""
    import io

    extras = OoxmlExtras()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in sorted(n for n in zf.namelist() if _PPT_COMMENT.fullmatch(n)):
            root = _read_xml(zf, name)
            if root is None:
                extras.warnings.append(f"unreadable-content: {name}")
                continue
            texts: list[str] = []
            for el in root.iter():
                tag = str(el.tag)
                # Legacy comments hold <p:text>; modern ones a DrawingML body (<a:p>).
                if tag.endswith("}text") and (el.text or "").strip():
                    texts.append((el.text or "").strip())
            texts.extend(_drawing_paragraphs(root))
            for text in texts:
                extras.elements.append(
                    _element(ElementType.NARRATIVE_TEXT, text, {"part": "comment", "in": name})
                )
        graphic_parts(zf, extras)
        extras.warnings.extend(embedded_warnings(zf))
    return extras


# -- XLSX ----------------------------------------------------------------------------------------


def header_footer_lines(value: str) -> list[str]:
    """The visible text of an XLSX header/footer string: one line per section (&L &C &R)."""
    lines: list[str] = []
    for section in _HF_SECTION.split(value.replace("&&", "\x00")):
        text = _HF_CODE.sub("", section).replace("\x00", "&")
        for line in text.splitlines():
            if line.strip():
                lines.append(" ".join(line.split()))
    return lines


def _rels(zf: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """Relationship id -> (type, resolved target member) of ``part``."""
    folder, base = posixpath.split(part)
    root = _read_xml(zf, posixpath.join(folder, "_rels", base + ".rels"))
    found: dict[str, tuple[str, str]] = {}
    if root is None:
        return found
    for rel in root.iter(_q(_PR, "Relationship")):
        target = rel.get("Target") or ""
        if rel.get("TargetMode") == "External" or not target:
            continue
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        found[rel.get("Id") or ""] = (rel.get("Type") or "", posixpath.normpath(resolved))
    return found


def _sheets(zf: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, worksheet member) in workbook order."""
    root = _read_xml(zf, "xl/workbook.xml")
    if root is None:
        return []
    rels = _rels(zf, "xl/workbook.xml")
    sheets: list[tuple[str, str]] = []
    for sheet in root.iter(_q(_S, "sheet")):
        rid = sheet.get(_q(_R, "id")) or ""
        if rid in rels:
            sheets.append((sheet.get("name") or "", rels[rid][1]))
    return sheets


def _s_text(el: Any) -> str:
    """Text of a spreadsheet rich-text container (``t`` and runs' ``t``, not phonetics)."""
    parts = [
        t.text or ""
        for t in el.iter(_q(_S, "t"))
        if t.getparent() is not None and t.getparent().tag != _q(_S, "rPh")
    ]
    return "".join(parts).strip()


def _drawing_paragraphs(root: Any) -> Iterator[str]:
    for p in root.iter(_q(_A, "p")):
        text = "".join(t.text or "" for t in p.iter(_q(_A, "t"))).strip()
        if text:
            yield text


def xlsx_extras(data: bytes) -> OoxmlExtras:
    """XLSX headers and footers, comments (legacy and threaded) and drawing text, per sheet."""
    import io

    extras = OoxmlExtras()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        seen: set[str] = set()
        for sheet, member in _sheets(zf):
            root = _read_xml(zf, member)
            if root is None:
                continue
            for hf in root.iter(_q(_S, "headerFooter")):
                for child in hf:
                    tag = str(child.tag).rsplit("}", 1)[-1]
                    lines = header_footer_lines(child.text or "")
                    if not lines:
                        continue
                    kind = ElementType.FOOTER if "Footer" in tag else ElementType.HEADER
                    extras.header_lines.extend(lines)
                    extras.elements.append(
                        _element(kind, "\n".join(lines), {"sheet": sheet, "part": tag})
                    )
            for rtype, target in _rels(zf, member).values():
                if target in seen:
                    continue
                seen.add(target)
                extras.elements.extend(_xlsx_related(zf, sheet, rtype, target, extras))
        graphic_parts(zf, extras)
        extras.warnings.extend(embedded_warnings(zf))
    return extras


def _xlsx_related(
    zf: zipfile.ZipFile, sheet: str, rtype: str, target: str, extras: OoxmlExtras
) -> list[ParsedElement]:
    kind = rtype.rsplit("/", 1)[-1]
    if kind not in ("comments", "threadedComment", "drawing"):
        return []
    root = _read_xml(zf, target)
    if root is None:
        if target in zf.namelist():
            extras.warnings.append(f"unreadable-content: {target}")
        return []
    found: list[ParsedElement] = []
    if kind == "comments":
        for comment in root.iter(_q(_S, "comment")):
            text = _s_text(comment)
            if text:
                locator = {"sheet": sheet, "part": "comment", "cell": comment.get("ref")}
                found.append(_element(ElementType.NARRATIVE_TEXT, text, locator))
    elif kind == "threadedComment":
        for comment in root.iter(_q(_TC, "threadedComment")):
            text = "".join(t.text or "" for t in comment.iter(_q(_TC, "text"))).strip()
            if text:
                locator = {"sheet": sheet, "part": "comment", "cell": comment.get("ref")}
                found.append(_element(ElementType.NARRATIVE_TEXT, text, locator))
    else:
        for text in _drawing_paragraphs(root):
            found.append(
                _element(ElementType.NARRATIVE_TEXT, text, {"sheet": sheet, "part": "drawing"})
            )
    return found

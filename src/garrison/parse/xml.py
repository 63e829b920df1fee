"""XML parser (``defusedxml``): hostile constructs are refused, never expanded.

Entity declarations (billion laughs, external entities) and external references make the
file ``hostile-content``. Each element holding text becomes a NarrativeText element located
by an XPath; an element with mixed content (text around child elements) is kept whole.
"""

from __future__ import annotations

from typing import Any

from garrison.core.records import ElementType, Extraction, ParsedDocument, ParsedElement
from garrison.parse._registry import ParseContext, ParseFailure, register_parser
from garrison.parse._text import split_long_lines

__all__ = ["parse_xml"]

_TITLE_TAGS = frozenset({"title", "heading", "head", "h1", "h2", "h3", "h4", "h5", "h6"})


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _clean(text: str) -> str:
    return " ".join(text.split())


class _Collector:
    def __init__(self, max_line_chars: int) -> None:
        self.elements: list[ParsedElement] = []
        self.title: str | None = None
        self.max_line_chars = max_line_chars

    def emit(self, el: Any, xpath: str, text: str) -> None:
        text = split_long_lines(text, self.max_line_chars)
        name = _local(el.tag).lower()
        is_title = name in _TITLE_TAGS
        if is_title and self.title is None:
            self.title = text
        fields = {_local(k): v for k, v in el.attrib.items()}
        self.elements.append(
            ParsedElement(
                type=ElementType.TITLE if is_title else ElementType.NARRATIVE_TEXT,
                text=text,
                locator={"xpath": xpath},
                fields=fields,
            )
        )

    def walk(self, el: Any, xpath: str) -> None:
        children = list(el)
        own = (el.text or "").strip()
        tails = any((c.tail or "").strip() for c in children)
        if not children or (own and children) or tails:
            text = _clean("".join(el.itertext()))
            if text:
                self.emit(el, xpath, text)
            return
        counts: dict[str, int] = {}
        for child in children:
            name = _local(child.tag)
            counts[name] = counts.get(name, 0) + 1
        seen: dict[str, int] = {}
        for child in children:
            name = _local(child.tag)
            if not name:
                continue
            seen[name] = seen.get(name, 0) + 1
            step = f"{name}[{seen[name]}]" if counts[name] > 1 else name
            self.walk(child, f"{xpath}/{step}")


@register_parser("application/xml", "text/xml")
def parse_xml(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse XML safely into text elements (locator ``xpath``)."""
    from xml.etree.ElementTree import ParseError

    import defusedxml  # type: ignore[import-untyped]
    import defusedxml.ElementTree as safe_et  # type: ignore[import-untyped]

    try:
        root = safe_et.fromstring(
            data, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise ParseFailure(
            "hostile-content", "the XML declares entities or external references"
        ) from exc
    except ParseError as exc:
        raise ParseFailure("corrupt", "the XML is not well-formed") from exc
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "the XML is nested too deeply") from exc

    collector = _Collector(ctx.max_line_chars)
    try:
        collector.walk(root, "/" + _local(root.tag))
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "the XML is nested too deeply") from exc
    return ParsedDocument(
        media_type=ctx.media_type if ctx.media_type.endswith("xml") else "application/xml",
        elements=tuple(collector.elements),
        title=collector.title,
        metadata={"root": _local(root.tag)},
        extraction=Extraction(
            method="xml", parser="garrison.xml", parser_version=defusedxml.__version__
        ),
    )

"""JSON and JSON Lines parser.

An object whose values are all scalars (or lists of scalars) is one Record element with its
``fields``; other objects and arrays are walked, and each non-empty string leaf becomes a
NarrativeText element. Every element is located by its JSON pointer (RFC 6901).
"""

from __future__ import annotations

import json
from typing import Any

from garrison.core.records import ElementType, Extraction, ParsedDocument, ParsedElement
from garrison.parse._registry import ParseContext, ParseFailure, register_parser
from garrison.parse._text import decode_text, split_long_lines

__all__ = ["parse_json"]

_SCALARS = (str, int, float, bool, type(None))


def _pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _is_flat(obj: dict[str, Any]) -> bool:
    return bool(obj) and all(
        isinstance(v, _SCALARS) or (isinstance(v, list) and all(isinstance(x, _SCALARS) for x in v))
        for v in obj.values()
    )


def _record_text(obj: dict[str, Any]) -> str:
    lines = []
    for key, value in obj.items():
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        lines.append(f"{key}: {shown}")
    return "\n".join(lines)


class _Walker:
    def __init__(self, max_line_chars: int) -> None:
        self.elements: list[ParsedElement] = []
        self.max_line_chars = max_line_chars

    def walk(self, value: Any, parts: list[str], extra: dict[str, Any]) -> None:
        locator = {**extra, "json_pointer": _pointer(parts)}
        if isinstance(value, dict):
            if _is_flat(value):
                self.elements.append(
                    ParsedElement(
                        type=ElementType.RECORD,
                        text=split_long_lines(_record_text(value), self.max_line_chars),
                        fields=value,
                        locator=locator,
                    )
                )
                return
            for key, child in value.items():
                self.walk(child, [*parts, str(key)], extra)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                self.walk(child, [*parts, str(index)], extra)
        elif isinstance(value, str) and value.strip():
            fields = {"key": parts[-1]} if parts and not parts[-1].isdigit() else {}
            self.elements.append(
                ParsedElement(
                    type=ElementType.NARRATIVE_TEXT,
                    text=split_long_lines(value.strip(), self.max_line_chars),
                    fields=fields,
                    locator=locator,
                )
            )


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "the JSON is nested too deeply") from exc
    except ValueError as exc:
        raise ParseFailure("corrupt", "the JSON is not valid") from exc


@register_parser("application/json", "application/x-ndjson", "application/jsonl")
def parse_json(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse JSON or JSON Lines into Record / NarrativeText elements (locator ``json_pointer``)."""
    # Decode without splitting long lines: that would break the JSON syntax.
    text, encoding = decode_text(data, max_line_chars=0)
    walker = _Walker(ctx.max_line_chars)
    lines_mode = ctx.media_type in ("application/x-ndjson", "application/jsonl")
    try:
        if not lines_mode:
            try:
                value = json.loads(text)
            except ValueError:
                lines_mode = True  # maybe JSON Lines despite the declared type
            else:
                walker.walk(value, [], {})
        if lines_mode:
            index = 0
            for lineno, line in enumerate(text.split("\n"), start=1):
                if not line.strip():
                    continue
                walker.walk(_loads(line), [str(index)], {"line": lineno})
                index += 1
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "the JSON is nested too deeply") from exc
    return ParsedDocument(
        media_type="application/x-ndjson" if lines_mode else "application/json",
        elements=tuple(walker.elements),
        metadata={"encoding": encoding},
        extraction=Extraction(method="json", parser="garrison.json", parser_version="1"),
    )

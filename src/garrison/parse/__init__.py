"""Parsers: bytes of one file -> a :class:`~garrison.core.records.ParsedDocument`.

Pure functions over bytes (no file system, no network). The media type is detected from the
content, never from the extension alone. Heavy libraries are imported inside each parser.
Parsers register by media type (``register_parser``); plugins use the ``garrison.parsers``
entry-point group.
"""

from garrison.parse._registry import (
    ParseContext,
    ParseFailure,
    Parser,
    parser_for,
    register_parser,
    registered_media_types,
)

__all__ = [
    "ParseContext",
    "ParseFailure",
    "Parser",
    "parser_for",
    "register_parser",
    "registered_media_types",
]

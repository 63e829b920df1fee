"""Parsers: bytes of one file -> a :class:`~garrison.core.records.ParsedDocument`.

Pure functions over bytes (no file system, no network). The media type is detected from the
content, never from the extension alone. Heavy libraries are imported inside each parser.
Parsers register by media type (``register_parser``); plugins use the ``garrison.parsers``
entry-point group.
"""

from garrison.core.records import ParsedDocument
from garrison.parse._registry import (
    PARSER_LIBRARIES,
    ParseContext,
    ParseFailure,
    Parser,
    library_version,
    parser_for,
    register_parser,
    registered_media_types,
    warm_up,
)
from garrison.parse.detect import detect_media_type

__all__ = [
    "PARSER_LIBRARIES",
    "ParseContext",
    "ParseFailure",
    "Parser",
    "detect_media_type",
    "library_version",
    "parse_bytes",
    "parser_for",
    "register_parser",
    "registered_media_types",
    "warm_up",
]


def parse_bytes(data: bytes, filename: str | None = None, **options: object) -> ParsedDocument:
    """Detect the media type of ``data`` and parse it with the registered parser.

    ``options`` go to the parser in ``ParseContext.options`` (``max_line_chars`` sets the
    context's line limit). Raises :class:`ParseFailure` (``corrupt`` for an empty file,
    ``unsupported-type`` when no parser handles the detected type, or the parser's own code).
    """
    if not data:
        raise ParseFailure("corrupt", "the file is empty")
    media_type = detect_media_type(data, filename)
    parser = parser_for(media_type)
    if parser is None:
        raise ParseFailure("unsupported-type", f"no parser for {media_type}")
    max_line = options.pop("max_line_chars", None)
    ctx = ParseContext(filename=filename, media_type=media_type, options=dict(options))
    if isinstance(max_line, int):
        ctx = ParseContext(
            filename=filename,
            media_type=media_type,
            max_line_chars=max_line,
            options=dict(options),
        )
    return parser(data, ctx)


# Built-in parsers register themselves on import.
from garrison.parse import (  # noqa: E402, F401
    _office_convert,
    archive,
    html,
    json,
    tabular,
    text,
    xml,
)
from garrison.parse import image as _image  # noqa: E402, F401
from garrison.parse import mail as _mail  # noqa: E402, F401
from garrison.parse import office as _office  # noqa: E402, F401
from garrison.parse import pdf as _pdf  # noqa: E402, F401

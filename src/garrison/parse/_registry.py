"""The parser registry: media type -> parser. Built-ins register exactly as plugins do."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, version

from garrison.core.errors import InvalidInput
from garrison.core.records import ParsedDocument

__all__ = [
    "PARSER_LIBRARIES",
    "ParseContext",
    "ParseFailure",
    "Parser",
    "library_version",
    "parser_for",
    "register_parser",
    "registered_media_types",
    "warm_up",
]

#: Distribution -> module of every library a built-in parser imports lazily.
PARSER_LIBRARIES = {
    "charset-normalizer": "charset_normalizer",
    "markdown-it-py": "markdown_it",
    "lxml": "lxml.html",
    "defusedxml": "defusedxml.ElementTree",
    "python-docx": "docx",
    "python-pptx": "pptx",
    "openpyxl": "openpyxl",
    "python-oxmsg": "oxmsg",
    "pyarrow": "pyarrow.parquet",
    "py7zr": "py7zr",
    "pillow": "PIL.Image",
    "pi-heif": "pi_heif",
    "pytesseract": "pytesseract",
    "pypdfium2": "pypdfium2",
    "pypdf": "pypdf",
}


@functools.cache
def library_version(dist: str) -> str:
    """Installed version of a parser library (cached: reading package metadata is slow)."""
    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover - only in odd installs
        return "unknown"


def warm_up(media_types: Iterable[str] | None = None) -> None:
    """Import parser libraries and cache their versions, once, in this process.

    Parsers run in forked worker processes; whatever the parent has already imported, each
    child gets for free instead of importing it again. With ``media_types``, only the libraries
    the parsers of those types always use are imported (a job of PDFs needs PDFium, not Office,
    Arrow or Tesseract: together they take seconds to import); a library a parser needs only
    sometimes (OCR, an attachment of another type) is imported by the worker that needs it.
    Without, every parser library is.
    """
    _load_plugins()
    if media_types is None:
        modules = list(PARSER_LIBRARIES.values())
    else:
        modules = list(dict.fromkeys(m for t in media_types for m in _LIBRARIES.get(t, ())))
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:  # an optional library (pyarrow): its parser says what to install
            continue
    for dist, module in PARSER_LIBRARIES.items():
        if module in modules:
            library_version(dist)


class ParseFailure(InvalidInput):
    """A file cannot be parsed. ``reason`` is a quarantine reason code.

    Codes: ``encrypted``, ``corrupt``, ``unsupported-type``, ``too-large``, ``hostile-content``.
    ``detail`` is one sentence for stewards; it never quotes the file's content.
    """

    code = "parse-failure"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[ParseFailure], tuple[str, str]]:
        # Parsers run in worker processes: the failure must travel back whole.
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True)
class ParseContext:
    """What a parser may know besides the bytes."""

    filename: str | None = None
    media_type: str = "application/octet-stream"
    #: Longest single line a text parser accepts before it wraps (guards against huge lines).
    max_line_chars: int = 1_000_000
    options: dict[str, object] = field(default_factory=dict)


Parser = Callable[[bytes, ParseContext], ParsedDocument]

_PARSERS: dict[str, Parser] = {}
#: Media type -> modules its parser imports on every call.
_LIBRARIES: dict[str, tuple[str, ...]] = {}
_plugins_loaded = False


def register_parser(*media_types: str, libraries: Sequence[str] = ()) -> Callable[[Parser], Parser]:
    """Decorator: register ``fn`` as the parser of ``media_types`` (later registrations win).

    ``libraries`` are the modules the parser imports on every call, for :func:`warm_up`.
    """

    def decorate(fn: Parser) -> Parser:
        for media_type in media_types:
            _PARSERS[media_type] = fn
            _LIBRARIES[media_type] = tuple(libraries)
        return fn

    return decorate


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group="garrison.parsers"):
        ep.load()  # importing the module runs its @register_parser decorators


def parser_for(media_type: str) -> Parser | None:
    """The parser registered for ``media_type``, or None."""
    _load_plugins()
    return _PARSERS.get(media_type)


def registered_media_types() -> list[str]:
    """Every media type with a parser."""
    _load_plugins()
    return sorted(_PARSERS)

"""The parser registry: media type -> parser. Built-ins register exactly as plugins do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from garrison.core.records import ParsedDocument

__all__ = [
    "ParseContext",
    "ParseFailure",
    "Parser",
    "parser_for",
    "register_parser",
    "registered_media_types",
]


class ParseFailure(Exception):
    """A file cannot be parsed. ``reason`` is a quarantine reason code.

    Codes: ``encrypted``, ``corrupt``, ``unsupported-type``, ``too-large``, ``hostile-content``.
    ``detail`` is one sentence for stewards; it never quotes the file's content.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
_plugins_loaded = False


def register_parser(*media_types: str) -> Callable[[Parser], Parser]:
    """Decorator: register ``fn`` as the parser of ``media_types`` (later registrations win)."""

    def decorate(fn: Parser) -> Parser:
        for media_type in media_types:
            _PARSERS[media_type] = fn
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

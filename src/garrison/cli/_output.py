"""Output helpers: Rich for people, plain lines for pipes, exactly one JSON document for --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["emit_json", "emit_table", "err_console", "highlighted", "out_console"]

out_console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout and nothing else."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def emit_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None
) -> None:
    """A Rich table on a terminal; tab-separated lines with a header row otherwise."""
    if not out_console.is_terminal:
        sys.stdout.write("\t".join(columns) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(_plain(v) for v in row) + "\n")
        return
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(v if isinstance(v, Text) else _plain(v) for v in row))
    out_console.print(table)


def _plain(value: Any) -> str:
    if value is None:
        return ""
    return value.plain if isinstance(value, Text) else str(value)


def highlighted(snippet: str) -> Text:
    """A search snippet with its ``**term**`` highlights in bold and the markers dropped (an
    unpaired marker stays as typed). Plain output (pipes) gets the text without markers."""
    parts = snippet.split("**")
    if len(parts) % 2 == 0:  # an odd number of markers: the last one is literal text
        parts[-2:] = [parts[-2] + "**" + parts[-1]]
    text = Text()
    for n, part in enumerate(parts):
        text.append(part, style="bold" if n % 2 else None)
    return text

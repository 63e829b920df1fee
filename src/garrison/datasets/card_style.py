"""The look shared by Garrison's cards (dataset cards, model cards): escaping, tables, banners.

Markdown text has ``&<>`` turned into entities (a Markdown renderer would pass raw HTML
through), pipes and newlines escaped so tables hold; HTML text is escaped everywhere, quotes
included. A card's banner is its marking in the conventional colours
(:mod:`garrison.datasets.banner_colors`), drawn at the top and the bottom of the page.
"""

from __future__ import annotations

import html
from typing import Any

from garrison.datasets.banner_colors import banner_style
from garrison.security.markings import Marking

__all__ = [
    "CARD_CSS",
    "banner_facts",
    "html_banner",
    "html_table",
    "html_text",
    "md_banner",
    "md_table",
    "md_text",
]

#: Inline CSS of a self-contained card page.
CARD_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff;line-height:1.4}
main{max-width:60rem;margin:0 auto;padding:1rem}
.banner{width:100%;text-align:center;font-weight:bold;padding:.3rem 0;letter-spacing:.05em}
table{border-collapse:collapse;margin:.5rem 0 1rem}
caption{text-align:left;font-weight:bold;padding:.25rem 0}
th,td{border:1px solid #767676;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}
.pass{color:#1b5e20}.fail{color:#b00020}
svg{display:block;margin:.5rem 0 1rem}
"""


def banner_facts(marking: Marking) -> dict[str, str]:
    """A card's ``banner``: the marking's banner text and its background and text colours."""
    style = banner_style(marking)
    return {"text": marking.banner(), "background": style.background, "foreground": style.color}


def md_text(value: Any) -> str:
    """Text for Markdown: pipes and newlines would break a table, and raw HTML would pass
    through a Markdown renderer, so ``&<>`` become entities (which render as the characters)."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (every cell escaped) and the blank line after it."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def md_banner(banner: dict[str, Any]) -> str:
    """The banner line of a Markdown card (its first and last line)."""
    return f"**{md_text(banner['text'])}**"


def html_text(value: Any) -> str:
    """``value`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def html_table(caption: str, headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table with a caption, every cell escaped."""
    head = "".join(f'<th scope="col">{html_text(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        f"<table><caption>{html_text(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def html_banner(banner: dict[str, Any]) -> str:
    """The coloured banner bar of an HTML card (at its top and bottom)."""
    text = html_text(banner["text"])
    return (
        f'<div class="banner" role="note" aria-label="Classification: {text}" '
        f'style="background:{html_text(banner["background"])};'
        f'color:{html_text(banner["foreground"])}">{text}</div>'
    )

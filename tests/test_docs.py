"""The documentation is checked against the code: commands, marking rules and links.

- every command path of ``garrison`` (``garrison user add``...) appears in docs/cli.md;
- every marking rule id (``MARKING_RULES``) appears in docs/markings.md;
- every relative link in README.md and docs/*.md points to a file that exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from garrison.cli.main import app
from garrison.security.markings import MARKING_RULES

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DOC_FILES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]

# [text](target) -- the target up to the first space or ")" (a title may follow a space).
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:...


def _command_paths(command: Any, prefix: str) -> Iterator[str]:
    """Yield the path of every command and group below ``command``.

    Duck-typed on ``commands`` (a group's name -> command mapping): recent Typer versions ship
    their own click-like classes rather than click's.
    """
    commands = getattr(command, "commands", None) or {}
    for name, sub in sorted(commands.items()):
        path = f"{prefix} {name}"
        yield path
        yield from _command_paths(sub, path)


COMMAND_PATHS = sorted(_command_paths(typer.main.get_command(app), "garrison"))


def test_the_command_tree_is_found() -> None:
    assert "garrison init" in COMMAND_PATHS
    assert "garrison audit verify" in COMMAND_PATHS


@pytest.mark.parametrize("path", COMMAND_PATHS)
def test_every_command_is_documented(path: str) -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert path in text, f"{path!r} is not documented in docs/cli.md"


@pytest.mark.parametrize("rule", sorted(MARKING_RULES))
def test_every_marking_rule_is_documented(rule: str) -> None:
    text = (DOCS / "markings.md").read_text(encoding="utf-8")
    assert f"`{rule}`" in text, f"marking rule {rule!r} is not documented in docs/markings.md"


def _relative_links(path: Path) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    # Links inside fenced code blocks are examples, not links.
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for match in _LINK.finditer(text):
        target = match.group(1)
        if _EXTERNAL.match(target):
            continue
        yield target


LINKS = [
    (doc.relative_to(REPO).as_posix(), target)
    for doc in DOC_FILES
    for target in _relative_links(doc)
]


def test_the_docs_exist_and_link() -> None:
    for name in ("markings.md", "cli.md", "architecture.md", "operations.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    assert LINKS, "no relative links found: the link pattern is broken"


def _anchors(path: Path) -> set[str]:
    """GitHub-style anchors of the headings of a Markdown file."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize(("doc", "target"), LINKS)
def test_relative_links_resolve(doc: str, target: str) -> None:
    file_part, _, fragment = target.partition("#")
    resolved = (REPO / doc).parent / file_part if file_part else REPO / doc
    assert resolved.exists(), f"{doc} links to {target}, which does not exist"
    if fragment and resolved.suffix == ".md":
        assert fragment in _anchors(resolved), f"{doc} links to {target}: no such heading"


def test_the_python_api_reference_is_current() -> None:
    """docs/python-api.md is what scripts/gen-python-api.py writes from today's docstrings."""
    import runpy

    script = runpy.run_path(str(REPO / "scripts" / "gen-python-api.py"), run_name="docgen")
    committed = (DOCS / "python-api.md").read_text(encoding="utf-8")
    assert script["render"]() == committed, (
        "docs/python-api.md is stale: run "
        "`PYTHONPATH=src .venv/bin/python scripts/gen-python-api.py > docs/python-api.md`"
    )


def test_the_python_api_reference_covers_every_export() -> None:
    import garrison

    text = (DOCS / "python-api.md").read_text(encoding="utf-8")
    for name in garrison.__all__:
        assert f"`garrison.{name}" in text, f"garrison.{name} is missing from docs/python-api.md"

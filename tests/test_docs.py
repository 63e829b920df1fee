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


# -- README.md: the paths and commands it names exist ---------------------------------------------

README = REPO / "README.md"
#: Paths the README's own commands create (`garrison init ./ws`, `make demo`'s output folder).
_MADE_BY_THE_README = ("ws", ".demo")
_PATHLIKE = re.compile(r"^(?:\./)?\.?[\w-]+(?:[\w.-]*)(?:/[\w.-]+)+/?$")
_TOP_LEVEL = {p.name for p in REPO.iterdir()} | {".ci"}


def _readme_spans() -> Iterator[list[str]]:
    """The words of each inline code span of the README and of each ``$ `` command line."""
    text = README.read_text(encoding="utf-8")
    for span in re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)):
        yield [word.strip("'\",;()") for word in span.split()]
    for line in text.splitlines():
        if line.startswith("$ "):
            yield [word.strip("'\",;()") for word in line[2:].split("#", 1)[0].split()]


def _readme_paths() -> list[str]:
    """Relative paths the README names inside the repository: words with a ``/`` whose first
    part is a top-level entry of the repository or starts with ``.`` (``./shares/ops``), and
    the file of a ``sqlite:///relative.db`` URL."""
    found = set()
    for word in (w for span in _readme_spans() for w in span):
        if word.startswith("sqlite:///") and not word.startswith("sqlite:////"):
            database = word.removeprefix("sqlite:///").split("#")[0]
            if database.isupper() or "PATH" in database:  # a placeholder
                continue
            found.add(database)
            continue
        if not _PATHLIKE.match(word) or "//" in word:
            continue
        first = word.removeprefix("./").split("/")[0]
        if first in _TOP_LEVEL or word.startswith("."):
            found.add(word)
    return sorted(found)


README_PATHS = _readme_paths()


def test_the_readme_names_repository_paths() -> None:
    assert "examples/sample/docs" in README_PATHS
    assert "scripts/postgres-for-tests.sh" in README_PATHS


@pytest.mark.parametrize("path", README_PATHS)
def test_every_path_the_readme_names_exists(path: str) -> None:
    first = path.removeprefix("./").split("/")[0]
    if first in _MADE_BY_THE_README:
        return
    assert (REPO / path).exists(), f"README.md names {path}, which is not in the repository"


def _readme_commands() -> list[str]:
    """``garrison WORD [WORD...]`` as the README writes them (``user add/update``,
    ``label next|submit`` naming several), each alternative expanded."""
    out = set()
    for words in _readme_spans():
        if "garrison" not in words:
            continue
        i = words.index("garrison")
        path = ["garrison"]
        for nxt in words[i + 1 : i + 4]:
            if not re.fullmatch(r"[a-z][a-z0-9-]*(?:[/|][a-z][a-z0-9-]*)*", nxt):
                break
            path.append(nxt)
        if len(path) > 1:
            out.add(" ".join(path))
    return sorted(out)


def _expand(command: str) -> Iterator[list[str]]:
    parts = command.split()
    choices = [re.split(r"[/|]", p) for p in parts]
    yield from ([c] for c in choices[1]) if len(parts) == 2 else _product(choices[1:])


def _product(choices: list[list[str]]) -> Iterator[list[str]]:
    if not choices:
        yield []
        return
    for head in choices[0]:
        for tail in _product(choices[1:]):
            yield [head, *tail]


@pytest.mark.parametrize("command", _readme_commands())
def test_every_command_the_readme_names_exists(command: str) -> None:
    root = typer.main.get_command(app)
    for words in _expand(command):
        node: Any = root
        for depth, word in enumerate(words):
            commands = getattr(node, "commands", None) or {}
            if word not in commands:
                # A word after a full command is an argument (`garrison lineage ID`...).
                assert depth > 0 and not commands, f"README.md names `{command}`: no `{word}`"
                break
            node = commands[word]

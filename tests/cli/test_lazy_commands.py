"""The command line imports only what the command being run needs: a cold ``garrison search``
neither starts the API's web stack nor Alembic, and help still lists every command."""

from __future__ import annotations

import json
import subprocess
import sys

from garrison.cli.main import COMMANDS, _build_module, _polish

#: What a search never needs: the web stack, Alembic, the trainers and the parsers' OCR.
HEAVY = ("fastapi", "uvicorn", "alembic", "torch", "sentence_transformers", "pytesseract")


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_search_command_loads_without_the_heavy_modules() -> None:
    loaded = _modules_after(
        "from garrison.cli.main import command\n"
        "root = command()\n"
        "assert root.commands['search'].name == 'search'"
    )
    assert "garrison.cli._search" in loaded
    for module in (*HEAVY, "garrison.cli._api", "garrison.cli._eval", "garrison.api"):
        assert module not in loaded, module


def test_every_module_adds_exactly_the_commands_the_table_names() -> None:
    for module in sorted(set(COMMANDS.values())):
        built = _build_module(module, _polish)
        assert {n for n, m in COMMANDS.items() if m == module} == set(built), module

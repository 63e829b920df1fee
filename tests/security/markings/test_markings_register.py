"""The rest of the register (MARKINGS.md section 7): the worked examples of 7.5, read from the
spec itself, every rule id of 7.2, the findings, the access terms of 7.4 and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from garrison.core.errors import MarkingError
from garrison.security.markings import (
    MARKING_RULES,
    Marking,
    dominates,
    join,
    parse_marking,
    parse_with_findings,
)


def _section(shared_dir: Path, title: str) -> str:
    text = (shared_dir / "spec/MARKINGS.md").read_text()
    start = text.index(title)
    end = text.find("\n### ", start + len(title))
    return text[start : end if end >= 0 else len(text)]


def _tables(shared_dir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    rollups: list[tuple[str, str]] = []
    checks: list[tuple[str, str]] = []
    for line in _section(shared_dir, "### 7.5 Worked examples").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or set(cells[0]) <= {"-"} or cells[0] in ("portions", "marking"):
            continue
        if cells[0].startswith("`"):
            checks.append((cells[0].strip("`"), cells[1]))
        else:
            rollups.append((cells[0], cells[1]))
    return rollups, checks


def _portions(cell: str) -> list[str]:
    twice = cell.endswith(" twice")
    cell = cell.removesuffix(" twice")
    portions = re.findall(r"\([^()]*\)", cell)
    return portions * 2 if twice else portions


def test_worked_roll_ups(shared_dir: Path) -> None:
    rollups, _ = _tables(shared_dir)
    assert len(rollups) >= 23
    for cell, banner in rollups:
        parts = [parse_marking(p) for p in _portions(cell)]
        assert parts, cell
        result = join(*parts)
        assert result.banner() == banner, cell
        for part in parts:
            assert dominates(result, part), cell
        # The structured form keeps everything; the result stays a valid marking.
        assert Marking.from_dict(result.to_dict()).identical(result)


def test_worked_validity(shared_dir: Path) -> None:
    _, checks = _tables(shared_dir)
    assert len(checks) >= 28
    for text, result in checks:
        if result.startswith("valid"):
            marking, findings = parse_with_findings(text)
            rewritten = re.search(r"`([^`]+)`", result)
            if rewritten:
                assert marking.portion() == rewritten.group(1), text
            for finding in re.findall(r"finding ([a-z-]+)", result):
                assert finding in findings, text
            if "as SI" in result:
                assert marking.sci == {"SI"}
            continue
        assert result in MARKING_RULES, result
        with pytest.raises(MarkingError) as info:
            parse_marking(text)
        assert info.value.rule == result, text

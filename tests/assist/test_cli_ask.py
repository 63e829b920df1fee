"""``garrison ask`` and ``garrison conversations``: output, --json, exit codes."""

from __future__ import annotations

import json

import pytest

from garrison.assist import REFUSAL
from garrison.cli.main import main
from garrison.store.workspace import Workspace
from tests.assist.conftest import MEMO_U


def run(capsys: pytest.CaptureFixture[str], ws: Workspace, *argv: str) -> tuple[int, str, str]:
    code = main(["-w", str(ws.root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_prints_banner_marked_answer_and_numbered_citations(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, ws, "ask", f"When does the {MEMO_U} timetable change?", "--as", "uma"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == lines[-1] == "UNCLASSIFIED"
    assert f"(U) The {MEMO_U} timetable changes on Monday. [1]" in lines
    cited = next(line for line in lines if line.startswith("[1] "))
    assert "(U)" in cited and "chunk " in cited and "doc " not in cited  # the memo is SECRET
    code, out, _ = run(
        capsys, ws, "ask", f"When does the {MEMO_U} timetable change?", "--as", "sam"
    )
    assert "doc " in next(line for line in out.splitlines() if line.startswith("[1] "))


def test_ask_json_and_options(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, ws, "ask", "harbor ferry north pier", "--as", "tess", "--k", "4",
        "--max-marking", "CONFIDENTIAL", "--question-marking", "CONFIDENTIAL", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["question_marking"] == "CONFIDENTIAL" and data["marking"] == "CONFIDENTIAL"
    assert len(data["context"]) <= 4 and data["citations"]
    assert "walruspeak" not in out and "narwhalglow" not in out


def test_ask_refusal_and_exit_codes(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ws, "ask", "walruspeak", "--as", "uma")
    assert code == 0 and f"(U) {REFUSAL}" in out and "walruspeak" not in out
    code, _, err = run(capsys, ws, "ask", "(S) tomatoes", "--as", "uma")
    assert code == 4 and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, ws, "ask", "(S//BOGUS) tomatoes", "--as", "sam")
    assert code == 2 and "Traceback" not in err
    code, _, err = run(capsys, ws, "ask", "tomatoes", "--as", "sam", "--conversation", "f" * 32)
    assert code == 3


def test_conversations_ls_show_rm(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, ws, "ask", "walruspeak crates", "--as", "sid", "--conversation", "new", "--json"
    )
    assert code == 0, err
    conv_id = json.loads(out)["conversation_id"]
    code, out, _ = run(capsys, ws, "conversations", "ls", "--as", "sid", "--json")
    assert code == 0 and conv_id in [c["id"] for c in json.loads(out)]
    code, out, _ = run(capsys, ws, "conversations", "show", conv_id, "--as", "sid")
    assert code == 0 and out.splitlines()[0] == "SECRET" and "walruspeak crates" in out
    code, out, _ = run(capsys, ws, "conversations", "show", conv_id, "--as", "sam")
    assert code == 3 and "walruspeak" not in out
    code, _, _ = run(capsys, ws, "conversations", "rm", conv_id, "--as", "sam")
    assert code == 3
    code, out, _ = run(capsys, ws, "conversations", "rm", conv_id, "--as", "sid")
    assert code == 0
    code, _, _ = run(capsys, ws, "conversations", "show", conv_id, "--as", "sid")
    assert code == 3

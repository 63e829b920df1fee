"""CLI polish: completion, placeholders and an example in every help, readable jobs show,
"did you mean", serve's URLs, key export to stdout, document names and bold highlights."""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from rich.console import Console

from garrison.cli import _output
from garrison.cli._examples import EXAMPLES
from garrison.cli.main import command, main, walk


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


LEAVES = [(" ".join(path), cmd) for path, cmd in walk(command())]
ROOT = command()


# -- completion -----------------------------------------------------------------------------


def test_show_completion_prints_a_bash_script(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    code, out, _ = run(capsys, "--show-completion", "bash")
    assert code == 0
    assert "_GARRISON_COMPLETE=complete_bash" in out and "complete -o" in out


def test_completion_completes_command_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_GARRISON_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "garrison data")
    monkeypatch.setenv("COMP_CWORD", "1")
    code, out, _ = run(capsys)
    assert code == 0 and out.split() == ["dataset"]


def test_install_completion_is_offered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "--install-completion" in out and "--show-completion" in out


# -- help: placeholders and examples --------------------------------------------------------


def _help(path: str, cmd: Any) -> str:
    ctx = cmd.make_context(f"garrison {path}", [], resilient_parsing=True)
    return str(cmd.get_help(ctx))


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=[p for p, _ in LEAVES])
def test_help_has_ordinary_placeholders_and_an_example(path: str, cmd: Any) -> None:
    text = _help(path, cmd)
    ctx = cmd.make_context(f"garrison {path}", [], resilient_parsing=True)
    for param in cmd.params:
        record = param.get_help_record(ctx)
        if record is None:
            continue
        # No typer-style "<str>", "<int range>", "<path>", "list[str]" or "<class ...>".
        assert "<" not in record[0] and "[" not in record[0].replace("[OPTIONS]", ""), record
    example = EXAMPLES[path]
    assert "Example:" in text and example in text


def test_placeholders_read_like_click(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", "--help")
    assert code == 0
    assert "Usage: garrison run [OPTIONS] [PIPELINE]" in out
    assert "--workers INTEGER" in out and "--engine TEXT" in out and "PIPELINE  " in out
    _, out, _ = run(capsys, "verify", "--help")
    assert "--trusted-key PATH" in out and "Usage: garrison verify [OPTIONS] PATH" in out
    _, out, _ = run(capsys, "--help")
    assert "-w, --workspace TEXT" in out


def test_every_command_has_an_example_and_every_example_a_command() -> None:
    paths = {p for p, _ in LEAVES}
    assert paths - set(EXAMPLES) == set(), "commands without an example"
    assert set(EXAMPLES) - paths == set(), "examples of commands that do not exist"


def _options(cmd: Any) -> set[str]:
    return {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_examples_parse(path: str) -> None:
    words = shlex.split(EXAMPLES[path])
    assert words[0] == "garrison"
    words = words[1:]
    root_options = _options(ROOT)
    while words and words[0] in root_options:  # garrison -w PATH ...
        words = words[2:]
    names = path.split()
    assert words[: len(names)] == names
    cmd = dict(LEAVES)[path]
    args = words[len(names) :]
    known = _options(cmd)
    for word in args:
        if word.startswith("-") and len(word) > 1 and not word[1].isdigit():
            assert word.split("=", 1)[0] in known, f"{path}: unknown option {word}"
    # Click parses it: arguments, option values and their types.
    cmd.make_context(f"garrison {path}", list(args))


# -- jobs show ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp_path = tmp_path_factory.mktemp("polish")
    path = str(tmp_path / "ws")
    assert main(["init", path, "--system-high", "SECRET//NOFORN"]) == 0
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "memo.txt").write_text(
        "SECRET\n\n(U) The depot opened on Monday near the river.\n\n"
        "(S) Reserve fuel moves to depot HARROW on Thursday night.\n\nSECRET\n"
    )
    (folder / "open.txt").write_text("(U) The depot canteen opens at noon for every visitor.\n")
    (folder / "bare.txt").write_text(
        "(U) The roster is posted.\n\nAn unmarked note about the depot roster.\n"
    )
    assert main(["ingest", str(folder), "-w", path, "--default-marking", "U"]) == 0
    return path


def test_jobs_show_is_a_human_layout(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "jobs", "ls", "-w", ws, "--json")
    job_id = json.loads(out)[0]["id"]
    code, out, _ = run(capsys, "jobs", "show", job_id, "-w", ws)
    assert code == 0
    assert out.startswith(f"Job {job_id} (ingest): ")
    assert "Counts:" in out and re.search(r"^  files\s+3$", out, re.MULTILINE)
    assert "Inputs (3 parsed):" in out and "memo.txt" in out
    assert "{" not in out and "'" not in out  # no dict dump


# -- did you mean ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("SECRET//NOFRN", "NOFORN"),
        ("SECRT//NOFORN", "SECRET"),
        ("TOP SECRT", "TOP SECRET"),
        ("(S//NFF)", "NF"),
        ("SECRET//REL TO USA, GBX", "GBR"),
        ("CONFIDENTAIL", "CONFIDENTIAL"),
    ],
)
def test_marking_check_suggests_the_near_miss(
    capsys: pytest.CaptureFixture[str], text: str, meant: str
) -> None:
    code, out, err = run(capsys, "marking", "check", text)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"Did you mean {meant}?" in err


def test_no_suggestion_without_a_near_miss(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "marking", "check", "SECRET//XYZZYQ")
    assert code == 2 and "Did you mean" not in err and err.count("\n") == 1


def test_suggestions_wherever_a_marking_is_typed(
    ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ingest", str(tmp_path), "-w", ws, "--default-marking", "S//NOFRN")
    assert code == 2 and "Did you mean NOFORN?" in err and err.count("\n") == 1
    code, _, err = run(capsys, "dataset", "create", "d", "-w", ws, "--max-marking", "SECRT")
    assert code == 2 and "Did you mean SECRET?" in err


# -- serve and key export -------------------------------------------------------------------


def test_serve_prints_where_and_how_to_sign_in(
    ws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    ran: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: ran.append((host, port)))
    code, out, _ = run(capsys, "serve", "-w", ws, "--port", "8711")
    assert code == 0 and ran == [("127.0.0.1", 8711)]
    assert "http://127.0.0.1:8711/ui/" in out and "http://127.0.0.1:8711/v1/" in out
    assert "garrison token create USER" in out


def test_key_export_prints_the_public_key(
    ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "key", "export", "-w", ws)
    assert code == 0 and out.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in out
    load_pem_public_key(out.encode())
    assert "Export-signing public key" in err
    target = tmp_path / "k.pem"
    code, _, _ = run(capsys, "key", "export", "-w", ws, "--out", str(target))
    assert code == 0 and target.read_text() == out


# -- names and highlights -------------------------------------------------------------------


@pytest.fixture(scope="module")
def indexed(ws: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    pipeline = tmp_path_factory.mktemp("pipeline") / "p.yaml"
    pipeline.write_text(
        "name: p\nstages:\n  - normalize: {}\n"
        "  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 4}\n"
        "  - embed: {model: hashing}\n"
    )
    assert main(["run", str(pipeline), "-w", ws]) == 0
    assert main(["user", "add", "ula", "-w", ws, "--clearance", "U", "--role", "viewer"]) == 0
    return ws


def _terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard", width=200)
    monkeypatch.setattr(_output, "out_console", console)
    return buffer


def test_search_renders_highlights_in_bold_and_json_keeps_them(
    indexed: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "search", "canteen", "-w", indexed, "--json")
    assert code == 0 and "**canteen**" in json.loads(out)["hits"][0]["snippet"]
    buffer = _terminal(monkeypatch)
    code, _, _ = run(capsys, "search", "canteen", "-w", indexed)
    drawn = buffer.getvalue()
    assert code == 0 and "**" not in drawn
    assert "\x1b[1mcanteen" in drawn  # bold
    assert "open.txt" in drawn  # the document by name
    # In a pipe: the plain text, markers dropped.
    monkeypatch.undo()
    code, out, _ = run(capsys, "search", "canteen", "-w", indexed)
    assert code == 0 and "**" not in out and "canteen" in out


def test_names_only_of_documents_the_reader_may_read(
    indexed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The system session reads memo.txt (SECRET); ula reads its U chunk, not the document.
    code, out, _ = run(capsys, "search", "depot river Monday", "-w", indexed)
    assert code == 0 and "memo.txt" in out
    code, out, _ = run(capsys, "search", "depot river Monday", "-w", indexed, "--as", "ula")
    assert code == 0 and "Monday" in out and "memo.txt" not in out
    code, out, _ = run(capsys, "docs", "ls", "-w", indexed, "--as", "ula")
    assert code == 0 and "open.txt" in out and "memo.txt" not in out
    header = out.splitlines()[0].split("\t")
    assert header[:2] == ["id", "name"]


def test_findings_show_the_document_name(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "docs", "findings", "-w", ws)
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert lines[0][:4] == ["id", "kind", "doc_id", "document"]
    assert any(row[3] == "bare.txt" for row in lines[1:])

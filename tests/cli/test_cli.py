"""The command line contract: output, --json, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from garrison import __version__
from garrison.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "ws")
    code, _, err = run(capsys, "init", path, "--system-high", "SECRET//NOFORN")
    assert code == 0, err
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"garrison {__version__}\n", "")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["marking", "check", "Secret//NoForn"], "SECRET//NOFORN"),
        (["marking", "check", "S // NF", "--portion"], "(S//NF)"),
        (["marking", "check", "(ts//si-g//oc/nf)"], "TOP SECRET//SI-G//ORCON/NOFORN"),
        (
            ["marking", "rollup", "(S//REL TO USA, JPN, NZL)", "(S//REL TO USA, NZL)"],
            "SECRET//REL TO USA, NZL",
        ),
        (["marking", "rollup", "(U//FOUO)", "(U)"], "UNCLASSIFIED//FOUO"),
        (["marking", "expr", "SECRET"], "CLS:S&CTRY:USA"),
        (
            ["marking", "expr", "TOP SECRET//SI-G//ORCON/REL TO USA, GBR"],
            "(CTRY:GBR|CTRY:USA)&CLS:TS&DISSEM:ORCON&SCI:SI&SCI:SI-G",
        ),
    ],
)
def test_marking_commands(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert run(capsys, *args) == (0, expected + "\n", "")


def test_marking_rollup_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "marking", "rollup", "(TS//SI//NF)", "(S//NF)", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["marking"] == "TOP SECRET//SI//NOFORN"
    assert doc["marking_detail"]["version"] == 1


def test_invalid_marking_is_one_line_naming_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "marking", "check", "SECRET//NOFORN/REL TO USA, GBR")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "NOFORN" in err and "REL TO" in err
    assert "(rule: noforn-with-release)" in err


def test_unsupported_marking(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "marking", "check", "NATO SECRET")  # needs the leading //
    assert code == 2
    assert "not supported" in err
    assert "(rule: unsupported-marking)" in err


def test_access_eval(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "access",
        "eval",
        "--auths",
        "A,B",
        "--auths",
        "A,C",
        "--",
        "A",
        "B",
        "A&(B|C)",
        "a|b&c",
        "",
    )
    assert code == 0
    assert out.splitlines() == [
        "ACCESSIBLE",
        "INACCESSIBLE",
        "ACCESSIBLE",
        "ERROR: mixed & and | without parentheses at offset 3",
        "ACCESSIBLE",
    ]


def test_access_eval_empty_auths(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "access", "eval", "--auths", "", "A", "")
    assert (code, out.splitlines()) == (0, ["INACCESSIBLE", "ACCESSIBLE"])
    code, out, _ = run(capsys, "access", "eval", "A")
    assert (code, out.splitlines()) == (0, ["INACCESSIBLE"])


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "marking", "check", "--bogus", "S")
    assert code == 2
    assert "Traceback" not in err


def test_users_end_to_end(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "user",
        "add",
        "alice",
        "-w",
        ws,
        "--clearance",
        "TS",
        "--sci",
        "SI,TK",
        "--sap",
        "SAR-BP",
        "--country",
        "USA",
        "--grant",
        "ORCON,CUI",
        "--role",
        "annotator",
    )
    assert code == 0, err
    code, out, _ = run(capsys, "user", "show", "alice", "-w", ws, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["clearance"] == "TS"
    assert shown["roles"] == ["annotator"]
    assert {
        "CLS:TS",
        "SCI:SI",
        "SCI:TK",
        "SAP:BP",
        "DISSEM:ORCON",
        "DISSEM:CUI",
        "CTRY:USA",
    } <= set(shown["authorizations"])
    code, out, _ = run(capsys, "-w", ws, "user", "list", "--json")
    assert [u["name"] for u in json.loads(out)] == ["alice"]
    code, out, _ = run(capsys, "-w", ws, "user", "list")
    assert out.splitlines()[0].split("\t")[0] == "name"


def test_user_errors_and_exit_codes(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "user", "add", "bob", "-w", ws, "--clearance", "S", "--sci", "SI")
    assert code == 2 and "TOP SECRET" in err
    code, _, err = run(capsys, "user", "show", "nobody", "-w", ws)
    assert code == 3 and "nobody" in err
    run(capsys, "user", "add", "carl", "-w", ws, "--clearance", "S", "--role", "viewer")
    code, _, err = run(capsys, "user", "add", "eve", "-w", ws, "--clearance", "S", "--as", "carl")
    assert code == 4
    code, _, _ = run(capsys, "user", "list", "-w", ws, "--as", "ghost")
    assert code == 3


def test_missing_workspace_is_exit_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GARRISON_WORKSPACE", raising=False)
    code, _, err = run(capsys, "user", "list", "-w", str(tmp_path / "none"))
    assert code == 5 and "No Garrison workspace" in err
    code, _, err = run(capsys, "user", "list")
    assert code == 5 and "GARRISON_WORKSPACE" in err


def test_workspace_from_environment(
    ws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GARRISON_WORKSPACE", ws)
    code, out, _ = run(capsys, "user", "list", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_second_init_exit_2(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", ws, "--system-high", "SECRET")
    assert code == 2 and "already exists" in err


def test_registry_commands(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "registry", "add", "sci", "ZX", "-w", ws)[0] == 0
    assert run(capsys, "registry", "add", "group", "NORD", "--members", "DNK,NOR", "-w", ws)[0] == 0
    code, out, _ = run(capsys, "registry", "list", "-w", ws, "--json")
    assert [(e["kind"], e["name"]) for e in json.loads(out)] == [
        ("group", "NATO-MEMBERS"),  # filled by init (MARKINGS.md 7.4)
        ("group", "NORD"),
        ("sci", "ZX"),
    ]
    code, out, _ = run(capsys, "marking", "check", "TS//ZX//NF", "-w", ws)
    assert (code, out) == (0, "TOP SECRET//ZX//NOFORN\n")
    code, _, _ = run(capsys, "marking", "check", "TS//ZX//NF")
    assert code == 2  # the built-in registry does not know ZX


def test_audit_commands(ws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "user", "add", "ann", "-w", ws, "--clearance", "S")
    code, out, _ = run(capsys, "audit", "tail", "-n", "5", "-w", ws, "--json")
    page = json.loads(out)  # a page: the last 5 events, oldest first
    events = page["items"]
    assert len(events) == min(5, page["total"]) and "next_cursor" in page
    code, out, _ = run(capsys, "audit", "tail", "-w", ws, "--json")
    events = json.loads(out)  # no --limit: the whole log
    # init may register the shipped embedder (model.register) when the embed extra is there.
    actions = [e["action"] for e in events if e["action"] != "model.register"]
    assert actions[:2] == ["workspace.init", "user.add"]
    cp = tmp_path / "cp.json"
    assert run(capsys, "audit", "checkpoint", "--out", str(cp), "-w", ws)[0] == 0
    code, out, _ = run(capsys, "audit", "verify", "-w", ws, "--against", str(cp), "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    # Tamper: change the actor of event 2 and verify names it.
    log = Path(ws) / "audit" / "events.jsonl"
    lines = log.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"ann"' in line)
    lines[at] = lines[at].replace('"ann"', '"bob"')
    log.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "audit", "verify", "-w", ws)
    assert code == 1
    assert str(json.loads(lines[at])["event"]["seq"]) in err


def test_verify_of_a_log_too_damaged_to_append_still_exits_1(
    ws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "user", "add", "ann", "-w", ws, "--clearance", "S")
    log = Path(ws) / "audit" / "events.jsonl"
    lines = log.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"ann"' in line)
    lines[at] = lines[at].replace('"ann"', '"annabelle"')  # changes the line's length
    log.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "audit", "verify", "-w", ws, "--json")
    assert code == 1, err
    assert json.loads(out)["first_bad_seq"] == json.loads(lines[at])["event"]["seq"]


def test_debug_shows_traceback_otherwise_never(tmp_path: Path) -> None:
    env = {**os.environ, "GARRISON_WORKSPACE": str(tmp_path / "missing")}
    env.pop("GARRISON_DEBUG", None)
    quiet = subprocess.run(
        [sys.executable, "-m", "garrison.cli.main", "user", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert quiet.returncode == 5
    assert "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().count("\n") == 0
    loud = subprocess.run(
        [sys.executable, "-m", "garrison.cli.main", "user", "list"],
        capture_output=True,
        text=True,
        env={**env, "GARRISON_DEBUG": "1"},
        check=False,
    )
    assert "Traceback" in loud.stderr


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    for group in (
        [],
        ["marking"],
        ["access"],
        ["user"],
        ["registry"],
        ["audit"],
        ["init"],
        ["marking", "rollup"],
        ["access", "eval"],
        ["audit", "verify"],
    ):
        code, out, _ = run(capsys, *group, "--help")
        assert code == 0 and "Usage" in out, group

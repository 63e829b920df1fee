"""Id prefixes on the command line: resolved among readable records only.

A unique prefix stands for its record; one shared by several readable records exits 2 saying it
is ambiguous; one matching only records the subject may not read answers exactly like an
unknown id (exit 3, the same sentence), so a prefix never reveals that something exists.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.store import prefixes

#: Two-character prefixes in the tests below (the real minimum is MIN_PREFIX): collisions
#: among a handful of documents are then cheap to find.
SHORT = 2


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _prefix(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:SHORT]


def _texts() -> tuple[str, str, str, str]:
    """Two U texts whose documents share a prefix, a third U text, and a SECRET text whose
    prefix is the third's (deterministic: the first such texts)."""
    seen: dict[str, str] = {}
    n = 0
    while True:
        text = f"(U) Entry {n} of the depot log.\n"
        n += 1
        if _prefix(text) in seen:
            u1, u2 = seen[_prefix(text)], text
            break
        seen[_prefix(text)] = text
    shared = _prefix(u1)
    m = 0
    while True:
        secret = f"(S) Entry {m} of the reserve log.\n"
        m += 1
        if _prefix(secret) in seen and _prefix(secret) != shared:
            return u1, u2, seen[_prefix(secret)], secret


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two U documents sharing a prefix, and a SECRET one sharing a prefix with a U one."""
    tmp_path = tmp_path_factory.mktemp("prefix")
    path = str(tmp_path / "ws")
    assert main(["init", path, "--system-high", "SECRET"]) == 0
    folder = tmp_path / "in"
    folder.mkdir()
    u1, u2, u_text, s_text = _texts()
    shared, s_prefix = _prefix(u1), _prefix(s_text)
    for name, text in (("u1.txt", u1), ("u2.txt", u2), ("u3.txt", u_text), ("s.txt", s_text)):
        (folder / name).write_text(text)
    assert main(["ingest", str(folder), "-w", path, "--default-marking", "U"]) == 0
    for user, role in (("ula", "viewer"), ("stu", "steward")):
        assert main(["user", "add", user, "-w", path, "--clearance", "U", "--role", role]) == 0
    return {
        "path": path,
        "shared": shared,
        "s_prefix": s_prefix,
        "u3": hashlib.sha256(u_text.encode()).hexdigest(),
        "secret": hashlib.sha256(s_text.encode()).hexdigest(),
        "u1": hashlib.sha256(u1.encode()).hexdigest(),
    }


@pytest.fixture
def short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefixes, "MIN_PREFIX", SHORT)


def test_a_unique_prefix_names_its_document(
    ws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "docs", "show", ws["u1"][:12], "-w", ws["path"], "--json")
    assert code == 0, err
    assert json.loads(out)["id"] == ws["u1"]


def test_a_prefix_below_the_minimum_is_taken_as_a_whole_id(
    ws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "docs", "show", ws["u1"][:5], "-w", ws["path"])
    assert code == 3 and f"No document with id {ws['u1'][:5]}." in err


def test_an_ambiguous_prefix_exits_2(
    ws: dict[str, str], capsys: pytest.CaptureFixture[str], short: None
) -> None:
    code, out, err = run(capsys, "docs", "show", ws["shared"], "-w", ws["path"])
    assert code == 2 and out == ""
    assert "ambiguous" in err and err.count("\n") == 1


def test_only_readable_records_count(
    ws: dict[str, str], capsys: pytest.CaptureFixture[str], short: None
) -> None:
    # The system session reads both: the prefix is ambiguous for it ...
    code, _, err = run(capsys, "docs", "show", ws["s_prefix"], "-w", ws["path"])
    assert code == 2 and "ambiguous" in err
    # ... while for ula only the U document starts with it: no ambiguity, no hint of the other.
    code, out, err = run(
        capsys, "docs", "show", ws["s_prefix"], "-w", ws["path"], "--as", "ula", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["id"] == ws["u3"]


@pytest.mark.parametrize("command", [["docs", "show"], ["lineage"], ["docs", "rm"]])
def test_a_prefix_of_only_unreadable_records_is_not_found(
    ws: dict[str, str], capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    secret = ws["secret"]
    # A prefix long enough to be the SECRET document's alone.
    prefix = secret[:10]
    absent = next(
        p
        for p in (f"{c}{secret[1:10]}" for c in "0123456789abcdef")
        if p != prefix and p[:SHORT] not in (ws["shared"], ws["s_prefix"])
    )
    extra = ["--reason", "test"] if command == ["docs", "rm"] else []
    # A steward cleared for U only may remove documents, but not ones it cannot read.
    as_user = ["--as", "stu"] if command == ["docs", "rm"] else ["--as", "ula"]
    code_hidden, out_hidden, err_hidden = run(
        capsys, *command, prefix, "-w", ws["path"], *as_user, *extra
    )
    code_absent, out_absent, err_absent = run(
        capsys, *command, absent, "-w", ws["path"], *as_user, *extra
    )
    assert code_hidden == code_absent == 3
    assert out_hidden == out_absent == ""
    assert err_hidden.replace(prefix, "ID") == err_absent.replace(absent, "ID")


def test_chunk_and_finding_prefixes(
    ws: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ws["path"]
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: p\nstages:\n  - normalize: {}\n  - chunk: {model: hashing}\n"
        "  - embed: {model: hashing}\n"
    )
    assert run(capsys, "run", str(pipeline), "-w", path)[0] == 0
    _, out, _ = run(capsys, "chunks", "ls", "-w", path, "--json")
    chunk = json.loads(out)[0]
    code, out, err = run(capsys, "lineage", chunk["id"][:8], "-w", path, "--json")
    assert code == 0, err
    assert json.loads(out)["id"] == chunk["id"]
    code, out, _ = run(capsys, "chunks", "ls", "--doc", ws["u1"][:8], "-w", path, "--json")
    assert code == 0 and {c["doc_id"] for c in json.loads(out)} == {ws["u1"]}
    # Findings: the SECRET text under a U default has none; add one with an unmarked portion.
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "mixed.txt").write_text("(U) Marked line.\n\nAn unmarked line follows it.\n")
    assert run(capsys, "ingest", str(folder), "-w", path, "--default-marking", "U")[0] == 0
    _, out, _ = run(capsys, "docs", "findings", "-w", path, "--json")
    finding = next(f for f in json.loads(out) if f["kind"] == "unmarked-portion")
    code, out, err = run(
        capsys, "docs", "resolve", finding["id"][:8], "--note", "checked", "-w", path, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["id"] == finding["id"]

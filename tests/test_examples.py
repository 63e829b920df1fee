"""The runnable examples in examples/ run, offline, and show what they say they show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_python_api_example_runs_and_shows_two_readers(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python_api.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "parse draft-with-bad-mark.md: ingest would quarantine it (invalid-marking)" in out
    assert "ingested 7 files: 5 parsed, 1 quarantined, 1 spilled" in out
    dov, cho = out.split("search 'fuel depot' as dov:")[1].split("search 'fuel depot' as cho:")
    # dov (SECRET, USA) reads the NOFORN memo; cho (SECRET, GBR) never sees anything NOFORN.
    assert "[SECRET//NOFORN]" in dov and "Depot HARROW will receive" in dov.replace("**", "")
    assert "NOFORN" not in cho and "HARROW will receive" not in cho.replace("**", "")
    assert "ask as cho -> the answer is marked" in cho
    assert list(tmp_path.iterdir()) == []  # the example cleans up after itself

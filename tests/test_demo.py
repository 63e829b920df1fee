"""`make demo` runs the main job on the bundled sample data: keep it working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_the_main_job(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("GARRISON_WORKSPACE", None)
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh"), str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "5 parsed, 1 quarantined (invalid-marking 1), 1 spilled" in out
    assert "Audit log OK" in out
    # The viewer cleared SECRET with British citizenship sees only what is released to GBR.
    section = out.split("== 6.")[1].split("== 7.")[0]
    assert "SECRET//REL TO USA, GBR" in section and "NOFORN" not in section
    # One question, two readers: the NOFORN answer for dov, a refusal for the British viewer.
    asked = out.split("== 10b.")[1].split("== 11.")[0]
    assert "Depot HARROW will receive" in asked and "No readable source answers this." in asked
    cho = json.loads((tmp_path / "demo" / "ask-cho.json").read_text())
    assert cho["refused"] and "HARROW" not in json.dumps(cho)
    # The spill's content appears nowhere in what the demo printed.
    assert "ORCHID" not in out + done.stderr
    assert (tmp_path / "demo" / "checkpoint.json").is_file()

"""PostgreSQL stopped under a pipeline run and started again: the run exits 5 with a sentence
that names the unreachable catalog, and running it again ends with the catalog and index an
uninterrupted run gives.

The server is a private cluster (``initdb`` in a temporary directory, listening only on a Unix
socket there), never the shared one the other PostgreSQL tests use.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.store.workspace import Workspace
from tests.conftest import require
from tests.faults.faults import PIPELINE, full_state, write_corpus
from tests.pipeline.test_incremental import DEFAULT, SYSTEM_HIGH, assert_index_matches_catalog

FILES = 48


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@dataclass
class Cluster:
    data: Path
    socket: Path
    pg_ctl: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/garrison?host={self.socket}"

    def _as_postgres(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:  # the server refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        options = f"-k {self.socket} -c listen_addresses='' -c fsync=off"
        done = self._as_postgres(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.data / "log"),
            "-w",
            "start",
        )
        assert done.returncode == 0, done.stderr

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    require(initdb is not None and pg_ctl is not None, "PostgreSQL's initdb and pg_ctl")
    assert initdb is not None and pg_ctl is not None
    if os.geteuid() == 0:
        require(shutil.which("runuser") is not None, "runuser, to start PostgreSQL as postgres")
    base = Path(tempfile.mkdtemp(prefix="garrison-pg-"))
    base.chmod(0o755)
    data, socket = base / "data", base / "socket"
    socket.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(socket, "postgres")
    found = Cluster(data, socket, pg_ctl)
    done = found._as_postgres(initdb, "-D", str(data), "-A", "trust", "-U", "postgres")
    require(done.returncode == 0, f"initdb failed: {done.stderr.strip()[:200]}")
    found.start()
    created = found._as_postgres(
        _binary("createdb") or "createdb", "-h", str(socket), "-U", "postgres", "garrison"
    )
    assert created.returncode == 0, created.stderr
    try:
        yield found
    finally:
        found.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def _pipeline_docs(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("select count(*) from pipeline_docs")).scalar_one())
    except Exception:  # not created yet, or the server is going down
        return 0
    finally:
        engine.dispose()


def test_postgres_stopped_mid_run_then_restarted_and_resumed(
    tmp_path: Path, cluster: Cluster
) -> None:
    corpus = write_corpus(tmp_path / "corpus", files=FILES)
    pipeline = tmp_path / "fast.yaml"
    pipeline.write_text(PIPELINE)

    reference = tmp_path / "reference"
    Workspace.init(reference, system_high=SYSTEM_HIGH).close()
    assert main(["ingest", str(corpus), "-w", str(reference), "--default-marking", DEFAULT]) == 0
    assert main(["run", str(pipeline), "-w", str(reference)]) == 0
    ws = Workspace.open(reference)
    try:
        expected = full_state(ws)
    finally:
        ws.close()

    root = tmp_path / "ws"
    Workspace.init(root, system_high=SYSTEM_HIGH, db_url=cluster.url).close()
    assert main(["ingest", str(corpus), "-w", str(root), "--default-marking", DEFAULT]) == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "garrison.cli.main", "run", str(pipeline), "-w", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _pipeline_docs(cluster.url) >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before the server could be stopped"
        cluster.stop("immediate")  # as a crash: no goodbye to the clients
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 5, err
    assert "cannot be reached" in err and str(cluster.socket) in err, err
    assert "Traceback" not in err

    cluster.start()
    assert main(["run", str(pipeline), "-w", str(root)]) == 0
    ws = Workspace.open(root)
    try:
        state = full_state(ws)
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close()
    assert_index_matches_catalog(state)
    assert state == expected

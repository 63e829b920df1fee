"""A disk that fills during ingest or a pipeline run: exit 5 with a sentence that says which
disk is full and where, nothing half-written served, and once space is freed the same command
ends with the workspace an uninterrupted run gives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.core.errors import disk_full
from garrison.store.workspace import Workspace
from tests.faults.faults import (
    PIPELINE,
    catalog_state,
    fill,
    full_state,
    grow,
    tmpfs,
    write_corpus,
)
from tests.pipeline.test_incremental import DEFAULT, SYSTEM_HIGH, assert_index_matches_catalog


def cli(*args: str) -> int:
    return main(list(args))


def ingest(ws: Path, corpus: Path) -> int:
    return cli("ingest", str(corpus), "-w", str(ws), "--default-marking", DEFAULT)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipeline") / "fast.yaml"
    path.write_text(PIPELINE)
    return path


@pytest.fixture(scope="module")
def expected(
    tmp_path_factory: pytest.TempPathFactory, corpus: Path, pipeline: Path
) -> dict[str, object]:
    """The state of an uninterrupted ingest and run (computed once for the module)."""
    root = tmp_path_factory.mktemp("reference") / "ws"
    Workspace.init(root, system_high=SYSTEM_HIGH).close()
    assert ingest(root, corpus) == 0
    assert cli("run", str(pipeline), "-w", str(root)) == 0
    ws = Workspace.open(root)
    try:
        return full_state(ws)
    finally:
        ws.close()


def assert_full_error(capsys: pytest.CaptureFixture[str], where: Path) -> None:
    err = capsys.readouterr().err
    assert "is full" in err and str(where) in err, err
    assert "Traceback" not in err


def test_blob_store_full_during_ingest_then_resumed(
    tmp_path: Path,
    corpus: Path,
    pipeline: Path,
    expected: dict[str, object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, system_high=SYSTEM_HIGH).close()
    capsys.readouterr()
    with tmpfs(root / "blobs", "16k") as blobs:
        assert ingest(root, corpus) == 5
        assert_full_error(capsys, blobs)
        ws = Workspace.open(root)
        try:
            # No document without its original: what was not stored was not catalogued.
            state = catalog_state(ws)
            assert len(state["documents"]) < len(expected["documents"])  # type: ignore[arg-type]
            assert state["originals"] == [d[0] for d in state["documents"]]
            assert ws.audit.verify(ws.audit.public_key).ok
        finally:
            ws.close()
        grow(blobs, "8m")
        assert ingest(root, corpus) == 0
        assert cli("run", str(pipeline), "-w", str(root)) == 0
        ws = Workspace.open(root)
        try:
            assert full_state(ws) == expected
        finally:
            ws.close()


def test_index_full_during_run_then_resumed(
    tmp_path: Path,
    corpus: Path,
    pipeline: Path,
    expected: dict[str, object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, system_high=SYSTEM_HIGH).close()
    assert ingest(root, corpus) == 0
    capsys.readouterr()
    with tmpfs(root / "index", "8k") as index:
        assert cli("run", str(pipeline), "-w", str(root)) == 5
        assert_full_error(capsys, index)
        ws = Workspace.open(root)
        try:
            state = full_state(ws)
            # What the index serves is a subset of what the catalog holds, never a torn row.
            assert set(state["index"]) <= {c[0] for c in state["chunks"]}
            assert state != expected
        finally:
            ws.close()
        grow(index, "16m")
        assert cli("run", str(pipeline), "-w", str(root)) == 0
        ws = Workspace.open(root)
        try:
            state = full_state(ws)
        finally:
            ws.close()
    assert_index_matches_catalog(state)
    assert state == expected


def test_catalog_full_during_run_then_resumed(
    tmp_path: Path,
    corpus: Path,
    pipeline: Path,
    expected: dict[str, object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "ws"
    with tmpfs(tmp_path / "catalog", "16m") as volume:
        db = volume / "catalog.db"
        Workspace.init(root, system_high=SYSTEM_HIGH, db_url=f"sqlite:///{db}").close()
        assert ingest(root, corpus) == 0
        capsys.readouterr()
        filler = fill(volume, leave_kib=64)
        assert cli("run", str(pipeline), "-w", str(root)) == 5
        assert_full_error(capsys, db)
        filler.unlink()
        assert cli("run", str(pipeline), "-w", str(root)) == 0
        ws = Workspace.open(root)
        try:
            state = full_state(ws)
        finally:
            ws.close()
    assert_index_matches_catalog(state)
    assert state == expected


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        OSError(122, "Disk quota exceeded"),
        RuntimeError("lance error: LanceError(IO): No space left on device (os error 28)"),
        sqlite3.OperationalError("database or disk is full"),
    ],
)
def test_disk_full_is_recognised_however_a_library_spells_it(error: Exception) -> None:
    found = disk_full(error, "the chunk index (/srv/ws/index)")
    assert found is not None and found.exit_code == 5 and found.code == "disk-full"
    assert found.message.startswith("The disk holding the chunk index (/srv/ws/index) is full")
    wrapped = RuntimeError("write failed")
    wrapped.__cause__ = error
    assert disk_full(wrapped, "x") is not None


@pytest.mark.parametrize(
    "error", [OSError(13, "Permission denied"), RuntimeError("lance error: bad schema")]
)
def test_other_errors_are_not_called_a_full_disk(error: Exception) -> None:
    assert disk_full(error, "x") is None

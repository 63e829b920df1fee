"""Workspace creation and opening, on SQLite and PostgreSQL, and what bad state gets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import inspect

from garrison.core.errors import InvalidInput, KeyFileError, MarkingError, WorkspaceError
from garrison.store.catalog import HEAD_REVISION
from garrison.store.models import Base
from garrison.store.workspace import Workspace


def test_init_creates_layout_keys_and_audit(tmp_path: Path, catalog_url: str | None) -> None:
    root = tmp_path / "ws"
    ws = Workspace.init(root, system_high="secret//noforn", db_url=catalog_url)
    try:
        assert ws.system_high.banner() == "SECRET//NOFORN"
        for sub in ("blobs", "index", "audit", "keys"):
            assert (root / sub).is_dir()
        for key in (ws.config.audit_key_file, ws.config.master_key_file):
            mode = stat.S_IMODE(os.stat(root / key).st_mode)
            assert mode == 0o600, oct(mode)
        assert ws.catalog.revision() == HEAD_REVISION
        events = ws.audit.tail(None)
        assert [e.action for e in events] == ["workspace.init"]
        assert events[0].actor == "system"
        assert events[0].object_marking == "SECRET//NOFORN"
        assert ws.audit.latest_checkpoint() is not None
        if catalog_url is None:
            assert (root / "catalog.db").is_file()
            with ws.catalog.engine.connect() as conn:
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            assert mode == "wal"
    finally:
        ws.close()
    reopened = Workspace.open(root)
    assert reopened.system_high.banner() == "SECRET//NOFORN"
    reopened.close()


def test_migrations_match_the_models(tmp_path: Path, catalog_url: str | None) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    ws = Workspace.init(tmp_path / "ws", system_high="SECRET", db_url=catalog_url)
    try:
        with ws.catalog.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert set(Base.metadata.tables) <= tables
    finally:
        ws.close()


def test_second_init_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, system_high="SECRET").close()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    config = (root / "garrison.toml").read_bytes()
    with pytest.raises(InvalidInput, match="already exists"):
        Workspace.init(root, system_high="TOP SECRET")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert (root / "garrison.toml").read_bytes() == config


def test_invalid_system_high_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(MarkingError):
        Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN/REL TO USA, GBR")
    assert not (tmp_path / "ws").exists()


def test_init_on_non_empty_postgres_is_refused(tmp_path: Path, pg_database: object) -> None:
    url = pg_database.url  # type: ignore[attr-defined]
    Workspace.init(tmp_path / "a", system_high="SECRET", db_url=url).close()
    with pytest.raises(InvalidInput, match="already holds tables"):
        Workspace.init(tmp_path / "b", system_high="SECRET", db_url=url)
    assert not (tmp_path / "b").exists()
    # The first workspace still opens: the refused init dropped nothing.
    Workspace.open(tmp_path / "a").close()


def test_open_missing_workspace(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="No Garrison workspace"):
        Workspace.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkspaceError, match=r"garrison\.toml is missing"):
        Workspace.open(tmp_path / "empty")


@pytest.fixture
def ws_root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    Workspace.init(root, system_high="SECRET//NOFORN").close()
    return root


def test_missing_key_file(ws_root: Path) -> None:
    (ws_root / "keys" / "audit-ed25519.pem").unlink()
    with pytest.raises(KeyFileError, match="missing"):
        Workspace.open(ws_root)


def test_missing_master_key(ws_root: Path) -> None:
    (ws_root / "keys" / "master.key").unlink()
    with pytest.raises(KeyFileError, match="master key"):
        Workspace.open(ws_root)


def test_malformed_master_key(ws_root: Path) -> None:
    (ws_root / "keys" / "master.key").write_text("abc\n")
    with pytest.raises(KeyFileError, match="malformed"):
        Workspace.open(ws_root)


def test_blob_store_uses_the_master_key(ws_root: Path) -> None:
    with Workspace.open(ws_root) as ws:
        sha = ws.blobs.put(b"original bytes")
    with Workspace.open(ws_root) as ws:
        assert ws.blobs.get(sha) == b"original bytes"


def test_malformed_key_file(ws_root: Path) -> None:
    (ws_root / "keys" / "audit-ed25519.pem").write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="not hold a valid Ed25519"):
        Workspace.open(ws_root)


def test_unreadable_key_file(ws_root: Path) -> None:
    key = ws_root / "keys" / "audit-ed25519.pem"
    key.unlink()
    key.mkdir()  # reading a directory fails even for root
    with pytest.raises(KeyFileError, match="cannot be read"):
        Workspace.open(ws_root)


def test_corrupted_catalog(ws_root: Path) -> None:
    db = ws_root / "catalog.db"
    for extra in ("catalog.db-wal", "catalog.db-shm"):
        (ws_root / extra).unlink(missing_ok=True)
    db.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(WorkspaceError, match="corrupt"):
        Workspace.open(ws_root)


def test_hand_edited_system_high_fails_closed(ws_root: Path) -> None:
    cfg = ws_root / "garrison.toml"
    cfg.write_text(cfg.read_text().replace("SECRET//NOFORN", "TOP SECRET//NOFORN"))
    with pytest.raises(WorkspaceError, match="differs"):
        Workspace.open(ws_root)


def test_invalid_config(ws_root: Path) -> None:
    (ws_root / "garrison.toml").write_text("[workspace]\nformat = 'x'\n")
    with pytest.raises(WorkspaceError, match="invalid"):
        Workspace.open(ws_root)


def test_an_old_catalog_is_refused_until_migrated(ws_root: Path) -> None:
    from alembic import command

    from garrison.cli.main import main
    from garrison.store.catalog import Catalog, resolve_url

    catalog = Catalog(resolve_url("sqlite:///catalog.db", ws_root))
    with catalog.engine.begin() as conn:
        command.downgrade(catalog._alembic_config(conn), "0001")
    catalog.dispose()
    with pytest.raises(WorkspaceError, match="garrison migrate"):
        Workspace.open(ws_root)
    assert main(["migrate", "-w", str(ws_root)]) == 0
    with Workspace.open(ws_root) as ws:
        assert ws.catalog.revision() == HEAD_REVISION
        # Migrating also registers the shipped embedder (when the embed extra is installed).
        last = [e.action for e in ws.audit.tail(2)]
        assert last[-1] == "catalog.migrate" or last == ["catalog.migrate", "model.register"]

"""Read transactions (``Catalog.read``) beside write transactions (``Catalog.transaction``).

On SQLite a read is a deferred transaction: it runs while a writer holds the write lock (WAL),
where an immediate one would wait for it. On both backends a read sees a consistent snapshot
and may not write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from garrison.store.models import Meta
from garrison.store.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET", db_url=catalog_url)
    yield workspace
    workspace.close(checkpoint=False)


def _keys(ws: Workspace) -> list[str]:
    with ws.catalog.read() as orm:
        return list(orm.scalars(select(Meta.key).order_by(Meta.key)))


def test_a_read_runs_while_a_writer_holds_its_transaction(ws: Workspace) -> None:
    before = _keys(ws)
    holding = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with ws.catalog.transaction() as orm:
            orm.execute(update(Meta).where(Meta.key == before[0]).values(key=before[0]))
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        t0 = time.monotonic()
        assert _keys(ws) == before  # did not wait for the writer (it waits for us)
        assert time.monotonic() - t0 < 10
    finally:
        release.set()
        thread.join(30)
    assert not thread.is_alive()


def test_reads_see_committed_writes(ws: Workspace) -> None:
    before = _keys(ws)
    with ws.catalog.transaction() as orm:
        orm.add(Meta(key="zz-test", value="1"))
    assert _keys(ws) == sorted([*before, "zz-test"])


def test_a_read_does_not_keep_what_it_changed(ws: Workspace) -> None:
    before = _keys(ws)
    try:
        with ws.catalog.read() as orm:
            orm.add(Meta(key="zz-read", value="1"))
            orm.flush()  # PostgreSQL refuses the write here (a READ ONLY transaction)
    except DBAPIError:
        assert ws.catalog.backend == "postgresql"
    else:
        assert ws.catalog.backend == "sqlite"
    assert _keys(ws) == before  # rolled back: nothing of a read is committed

"""The catalog database: engine set-up for SQLite and PostgreSQL, migrations, transactions.

SQLite runs in WAL mode with a busy timeout. A unit of work (:meth:`Catalog.transaction`)
starts with ``BEGIN IMMEDIATE``, taking the write lock up front, so that two writers queue
instead of one failing half-way when its read transaction tries to upgrade. A read
(:meth:`Catalog.read`) starts with a deferred ``BEGIN``: in WAL mode readers neither wait for a
writer nor for each other, so a server's many concurrent reads do not queue on one lock. A read
must not write: on PostgreSQL it is a ``READ ONLY`` transaction, which refuses any write, so a
misplaced one fails in the tests that run on both backends. PostgreSQL uses the same models and
the same migrations.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from garrison.core.errors import (
    EnvironmentProblem,
    InvalidInput,
    ServiceUnavailable,
    WorkspaceError,
    disk_full,
)
from garrison.store.bindings import Binder, install
from garrison.store.models import Meta

__all__ = ["HEAD_REVISION", "Catalog", "resolve_url"]

#: The migration revision this version of Garrison expects.
HEAD_REVISION = "0015"


def resolve_url(url: str, workspace: Path) -> str:
    """Make a relative ``sqlite:///file`` URL absolute under ``workspace``; check the URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"The catalog URL {url!r} is not a valid database URL.") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise InvalidInput("The catalog must be a file database, not an in-memory one.")
        path = Path(database)
        if not path.is_absolute():
            path = workspace / path
        return str(parsed.set(database=str(path)))
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput(
            f"Unsupported catalog database {parsed.get_backend_name()!r}: use sqlite or postgresql."
        )
    if parsed.get_driver_name() != "psycopg":
        raise InvalidInput("PostgreSQL catalogs use the psycopg driver: postgresql+psycopg://...")
    return url


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions start (see _begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


#: The execution option that marks a connection's transaction as a read (see Catalog.read).
_READ_ONLY = "garrison_read_only"


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get(_READ_ONLY):
        # WAL: a deferred read takes a snapshot and no lock that a writer or reader waits on.
        conn.exec_driver_sql("BEGIN")
        return
    # A write lock from the first statement: concurrent writers wait on busy_timeout rather than
    # failing with "database is locked" when a read transaction tries to upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_begin(conn: Any) -> None:
    if conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


class Catalog:
    """Connections to the catalog database of one workspace.

    ``binding_key`` is the workspace's binding key (:func:`garrison.store.keys.binding_key`):
    every write is bound with it and every whole-row read verified. Without it (a catalog opened
    only to migrate or inspect its revision) a throwaway key is used, so such a catalog reads no
    bound row and writes none that anyone can read: it fails closed.
    """

    def __init__(self, url: str, *, binding_key: bytes | None = None) -> None:
        self.url = url
        self._binding_key = binding_key
        self.binder = Binder(binding_key if binding_key is not None else os.urandom(32))
        self.backend = make_url(url).get_backend_name()
        try:
            if self.backend == "sqlite":
                self.engine: Engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(self.engine, "connect", _sqlite_pragmas)
                event.listen(self.engine, "begin", _sqlite_begin)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
                event.listen(self.engine, "begin", _postgresql_begin)
        except (SQLAlchemyError, ImportError) as exc:
            raise EnvironmentProblem(f"The catalog database cannot be opened: {exc}.") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        install(self.binder, self.engine, self._sessions)

    def __repr__(self) -> str:
        return f"Catalog({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def transaction(self) -> Iterator[OrmSession]:
        """One unit of work: committed when the block ends, rolled back on any error.

        A full disk raises ``DiskFull``; a PostgreSQL server that cannot be reached (stopped,
        restarted under the run) raises ``ServiceUnavailable``. Nothing of the unit is kept.
        """
        try:
            with self._sessions() as orm, orm.begin():
                yield orm
        except OperationalError as exc:
            raise self.translate(exc) from exc

    @contextmanager
    def read(self) -> Iterator[OrmSession]:
        """A read-only unit of work: one consistent snapshot, rolled back when the block ends.

        Use it for reads that write nothing (a write in it fails on PostgreSQL and may wait or
        fail on SQLite); unlike :meth:`transaction` it does not queue behind writers or other
        readers on SQLite. Errors are translated as :meth:`transaction` translates them.
        """
        try:
            # Closing the session ends the transaction (the pool rolls it back) and detaches
            # what was read without expiring it, as a committed transaction would leave it.
            with self._sessions() as orm:
                orm.connection(execution_options={_READ_ONLY: True})
                yield orm
        except OperationalError as exc:
            raise self.translate(exc) from exc

    def translate(self, exc: OperationalError) -> Exception:
        """The Garrison error for a database error of this catalog (or ``exc`` itself)."""
        full = disk_full(exc, f"the catalog ({self.where})")
        if full is not None:
            return full
        if self.backend == "postgresql":
            return ServiceUnavailable(
                f"The catalog database at {self.where} cannot be reached ({_short(exc)}); "
                "start it again and run the command again (it resumes where it stopped).",
                service=self.where,
                reason="unreachable",
            )
        return exc

    @property
    def where(self) -> str:
        """The catalog's file (SQLite) or server and database (PostgreSQL), without secrets."""
        url = self.engine.url
        if self.backend == "sqlite":
            return str(url.database)
        host = url.host or str(url.query.get("host") or "localhost")
        return f"{host}/{url.database}"

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    def _alembic_config(self, connection: Any) -> Any:
        from alembic.config import Config

        cfg = Config()
        location = resources.files("garrison.store") / "migrations"
        cfg.set_main_option("script_location", str(location))
        cfg.attributes["connection"] = connection
        # Migrations that bind existing rows need the real key (see 0008_bindings).
        cfg.attributes["binding_key"] = self._binding_key
        return cfg

    def is_empty(self) -> bool:
        """True when the database holds no tables at all (safe to initialize)."""
        try:
            with self.engine.connect() as conn:
                return not inspect(conn).get_table_names()
        except (OperationalError, DatabaseError) as exc:
            raise EnvironmentProblem(
                f"The catalog database is unreachable: {_short(exc)}."
            ) from exc

    def migrate(self) -> None:
        """Bring the schema to the head revision."""
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(self._alembic_config(conn), "head")

    def revision(self) -> str | None:
        """The applied migration revision, or None for a database Garrison never set up.

        Read from Alembic's version table with a plain query: importing Alembic to read one
        row would cost every command a large part of a second (``migrate`` still uses it).
        """
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            rows = sorted(
                str(v)
                for v in conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
        # Several rows are several heads: never this Garrison's head, so the check fails.
        return "+".join(rows) if rows else None

    def check(self) -> None:
        """Fail with a clear :class:`WorkspaceError` unless the catalog is usable and current."""
        try:
            revision = self.revision()
            with self.transaction() as orm:
                orm.execute(select(Meta.key).limit(1)).all()
        except (DatabaseError, OperationalError) as exc:
            raise WorkspaceError(
                f"The catalog database is corrupt or unreadable ({_short(exc)}); "
                "restore it from a backup."
            ) from exc
        if revision is None:
            raise WorkspaceError("The catalog database holds no Garrison schema.")
        if revision != HEAD_REVISION:
            raise WorkspaceError(
                f"The catalog is at schema revision {revision}, this Garrison expects "
                f"{HEAD_REVISION}; run `garrison migrate`."
            )


#: The table Alembic records the applied revision in (its default name).
VERSION_TABLE = "alembic_version"


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

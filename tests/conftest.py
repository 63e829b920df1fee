"""Shared fixtures: hypothesis profile, CI strictness, workspaces on SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Timed assertions are flaky on shared machines: no deadlines, ever.
settings.register_profile("garrison", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "garrison-thorough",
    parent=settings.get_profile("garrison"),
    max_examples=2000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "garrison"))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
IN_CI = os.environ.get("CI") == "true"
# `garrison run` exports the shipped embedder to ONNX for queries: seconds per workspace, which
# the many tests that run a pipeline do not need (tests/models/test_query_export.py turns it on).
os.environ.setdefault("GARRISON_QUERY_EXPORT", "0")
PG_ADMIN_URL = os.environ.get(
    "GARRISON_TEST_PG_ADMIN", "postgresql+psycopg:///postgres?host=/var/run/postgresql"
)


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false -- except in CI, where a missing prerequisite fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI requires this test to run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the repository (present on developer machines and in CI)."""
    require(SHARED.is_dir(), f"{SHARED} is absent (a user's fresh clone)")
    return SHARED


def _pg_reachable() -> str | None:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "no server here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


@dataclass
class PgDatabase:
    url: str
    name: str


@pytest.fixture
def pg_database() -> Iterator[PgDatabase]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    problem = _pg_reachable()
    require(
        problem is None,
        f"no PostgreSQL server at {PG_ADMIN_URL} ({problem}); run scripts/postgres-for-tests.sh",
    )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"garrison_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield PgDatabase(url=url, name=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest) -> str | None:
    """Run a test on both catalog backends (None = the default SQLite file)."""
    if request.param == "sqlite":
        return None
    db: PgDatabase = request.getfixturevalue("pg_database")
    return db.url


@contextmanager
def one_at_a_time(name: str) -> Iterator[None]:
    """Held while a test uses a machine-wide resource: parallel test workers (pytest -n) take turns.

    A local Ray cluster is one: each starts its own processes, object store and session folder,
    and two starting at once on two cores starve each other past their start-up timeouts.
    """
    path = Path(tempfile.gettempdir()) / f"garrison-tests-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

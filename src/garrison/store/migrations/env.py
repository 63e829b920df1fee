"""Alembic environment: Garrison always hands in a live connection (no alembic.ini URL)."""

from __future__ import annotations

from alembic import context

from garrison.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - guarded by Catalog.migrate
    raise RuntimeError("Garrison migrations run only through garrison.store.catalog.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode recreates tables the portable way.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

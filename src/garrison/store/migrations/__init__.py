"""Alembic migrations of the catalog; run by :func:`garrison.store.catalog.Catalog.migrate`."""

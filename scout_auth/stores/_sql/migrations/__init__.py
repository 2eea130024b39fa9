"""Alembic migrations for the SQL key store (see ``docs/sql-store.md``)."""

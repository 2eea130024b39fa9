"""Schema management: Alembic migrations shipped in the package, and ``create_all``.

The migration scripts live in ``scout_auth/stores/_sql/migrations``; their
version table is ``scout_auth_alembic_version``, so they never mix with a
service's own Alembic history in the same database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from .schema import METADATA, VERSION_TABLE

__all__ = ["MIGRATIONS_DIR", "alembic_config", "create_all", "current_revision", "upgrade"]

#: Where the migration scripts are (``script_location`` for Alembic).
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` for scout_auth's migrations.

    Args:
        url: The database to migrate (not needed when a connection is passed
            through ``config.attributes["connection"]``).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def _on_connection(bind: Engine | str | URL, action: str, revision: str) -> None:
    engine = bind if isinstance(bind, Engine) else create_engine(bind, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            _run(conn, action, revision)
    finally:
        if engine is not bind:
            engine.dispose()


def _run(conn: Connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    if action == "create_all":
        METADATA.create_all(conn)
        command.stamp(config, revision)
    else:
        command.upgrade(config, revision)


def upgrade(bind: Engine | str | URL, revision: str = "head") -> None:
    """Migrate the schema to ``revision`` (default: the newest), in one transaction.

    Safe to run on every deploy: an up-to-date database is left as it is.

    Args:
        bind: A sync engine or URL of the database.
        revision: Target Alembic revision.
    """
    _on_connection(bind, "upgrade", revision)


def create_all(bind: Engine | str | URL) -> None:
    """Create missing tables from the current schema and stamp the newest revision.

    One call for SQLite, tests and fresh databases; later releases then
    upgrade it with :func:`upgrade` like a migrated database.
    """
    _on_connection(bind, "create_all", "head")


def run_on_connection(conn: Connection, action: str, revision: str = "head") -> None:
    """:func:`upgrade` or :func:`create_all` on an open connection (for ``run_sync``)."""
    _run(conn, action, revision)


def current_revision(conn: Connection) -> str | None:
    """The schema revision a database is at, or ``None`` if never migrated."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()

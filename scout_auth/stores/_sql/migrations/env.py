"""Alembic environment for scout_auth's SQL key store.

Runs on the connection handed over in ``config.attributes["connection"]``
(what :func:`scout_auth.stores.sql.upgrade` does) or on
``sqlalchemy.url``; offline mode (``--sql``) renders the DDL for a DBA.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from scout_auth.stores._sql.schema import METADATA, VERSION_TABLE


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    # Only scout_auth's tables: the database may hold the service's own.
    return type_ != "table" or (name or "").startswith("scout_auth_")


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=METADATA,
        version_table=VERSION_TABLE,
        include_name=_ours,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _online(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    config = context.config
    if context.is_offline_mode():
        _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _online(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            _online(conn)
    finally:
        engine.dispose()


main()

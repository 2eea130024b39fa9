"""The SQL key store: SQLAlchemy Core on SQLite, PostgreSQL and MariaDB.

Needs the ``sql`` extra (``postgres`` / ``mariadb`` for those drivers). See
``docs/sql-store.md`` for the schema, migrations, guarantees and the
PostgreSQL change feed (``LISTEN``/``NOTIFY``).

Example:
    >>> from scout_auth import KeyManager, Verifier
    >>> from scout_auth.stores.sql import SQLKeyStore
    >>> store = SQLKeyStore("sqlite:///keys.db")  # doctest: +SKIP
    >>> store.create_all()  # doctest: +SKIP
    >>> new = KeyManager(store).create_key("org_1", "billing-sync prod")  # doctest: +SKIP

One :class:`Database` (one pool, one set of timeouts) can serve a store and
an audit sink built apart::

    database = Database("postgresql+psycopg://app@db/app")
    store, audit = SQLKeyStore(database), SQLAuditSink(database)
"""

from __future__ import annotations

from ._sql.audit import SQLAuditSink
from ._sql.database import Database
from ._sql.migrate import alembic_config, create_all, upgrade
from ._sql.schema import AUDIT, KEYS, LEGACY, LEGACY_USAGE, METADATA, ROLES
from ._sql.store import DEFAULT_CHANNEL, SQLKeyStore

__all__ = [
    "AUDIT",
    "DEFAULT_CHANNEL",
    "KEYS",
    "LEGACY",
    "LEGACY_USAGE",
    "METADATA",
    "ROLES",
    "Database",
    "SQLAuditSink",
    "SQLKeyStore",
    "alembic_config",
    "create_all",
    "upgrade",
]

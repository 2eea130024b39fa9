"""The SQL audit sink: the audit trail in ``scout_auth_audit_events``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ..._audit.events import AuditEvent, AuditPage
from ..._audit.query import AuditQuery, QueryableSink
from . import audit_ops as ops
from .database import Database

__all__ = ["SQLAuditSink"]


class _OnDatabase(Protocol):
    """A :class:`~scout_auth.stores.sql.SQLKeyStore`, as far as the sink needs it."""

    @property
    def database(self) -> Database: ...


class SQLAuditSink(QueryableSink):
    """Audit events in the ``scout_auth_audit_events`` table, next to the keys.

    Shares a :class:`~scout_auth.stores.sql.Database` with the key store (its
    pools, timeouts, reconnect-and-retry and
    :class:`~scout_auth.exceptions.StoreUnavailable` on outages), or is
    built on engines of its own. The table comes with migration ``0002``
    (``upgrade()``) and with ``create_all()``.

    Writes are idempotent per event id: a batch retried after a lost commit
    reply is not stored twice. Every write is one transaction, every page
    one indexed query.

    Args:
        source: A ``SQLKeyStore`` (usual: ``store.audit_sink()``) or its
            ``Database`` (shared), a sync :class:`~sqlalchemy.engine.Engine`
            or an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.

    Raises:
        TypeError: ``source`` is none of these.

    Example:
        >>> store = SQLKeyStore("postgresql+psycopg://app@db/app")  # doctest: +SKIP
        >>> audit = AuditBuffer(store.audit_sink())  # doctest: +SKIP
        >>> store.audit_sink().query("org_1", limit=20)  # doctest: +SKIP
    """

    def __init__(self, source: _OnDatabase | Database | Engine | AsyncEngine) -> None:
        if isinstance(source, Database):
            database = source
        elif isinstance(source, Engine):
            database = Database(engine=source)
        elif isinstance(source, AsyncEngine):
            database = Database(async_engine=source)
        elif isinstance(getattr(source, "database", None), Database):  # a SQLKeyStore
            database = source.database
        else:
            raise TypeError("pass a SQLKeyStore, a Database, an Engine or an AsyncEngine")
        #: Where the audit table is.
        self.database = database

    def __repr__(self) -> str:
        return f"SQLAuditSink(url={str(self.database.url)!r})"  # str(URL) masks the password

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Insert ``events`` in one transaction (ids already stored are skipped)."""
        if events:
            self.database.run(partial(ops.write_events, tuple(events)), write=True)

    def _query(self, query: AuditQuery) -> AuditPage:
        return self.database.run(partial(ops.query_events, query), write=False).value

    async def awrite(self, events: Sequence[AuditEvent]) -> None:
        """Async :meth:`write`."""
        if events:
            await self.database.arun(partial(ops.write_events, tuple(events)), write=True)

    async def _aquery(self, query: AuditQuery) -> AuditPage:
        return (await self.database.arun(partial(ops.query_events, query), write=False)).value

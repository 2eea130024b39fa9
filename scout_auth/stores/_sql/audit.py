"""The SQL audit sink: the audit trail in ``scout_auth_audit_events``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ..._audit.events import AuditEvent, AuditPage
from ..._audit.query import AuditQuery, QueryableSink
from . import audit_ops as ops

if TYPE_CHECKING:
    from ..sql import SQLKeyStore

__all__ = ["SQLAuditSink"]


class SQLAuditSink(QueryableSink):
    """Audit events in the ``scout_auth_audit_events`` table, next to the keys.

    Shares a :class:`~scout_auth.stores.sql.SQLKeyStore`'s engines (its
    pools, timeouts, reconnect-and-retry and
    :class:`~scout_auth.exceptions.StoreUnavailable` on outages), or is
    built on engines of its own. The table comes with migration ``0002``
    (``upgrade()``) and with ``create_all()``.

    Writes are idempotent per event id: a batch retried after a lost commit
    reply is not stored twice. Every write is one transaction, every page
    one indexed query.

    Args:
        store_or_engine: A ``SQLKeyStore`` (usual: ``store.audit_sink()``), a
            sync :class:`~sqlalchemy.engine.Engine` or an
            :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.

    Example:
        >>> store = SQLKeyStore("postgresql+psycopg://app@db/app")  # doctest: +SKIP
        >>> audit = AuditBuffer(store.audit_sink())  # doctest: +SKIP
        >>> store.audit_sink().query("org_1", limit=20)  # doctest: +SKIP
    """

    def __init__(self, store_or_engine: SQLKeyStore | Engine | AsyncEngine) -> None:
        from ..sql import SQLKeyStore

        if isinstance(store_or_engine, SQLKeyStore):
            self.store = store_or_engine
        elif isinstance(store_or_engine, Engine):
            self.store = SQLKeyStore(engine=store_or_engine)
        elif isinstance(store_or_engine, AsyncEngine):
            self.store = SQLKeyStore(async_engine=store_or_engine)
        else:
            raise TypeError("pass a SQLKeyStore, an Engine or an AsyncEngine")

    def __repr__(self) -> str:
        return f"SQLAuditSink({self.store!r})"

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Insert ``events`` in one transaction (ids already stored are skipped)."""
        if events:
            self.store._write(partial(ops.write_events, tuple(events)))

    def _query(self, query: AuditQuery) -> AuditPage:
        return self.store._read(partial(ops.query_events, query))

    async def awrite(self, events: Sequence[AuditEvent]) -> None:
        """Async :meth:`write`."""
        if events:
            await self.store._awrite(partial(ops.write_events, tuple(events)))

    async def _aquery(self, query: AuditQuery) -> AuditPage:
        return await self.store._aread(partial(ops.query_events, query))

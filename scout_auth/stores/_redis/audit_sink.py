"""The Redis audit sink: streams per org and per key, next to the keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from ..._audit.events import AuditEvent, AuditPage
from ..._audit.query import AuditQuery, QueryableSink
from ..._core.store import StoreEventsMixin
from .audit import AuditOps
from .connection import AsyncClient, RedisConnection, SyncClient
from .layout import Layout

__all__ = ["RedisAuditSink"]


class _OnConnection(Protocol):
    """A :class:`~scout_auth.stores.redis.RedisKeyStore`, as far as the sink needs it."""

    @property
    def connection(self) -> RedisConnection: ...

    @property
    def layout(self) -> Layout: ...


class RedisAuditSink(QueryableSink):
    """Audit events in Redis streams: one per org, one per key, in the org's hash slot.

    Layout and guarantees in ``docs/audit.md``: each org's part of a batch
    is one atomic script, the same batch sent again is not appended twice,
    queries run newest first in arrival order. A cursor is an entry id of
    the stream it was read from (the org's or the key's), so it continues
    only the query it came from: with another ``org_id`` / ``key_id`` it
    gives a wrong page, without an error (the memory and SQL sinks'
    ``(at, id)`` cursors continue any query).

    Filters are checked in Python on the entries read, newest first, in
    batches; ``since`` also bounds the range read (stream ids are arrival
    times: an event whose ``at`` is more than 5 minutes ahead of Redis's
    clock when it arrives is missed by a ``since`` query), ``until`` cannot.
    One query reads at most 5000 entries: a filter that matches rarely may
    give a short page, even an empty one, whose ``next`` continues below the
    last entry read — keep paging until ``next`` is ``None``. Redis errors raise
    :class:`~scout_auth.exceptions.StoreUnavailable` (an
    :class:`~scout_auth.audit.AuditBuffer` retries the batch).

    Args:
        store_or_client: A :class:`RedisKeyStore` (usual:
            ``store.audit_sink()``; its connection and prefix are shared), a
            store's ``connection``, or a sync ``redis.Redis`` /
            ``redis.cluster.RedisCluster``.
        async_client: With a client: a ``redis.asyncio.Redis`` /
            ``redis.asyncio.cluster.RedisCluster`` for the ``a*`` methods
            (else they use the sync client in a worker thread).
        prefix: With a client or a connection: the key prefix (the key
            store's, to keep the audit trail next to the keys).
        maxlen: Trim each stream to about this many entries (``XADD MAXLEN
            ~``); ``None`` (default) keeps everything.

    Raises:
        ValueError: ``maxlen`` below 1.
        TypeError: Another kind of key store.
    """

    def __init__(
        self,
        store_or_client: _OnConnection | RedisConnection | SyncClient,
        *,
        async_client: AsyncClient | None = None,
        prefix: str = "scout",
        maxlen: int | None = None,
    ) -> None:
        if maxlen is not None and maxlen < 1:
            raise ValueError("maxlen must be at least 1 (or None)")
        layout = Layout(prefix)
        if isinstance(store_or_client, RedisConnection):
            connection = store_or_client
        elif isinstance(store_or_client, StoreEventsMixin):  # a key store: a RedisKeyStore?
            store = cast(_OnConnection, store_or_client)
            if not isinstance(getattr(store, "connection", None), RedisConnection):
                raise TypeError("pass a RedisKeyStore, a RedisConnection or a Redis client")
            connection, layout = store.connection, store.layout
        else:
            connection = RedisConnection(cast(SyncClient, store_or_client), async_client)
        #: The clients and the driver the audit trail is written through.
        self.connection = connection
        self._ops = AuditOps(layout, maxlen)

    def __repr__(self) -> str:
        return f"RedisAuditSink(prefix={self._ops.layout.prefix!r}, maxlen={self._ops.maxlen})"

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Append ``events`` to their org's (and key's) streams."""
        if events:
            self.connection.run(self._ops.write(tuple(events)))

    def _query(self, query: AuditQuery) -> AuditPage:
        return self.connection.run(self._ops.query(query))

    async def awrite(self, events: Sequence[AuditEvent]) -> None:
        """Async :meth:`write`."""
        if events:
            await self.connection.arun(self._ops.write(tuple(events)))

    async def _aquery(self, query: AuditQuery) -> AuditPage:
        return await self.connection.arun(self._ops.query(query))

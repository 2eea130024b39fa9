"""The Redis audit sink: streams per org and per key, next to the keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..._audit.events import AuditEvent, AuditPage
from ..._audit.query import AuditQuery, QueryableSink
from .audit import AuditOps
from .connection import AsyncClient, SyncClient

if TYPE_CHECKING:
    from .store import RedisKeyStore

__all__ = ["RedisAuditSink"]


class RedisAuditSink(QueryableSink):
    """Audit events in Redis streams: one per org, one per key, in the org's hash slot.

    Layout and guarantees in ``docs/audit.md``: each org's part of a batch
    is one atomic script, the same batch sent again is not appended twice,
    queries run newest first in arrival order. A cursor is an entry id of
    the stream it was read from (the org's or the key's), so it continues
    only the query it came from: with another ``org_id`` / ``key_id`` it
    gives a wrong page, without an error (the memory and SQL sinks'
    ``(at, id)`` cursors continue any query). Redis errors raise
    :class:`~scout_auth.exceptions.StoreUnavailable` (an
    :class:`~scout_auth.audit.AuditBuffer` retries the batch).

    Args:
        store_or_client: A :class:`RedisKeyStore` (usual:
            ``store.audit_sink()``; its clients and prefix are shared) or a
            sync ``redis.Redis`` / ``redis.cluster.RedisCluster``.
        async_client: With a client: a ``redis.asyncio.Redis`` /
            ``redis.asyncio.cluster.RedisCluster`` for the ``a*`` methods
            (else they use the sync client in a worker thread).
        prefix: With a client: the key prefix (the key store's, to keep the
            audit trail next to the keys).
        maxlen: Trim each stream to about this many entries (``XADD MAXLEN
            ~``); ``None`` (default) keeps everything.

    Raises:
        ValueError: ``maxlen`` below 1.
    """

    def __init__(
        self,
        store_or_client: RedisKeyStore | SyncClient,
        *,
        async_client: AsyncClient | None = None,
        prefix: str = "scout",
        maxlen: int | None = None,
    ) -> None:
        from .store import RedisKeyStore

        if maxlen is not None and maxlen < 1:
            raise ValueError("maxlen must be at least 1 (or None)")
        if isinstance(store_or_client, RedisKeyStore):
            self.store = store_or_client
        else:
            self.store = RedisKeyStore(
                store_or_client, async_client=async_client, prefix=prefix, listen=False
            )
        self._ops = AuditOps(self.store.layout, maxlen)

    def __repr__(self) -> str:
        return f"RedisAuditSink(prefix={self.store.layout.prefix!r}, maxlen={self._ops.maxlen})"

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Append ``events`` to their org's (and key's) streams."""
        if events:
            self.store._run(self._ops.write(tuple(events)))

    def _query(self, query: AuditQuery) -> AuditPage:
        return self.store._run(self._ops.query(query))

    async def awrite(self, events: Sequence[AuditEvent]) -> None:
        """Async :meth:`write`."""
        if events:
            await self.store._arun(self._ops.write(tuple(events)))

    async def _aquery(self, query: AuditQuery) -> AuditPage:
        return await self.store._arun(self._ops.query(query))

"""The Redis key store: the operations of :mod:`.ops` and :mod:`.legacy`,
run on a :class:`~.connection.RedisConnection`, sync or async."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread

from ..._core.records import KeyRecord, LegacyRecord, RoleRecord, ScopeInfo
from ..._core.store import KeyUpdate, StoreEventsMixin
from .audit_sink import RedisAuditSink
from .connection import (
    DEFAULT_SOCKET_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    AsyncClient,
    RedisConnection,
    SyncClient,
)
from .driver import Events
from .events import EventListener
from .layout import Layout
from .legacy import LegacyOps
from .ops import Op, Ops
from .slots import aligned_key_id, slot_of
from .sweep import SweepOps

__all__ = ["RedisKeyStore"]

T = TypeVar("T")


class RedisKeyStore(StoreEventsMixin):
    """A key store on Redis, shared by every instance of a service.

    Keys live under ``prefix`` (layout in ``docs/redis-store.md``): public
    keys and argon2id hashes only, one org per Redis Cluster hash slot, every
    write one atomic Lua script. Each write is published on
    ``<prefix>:events``; unless ``listen=False`` a daemon thread delivers
    changes made by *other* processes to this store's subscribers, so every
    verifier drops a disabled or deleted key within milliseconds. If the feed
    drops, caches fall back to their TTL and the thread reconnects by itself
    (then flushes them: events may have been missed).

    Redis errors and timeouts raise
    :class:`~scout_auth.exceptions.StoreUnavailable` (the middlewares answer
    503 with ``Retry-After``); the store recovers by itself when Redis does.
    A Redis Cluster reached by a client not in cluster mode (``MOVED`` /
    ``ASK`` replies) raises :class:`~scout_auth.exceptions.ConfigurationError`
    instead, logged once: no retry can fix it (verifiers still answer 503).
    From a lifecycle write a ``StoreUnavailable`` means the outcome is
    unknown: read the key back before trying again. Within the store a
    retry is exactly-once (each write carries a request id; see
    ``docs/redis-store.md``, "Failure modes and guarantees").

    Args:
        client: A sync ``redis.Redis`` or ``redis.cluster.RedisCluster``
            (sync methods and the change feed), or a
            :class:`~.connection.RedisConnection` to share (another store's
            ``connection``; then its clients, ``retries`` and
            ``wait_replicas`` are the connection's, not given here).
        async_client: A ``redis.asyncio.Redis`` or
            ``redis.asyncio.cluster.RedisCluster`` for the ``a*`` methods;
            without one they run the sync client in a worker thread.
        prefix: Namespace of every Redis key (no ``{`` or ``}``).
        listen: Run the change-feed thread (``False``: publish only, e.g. CLI
            tools, which have no cache to invalidate).
        ping_interval: Seconds between liveness pings on the feed connection.
        retries: Immediate retries of a command that failed with a
            connection error or a timeout, when repeating it is safe: reads,
            and lifecycle writes (their request id replays the first run's
            answer). Usage counters are never retried. A client passed in
            keeps its own redis-py ``Retry`` on top of these.
        wait_replicas: After each write that can take access away (every
            lifecycle write but ``add_key``), wait until this many replicas
            acknowledge it (``WAIT``); ``None`` (default): do not wait.
            Standalone or Sentinel-managed Redis only.
        wait_timeout: Seconds ``WAIT`` may take; fewer acknowledgements are
            logged as a warning, not raised (the write stands on the
            primary). Must be shorter than the client's ``socket_timeout``.

    Raises:
        ValueError: ``retries`` below 0; ``wait_replicas`` below 1, with a
            Redis Cluster client, or ``wait_timeout`` not positive or not
            shorter than the client's socket timeout; ``async_client``,
            ``retries`` or the ``wait_*`` options beside a connection.

    Example:
        >>> store = RedisKeyStore.from_url("redis://localhost:6379/0")  # doctest: +SKIP
        >>> store = RedisKeyStore.from_url("redis+cluster://n1:6379,n2:6379/")  # doctest: +SKIP
        >>> verifier = AsyncVerifier(store, cache_ttl=60)  # doctest: +SKIP
    """

    def __init__(
        self,
        client: SyncClient | RedisConnection,
        *,
        async_client: AsyncClient | None = None,
        prefix: str = "scout",
        listen: bool = True,
        ping_interval: float = 5.0,
        retries: int = 1,
        wait_replicas: int | None = None,
        wait_timeout: float = 0.5,
    ) -> None:
        super().__init__()
        if not isinstance(client, RedisConnection):
            client = RedisConnection(
                client,
                async_client,
                retries=retries,
                wait_replicas=wait_replicas,
                wait_timeout=wait_timeout,
            )
        elif async_client is not None or (retries, wait_replicas, wait_timeout) != (1, None, 0.5):
            raise ValueError("with a RedisConnection, give clients, retries and WAIT to it")
        #: The clients and the driver (share them: ``RedisNonceCache(store.connection)``).
        self.connection = client
        self.layout = Layout(prefix)
        self.origin = uuid.uuid4().hex
        self._ops = Ops(self.layout, self.origin)
        self._legacy = LegacyOps(self.layout, self.origin)
        self._sweep = SweepOps(self.layout)
        # A failed write tells this process's subscribers like a remote event
        # does: one failing subscriber neither hides the error nor the others.
        self._events = Events(publish=self._publish, tell=self._deliver_remote)
        self._closed = False
        self._listener: EventListener | None = None
        if listen:
            self._listener = EventListener(
                self.connection.sync,
                self.layout.channel,
                self.origin,
                self._deliver_remote,
                ping_interval=ping_interval,
            )
            self._listener.start()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "scout",
        listen: bool = True,
        socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = DEFAULT_SOCKET_CONNECT_TIMEOUT,
        retries: int = 1,
        ping_interval: float = 5.0,
        wait_replicas: int | None = None,
        wait_timeout: float = 0.5,
        **client_options: Any,
    ) -> RedisKeyStore:
        """A store with its own clients for ``url`` (closed by :meth:`close` / :meth:`aclose`).

        Args:
            url: ``redis://``, ``rediss://`` or ``unix://`` URL of one server,
                or ``redis+cluster://host:port[,host:port...]/``
                (``rediss+cluster://`` for TLS) of a Redis Cluster: its
                startup nodes, any one reachable node is enough.
            prefix: See the class.
            listen: See the class.
            socket_timeout: Seconds a command may take (then 503).
            socket_connect_timeout: Seconds a connection attempt may take.
            retries: See the class (done by the store: these clients have
                redis-py's own retries off).
            ping_interval: See the class.
            wait_replicas: See the class.
            wait_timeout: See the class.
            client_options: More ``redis.Redis.from_url`` options (for a
                cluster URL: ``RedisCluster`` options, sync and async).

        Raises:
            ValueError: A malformed cluster URL, or options a cluster cannot
                take (checked here, not on first use).
        """
        # The connection's clients have redis-py's Retry off: it would resend a
        # timed-out command on its own; the driver retries only what is safe.
        connection = RedisConnection.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retries=retries,
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
            **client_options,
        )
        try:
            return cls(connection, prefix=prefix, listen=listen, ping_interval=ping_interval)
        except BaseException:
            connection.close()  # a refused option must not leak the pool
            raise

    def __repr__(self) -> str:
        return f"RedisKeyStore(prefix={self.layout.prefix!r}, listening={self.listening})"

    @property
    def listening(self) -> bool:
        """Whether the change feed is subscribed right now."""
        return self._listener is not None and self._listener.connected.is_set()

    def wait_listening(self, timeout: float | None = None) -> bool:
        """Wait until the change feed is subscribed; ``False`` on timeout or ``listen=False``."""
        return self._listener is not None and self._listener.connected.wait(timeout)

    def audit_sink(self, *, maxlen: int | None = None) -> RedisAuditSink:
        """An audit sink on this store's clients: streams next to each org's keys.

        Args:
            maxlen: Trim each stream to about this many entries; ``None``
                keeps everything.
        """
        return RedisAuditSink(self.connection, prefix=self.layout.prefix, maxlen=maxlen)

    def embedded_legacy_pepper(self) -> None:
        """No pepper of its own: configure ``$SCOUT_AUTH_LEGACY_PEPPER`` in production.

        Redis is shared by a fleet, so every instance must use the same
        pepper, and it must never be stored next to the digests it keys (a
        dump would then test guesses at HMAC speed). The store keeps none;
        without a configured pepper, legacy secrets sent as ``Bearer`` find
        no org (``Basic`` with the org id keeps working).
        """
        return None

    def new_key_id(self, org_id: str) -> str:
        """A fresh key id for a new key of ``org_id``, in the org's hash slot.

        The key managers ask for it when they create or rotate a key: its
        directory entry then shares the org's Redis Cluster slot, so a
        look-up is one round trip on a cluster too (80 random bits and a
        4-character suffix chosen for the slot; ``docs/redis-store.md``, "A
        look-up's round trips"). Pure computation, no Redis command.
        """
        return aligned_key_id(slot_of(self.layout.key(org_id, "")))

    # -- every method: one operation on the connection --------------------
    def _run(self, op: Op[T]) -> T:
        return self.connection.run(op, self._events)

    async def _arun(self, op: Op[T]) -> T:
        return await self.connection.arun(op, self._events)

    # -- sync -------------------------------------------------------------
    def get_key(self, key_id: str) -> KeyRecord | None:
        """Return the key with ``key_id``, or ``None``."""
        return self._run(self._ops.get_key(key_id))

    def list_keys(self, org_id: str) -> list[KeyRecord]:
        """Return the org's keys, oldest first."""
        return self._run(self._ops.list_keys(org_id))

    def add_key(self, record: KeyRecord) -> None:
        """Insert a new key; ``ValueError`` if the id exists."""
        self._run(self._ops.add_key(record))

    def update_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Apply ``update`` atomically; return the new record or ``None``."""
        return self._run(self._ops.update_key(key_id, update))

    def rotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Insert ``new_record`` and end the old key at ``grace_until``, atomically.

        Raises:
            ValueError: The new key id exists, or the new key belongs to
                another org (a rotation stays within one org: one hash slot).
        """
        return self._run(self._ops.rotate_key(old_key_id, new_record, grace_until))

    def delete_key(self, key_id: str) -> KeyRecord | None:
        """Delete permanently; return the deleted record or ``None``."""
        return self._run(self._ops.delete_key(key_id))

    def get_legacy(self, org_id: str) -> LegacyRecord | None:
        """Return the org's legacy key hash, or ``None``."""
        return self._run(self._legacy.get_legacy(org_id))

    def put_legacy(self, record: LegacyRecord) -> None:
        """Create or replace the org's legacy key hash (and its look-up digest).

        The switch survives a new hash. A digest another org's record holds
        is not taken: the record is stored without one.
        """
        self._run(self._legacy.put_legacy(record))

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""
        return self._run(self._legacy.delete_legacy(org_id))

    def set_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Switch legacy auth on or off for one org; ``None`` without a legacy key."""
        return self._run(self._legacy.set_legacy_enabled(org_id, enabled))

    def find_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """The legacy record holding ``lookup_digest``, or ``None`` (two reads, no scan)."""
        return self._run(self._legacy.find_legacy(lookup_digest))

    def set_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Give the org's record this digest if it still holds ``secret_hash`` (no event).

        ``False`` when the org has no record, its hash changed, or another
        org holds the digest (see :meth:`KeyStore.set_legacy_digest`).
        """
        return self._run(
            self._legacy.set_legacy_digest(org_id, secret_hash, lookup_digest, pepper_id)
        )

    def legacy_pepper_ids(self) -> frozenset[str]:
        """Every pepper id a digest was ever stored with (one ``SMEMBERS``).

        What every verifier asks at startup, so not :meth:`legacy_digest_counts`'s
        ``SCAN``: a set written before each digest, never trimmed (an id
        stays after its last digest is gone; harmless for the startup check,
        which only asks whether any of them is a configured pepper).
        """
        return self._run(self._legacy.legacy_pepper_ids())

    def legacy_digest_counts(self) -> dict[str | None, int]:
        """Legacy records per pepper id (``None``: no digest).

        A ``SCAN`` of the whole database (every primary of a cluster), about
        one round trip per thousand keys: for startup and ``doctor``, not
        for requests.
        """
        return self._run(self._legacy.legacy_digest_counts())

    def sweep_directories(self, *, min_idle: float = 3600.0) -> int:
        """Remove directory entries that interrupted writes left behind; how many.

        An entry is removed when no record backs it (a key id whose key
        record is missing, a look-up digest its org's legacy record no longer
        holds) and nobody has read or written it for ``min_idle`` seconds, so
        a write in flight keeps its entry. Such entries are harmless (they
        read as "no such key") and rare, so this is maintenance, not a need:
        a ``SCAN`` of the whole database (every primary of a cluster).
        Needs a non-LFU ``maxmemory-policy`` (``OBJECT IDLETIME``, counted
        in whole seconds: keep ``min_idle`` at minutes or more).

        Raises:
            ValueError: ``min_idle`` is negative.
        """
        return self._run(self._sweep.sweep(_idle(min_idle)))

    def put_role(self, role: RoleRecord) -> None:
        """Create or replace a role."""
        self._run(self._ops.put_role(role))

    def get_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Return one role, or ``None``."""
        return self._run(self._ops.get_role(org_id, name))

    def delete_role(self, org_id: str, name: str) -> bool:
        """Delete a role; ``False`` if there was none."""
        return self._run(self._ops.delete_role(org_id, name))

    def list_roles(self, org_id: str) -> list[RoleRecord]:
        """Return the org's roles, by name."""
        return self._run(self._ops.list_roles(org_id))

    def put_scope_info(self, info: ScopeInfo) -> None:
        """Create or replace one scope of the org's catalogue (no event)."""
        self._run(self._ops.put_scope_info(info))

    def delete_scope_info(self, org_id: str, name: str) -> bool:
        """Delete one scope from the catalogue; ``False`` if it was not there."""
        return self._run(self._ops.delete_scope_info(org_id, name))

    def list_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Return the org's scope catalogue, by name."""
        return self._run(self._ops.list_scope_infos(org_id))

    def list_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """``(key_id, kek_id)`` of recoverable keys, by key id, after ``after``.

        A ``SCAN`` of the whole database (every primary of a cluster) per
        page: for ``scout-auth vault rewrap`` and ``status``, not for requests.
        """
        return self._run(self._ops.list_sealed_seeds(after, limit))

    def record_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Add ``uses``, raise ``last_used_at``, its ``address`` with it, atomically (no event)."""
        self._run(self._ops.record_usage(key_id, uses, last_used_at, address))

    def record_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Add ``uses`` to the org's legacy bucket of that UTC day."""
        self._run(self._ops.record_legacy_usage(org_id, uses, last_used_at))

    def legacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """``(last legacy use, legacy uses on UTC days from since's day on)``."""
        return self._run(self._ops.legacy_usage(org_id, since))

    def close(self) -> None:
        """Stop the change feed and close the clients this store made.

        From async code prefer :meth:`aclose`, which also closes an owned
        async client.
        """
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.stop()
        self.connection.close()

    # -- async ------------------------------------------------------------
    async def aget_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`get_key`."""
        return await self._arun(self._ops.get_key(key_id))

    async def alist_keys(self, org_id: str) -> list[KeyRecord]:
        """Async :meth:`list_keys`."""
        return await self._arun(self._ops.list_keys(org_id))

    async def aadd_key(self, record: KeyRecord) -> None:
        """Async :meth:`add_key`."""
        await self._arun(self._ops.add_key(record))

    async def aupdate_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Async :meth:`update_key`."""
        return await self._arun(self._ops.update_key(key_id, update))

    async def arotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Async :meth:`rotate_key`."""
        return await self._arun(self._ops.rotate_key(old_key_id, new_record, grace_until))

    async def adelete_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`delete_key`."""
        return await self._arun(self._ops.delete_key(key_id))

    async def aget_legacy(self, org_id: str) -> LegacyRecord | None:
        """Async :meth:`get_legacy`."""
        return await self._arun(self._legacy.get_legacy(org_id))

    async def aput_legacy(self, record: LegacyRecord) -> None:
        """Async :meth:`put_legacy`."""
        await self._arun(self._legacy.put_legacy(record))

    async def adelete_legacy(self, org_id: str) -> bool:
        """Async :meth:`delete_legacy`."""
        return await self._arun(self._legacy.delete_legacy(org_id))

    async def aset_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Async :meth:`set_legacy_enabled`."""
        return await self._arun(self._legacy.set_legacy_enabled(org_id, enabled))

    async def afind_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """Async :meth:`find_legacy`."""
        return await self._arun(self._legacy.find_legacy(lookup_digest))

    async def aset_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Async :meth:`set_legacy_digest`."""
        op = self._legacy.set_legacy_digest(org_id, secret_hash, lookup_digest, pepper_id)
        return await self._arun(op)

    async def alegacy_digest_counts(self) -> dict[str | None, int]:
        """Async :meth:`legacy_digest_counts`."""
        return await self._arun(self._legacy.legacy_digest_counts())

    async def alegacy_pepper_ids(self) -> frozenset[str]:
        """Async :meth:`legacy_pepper_ids`."""
        return await self._arun(self._legacy.legacy_pepper_ids())

    async def asweep_directories(self, *, min_idle: float = 3600.0) -> int:
        """Async :meth:`sweep_directories`."""
        return await self._arun(self._sweep.sweep(_idle(min_idle)))

    async def aput_role(self, role: RoleRecord) -> None:
        """Async :meth:`put_role`."""
        await self._arun(self._ops.put_role(role))

    async def aget_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Async :meth:`get_role`."""
        return await self._arun(self._ops.get_role(org_id, name))

    async def adelete_role(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_role`."""
        return await self._arun(self._ops.delete_role(org_id, name))

    async def alist_roles(self, org_id: str) -> list[RoleRecord]:
        """Async :meth:`list_roles`."""
        return await self._arun(self._ops.list_roles(org_id))

    async def aput_scope_info(self, info: ScopeInfo) -> None:
        """Async :meth:`put_scope_info`."""
        await self._arun(self._ops.put_scope_info(info))

    async def adelete_scope_info(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_scope_info`."""
        return await self._arun(self._ops.delete_scope_info(org_id, name))

    async def alist_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Async :meth:`list_scope_infos`."""
        return await self._arun(self._ops.list_scope_infos(org_id))

    async def alist_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """Async :meth:`list_sealed_seeds`."""
        return await self._arun(self._ops.list_sealed_seeds(after, limit))

    async def arecord_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Async :meth:`record_usage`."""
        await self._arun(self._ops.record_usage(key_id, uses, last_used_at, address))

    async def arecord_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Async :meth:`record_legacy_usage`."""
        await self._arun(self._ops.record_legacy_usage(org_id, uses, last_used_at))

    async def alegacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """Async :meth:`legacy_usage`."""
        return await self._arun(self._ops.legacy_usage(org_id, since))

    async def aclose(self) -> None:
        """Stop the change feed (off the event loop) and close the clients this store made."""
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            await anyio.to_thread.run_sync(self._listener.stop)
        await self.connection.aclose()


def _idle(min_idle: float) -> float:
    if not min_idle >= 0:
        raise ValueError("min_idle must be 0 or more seconds")
    return min_idle

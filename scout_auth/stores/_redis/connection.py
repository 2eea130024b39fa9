"""One Redis deployment as the key store, its audit sink and the nonce cache use it.

A :class:`RedisConnection` holds a sync and an async redis-py client side by
side, with fail-fast defaults, and the :class:`~.driver.RedisDriver` that
runs operations on them (retries of what is safe to repeat, ``WAIT``,
failures as 503). Whoever takes one runs its operations through
:meth:`RedisConnection.run` / :meth:`RedisConnection.arun`; nobody reaches
into another object for its clients.

``redis.asyncio`` clients belong to the event loop they first ran on. When
the connection builds its own clients (from a URL) it makes the async one
lazily, in the loop that needs it, and a new one if the loop changes (a
store created at import time and used by uvicorn, or by several test
clients, just works). Clients given by the application are used as they
are and never closed by scout_auth.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import anyio.to_thread
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry
from redis.backoff import NoBackoff

from .cluster import LazyRedisCluster, cluster_clients, is_cluster_url
from .driver import KEY_STORE, AsyncClient, Events, Failure, RedisDriver, SyncClient, WaitReplicas
from .needs import Need, Op

__all__ = [
    "DEFAULT_SOCKET_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "AsyncClient",
    "RedisConnection",
    "SyncClient",
]

T = TypeVar("T")

#: Seconds a command may take before the store reports "unavailable" (503).
DEFAULT_SOCKET_TIMEOUT = 1.0
#: Seconds a connection attempt may take.
DEFAULT_SOCKET_CONNECT_TIMEOUT = 1.0


class RedisConnection:
    """The clients of one Redis deployment and the driver that runs operations on them.

    A :class:`~scout_auth.stores.redis.RedisKeyStore`, a
    :class:`~scout_auth.stores.redis.RedisAuditSink` and a
    :class:`~scout_auth.stores.redis.RedisNonceCache` each take one (or
    make one from the clients or URL they are given); ``store.connection``
    shares a store's with the others (one pool).

    Args:
        client: A sync ``redis.Redis`` or ``redis.cluster.RedisCluster``.
        async_client: A ``redis.asyncio.Redis`` or
            ``redis.asyncio.cluster.RedisCluster``; without one, async calls
            run the sync client in a worker thread.
        retries: Immediate retries of a command that failed with a
            connection error or a timeout, when repeating it is safe (see
            :mod:`.driver`). A client passed in keeps its own redis-py
            ``Retry`` on top of these.
        wait_replicas: After each write that can take access away, wait
            until this many replicas acknowledge it (``WAIT``); ``None``: do
            not wait. Standalone or Sentinel-managed Redis only.
        wait_timeout: Seconds ``WAIT`` may take (fewer acknowledgements are
            logged, not raised); shorter than the clients' socket timeout.

    Raises:
        ValueError: ``retries`` below 0; ``wait_replicas`` below 1, with a
            Redis Cluster client, or ``wait_timeout`` not positive or not
            shorter than the client's socket timeout.
    """

    def __init__(
        self,
        client: SyncClient,
        async_client: AsyncClient | None = None,
        *,
        retries: int = 1,
        wait_replicas: int | None = None,
        wait_timeout: float = 0.5,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        wait = _wait_replicas(client, async_client, wait_replicas, wait_timeout)
        self.sync = client
        self.driver = RedisDriver(retries=retries, wait=wait)
        self._async = async_client
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._async_factory: Callable[[], AsyncClient] | None = None
        self._owned = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = DEFAULT_SOCKET_CONNECT_TIMEOUT,
        retries: int = 1,
        wait_replicas: int | None = None,
        wait_timeout: float = 0.5,
        **options: Any,
    ) -> RedisConnection:
        """A connection with clients of its own for ``url`` (closed by :meth:`close`).

        The clients have redis-py's own ``Retry`` off: redis-py 6+ would
        resend a timed-out command by itself, and only the driver knows what
        is safe to resend (``retries``). A ``redis+cluster://`` /
        ``rediss+cluster://`` URL makes Redis Cluster clients (``ValueError``
        if it is malformed or the options do not fit a cluster); the sync one
        connects on first use, as a plain client does. A refused option
        closes the clients before the error propagates.
        """
        common = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **options,
        }
        make_async: Callable[[], AsyncClient]
        if is_cluster_url(url):
            lazy, make_async = cluster_clients(url, retries=0, **common)
            # A RedisCluster in every way the driver uses it (every attribute is
            # the real client's), made when first needed.
            sync: SyncClient = cast(redis.cluster.RedisCluster, lazy)
        else:
            sync = redis.Redis.from_url(url, retry=redis.retry.Retry(NoBackoff(), 0), **common)

            def make_async() -> redis.asyncio.Redis:
                retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
                return redis.asyncio.Redis.from_url(url, retry=retry, **common)

        try:
            connection = cls(
                sync, retries=retries, wait_replicas=wait_replicas, wait_timeout=wait_timeout
            )
        except BaseException:
            sync.close()  # a refused option must not leak the pool
            raise
        connection._async_factory = make_async
        connection._owned = True
        return connection

    def __repr__(self) -> str:
        return f"RedisConnection(owned={self._owned}, async={self.has_async})"

    @property
    def cluster(self) -> bool:
        """Whether the clients are Redis Cluster clients (keys of two slots
        cannot meet in one script)."""
        return _is_cluster(self.sync) or _is_cluster(self._async)

    @property
    def has_async(self) -> bool:
        """Whether async calls can use an async client (else: a worker thread)."""
        return self._async is not None or self._async_factory is not None

    def async_client(self) -> AsyncClient:
        """The async client for the running loop."""
        if self._async_factory is None:
            assert self._async is not None
            return self._async
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is not loop:
            # The previous loop is gone or elsewhere; its connections cannot be reused.
            self._async, self._async_loop = self._async_factory(), loop
        return self._async

    # -- running operations -------------------------------------------------
    def run(self, op: Op[T], events: Events | None = None, failure: Failure = KEY_STORE) -> T:
        """Drive ``op`` with the sync client.

        Args:
            op: The operation (:mod:`.ops`, :mod:`.legacy`, ...).
            events: Where its events go; ``None`` for an operation that has none.
            failure: Whose failure a Redis error is, in the log and the 503.
        """
        return self.driver.run(self.sync, op, events, failure)

    async def arun(
        self, op: Op[T], events: Events | None = None, failure: Failure = KEY_STORE
    ) -> T:
        """Async :meth:`run` (the sync client in a worker thread if there is no async one)."""
        if not self.has_async:
            return await anyio.to_thread.run_sync(self.run, op, events, failure)
        return await self.driver.arun(self.async_client(), op, events, failure)

    def perform(self, need: Need, events: Events | None = None) -> Any:
        """Perform one need with the sync client (to step through an operation by hand)."""
        return self.driver.perform(self.sync, need, events)

    def close(self) -> None:
        """Close the clients made here (an async one needs :meth:`aclose`)."""
        if self._owned:
            self.sync.close()

    async def aclose(self) -> None:
        """Close the clients made here, async one included."""
        if self._owned:
            self.sync.close()
            if self._async is not None and self._async_loop is asyncio.get_running_loop():
                await self._async.aclose()
            self._async = None


def _is_cluster(client: object) -> bool:
    return isinstance(
        client,
        redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster | LazyRedisCluster,
    )


def _socket_timeout(client: object) -> float | None:
    pool = getattr(client, "connection_pool", None)
    value = getattr(pool, "connection_kwargs", {}).get("socket_timeout")
    return value if isinstance(value, int | float) else None


def _wait_replicas(
    client: SyncClient,
    async_client: AsyncClient | None,
    replicas: int | None,
    timeout: float,
) -> WaitReplicas | None:
    """The validated ``WAIT`` setting (see :class:`RedisConnection`)."""
    if replicas is None:
        return None
    if replicas < 1:
        raise ValueError("wait_replicas must be at least 1 (or None)")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError("wait_timeout must be a positive number of seconds")
    if _is_cluster(client) or _is_cluster(async_client):
        # WAIT counts one connection's writes; a cluster client has no such
        # connection to offer for a key's primary (yet).
        raise ValueError("wait_replicas is not supported on Redis Cluster clients")
    for c in (client, async_client):
        limit = _socket_timeout(c)
        if limit is not None and timeout >= limit:
            raise ValueError("wait_timeout must be shorter than the client's socket_timeout")
    return WaitReplicas(replicas, max(1, round(timeout * 1000)))

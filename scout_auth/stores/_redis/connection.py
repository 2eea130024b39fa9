"""A sync and an async redis-py client side by side, with fail-fast defaults.

``redis.asyncio`` clients belong to the event loop they first ran on. When
scout_auth builds its own clients (from a URL) it makes the async one
lazily, in the loop that needs it, and a new one if the loop changes (a
store created at import time and used by uvicorn, or by several test
clients, just works). Clients given by the application are used as they
are and never closed by scout_auth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeAlias, cast

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry
from redis.backoff import NoBackoff

from .cluster import cluster_clients, is_cluster_url

__all__ = [
    "DEFAULT_SOCKET_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "AsyncClient",
    "RedisClients",
    "SyncClient",
]

#: A sync client the Redis store and nonce cache take: one server or a cluster.
SyncClient: TypeAlias = redis.Redis | redis.cluster.RedisCluster
#: An async client they take: one server or a cluster.
AsyncClient: TypeAlias = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

#: Seconds a command may take before the store reports "unavailable" (503).
DEFAULT_SOCKET_TIMEOUT = 1.0
#: Seconds a connection attempt may take.
DEFAULT_SOCKET_CONNECT_TIMEOUT = 1.0


class RedisClients:
    """The sync client and the async client (or how to make it)."""

    def __init__(
        self,
        client: SyncClient,
        async_client: AsyncClient | None = None,
        *,
        async_factory: Callable[[], AsyncClient] | None = None,
        owned: bool = False,
    ) -> None:
        self.sync = client
        self._async = async_client
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._async_factory = async_factory
        self._owned = owned

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = DEFAULT_SOCKET_CONNECT_TIMEOUT,
        retries: int = 1,
        **options: Any,
    ) -> RedisClients:
        """Clients for ``url``. ``retries`` immediate retries on connection errors only
        (redis-py's own default backs off for seconds, far too long for a request).

        A ``redis+cluster://`` / ``rediss+cluster://`` URL makes Redis Cluster
        clients (``ValueError`` if it is malformed or the options do not fit a
        cluster); the sync one connects on first use, as a plain client does.
        """
        common = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **options,
        }
        if is_cluster_url(url):
            lazy, make_async_cluster = cluster_clients(url, retries=retries, **common)
            # A RedisCluster in every way the store uses it (every attribute is
            # the real client's), made when first needed.
            sync = cast(redis.cluster.RedisCluster, lazy)
            return cls(sync, async_factory=make_async_cluster, owned=True)
        client = redis.Redis.from_url(url, retry=redis.retry.Retry(NoBackoff(), retries), **common)

        def make_async() -> redis.asyncio.Redis:
            retry = redis.asyncio.retry.Retry(NoBackoff(), retries)
            return redis.asyncio.Redis.from_url(url, retry=retry, **common)

        return cls(client, async_factory=make_async, owned=True)

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

    def close(self) -> None:
        """Close owned clients (an owned async client needs :meth:`aclose`)."""
        if self._owned:
            self.sync.close()

    async def aclose(self) -> None:
        """Close owned clients, async one included."""
        if self._owned:
            self.sync.close()
            if self._async is not None and self._async_loop is asyncio.get_running_loop():
                await self._async.aclose()
            self._async = None

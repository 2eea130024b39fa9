"""A replay cache on Redis: a signed request's nonce is accepted once, fleet-wide."""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio.to_thread
import redis
import redis.asyncio
from redis.exceptions import RedisError

from ..exceptions import StoreUnavailable
from ._redis_clients import DEFAULT_SOCKET_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT, RedisClients
from ._redis_layout import Layout

__all__ = ["RedisNonceCache"]

logger = logging.getLogger("scout_auth")


def _set_args(layout: Layout, key: str, ttl: float) -> tuple[str, ...]:
    if not ttl > 0:
        raise ValueError("ttl must be > 0 seconds")
    # Round up: the entry must outlive the freshness window, never fall short of it.
    return ("SET", layout.nonce(key), "1", "NX", "PX", str(max(1, math.ceil(ttl * 1000))))


class RedisNonceCache:
    """Remember nonces in Redis so that every instance accepts each one once in total.

    ``SET key 1 NX PX ttl`` is atomic on the server, so of any number of
    instances, threads or tasks presenting the same nonce exactly one sees
    ``True``. Structurally a ``scout_auth._nonce.NonceCache``.

    Fails closed: if Redis cannot answer, :meth:`remember` raises
    :class:`~scout_auth.exceptions.StoreUnavailable` (503) rather than guess.

    Args:
        client: A sync ``redis.Redis``.
        async_client: A ``redis.asyncio.Redis``; without one, :meth:`aremember`
            runs the sync client in a worker thread.
        prefix: Namespace of the nonce keys (``<prefix>:nonce:<key>``).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        async_client: redis.asyncio.Redis | None = None,
        prefix: str = "scout",
        _clients: RedisClients | None = None,
    ) -> None:
        self._clients = _clients or RedisClients(client, async_client)
        self.layout = Layout(prefix)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "scout",
        socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = DEFAULT_SOCKET_CONNECT_TIMEOUT,
        retries: int = 1,
        **client_options: Any,
    ) -> RedisNonceCache:
        """A nonce cache with its own clients for ``url`` (options as for the store)."""
        clients = RedisClients.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retries=retries,
            **client_options,
        )
        return cls(clients.sync, prefix=prefix, _clients=clients)

    def __repr__(self) -> str:
        return f"RedisNonceCache(prefix={self.layout.prefix!r})"

    def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds.

        Returns:
            ``True`` the first time ``key`` is seen, ``False`` for a replay.

        Raises:
            StoreUnavailable: Redis could not answer.
        """
        args = _set_args(self.layout, key, ttl)
        try:
            return bool(self._clients.sync.execute_command(*args))  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            logger.warning("redis nonce cache error: %s", type(exc).__name__)
            raise StoreUnavailable("Replay cache unreachable") from exc

    async def aremember(self, key: str, ttl: float) -> bool:
        """Async :meth:`remember`."""
        if not self._clients.has_async:
            return await anyio.to_thread.run_sync(self.remember, key, ttl)
        args = _set_args(self.layout, key, ttl)
        try:
            return bool(await self._clients.async_client().execute_command(*args))  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            logger.warning("redis nonce cache error: %s", type(exc).__name__)
            raise StoreUnavailable("Replay cache unreachable") from exc

    def close(self) -> None:
        """Close the clients this cache made."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the clients this cache made, async one included."""
        await self._clients.aclose()

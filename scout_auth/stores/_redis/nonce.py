"""A replay cache on Redis: a signed request's nonce is accepted once, fleet-wide.

Theory of operation
-------------------
Each signing key's live nonces are one sorted set (member: the nonce entry,
score: its expiry in the server's milliseconds) in a hash slot of its own
(``layout``). One Lua script purges the key's expired members, answers
a replay, enforces the key's bound and adds the nonce — atomic on one server
and on a cluster alike, since it touches one key. The server's clock
(``TIME``) decides expiry, so instances with skewed clocks agree. The set
itself expires with its newest member, so an idle key costs nothing.

A nonce write is sent once. Its answer may be lost after the server ran it
(a timeout, a cut connection); sent again, it would find the nonce it had
just stored and answer "seen before", a false ``replay_detected`` for a
request seen once. So the write is a need that is never repeated
(:mod:`.needs`), the clients built from a URL have redis-py's own retries
off, and a lost answer is a 503 (``StoreUnavailable``): fail closed, and
the client signs its retry anew.
"""

from __future__ import annotations

import math
from typing import Any

from ..._signing.nonce import DEFAULT_MAX_NONCES_PER_KEY
from ...exceptions import NonceQuotaExceeded
from .connection import (
    DEFAULT_SOCKET_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    AsyncClient,
    RedisConnection,
    SyncClient,
)
from .driver import NONCE_CACHE
from .layout import Layout, bounded
from .needs import Call, Lua, Op, Script

__all__ = ["REMEMBER", "RedisNonceCache", "remember"]


#: KEYS[1]: the owner's nonces; ARGV: nonce entry, ttl (ms), most live nonces.
#: Returns 1 (new), 0 (a replay) or minus the milliseconds until the owner's
#: oldest nonce expires (at its bound; nothing was added).
REMEMBER = Script(
    "remember_nonce",
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return -math.max(1, tonumber(oldest[2]) - now)
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
""",
)


def _ttl_ms(ttl: float) -> str:
    if not ttl > 0:
        raise ValueError("ttl must be > 0 seconds")
    # Round up: the entry must outlive the freshness window, never fall short of it.
    return str(max(1, math.ceil(ttl * 1000)))


def _set_args(layout: Layout, key: str, ttl: float) -> tuple[str, ...]:
    return ("SET", layout.nonce(key), "1", "NX", "PX", _ttl_ms(ttl))


def _script_args(layout: Layout, key: str, ttl: float, owner: str, most: int) -> tuple[str, ...]:
    """``keys`` then ``args`` of :data:`REMEMBER`, as one flat tuple (one key)."""
    return (layout.nonces(owner), bounded(key), _ttl_ms(ttl), str(most))


def _answer(reply: object) -> bool:
    # Script replies: 1 new, 0 replay, negative: at the bound (ms to wait).
    value = int(str(reply))
    if value < 0:
        raise NonceQuotaExceeded(
            "This key has too many signed requests in flight; retry later",
            retry_after=math.ceil(-value / 1000),
        )
    return value == 1


def remember(layout: Layout, key: str, ttl: float, owner: str | None, most: int) -> Op[bool]:
    """Record ``key`` for ``ttl`` seconds: ``True`` if new (a need sent once, never again)."""
    if owner is None:
        reply = yield Call(_set_args(layout, key, ttl), repeatable=False)
        return bool(reply)
    name, *args = _script_args(layout, key, ttl, owner, most)
    reply = yield Lua(REMEMBER, (name,), tuple(args))  # Lua: not repeatable by default
    return _answer(reply)


class RedisNonceCache:
    """Remember nonces in Redis so that every instance accepts each one once in total.

    Each nonce is remembered by one Lua script on the signing key's own
    sorted set, atomic on the server, so of any number of instances,
    threads or tasks presenting the same nonce exactly one sees ``True``; the
    same script refuses a key holding ``max_per_key`` live nonces with
    :class:`~scout_auth.exceptions.NonceQuotaExceeded` (429) and touches no
    other key's data. Structurally a ``scout_auth._signing.nonce.NonceCache``.

    There is no fleet-wide count (one counter would put every request of
    every key on one Redis node): memory is bounded by ``max_per_key`` times
    the keys signing at once, about 100 bytes per nonce; cap the server
    with ``maxmemory`` and the ``noeviction`` policy, never an evicting one
    (an evicted nonce could be replayed; a refused write fails closed).

    Fails closed: if Redis cannot answer, :meth:`remember` raises
    :class:`~scout_auth.exceptions.StoreUnavailable` (503) rather than guess;
    a Redis Cluster reached by a client not in cluster mode (``MOVED`` /
    ``ASK``) raises :class:`~scout_auth.exceptions.ConfigurationError`,
    logged once (a verifier answers 503 all the same).

    A nonce write whose answer is lost is never sent again (it would find
    its own nonce and call it a replay): ``StoreUnavailable``. A client
    passed in should not resend timed-out commands either: give it
    ``retry=Retry(NoBackoff(), 0)`` (redis-py's default ``Retry`` resends
    them).

    Args:
        client: A sync ``redis.Redis`` or ``redis.cluster.RedisCluster``, or
            a :class:`~.connection.RedisConnection` to share (a key store's
            ``connection``: one pool).
        async_client: A ``redis.asyncio.Redis`` or
            ``redis.asyncio.cluster.RedisCluster``; without one,
            :meth:`aremember` runs the sync client in a worker thread.
        prefix: Namespace of the nonce keys (``<prefix>:{n:<key id>}:nonces``).
        max_per_key: Most live nonces one signing key may hold.
    """

    def __init__(
        self,
        client: SyncClient | RedisConnection,
        *,
        async_client: AsyncClient | None = None,
        prefix: str = "scout",
        max_per_key: int = DEFAULT_MAX_NONCES_PER_KEY,
    ) -> None:
        if max_per_key < 1:
            raise ValueError("max_per_key must be at least 1")
        if not isinstance(client, RedisConnection):
            client = RedisConnection(client, async_client)
        elif async_client is not None:
            raise ValueError("with a RedisConnection, give the async client to it")
        #: The clients and the driver the nonce writes run on.
        self.connection = client
        self.layout = Layout(prefix)
        self.max_per_key = max_per_key

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "scout",
        max_per_key: int = DEFAULT_MAX_NONCES_PER_KEY,
        socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = DEFAULT_SOCKET_CONNECT_TIMEOUT,
        retries: int = 1,
        **client_options: Any,
    ) -> RedisNonceCache:
        """A nonce cache with its own clients for ``url`` (options as for the store).

        ``url`` is ``redis://``, ``rediss://``, ``unix://``, or for a Redis
        Cluster ``redis+cluster://host:port[,host:port...]/``
        (``rediss+cluster://`` for TLS). The clients have redis-py's own
        retries off; ``retries`` counts retries of what is safe to repeat,
        which a nonce write is not (see the class): it is sent once.
        """
        connection = RedisConnection.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retries=retries,
            **client_options,
        )
        try:
            return cls(connection, prefix=prefix, max_per_key=max_per_key)
        except BaseException:
            connection.close()  # a refused option must not leak the pool
            raise

    def __repr__(self) -> str:
        return f"RedisNonceCache(prefix={self.layout.prefix!r})"

    def remember(self, key: str, ttl: float, owner: str | None = None) -> bool:
        """Record ``key`` for ``ttl`` seconds, counted against signing key ``owner``.

        Returns:
            ``True`` the first time ``key`` is seen, ``False`` for a replay.

        Raises:
            NonceQuotaExceeded: ``owner`` holds ``max_per_key`` live nonces (429).
            StoreUnavailable: Redis could not answer.
            ConfigurationError: A Redis Cluster node answered ``MOVED`` /
                ``ASK``: the client is not in cluster mode.
        """
        op = remember(self.layout, key, ttl, owner, self.max_per_key)
        return self.connection.run(op, failure=NONCE_CACHE)

    async def aremember(self, key: str, ttl: float, owner: str | None = None) -> bool:
        """Async :meth:`remember`."""
        op = remember(self.layout, key, ttl, owner, self.max_per_key)
        return await self.connection.arun(op, failure=NONCE_CACHE)

    def close(self) -> None:
        """Close the clients this cache made."""
        self.connection.close()

    async def aclose(self) -> None:
        """Close the clients this cache made, async one included."""
        await self.connection.aclose()

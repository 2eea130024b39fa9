"""Redis: a shared key store with a change feed, and a fleet-wide replay cache.

Needs the ``redis`` extra (``pip install 'scout-auth[redis]'``)::

    from scout_auth import AsyncVerifier
    from scout_auth.stores.redis import RedisKeyStore, RedisNonceCache

    store = RedisKeyStore.from_url("redis://redis:6379/0", prefix="scout")
    verifier = AsyncVerifier(store, cache_ttl=60)
    nonces = RedisNonceCache.from_url("redis://redis:6379/0", prefix="scout")

A Redis Cluster is named by its startup nodes, comma-separated
(``rediss+cluster://`` for TLS)::

    store = RedisKeyStore.from_url("redis+cluster://10.0.0.1:6379,10.0.0.2:6379/")

Legacy secrets sent as ``Bearer`` are found through a keyed digest; the
store keeps no pepper (a fleet shares Redis), so set
``$SCOUT_AUTH_LEGACY_PEPPER`` on every instance.

See ``docs/redis-store.md`` for the key layout, the change feed and failure
behaviour.
"""

from __future__ import annotations

from ._redis.audit_sink import RedisAuditSink
from ._redis.events import FLUSH
from ._redis.layout import Layout, key_fields
from ._redis.nonce import RedisNonceCache
from ._redis.store import RedisKeyStore

__all__ = [
    "FLUSH",
    "Layout",
    "RedisAuditSink",
    "RedisKeyStore",
    "RedisNonceCache",
    "key_fields",
]

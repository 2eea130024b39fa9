"""Revocation propagation on Redis: the shared :class:`PropagationContract` over pub/sub.

A change made anywhere reaches every verifier, and a cache fill that raced
with a revocation never brings the revoked key back. The feed's own life
(reconnect, flush, pings) is tested in ``test_redis.py`` and
``test_redis_faults.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scout_auth.stores.redis import RedisKeyStore
from tests.stores.propagation import PropagationContract

pytestmark = pytest.mark.redis


@pytest.fixture
def writer(redis_url, redis_prefix) -> Iterator[RedisKeyStore]:
    """Another process's store, as far as the reader can tell (no shared memory)."""
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix, listen=False)
    yield store
    store.close()


@pytest.fixture
def reader(redis_url, redis_prefix) -> Iterator[RedisKeyStore]:
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix)
    assert store.wait_listening(5)
    yield store
    store.close()


@pytest.fixture
def fleet_store(redis_url, redis_prefix) -> tuple[str, str]:
    return redis_url, redis_prefix


class TestRedisPropagation(PropagationContract):
    hammer_rounds = 8

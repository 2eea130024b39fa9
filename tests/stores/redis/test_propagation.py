"""Revocation propagation on Redis: the shared :class:`PropagationContract` over pub/sub.

A change made anywhere reaches every verifier, and a cache fill that raced
with a revocation never brings the revoked key back: on one server, and on
the session's Redis Cluster through ``redis+cluster://`` URLs (the feed
subscribes on one node; the cluster forwards every ``PUBLISH`` to all of
them), the fleet's service processes included. The feed's own life
(reconnect, flush, pings) is tested in ``test_store.py`` and
``test_faults.py``; a failover in ``test_cluster_failover.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scout_auth.stores.redis import RedisKeyStore
from scout_auth.testing import PropagationContract
from tests.stores.fleet_contract import FleetPropagationContract

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


class TestRedisPropagation(PropagationContract, FleetPropagationContract):
    hammer_rounds = 8


class TestRedisClusterPropagation(PropagationContract, FleetPropagationContract):
    """The same contract on the session's Redis Cluster, every store from its cluster URL."""

    hammer_rounds = 4

    @pytest.fixture
    def writer(self, cluster, redis_prefix) -> Iterator[RedisKeyStore]:
        store = RedisKeyStore.from_url(cluster[0].url, prefix=redis_prefix, listen=False)
        yield store
        store.close()

    @pytest.fixture
    def reader(self, cluster, redis_prefix) -> Iterator[RedisKeyStore]:
        store = RedisKeyStore.from_url(cluster[0].url, prefix=redis_prefix)
        assert store.wait_listening(5)
        yield store
        store.close()

    @pytest.fixture
    def fleet_store(self, cluster, redis_prefix) -> tuple[str, str]:
        return cluster[0].url, redis_prefix

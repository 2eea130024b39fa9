from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from scout_auth import InMemoryKeyStore

from .scanner import Scanner


@pytest.fixture
def scanner() -> Scanner:
    return Scanner()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test only; its keys are deleted afterwards."""
    import redis

    prefix = f"scout_leaks_{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    with client:
        batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if batch:
            client.delete(*batch)


@pytest.fixture
def cluster_prefix(redis_cluster: Any) -> Iterator[str]:
    """A key prefix of this test only on the Redis Cluster; its keys are deleted afterwards."""
    import redis

    prefix = f"scout_leaks_{uuid.uuid4().hex[:10]}"
    yield prefix
    client = cluster_client(redis_cluster)
    try:
        for name in client.scan_iter(match=f"{prefix}:*", count=1000):  # every primary
            client.delete(name)  # one by one: the names are in many slots
    except redis.RedisError:
        pass
    finally:
        client.close()


def cluster_client(address: Any, *, asyncio: bool = False) -> Any:
    """A ``RedisCluster`` client (sync, or ``redis.asyncio``'s) of the cluster at ``address``."""
    import redis
    import redis.asyncio

    host, port = address.nodes[0]
    if asyncio:
        return redis.asyncio.RedisCluster(host=host, port=port, socket_timeout=5)
    return redis.RedisCluster(host=host, port=port, socket_timeout=5)


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryKeyStore()
        return
    from scout_auth.stores.redis import RedisKeyStore

    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        prefix = request.getfixturevalue("cluster_prefix")
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    built = RedisKeyStore.from_url(url, prefix=prefix)
    yield built
    built.close()

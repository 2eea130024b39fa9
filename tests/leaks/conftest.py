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


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryKeyStore()
        return
    from scout_auth.stores.redis import RedisKeyStore

    url = request.getfixturevalue("redis_url")
    built = RedisKeyStore.from_url(url, prefix=request.getfixturevalue("redis_prefix"))
    yield built
    built.close()

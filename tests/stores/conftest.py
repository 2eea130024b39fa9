"""Fixtures for the Redis suites: a reachable server, a unique key prefix per run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_URL, require_server


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test run only; its keys are deleted afterwards (no FLUSHDB)."""
    prefix = f"scout_test_{uuid.uuid4().hex[:10]}"
    yield prefix
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        with client:
            batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(batch), 1000):
                client.delete(*batch[start : start + 1000])
    except redis.RedisError:
        pass


@pytest.fixture
def redis_url() -> str:
    """The test Redis URL; skips (laptop) or fails (CI) when Redis is not up."""
    require_server("Redis", "127.0.0.1", 6379)
    return REDIS_URL

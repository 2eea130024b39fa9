"""Shared test configuration.

Server-backed suites (PostgreSQL, MariaDB, Redis) call :func:`require_server`.
On a laptop without the server they skip with a one-line reason; with
``CI=true`` a missing server is a failure, never a skip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest

from tests._support import TEST_LEGACY_PEPPER

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Verifiers over a shared store need a legacy pepper (docs/legacy-keys.md);
# the tests of what happens without one remove it with monkeypatch.
os.environ.setdefault("SCOUT_AUTH_LEGACY_PEPPER", TEST_LEGACY_PEPPER)

POSTGRES_URL = os.environ.get(
    "SCOUT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("SCOUT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("SCOUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def server_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP server answers on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unavailable(reason: str) -> NoReturn:
    """Skip on a laptop, fail under ``CI=true``: what a suite does when its server is missing."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: server suites must not skip)", pytrace=False)
    pytest.skip(reason)


def require_server(name: str, host: str, port: int) -> None:
    """Skip (laptop) or fail (``CI=true``) unless ``name`` listens on ``host:port``."""
    if not server_reachable(host, port):
        unavailable(f"{name} not reachable on {host}:{port}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_url() -> str:
    """The test Redis URL; skips (laptop) or fails (CI) when Redis is not up."""
    require_server("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """The session's Redis Cluster (a ``ClusterAddress``, ``tests/stores/redis_cluster.py``):
    ``$SCOUT_TEST_REDIS_CLUSTER_URL``, or a private one started for the session."""
    from tests.stores.redis_cluster import cluster_address

    with cluster_address() as address:
        yield address


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Build a verifier on ``store``: a ``Verifier`` behind :class:`AsAsync`, or an
    ``AsyncVerifier``, so one async test body covers both drivers (cheap argon2)."""
    from scout_auth import AsyncVerifier, Verifier
    from tests._support import AsAsync, cheap_hasher

    def build(store: Any, **options: Any) -> Any:
        options.setdefault("password_hasher", cheap_hasher())
        if request.param == "sync":
            return AsAsync(Verifier(store, **options))
        return AsyncVerifier(store, **options)

    return build

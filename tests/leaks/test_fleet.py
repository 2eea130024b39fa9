"""Two instances on one Redis store: a leak reported to one is refused by the other.

Instance A runs the receiver; instance B only verifies, with a warm cache
(``cache_ttl`` 10 s, the default). The disable reaches B through the
store's change feed, well inside the cache TTL: B refuses the key within the
revocation bound, not when its cache entry happens to expire. A replay of the
same report to a second receiver is refused through the shared Redis guard.
Both on one Redis server and on a Redis Cluster (``$SCOUT_TEST_REDIS_CLUSTER_URL``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from scout_auth import KeyManager, Verifier
from scout_auth.exceptions import AuthError, KeyDisabled
from scout_auth.leaks import RedisReplayGuard
from scout_auth.stores.redis import RedisKeyStore

from .conftest import cluster_client
from .scanner import Receiver, Scanner, labels, report

pytestmark = pytest.mark.redis

#: Within this the other instance refuses (generous for loaded CI; far below the cache TTL).
BOUND = 5.0

#: ``client(asyncio)``: a new client of the shared Redis (or cluster), sync or async.
Clients = Callable[[bool], Any]


@pytest.fixture(params=["redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str, Clients]:
    """The store URL, the key prefix and a client factory of one Redis or one cluster."""
    if request.param == "cluster":
        address = request.getfixturevalue("redis_cluster")
        prefix: str = request.getfixturevalue("cluster_prefix")
        return address.url, prefix, lambda asyncio: cluster_client(address, asyncio=asyncio)
    url: str = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")

    def plain(asyncio: bool) -> Any:
        return (redis.asyncio.Redis if asyncio else redis.Redis).from_url(url)

    return url, prefix, plain


@pytest.fixture
def stores(backend: tuple[str, str, Clients]) -> Iterator[tuple[Any, Any]]:
    url, prefix, _ = backend
    a = RedisKeyStore.from_url(url, prefix=prefix)
    b = RedisKeyStore.from_url(url, prefix=prefix)
    assert b.wait_listening(5)
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_a_leak_reported_to_one_instance_is_refused_on_the_other(
    kind: str, stores: tuple[Any, Any], scanner: Scanner, backend: tuple[str, str, Clients]
) -> None:
    a, b = stores
    _, prefix, client = backend
    new = KeyManager(a).create_key("org_fleet", "billing-sync prod")
    verifier_b = Verifier(b, cache_ttl=10.0, legacy_bearer=False)
    assert verifier_b.verify_token(new.token).key_id == new.key.key_id  # warm

    def guard() -> RedisReplayGuard:
        # Each instance its own client on the one Redis (an async one on the ASGI side).
        return RedisReplayGuard(client(kind == "starlette"), prefix=prefix)

    receiver = Receiver(kind, a, scanner, replay_guard=guard())
    body = report(new.token)
    reported = time.monotonic()
    assert labels(receiver.post(body, scanner.sign(body))) == ["true_positive"]
    refused: AuthError | None = None
    while time.monotonic() - reported < BOUND:
        try:
            verifier_b.verify_token(new.token)
        except AuthError as exc:
            refused = exc
            break
        time.sleep(0.01)
    assert isinstance(refused, KeyDisabled), "instance B still accepts the leaked key"
    assert time.monotonic() - reported < BOUND

    other = Receiver(kind, b, scanner, replay_guard=guard())
    again = other.post(body, scanner.sign(body))
    assert (again.status, again.json()["code"]) == (409, "replayed")

"""RedisNonceCache: a nonce is accepted once in total, however many instances, threads, tasks."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest
import redis

from scout_auth import HttpRequest, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.client import SigningAuth
from scout_auth.exceptions import ReplayDetected, StoreUnavailable
from scout_auth.stores._redis_nonce import _set_args
from scout_auth.stores.redis import Layout, RedisNonceCache

pytestmark = pytest.mark.redis


@pytest.fixture
def make_cache(redis_url, redis_prefix):
    caches: list[RedisNonceCache] = []

    def make(**options) -> RedisNonceCache:
        options.setdefault("prefix", redis_prefix)
        cache = RedisNonceCache.from_url(redis_url, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def nonce() -> str:
    return f"kid:{uuid.uuid4().hex}"


def test_first_sight_is_true_a_replay_is_false(make_cache):
    cache = make_cache()
    n = nonce()
    assert cache.remember(n, 300) is True
    assert cache.remember(n, 300) is False
    assert cache.remember(nonce(), 300) is True


def test_two_instances_share_what_they_have_seen(make_cache):
    a, b = make_cache(), make_cache()
    n = nonce()
    assert a.remember(n, 300) is True
    assert b.remember(n, 300) is False


@pytest.mark.parametrize(
    ("ttl", "px"),
    [
        pytest.param(300, "300000", id="whole-seconds"),
        pytest.param(1.0005, "1001", id="rounded-up-never-down"),
        pytest.param(0.0001, "1", id="at-least-a-millisecond"),
    ],
)
def test_the_entry_outlives_the_freshness_window(ttl, px):
    args = _set_args(Layout("p"), "n", ttl)
    assert args == ("SET", "p:nonce:n", "1", "NX", "PX", px)


def test_the_entry_expires_on_the_server(make_cache, redis_url):
    cache = make_cache()
    n = nonce()
    cache.remember(n, 2)
    raw = redis.Redis.from_url(redis_url)
    pttl = raw.pttl(cache.layout.nonce(n))
    raw.close()
    assert 0 < pttl <= 2000


def test_replays_after_expiry_are_new(make_cache):
    cache = make_cache()
    n = nonce()
    assert cache.remember(n, 0.05)
    anyio.run(anyio.sleep, 0.2)
    assert cache.remember(n, 0.05) is True


@pytest.mark.parametrize("ttl", [0, -1, float("nan")])
def test_ttl_must_be_positive(make_cache, ttl):
    with pytest.raises(ValueError, match="ttl"):
        make_cache().remember(nonce(), ttl)


def test_very_long_keys_are_hashed(make_cache):
    cache = make_cache()
    long = "x" * 5000
    assert len(cache.layout.nonce(long)) < 300
    assert cache.remember(long, 60) is True
    assert cache.remember(long, 60) is False
    assert cache.remember(long + "y", 60) is True


def test_concurrent_threads_on_two_instances_accept_each_nonce_once(make_cache):
    caches = [make_cache(), make_cache()]
    nonces = [nonce() for _ in range(200)]
    wins: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        cache = caches[i % 2]
        for n in nonces:
            if cache.remember(n, 60):
                with lock:
                    wins.append(n)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert sorted(wins) == sorted(nonces)  # each exactly once in total


@pytest.mark.anyio
async def test_concurrent_tasks_on_two_instances_accept_each_nonce_once(make_cache):
    caches = [make_cache(), make_cache()]
    nonces = [nonce() for _ in range(100)]
    wins: list[str] = []

    async def worker(i: int) -> None:
        for n in nonces:
            if await caches[i % 2].aremember(n, 60):
                wins.append(n)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(worker, i)
    assert sorted(wins) == sorted(nonces)
    for cache in caches:
        await cache.aclose()


@pytest.mark.anyio
async def test_sync_and_async_share_the_same_entries(make_cache, redis_url, redis_prefix):
    n = nonce()
    assert make_cache().remember(n, 60) is True
    client = redis.Redis.from_url(redis_url)
    threaded = RedisNonceCache(client, prefix=redis_prefix)  # no async client: worker thread
    assert await threaded.aremember(n, 60) is False
    assert await threaded.aremember(nonce(), 60) is True
    client.close()


@pytest.mark.anyio
async def test_fails_closed_when_redis_is_unreachable():
    cache = RedisNonceCache.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    with pytest.raises(StoreUnavailable):
        cache.remember(nonce(), 60)
    with pytest.raises(StoreUnavailable):
        await cache.aremember(nonce(), 60)
    await cache.aclose()


def _signed_request(token: str) -> HttpRequest:
    auth = SigningAuth(token)
    headers = [("host", "api.example.com")]
    added = auth.signature_headers("POST", "https://api.example.com/files", headers, b"report")
    return HttpRequest(
        "POST",
        "https",
        "api.example.com",
        "/files",
        "",
        [*headers, ("content-length", "6"), *((k.lower(), v) for k, v in added.items())],
    )


def test_two_verifier_instances_accept_a_signed_request_once_in_total(make_cache):
    store = InMemoryKeyStore()
    token = KeyManager(store).create_key("org_fleet", "partner integration").token
    instances = [Verifier(store, nonce_cache=make_cache()) for _ in range(2)]
    request = _signed_request(token)
    assert instances[0].verify_request(request).org_id == "org_fleet"
    with pytest.raises(ReplayDetected):
        instances[1].verify_request(request)
    # and many at once, from threads on both instances: exactly one wins
    request = _signed_request(token)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        try:
            instances[i % 2].verify_request(request)
            outcomes.append("accepted")
        except ReplayDetected:
            outcomes.append("replay")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted"] + ["replay"] * 7

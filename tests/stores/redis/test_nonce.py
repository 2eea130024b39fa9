"""RedisNonceCache: a nonce is accepted once in total, however many instances, threads, tasks.

And each signing key's live nonces are bounded, atomically, in the key's own
hash slot (issue 9, defect 7): the shared table of ``tests/nonce_contract.py``
plus what is Redis's own (scripts, slots, expiry on the server). The slot
property is checked on the key names with ``redis.crc.key_slot``, as for the
store, and the cache runs on the session's Redis Cluster too, from a
``redis+cluster://`` URL (issue 11).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from scout_auth import HttpRequest, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.client import SigningAuth
from scout_auth.exceptions import NonceQuotaExceeded, ReplayDetected, StoreUnavailable
from scout_auth.stores._redis.nonce import REMEMBER, _script_args, _set_args
from scout_auth.stores.redis import Layout, RedisNonceCache
from tests.nonce_contract import NonceQuotaContract
from tests.stores.tcp_proxy import TcpProxy

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


def test_a_signature_without_a_nonce_is_accepted_once_across_instances(make_cache):
    """RFC 9421 peers send no nonce by default: the signature value is used once (issue 14)."""
    import time as _time

    from scout_auth._core.tokens import parse_token
    from scout_auth.signing import sign_request

    store = InMemoryKeyStore()
    token = KeyManager(store).create_key("org_peer", "rfc 9421 peer").token
    parsed = parse_token(token)
    assert parsed is not None
    request = HttpRequest(
        "GET", "https", "api.example.com", "/files", "", [("host", "api.example.com")]
    )
    headers = sign_request(
        request,
        key_id=parsed.key_id,
        private_seed=parsed.seed,
        now=_time.time(),
        components=["@method", "@authority", "@target-uri"],
        nonce=False,
    )
    assert "nonce" not in headers["Signature-Input"]
    signed = HttpRequest(
        "GET",
        "https",
        "api.example.com",
        "/files",
        "",
        [("host", "api.example.com"), *((k.lower(), v) for k, v in headers.items())],
    )
    instances = [Verifier(store, nonce_cache=make_cache()) for _ in range(2)]
    assert instances[0].verify_request(signed).org_id == "org_peer"
    with pytest.raises(ReplayDetected):
        instances[1].verify_request(signed)
    with pytest.raises(ReplayDetected):
        instances[0].verify_request(signed)


# -- per-key bounds (issue 9, defect 7) ---------------------------------------


class TestRedisQuota(NonceQuotaContract):
    @pytest.fixture
    def make_cache(self, make_cache):
        return make_cache


def owner() -> str:
    return f"key_{uuid.uuid4().hex[:16]}"


@pytest.mark.parametrize(
    ("owner_id", "expected"),
    [
        pytest.param("abc", "p:{n:abc}:nonces", id="plain"),
        pytest.param("a}b", "p:{n:a%7Db}:nonces", id="brace-cannot-end-the-tag"),
        pytest.param("a{b", "p:{n:a%7Bb}:nonces", id="brace-cannot-open-a-tag"),
        pytest.param("a:nonces", "p:{n:a%3Anonces}:nonces", id="colon-cannot-forge-a-name"),
    ],
)
def test_a_keys_nonces_are_named_inside_its_own_hash_tag(owner_id, expected):
    assert Layout("p").nonces(owner_id) == expected


def test_one_script_touches_one_key_so_it_runs_on_a_cluster_and_keys_spread():
    layout = Layout("scout")
    name, member, ttl, most = _script_args(layout, "scout-auth:nonce:ab", 1.0005, "kid", 7)
    assert (name, member, ttl, most) == ("scout:{n:kid}:nonces", "scout-auth:nonce:ab", "1001", "7")
    slots = {key_slot(layout.nonces(f"key{i}").encode()) for i in range(20)}
    assert len(slots) > 10  # a flood lands on its own key's node, not everybody's
    assert len(layout.nonces("k" * 5000)) < 300  # a long owner is hashed
    assert len(_script_args(layout, "x" * 5000, 1, "k", 1)[1]) < 100  # so is a long nonce


def test_concurrent_instances_never_let_a_key_past_its_bound(make_cache):
    caches = [make_cache(max_per_key=25), make_cache(max_per_key=25)]
    who = owner()
    accepted: list[str] = []
    refused: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        for n in range(20):
            key = f"{who}:{i}:{n}"
            try:
                ok = caches[i % 2].remember(key, 60, owner=who)
            except NonceQuotaExceeded as exc:
                with lock:
                    refused.append(exc.retry_after)
                continue
            assert ok
            with lock:
                accepted.append(key)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert len(accepted) == 25  # exactly the bound, over both instances
    assert len(refused) == 8 * 20 - 25
    assert all(1 <= r <= 60 for r in refused)
    assert caches[0].remember(f"{owner()}:x", 60, owner=owner()) is True  # others unaffected


def test_the_bound_frees_as_nonces_expire_on_the_server(make_cache, redis_url):
    cache = make_cache(max_per_key=1)
    who = owner()
    assert cache.remember(f"{who}:1", 0.05, owner=who) is True
    with pytest.raises(NonceQuotaExceeded) as info:
        cache.remember(f"{who}:2", 60, owner=who)
    assert info.value.retry_after == 1  # rounded up, never 0
    anyio.run(anyio.sleep, 0.2)
    assert cache.remember(f"{who}:2", 60, owner=who) is True
    raw = redis.Redis.from_url(redis_url)
    name = cache.layout.nonces(who)
    assert raw.zcard(name) == 1  # the expired one was purged
    assert 0 < raw.pttl(name) <= 60_000  # the set goes with its newest nonce
    raw.close()


@pytest.mark.anyio
async def test_the_bound_holds_through_the_worker_thread_too(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    threaded = RedisNonceCache(client, prefix=redis_prefix, max_per_key=1)  # no async client
    who = owner()
    assert await threaded.aremember(f"{who}:1", 60, owner=who) is True
    with pytest.raises(NonceQuotaExceeded):
        await threaded.aremember(f"{who}:2", 60, owner=who)
    client.close()


@pytest.mark.anyio
async def test_an_owned_nonce_fails_closed_when_redis_is_unreachable():
    cache = RedisNonceCache.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    with pytest.raises(StoreUnavailable):
        cache.remember(nonce(), 60, owner=owner())
    with pytest.raises(StoreUnavailable):
        await cache.aremember(nonce(), 60, owner=owner())
    await cache.aclose()


@pytest.fixture
def proxy(redis_url) -> Iterator[TcpProxy]:
    p = TcpProxy().start()
    yield p
    p.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("owned", [False, True], ids=["set-nx", "script"])
async def test_a_nonce_write_whose_answer_is_late_is_503_never_sent_again(
    proxy, redis_url, redis_prefix, owned, is_async
):
    # The write ran, its answer came too late. Sent again it would find the
    # nonce it stored itself and call it a replay: a false 401
    # replay_detected for a request seen once. It is sent once: 503.
    with redis.Redis.from_url(redis_url) as raw:
        raw.script_load(REMEMBER.source)  # the held request is one that runs, not a NOSCRIPT
    cache = RedisNonceCache.from_url(proxy.url, prefix=redis_prefix, socket_timeout=0.3)
    n, who = nonce(), owner() if owned else None
    sent: list[bytes] = []

    def first_write(data: bytes) -> bool:
        if n.encode() not in data:
            return False
        sent.append(data)
        return len(sent) == 1

    async def remember() -> bool:
        return await cache.aremember(n, 60, owner=who) if is_async else cache.remember(n, 60, who)

    proxy.hold_reply_when(first_write, 1.0)
    with pytest.raises(StoreUnavailable):
        await remember()
    assert proxy.held_replies == 1
    assert len(sent) == 1  # never resent, by redis-py or by the cache
    proxy.hold_reply_when(None)
    assert cache.remember(n, 60, owner=who) is False  # it did run: now it is a replay
    await cache.aclose()


def test_a_nonce_cache_on_a_stores_connection_shares_its_clients(redis_url, redis_prefix):
    from scout_auth.stores.redis import RedisKeyStore

    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix, listen=False)
    cache = RedisNonceCache(store.connection, prefix=redis_prefix)
    assert cache.connection is store.connection
    n, who = nonce(), owner()
    assert cache.remember(n, 60, owner=who) is True
    other = RedisNonceCache(store.connection, prefix=redis_prefix)
    assert other.remember(n, 60, owner=who) is False  # one pool, one set of nonces
    with pytest.raises(ValueError, match="RedisConnection"):
        RedisNonceCache(store.connection, async_client=redis.asyncio.Redis())
    store.close()


def test_the_script_is_loaded_again_after_a_script_flush(make_cache, redis_url):
    cache = make_cache()
    who = owner()
    assert cache.remember(f"{who}:1", 60, owner=who) is True
    raw = redis.Redis.from_url(redis_url)
    raw.script_flush()
    raw.close()
    assert cache.remember(f"{who}:1", 60, owner=who) is False
    assert cache.remember(f"{who}:2", 60, owner=who) is True


def test_max_per_key_must_be_positive(redis_url):
    with pytest.raises(ValueError, match="max_per_key"):
        RedisNonceCache.from_url(redis_url, max_per_key=0)


def test_a_verifier_on_redis_refuses_a_flooding_key_alone(make_cache):
    store = InMemoryKeyStore()
    manager = KeyManager(store)
    flooder = manager.create_key("org_flood", "scopeless", scopes=[])
    other = manager.create_key("org_other", "partner integration")
    verifier = Verifier(store, nonce_cache=make_cache(max_per_key=2))
    for _ in range(2):
        verifier.verify_request(_signed_request(flooder.token))
    with pytest.raises(NonceQuotaExceeded):
        verifier.verify_request(_signed_request(flooder.token))
    assert verifier.verify_request(_signed_request(other.token)).org_id == "org_other"


# -- on a Redis Cluster (issue 11) ----------------------------------------------


@pytest.fixture
def make_cluster_cache(cluster, redis_prefix):
    """Caches from the session's ``redis+cluster://`` URL."""
    caches: list[RedisNonceCache] = []

    def make(**options) -> RedisNonceCache:
        options.setdefault("prefix", redis_prefix)
        cache = RedisNonceCache.from_url(cluster[0].url, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


class TestRedisClusterQuota(NonceQuotaContract):
    @pytest.fixture
    def make_cache(self, make_cluster_cache):
        return make_cluster_cache


def test_on_a_cluster_url_each_nonce_is_accepted_once_whichever_node_holds_it(
    make_cluster_cache, cluster_client, redis_prefix
):
    a, b = make_cluster_cache(), make_cluster_cache()
    owners = [owner() for _ in range(12)]
    nodes = {cluster_client.get_node_from_key(Layout(redis_prefix).nonces(o)).name for o in owners}
    assert len(nodes) > 1  # the owners' sets live on several primaries
    for o in owners:
        n = nonce()
        assert a.remember(n, 60, owner=o) is True
        assert b.remember(n, 60, owner=o) is False
    n = nonce()  # unattributed: SET NX, in a slot of its own too
    assert a.remember(n, 60) is True
    assert b.remember(n, 60) is False


@pytest.mark.anyio
async def test_on_a_cluster_url_aremember_uses_the_async_cluster_client(make_cluster_cache):
    a, b = make_cluster_cache(), make_cluster_cache()
    for _ in range(6):
        o, n = owner(), nonce()
        assert await a.aremember(n, 60, owner=o) is True
        assert await b.aremember(n, 60, owner=o) is False
    await a.aclose()
    await b.aclose()


def test_a_plain_url_cache_on_a_cluster_node_is_a_configuration_error(
    cluster, redis_prefix, monkeypatch, caplog
):
    from scout_auth.exceptions import ConfigurationError
    from scout_auth.stores._redis import cluster as _redis_cluster

    monkeypatch.setattr(_redis_cluster, "_reported", set())  # once per process: start afresh
    address, client = cluster
    port = address.nodes[0][1]
    cache = RedisNonceCache.from_url(address.node_url, prefix=redis_prefix)
    elsewhere = next(
        o
        for o in (owner() for _ in range(100))
        if client.get_node_from_key(cache.layout.nonces(o)).port != port
    )
    with caplog.at_level("ERROR", logger="scout_auth"):
        for _ in range(2):
            with pytest.raises(ConfigurationError, match=r"redis\+cluster://"):
                cache.remember(nonce(), 60, owner=elsewhere)
    assert [r.getMessage().count("nonce cache") for r in caplog.records] == [1]
    cache.close()

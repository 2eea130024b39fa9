"""The Redis store: the shared contract, its key layout, no secret at rest, its change feed."""

from __future__ import annotations

import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from scout_auth import KeyEvent, KeyManager, LegacyRecord, Verifier
from scout_auth.exceptions import StoreUnavailable
from scout_auth.stores import KeyStore
from scout_auth.stores.redis import FLUSH, Layout, RedisKeyStore, RedisNonceCache
from scout_auth.testing import StoreContract
from scout_auth.testing._propagation import wait_until
from scout_auth.testing._store import T0, org, record
from tests.conftest import require_server

pytestmark = pytest.mark.redis


@pytest.fixture
def make_store(redis_url, redis_prefix):
    stores: list[RedisKeyStore] = []

    def make(**options) -> RedisKeyStore:
        options.setdefault("prefix", redis_prefix)
        store = RedisKeyStore.from_url(redis_url, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


def _legacy_dump(raw: redis.Redis, layout: Layout) -> Callable[[str], list[object]]:
    """Everything Redis holds for an org's legacy record, as raw as it holds it."""

    def dump(org_id: str) -> list[object]:
        name = layout.legacy(org_id)
        values: list[object] = [name.encode(), raw.dump(name) or b""]
        for field, value in raw.hgetall(name).items():
            values += [field, value]
        # Every look-up directory entry naming the org: its key name and value.
        for entry in raw.scan_iter(match=f"{layout.prefix}:{{l:*}}", count=1000):
            if raw.get(entry) == org_id.encode():
                values += [entry, org_id.encode()]
        return values

    return dump


class TestRedis(StoreContract):
    @pytest.fixture
    def store(self, make_store):
        require_server("Redis", "127.0.0.1", 6379)
        return make_store()

    @pytest.fixture
    def legacy_dump(self, store, raw):
        return _legacy_dump(raw, store.layout)


class TestRedisWithTheApplicationsClients(StoreContract):
    """``client=`` / ``async_client=`` with ``decode_responses=True``: same behaviour."""

    max_examples = 10

    @pytest.fixture
    def store(self, redis_url, redis_prefix):
        require_server("Redis", "127.0.0.1", 6379)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        async_client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        store = RedisKeyStore(client, async_client=async_client, prefix=redis_prefix)
        yield store
        store.close()
        assert client.ping()  # the application's clients stay open
        client.close()

    @pytest.fixture
    def legacy_dump(self, store, raw):
        return _legacy_dump(raw, store.layout)


class TestRedisCluster(StoreContract):
    """The whole contract on a real Redis Cluster, on the application's cluster clients:
    every script within one slot, directories in slots of their own, digest counts
    from every primary."""

    max_examples = 10

    @pytest.fixture
    def store(self, cluster, redis_prefix):
        address, cluster_client = cluster
        host, port = address.nodes[0]
        async_client = redis.asyncio.RedisCluster(host=host, port=port)
        store = RedisKeyStore(
            cluster_client, async_client=async_client, prefix=redis_prefix, listen=False
        )
        yield store
        store.close()

    @pytest.fixture
    def legacy_dump(self, store, cluster_client):
        return _legacy_dump(cluster_client, store.layout)


class TestRedisClusterFromURL(StoreContract):
    """The whole contract on ``RedisKeyStore.from_url("redis+cluster://...")``: its own
    sync and asyncio cluster clients."""

    max_examples = 10

    @pytest.fixture
    def store(self, cluster, redis_prefix):
        address, _ = cluster
        assert address.url.startswith("redis+cluster://")
        store = RedisKeyStore.from_url(address.url, prefix=redis_prefix, listen=False)
        yield store
        store.close()

    @pytest.fixture
    def legacy_dump(self, store, cluster_client):
        return _legacy_dump(cluster_client, store.layout)


def test_on_a_cluster_the_sweep_finds_orphans_on_every_primary(cluster_client, redis_prefix):
    store = RedisKeyStore(
        cluster_client, prefix=f"{redis_prefix}:w{uuid.uuid4().hex[:6]}", listen=False
    )
    o = org()
    live = record(o)
    store.add_key(live)
    orphans = [record(o).key_id for _ in range(12)]
    for key_id in orphans:
        cluster_client.set(store.layout.directory(key_id), o)
    nodes = {cluster_client.get_node_from_key(store.layout.directory(k)).name for k in orphans}
    assert len(nodes) > 1
    assert store.sweep_directories(min_idle=0) == len(orphans)
    assert store.get_key(live.key_id) == live


def test_wait_replicas_is_refused_on_a_cluster_client(cluster_client, redis_prefix):
    # WAIT counts one connection's writes: a cluster client offers none for a key's primary.
    with pytest.raises(ValueError, match="Cluster"):
        RedisKeyStore(cluster_client, prefix=redis_prefix, listen=False, wait_replicas=1)


def test_on_a_cluster_digest_counts_come_from_every_primary(cluster_client, redis_prefix):
    store = RedisKeyStore(
        cluster_client, prefix=f"{redis_prefix}:n{uuid.uuid4().hex[:6]}", listen=False
    )
    orgs = [org() for _ in range(30)]
    for o in orgs:
        store.put_legacy(_legacy(o, _digest(), "p1"))
    nodes = {cluster_client.get_node_from_key(store.layout.legacy(o)).name for o in orgs}
    assert len(nodes) == len(cluster_client.get_primaries()) > 1
    assert store.legacy_digest_counts() == {"p1": 30}
    for o in orgs:
        store.delete_legacy(o)


# -- Redis Cluster by URL, and a cluster reached without cluster mode (issue 11) --
def _on_another_node(cluster_client, node_url: str, name: str) -> bool:
    """Whether another node than ``node_url``'s serves ``name``'s slot."""
    port = int(node_url.rsplit(":", 1)[1].split("/")[0])
    return bool(cluster_client.get_node_from_key(name).port != port)


def _elsewhere(cluster_client, node_url: str, names: list[str]) -> str:
    """The first of ``names`` whose slot another node than ``node_url``'s serves."""
    return next(n for n in names if _on_another_node(cluster_client, node_url, n))


def _token_elsewhere(cluster_store, cluster_client, node_url: str):
    """A key made on the cluster whose directory entry another node than ``node_url``'s holds."""
    manager = KeyManager(cluster_store)
    while True:
        new = manager.create_key(org(), "billing sync")
        if _on_another_node(
            cluster_client, node_url, cluster_store.layout.directory(new.key.key_id)
        ):
            return new


@pytest.fixture
def fresh_report(monkeypatch):
    """Forget which components already logged a misrouted command (it is once per process)."""
    from scout_auth.stores._redis import cluster as _redis_cluster

    monkeypatch.setattr(_redis_cluster, "_reported", set())


def test_a_plain_url_store_on_a_cluster_node_is_a_configuration_error_logged_once(
    cluster, redis_prefix, fresh_report, caplog
):
    from scout_auth.exceptions import ConfigurationError

    address, client = cluster
    store = RedisKeyStore.from_url(address.node_url, prefix=redis_prefix, listen=False)
    layout = store.layout
    ids = [f"k{uuid.uuid4().hex[:19]}" for _ in range(40)]
    elsewhere = _elsewhere(client, address.node_url, [layout.directory(i) for i in ids])
    key_id = ids[[layout.directory(i) for i in ids].index(elsewhere)]
    with caplog.at_level("ERROR", logger="scout_auth"):
        for _ in range(3):
            with pytest.raises(ConfigurationError, match=r"redis\+cluster://") as caught:
                store.get_key(key_id)
    assert not isinstance(caught.value, StoreUnavailable)  # not an outage: no retry helps
    assert isinstance(caught.value.__cause__, redis.exceptions.MovedError)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # once, however many requests
    assert "MOVED" in errors[0].getMessage()
    assert "not in cluster mode" in errors[0].getMessage()
    store.close()


@pytest.mark.anyio
async def test_a_plain_async_client_on_a_cluster_node_is_a_configuration_error(
    cluster, redis_prefix, fresh_report
):
    from scout_auth.exceptions import ConfigurationError

    address, client = cluster
    store = RedisKeyStore.from_url(address.node_url, prefix=redis_prefix, listen=False)
    orgs = [org() for _ in range(40)]
    names = [store.layout.index(o) for o in orgs]
    elsewhere = orgs[names.index(_elsewhere(client, address.node_url, names))]
    with pytest.raises(ConfigurationError, match="MOVED"):
        await store.alist_keys(elsewhere)
    await store.aclose()


def test_requests_on_a_misrouted_store_are_503_never_500_never_200(
    cluster, redis_prefix, fresh_report, caplog
):
    from starlette.testclient import TestClient

    from examples.starlette_app import create_app

    address, client = cluster
    on_cluster = RedisKeyStore.from_url(address.url, prefix=redis_prefix, listen=False)
    new = _token_elsewhere(on_cluster, client, address.node_url)
    plain = RedisKeyStore.from_url(address.node_url, prefix=redis_prefix, listen=False)
    verifier = Verifier(plain, cache_ttl=0)
    with pytest.raises(StoreUnavailable) as caught:
        verifier.verify_token(new.token)
    assert type(caught.value.__cause__).__name__ == "ConfigurationError"
    with TestClient(create_app(plain, cache_ttl=0)) as http:
        answers = [
            http.get("/files", headers={"authorization": f"Bearer {new.token}"}) for _ in "ab"
        ]
    assert [a.status_code for a in answers] == [503, 503]
    assert all(a.headers["retry-after"] for a in answers)
    assert all(a.json()["code"] == "store_unavailable" for a in answers)
    assert "MOVED" not in answers[0].text  # the reason is for the log, not the client
    assert "not in cluster mode" in caplog.text
    on_cluster.close()
    plain.close()


@pytest.mark.parametrize(
    ("url", "nodes", "node_url"),
    [
        pytest.param(
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001/",
            (("10.0.0.1", 7000), ("10.0.0.2", 7001)),
            "redis://10.0.0.1:7000",
            id="two-nodes",
        ),
        pytest.param(
            "redis+cluster://db.internal",
            (("db.internal", 6379),),
            "redis://db.internal",
            id="default-port-no-path",
        ),
        pytest.param(
            "rediss+cluster://app:s%40cret@a:1,b:2/0?ssl_cert_reqs=none",
            (("a", 1), ("b", 2)),
            "rediss://app:s%40cret@a:1?ssl_cert_reqs=none",
            id="tls-credentials-and-options-go-to-every-node",
        ),
        pytest.param(
            "redis+cluster://[::1]:7000,[fd00::2]/",
            (("::1", 7000), ("fd00::2", 6379)),
            "redis://[::1]:7000",
            id="ipv6",
        ),
        pytest.param(
            "REDIS+CLUSTER://a:1, b:2/", (("a", 1), ("b", 2)), "redis://a:1", id="case-and-spaces"
        ),
    ],
)
def test_cluster_urls_name_their_startup_nodes(url, nodes, node_url):
    from scout_auth.stores._redis.cluster import is_cluster_url, parse_cluster_url

    assert is_cluster_url(url)
    parsed = parse_cluster_url(url)
    assert parsed.nodes == nodes
    assert parsed.node_url == node_url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+cluster://a:1/1", id="a-database-other-than-0"),
        pytest.param("redis+cluster://a:1,,b:2/", id="an-empty-node"),
        pytest.param("redis+cluster://a:99999/", id="a-port-out-of-range"),
        pytest.param("redis+cluster://a:port/", id="a-port-not-a-number"),
        pytest.param("redis+cluster://u:hunter2@/", id="no-node"),
        pytest.param("redis+cluster://u:hunter2@a/b/", id="a-path"),
    ],
)
def test_a_malformed_cluster_url_is_a_value_error_without_the_url(url):
    with pytest.raises(ValueError, match="Redis Cluster URL") as caught:
        RedisKeyStore.from_url(url, listen=False)
    assert "hunter2" not in str(caught.value)


def test_options_a_cluster_cannot_take_fail_in_from_url_not_on_every_request():
    with pytest.raises(ValueError, match="not a valid Redis Cluster configuration"):
        RedisKeyStore.from_url("redis+cluster://127.0.0.1:1/?db=1", listen=False)
    with pytest.raises(TypeError, match="bogus"):
        RedisNonceCache.from_url("redis+cluster://127.0.0.1:1/", bogus=True)


def test_plain_urls_are_not_cluster_urls():
    from scout_auth.stores._redis.cluster import is_cluster_url

    for url in ("redis://a:1/0", "rediss://a", "unix:///tmp/r.sock", "redis+sentinel://a"):
        assert not is_cluster_url(url)


def test_a_tls_cluster_url_makes_tls_connections():
    from redis.connection import SSLConnection, parse_url

    from scout_auth.stores._redis.cluster import parse_cluster_url

    options = parse_url(parse_cluster_url("rediss+cluster://a:1,b:2/").node_url)
    assert options["connection_class"] is SSLConnection


@pytest.mark.anyio
async def test_a_cluster_store_is_made_while_the_cluster_is_down_and_answers_503():
    """Like a redis:// store, a cluster one connects on first use, not in from_url."""
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisKeyStore.from_url(f"redis+cluster://127.0.0.1:{port}/", prefix="down")
    assert "connected=False" in repr(store.connection.sync)
    with pytest.raises(StoreUnavailable):
        store.get_key("k" * 20)
    with pytest.raises(StoreUnavailable):
        await store.aget_key("k" * 20)
    assert not store.wait_listening(0.3)
    await store.aclose()


def test_on_a_cluster_url_the_change_feed_reaches_other_stores(cluster, redis_prefix):
    address, _ = cluster
    prefix = f"{redis_prefix}:feed{uuid.uuid4().hex[:6]}"
    reader = RedisKeyStore.from_url(address.url, prefix=prefix)
    writer = RedisKeyStore.from_url(address.url, prefix=prefix, listen=False)
    assert reader.wait_listening(5)
    events: list[KeyEvent] = []
    reader.subscribe(events.append)
    records = [record(org()) for _ in range(10)]  # orgs on every primary
    for r in records:
        writer.add_key(r)
    expected = {KeyEvent("created", r.org_id, r.key_id) for r in records}
    assert wait_until(lambda: expected <= set(events))
    reader.close()
    writer.close()


def test_is_a_key_store(make_store):
    assert isinstance(make_store(listen=False), KeyStore)


# -- key layout ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("org_id", "key_id", "expected"),
    [
        pytest.param("org_1", "abc", "scout:{o:org_1}:key:abc", id="plain"),
        pytest.param("a}b", "k", "scout:{o:a%7Db}:key:k", id="brace-cannot-end-the-tag"),
        pytest.param("a{b", "k", "scout:{o:a%7Bb}:key:k", id="brace-cannot-open-a-tag"),
        pytest.param("a:key:b", "k", "scout:{o:a%3Akey%3Ab}:key:k", id="colon-cannot-forge-a-name"),
        pytest.param("100%", "k", "scout:{o:100%25}:key:k", id="percent-is-escaped-too"),
        pytest.param("org", "x:y", "scout:{o:org}:key:x%3Ay", id="key-id-escaped"),
    ],
)
def test_key_names_escape_ids(org_id, key_id, expected):
    assert Layout("scout").key(org_id, key_id) == expected


def test_an_orgs_data_shares_one_cluster_slot_and_directories_spread():
    layout = Layout("scout")
    slots = {key_slot(name.encode()) for name in (
        layout.key("org_1", "aaaa"), layout.key("org_1", "bbbb"),
        layout.index("org_1"), layout.legacy("org_1"),
    )}  # fmt: skip
    assert len(slots) == 1
    directories = {key_slot(layout.directory(f"key{i}").encode()) for i in range(20)}
    assert len(directories) > 10


@pytest.mark.parametrize("prefix", ["", "a{b", "a}b"])
def test_prefix_cannot_break_hash_tags(prefix):
    with pytest.raises(ValueError, match="prefix"):
        Layout(prefix)


# -- no secret at rest -------------------------------------------------------
def _dump_everything(raw: redis.Redis, prefix: str) -> bytes:
    out = []
    for name in raw.scan_iter(match=f"{prefix}:*", count=1000):
        out.append(name)
        out.append(raw.dump(name) or b"")
        kind = raw.type(name)
        if kind == b"string":
            out.append(raw.get(name) or b"")
        elif kind == b"hash":
            for k, v in raw.hgetall(name).items():
                out += [k, v]
        elif kind == b"zset":
            out += raw.zrange(name, 0, -1)
        elif kind == b"set":
            out += sorted(raw.smembers(name))
        elif kind == b"stream":
            for entry_id, fields in raw.xrange(name) or ():
                out.append(entry_id)
                for k, v in (fields or {}).items():
                    out += [k, v]
        else:  # pragma: no cover - the layout has no other type
            raise AssertionError(f"unexpected {kind!r}")
    return b"\n".join(out)


def test_no_token_seed_or_legacy_secret_at_rest_or_on_the_channel(redis_url, redis_prefix, raw):
    prefix = f"{redis_prefix}:secrets{uuid.uuid4().hex[:6]}"
    pubsub = raw.pubsub()
    pubsub.subscribe(f"{prefix}:events")
    store = RedisKeyStore.from_url(redis_url, prefix=prefix, listen=False)
    try:
        manager = KeyManager(store, audit=store.audit_sink())  # audit streams dumped too
        o = org()
        new = [manager.create_key(o, "billing sync"), manager.create_key(o, "ci deploys")]
        new.append(manager.rotate_key(new[0].key.key_id, grace=timedelta(minutes=5)))
        legacy_secret = "legacy-" + uuid.uuid4().hex
        manager.import_legacy_key(o, legacy_secret)
    finally:
        store.close()
    messages = []
    while (m := pubsub.get_message(timeout=0.2)) is not None:
        messages.append(m["data"] if isinstance(m["data"], bytes) else b"")
    pubsub.close()
    everything = _dump_everything(raw, prefix) + b"\n".join(messages)
    assert b"$argon2id$" in everything  # the dump did see the data
    assert b"legacy_imported" in everything  # and the audit streams
    assert len(messages) >= 5
    from scout_auth._core.tokens import parse_token

    for n in new:
        parsed = parse_token(n.token)
        assert parsed is not None
        seed_text = n.token[len("scout_sk_") + 21 : -6]
        for needle in (n.token, seed_text, parsed.seed, parsed.seed.hex().encode()):
            needle = needle.encode() if isinstance(needle, str) else needle
            assert needle not in everything
        import base64

        assert base64.b64encode(parsed.seed) not in everything
    assert legacy_secret.encode() not in everything


# -- construction and clients --------------------------------------------------
def test_the_applications_clients_are_used_and_left_open(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    store = RedisKeyStore(client, prefix=redis_prefix, listen=False)
    r = record(org())
    store.add_key(r)
    store.close()
    assert client.ping()
    assert RedisKeyStore(client, prefix=redis_prefix, listen=False).get_key(r.key_id) == r
    client.close()


@pytest.mark.anyio
async def test_without_an_async_client_async_calls_run_in_a_thread(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    store = RedisKeyStore(client, prefix=redis_prefix, listen=False)
    r = record(org())
    await store.aadd_key(r)
    assert await store.aget_key(r.key_id) == r
    await store.aclose()
    client.close()


def test_a_rotation_stays_within_one_org(make_store):
    store = make_store(listen=False)
    old = record(org())
    store.add_key(old)
    with pytest.raises(ValueError, match="one organization"):
        store.rotate_key(old.key_id, record(org()), T0)
    assert store.get_key(old.key_id) == old


def test_an_orphan_directory_entry_reads_as_absent_and_is_taken_over(make_store, raw):
    store = make_store(listen=False)
    r = record(org())
    raw.set(store.layout.directory(r.key_id), "org_that_never_had_it")
    assert store.get_key(r.key_id) is None
    assert store.delete_key(r.key_id) is None
    store.add_key(r)
    assert store.get_key(r.key_id) == r


# -- the change feed -------------------------------------------------------------
def test_writes_reach_other_stores_subscribers_once(make_store):
    writer, reader = make_store(), make_store()
    assert writer.wait_listening(5)
    assert reader.wait_listening(5)
    seen_by_writer: list[KeyEvent] = []
    seen_by_reader: list[KeyEvent] = []
    writer.subscribe(seen_by_writer.append)
    reader.subscribe(seen_by_reader.append)
    r = record(org())
    writer.add_key(r)
    writer.delete_key(r.key_id)
    expected = [KeyEvent("created", r.org_id, r.key_id), KeyEvent("deleted", r.org_id, r.key_id)]
    assert wait_until(lambda: [e for e in seen_by_reader if e.org_id == r.org_id] == expected)
    time.sleep(0.05)
    assert [e for e in seen_by_writer if e.org_id == r.org_id] == expected  # own echo skipped


def test_the_flush_a_resubscription_delivers_empties_verifier_caches(make_store):
    # The listener delivers FLUSH after every (re)subscription (reconnects are
    # exercised in test_redis_faults.py); here: what it does to a verifier.
    store = make_store()
    new = KeyManager(store).create_key(org(), "billing sync")
    verifier = Verifier(store, cache_ttl=60)
    verifier.verify_token(new.token)
    assert len(verifier.cache) == 1
    store._deliver_remote(FLUSH)
    assert len(verifier.cache) == 0
    assert KeyEvent("flush", "*") == FLUSH


def test_malformed_messages_are_ignored_and_the_feed_goes_on(make_store, raw, caplog):
    writer, reader = make_store(listen=False), make_store()
    assert reader.wait_listening(5)
    events: list[KeyEvent] = []
    reader.subscribe(events.append)
    for junk in (b"not json", b"{}", b'{"origin": "x", "events": [[1]]}', b"\xff\xfe"):
        raw.publish(reader.layout.channel, junk)
    r = record(org())
    writer.add_key(r)
    assert wait_until(lambda: KeyEvent("created", r.org_id, r.key_id) in events)
    assert "malformed" in caplog.text


def test_a_failing_subscriber_does_not_stop_the_others(make_store):
    writer, reader = make_store(listen=False), make_store()
    assert reader.wait_listening(5)

    def broken(event: KeyEvent) -> None:
        raise RuntimeError("boom")

    events: list[KeyEvent] = []
    reader.subscribe(broken)
    reader.subscribe(events.append)
    r, s = record(org()), record(org())
    writer.add_key(r)
    writer.add_key(s)
    assert wait_until(lambda: KeyEvent("created", s.org_id, s.key_id) in events)


def test_listen_false_still_publishes(make_store, raw):
    store = make_store(listen=False)
    assert not store.wait_listening(0.1)
    assert not store.listening
    pubsub = raw.pubsub()
    pubsub.subscribe(store.layout.channel)
    assert wait_until(lambda: pubsub.get_message(timeout=0.05) is not None)  # subscribed
    store.add_key(record(org()))
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message is not None
    assert b"created" in message["data"]


def _listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scout-auth-events")]


def test_close_stops_the_listener(redis_url, redis_prefix):
    before = len(_listener_threads())
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix)
    assert store.wait_listening(5)
    assert len(_listener_threads()) == before + 1
    started = time.monotonic()
    store.close()
    store.close()  # idempotent
    assert time.monotonic() - started < 2
    assert wait_until(lambda: len(_listener_threads()) == before)
    assert not store.listening


@pytest.mark.anyio
async def test_aclose_stops_the_listener_off_the_loop(redis_url, redis_prefix):
    before = len(_listener_threads())
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix)
    assert store.wait_listening(5)
    r = record(org())
    await store.aadd_key(r)
    assert await store.aget_key(r.key_id) == r
    await store.aclose()
    assert len(_listener_threads()) == before


def test_public_names_are_locked():
    import scout_auth.stores.redis as module

    assert module.__all__ == [
        "FLUSH",
        "Layout",
        "RedisAuditSink",
        "RedisKeyStore",
        "RedisNonceCache",
        "key_fields",
    ]


# -- audit streams -------------------------------------------------------------
def test_audit_streams_share_the_orgs_hash_slot_and_the_directory_outlives_the_key(make_store, raw):
    from scout_auth.audit import AuditEvent

    store = make_store(listen=False)
    layout = store.layout
    o = org()
    r = record(o)
    store.add_key(r)
    sink = store.audit_sink()
    sink.write([AuditEvent("created", o, key_id=r.key_id), AuditEvent("legacy_imported", o)])
    slots = {
        key_slot(name.encode())
        for name in (
            layout.key(o, r.key_id),
            layout.audit(o),
            layout.audit_key(o, r.key_id),
            layout.audit_batches(o),
        )
    }
    assert len(slots) == 1  # one script per org: valid on a Redis Cluster
    assert raw.xlen(layout.audit(o)) == 2
    assert raw.xlen(layout.audit_key(o, r.key_id)) == 1
    store.delete_key(r.key_id)
    assert [e.action for e in sink.query(key_id=r.key_id)] == ["created"]  # history stays


def test_audit_maxlen_trims_the_streams(make_store, raw):
    from scout_auth.audit import AuditEvent

    store = make_store(listen=False)
    sink = store.audit_sink(maxlen=10)
    o = org()
    for _ in range(3):  # "~": Redis trims whole stream nodes (100 entries by default)
        sink.write([AuditEvent("disabled", o, key_id="k" * 20) for _ in range(100)])
    assert 10 <= raw.xlen(store.layout.audit(o)) < 300
    assert 10 <= raw.xlen(store.layout.audit_key(o, "k" * 20)) < 300
    assert len(sink.query(o, limit=1000)) == raw.xlen(store.layout.audit(o))
    with pytest.raises(ValueError, match="maxlen"):
        store.audit_sink(maxlen=0)


def test_audit_sink_from_a_plain_client(redis_url, redis_prefix):
    from scout_auth.audit import AuditEvent, AuditSink
    from scout_auth.stores.redis import RedisAuditSink

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    sink = RedisAuditSink(client, prefix=redis_prefix)
    assert isinstance(sink, AuditSink)
    o = org()
    event = AuditEvent("created", o, key_id="k" * 20)
    sink.write([event])
    assert sink.query(o).events == (event,)
    with pytest.raises(ValueError, match="cursor"):
        sink.query(o, before="MTIzLmFiYw")  # a SQL/memory cursor is not a stream cursor
    client.close()


def test_audit_a_rare_filter_reads_a_bounded_number_of_entries_per_page(make_store, monkeypatch):
    from scout_auth.stores._redis import audit as redis_audit
    from scout_auth.testing._audit import event, walk

    monkeypatch.setattr(redis_audit, "SCAN_CAP", 7)
    monkeypatch.setattr(redis_audit, "SCAN_BATCH", 2)
    store = make_store(listen=False)
    sink = store.audit_sink()
    o, k = org(), uuid.uuid4().hex[:20]  # a key's directory entry names its first org
    events = [
        event(o, k, action="rotated", actor="carol") if i in (3, 25) else event(o, k)
        for i in range(30)
    ]
    sink.write(events)
    rare = [e for e in events[::-1] if e.action == "rotated"]
    reads: list[tuple[str, ...]] = []
    real_run = store.connection.run

    def counting_run(op):
        def spy():
            reply = None
            try:
                call = op.send(None)
                while True:
                    if getattr(call, "args", ("",))[0] == "XREVRANGE":
                        reads.append(call.args)
                    reply = yield call
                    call = op.send(reply)
            except StopIteration as stop:
                return stop.value

        return real_run(spy())

    monkeypatch.setattr(store.connection, "run", counting_run)
    first = sink.query(o, limit=5, actions=["rotated"])
    # 7 entries read (a batch holds one past the page), one match: a short
    # page whose cursor is past them.
    assert [int(r[-1]) for r in reads] == [6, 1]
    assert first.events == (rare[0],)
    assert first.next is not None
    second = sink.query(o, limit=5, actions=["rotated"], before=first.next)
    assert second.events == ()  # entries 22..16: nothing, but pagination goes on
    assert second.next is not None
    for limit in (1, 2, 5):
        assert walk(sink, o, limit=limit, actions=["rotated"]) == rare
        assert walk(sink, key_id=k, limit=limit, actor="carol") == rare
    # Unfiltered pages still read one past the page, once.
    reads.clear()
    assert len(sink.query(o, limit=4).events) == 4
    assert [int(r[-1]) for r in reads] == [5]


def test_audit_since_bounds_the_stream_read_with_a_clock_margin(make_store):
    from datetime import UTC, datetime

    from scout_auth._audit.query import AuditQuery
    from scout_auth.audit import AuditEvent
    from scout_auth.stores._redis.audit import CLOCK_SKEW, AuditOps, stream_floor
    from scout_auth.stores._redis.needs import Call

    since = datetime(2026, 3, 4, 5, 6, 7, 8000, tzinfo=UTC)
    floor = stream_floor(since)
    assert int(floor) == int((since - CLOCK_SKEW).timestamp() * 1000)
    assert stream_floor(datetime(1970, 1, 1, tzinfo=UTC)) == "-"
    ops = AuditOps(Layout("p"))
    call = next(ops.query(AuditQuery("org_1", None, 2, None, since=since)))
    assert isinstance(call, Call)
    assert call.args == ("XREVRANGE", "p:{o:org_1}:audit", "+", floor, "COUNT", "500")
    call = next(ops.query(AuditQuery("org_1", None, 2, None, until=since)))
    assert isinstance(call, Call)
    assert call.args[2:4] == ("+", "-")  # a late event may arrive after until: no bound

    store = make_store(listen=False)
    sink = store.audit_sink()
    o = org()
    now = datetime.now(UTC)
    assert timedelta(minutes=2) < CLOCK_SKEW
    ahead = AuditEvent("created", o, now + timedelta(minutes=2))  # a writer's clock running ahead
    old = AuditEvent("created", o, now - timedelta(days=300))  # a late arrival
    sink.write([old, ahead])
    assert sink.query(o, since=now + timedelta(minutes=1)).events == (ahead,)
    assert sink.query(o, until=now).events == (old,)


# -- legacy look-up digests (issue 10) ------------------------------------------
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def _digest() -> bytes:
    return secrets.token_bytes(32)


def _legacy(org_id: str, digest: bytes | None, pepper_id: str | None = "p1", **over):
    pepper = None if digest is None else pepper_id
    fields = {"lookup_digest": digest, "pepper_id": pepper, **over}
    return LegacyRecord(org_id, fields.pop("secret_hash", HASH), T0, **fields)


class Stepper:
    """Drive one store operation by hand, need by need, to interleave two of them."""

    def __init__(self, store: RedisKeyStore, op) -> None:
        self.store, self.op = store, op
        self.need = next(op)
        self.result: object = None
        self.done = False

    def run_until(self, stop: Callable[[object], bool] = lambda need: False) -> Stepper:
        """Perform needs until ``stop(need)`` holds for the next one (not performed yet)."""
        while not self.done and not stop(self.need):
            answer = self.store.connection.perform(self.need)
            try:
                self.need = self.op.send(answer)
            except StopIteration as stop_iteration:
                self.result, self.done = stop_iteration.value, True
        return self


def _script(name: str) -> Callable[[object], bool]:
    return lambda need: getattr(getattr(need, "script", None), "name", None) == name


def test_a_digest_directory_entry_is_in_a_slot_of_its_own_and_entries_spread():
    layout = Layout("scout")
    d = bytes(range(32))
    assert layout.legacy_directory(d) == f"scout:{{l:{d.hex()}}}"
    slots = {key_slot(layout.legacy_directory(_digest()).encode()) for _ in range(20)}
    assert len(slots) > 10


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        pytest.param("scout:{o:org_1}:legacy", True, id="a-legacy-hash"),
        pytest.param("scout:{o:a%7D%3Alegacy}:legacy", True, id="escaped-org-id"),
        pytest.param("scout:{o:org_1}:legacy:usage", False, id="usage-hash"),
        pytest.param("scout:{o:org_1}:key:legacy", False, id="key-named-legacy"),
        pytest.param("scout:{o:org_1}:audit:key:legacy", False, id="audit-of-key-legacy"),
        pytest.param("scout:{k:legacy}", False, id="directory"),
        pytest.param("scout:nonce:{o:x}:legacy", False, id="nonce-entry"),
        pytest.param("other:{o:org_1}:legacy", False, id="other-prefix"),
    ],
)
def test_the_count_scan_pattern_matches_legacy_hashes_only(name, matches):
    from fnmatch import fnmatchcase

    assert fnmatchcase(name, Layout("scout").legacy_pattern) is matches


def test_legacy_digest_counts_are_exact_for_one_prefix_whatever_else_it_holds(
    make_store, redis_prefix
):
    prefix = f"{redis_prefix}:c*[u]n?t\\{uuid.uuid4().hex[:6]}"
    store = make_store(prefix=prefix, listen=False)
    lookalike = make_store(prefix=prefix.replace("*", "X").replace("?", "Y"), listen=False)
    lookalike.put_legacy(_legacy(org(), _digest(), "p1"))  # a glob would have matched it
    assert store.legacy_digest_counts() == {}
    a, b, c = org(), org(), org()
    store.put_legacy(_legacy(a, _digest(), "p1"))
    store.put_legacy(_legacy(b, _digest(), "p2"))
    store.put_legacy(_legacy(c, None))
    store.add_key(record(a))
    store.record_legacy_usage(a, 3, T0)  # a:legacy:usage hash beside the record
    assert store.legacy_digest_counts() == {"p1": 1, "p2": 1, None: 1}
    store.delete_legacy(b)
    assert store.legacy_digest_counts() == {"p1": 1, None: 1}


def test_a_record_written_before_digests_reads_without_one(make_store, raw):
    store = make_store(listen=False)
    o = org()
    raw.hset(
        store.layout.legacy(o),
        mapping={
            "org_id": o,
            "secret_hash": HASH,
            "created_at": "2026-01-02T03:04:05.123456+00:00",
        },
    )
    got = store.get_legacy(o)
    assert got == LegacyRecord(o, HASH, T0)
    assert (got.lookup_digest, got.pepper_id) == (None, None)
    assert store.set_legacy_digest(o, HASH, d := _digest(), "p1") is True
    assert store.find_legacy(d) == LegacyRecord(o, HASH, T0, lookup_digest=d, pepper_id="p1")


def test_digests_are_stored_as_text_with_a_directory_entry(make_store, raw):
    store = make_store(listen=False)
    o, d = org(), _digest()
    store.put_legacy(_legacy(o, d))
    fields = raw.hgetall(store.layout.legacy(o))
    assert fields[b"lookup_digest"] == d.hex().encode()
    assert fields[b"pepper_id"] == b"p1"
    assert raw.get(store.layout.legacy_directory(d)) == o.encode()


@pytest.mark.parametrize(
    "entry_names",
    [
        pytest.param("org_that_never_had_it", id="orphan-no-record"),
        pytest.param("other", id="stale-record-holds-another-digest"),
        pytest.param("nodigest", id="stale-record-holds-no-digest"),
    ],
)
def test_a_stale_directory_entry_never_names_an_org_and_is_taken_over(make_store, raw, entry_names):
    store = make_store(listen=False)
    d = _digest()
    named = org()
    if entry_names == "other":
        store.put_legacy(_legacy(named, _digest()))
    elif entry_names == "nodigest":
        store.put_legacy(_legacy(named, None))
    raw.set(store.layout.legacy_directory(d), named)
    assert store.find_legacy(d) is None
    o = org()
    store.put_legacy(_legacy(o, d))
    assert store.find_legacy(d).org_id == o
    assert raw.get(store.layout.legacy_directory(d)) == o.encode()


def test_changing_or_deleting_a_digest_releases_its_directory_entry(make_store, raw):
    store = make_store(listen=False)
    o, first, second, third = org(), _digest(), _digest(), _digest()
    store.put_legacy(_legacy(o, first))
    store.put_legacy(_legacy(o, second))
    assert not raw.exists(store.layout.legacy_directory(first))
    assert store.set_legacy_digest(o, HASH, third, "p2") is True
    assert not raw.exists(store.layout.legacy_directory(second))
    store.set_legacy_enabled(o, False)
    assert raw.get(store.layout.legacy_directory(third)) == o.encode()  # the switch keeps it
    store.delete_legacy(o)
    assert not raw.exists(store.layout.legacy_directory(third))


def test_an_entry_another_org_took_over_is_not_released_by_the_old_one(make_store, raw):
    store = make_store(listen=False)
    a, b, d = org(), org(), _digest()
    store.put_legacy(_legacy(a, d))
    # a's delete stalls between its script and the release; b takes the free digest.
    delete = Stepper(store, store._legacy.delete_legacy(a)).run_until(_script("release_directory"))
    store.put_legacy(_legacy(b, d))
    delete.run_until()
    assert delete.result is True
    assert store.find_legacy(d).org_id == b


def test_a_failed_set_gives_back_the_entry_it_claimed(make_store, raw):
    store = make_store(listen=False)
    o, d = org(), _digest()
    store.put_legacy(_legacy(o, None))
    setting = Stepper(store, store._legacy.set_legacy_digest(o, HASH, d, "p1"))
    setting.run_until(_script("set_legacy_digest"))
    assert raw.get(store.layout.legacy_directory(d)) == o.encode()  # claimed
    store.put_legacy(_legacy(o, None, secret_hash=HASH + "new"))  # a re-import wins
    setting.run_until()
    assert setting.result is False
    assert not raw.exists(store.layout.legacy_directory(d))
    assert store.get_legacy(o).lookup_digest is None


def test_racing_claims_a_taker_that_wins_the_entry_makes_the_writer_drop_its_digest(make_store):
    # a claims the entry, stalls before writing; b finds a not holding the
    # digest, takes the entry over and writes; a writes, then confirms: lost.
    store = make_store(listen=False)
    a, b, d = org(), org(), _digest()
    for o in (a, b):
        store.put_legacy(_legacy(o, None))
    first = Stepper(store, store._legacy.set_legacy_digest(a, HASH, d, "p1"))
    first.run_until(_script("set_legacy_digest"))
    assert store.set_legacy_digest(b, HASH, d, "p1") is True
    first.run_until()
    assert first.result is False
    assert store.find_legacy(d).org_id == b
    assert store.get_legacy(a).lookup_digest is None  # never both


def test_racing_claims_a_writer_that_confirmed_first_makes_the_taker_hand_back(make_store):
    # b reads a's record before a writes it (no digest yet: "stale"), stalls
    # before its swap; a writes and confirms; b swaps, re-reads a's record,
    # finds the digest now and hands the entry back.
    store = make_store(listen=False)
    a, b, d = org(), org(), _digest()
    store.put_legacy(_legacy(a, None))
    first = Stepper(store, store._legacy.put_legacy(_legacy(a, d)))
    first.run_until(_script("put_legacy"))  # claimed, not written
    second = Stepper(store, store._legacy.put_legacy(_legacy(b, d)))
    second.run_until(_script("swap_directory"))
    first.run_until()
    assert store.find_legacy(d).org_id == a
    second.run_until()
    assert store.find_legacy(d).org_id == a
    assert store.get_legacy(b).lookup_digest is None  # stored without: never both
    assert store.get_legacy(b).secret_hash == HASH


def test_the_redis_store_keeps_no_pepper(make_store):
    store = make_store(listen=False)
    assert store.embedded_legacy_pepper() is None  # a fleet configures one; none at rest


@pytest.mark.anyio
async def test_async_digest_counts_and_look_ups_on_the_async_client(make_store, redis_prefix):
    store = make_store(prefix=f"{redis_prefix}:a{uuid.uuid4().hex[:6]}", listen=False)
    o, d = org(), _digest()
    await store.aput_legacy(_legacy(o, d, "p9"))
    assert (await store.afind_legacy(d)).org_id == o
    assert await store.alegacy_digest_counts() == {"p9": 1}
    await store.aclose()

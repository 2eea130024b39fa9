"""The Redis store: the shared contract, its key layout, no secret at rest, its change feed."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from scout_auth import KeyEvent, KeyManager, Verifier
from scout_auth.stores import KeyStore
from scout_auth.stores.redis import FLUSH, Layout, RedisKeyStore
from tests.conftest import require_server
from tests.stores.contract import T0, StoreContract, org, record
from tests.stores.propagation import wait_until

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


class TestRedis(StoreContract):
    @pytest.fixture
    def store(self, make_store):
        require_server("Redis", "127.0.0.1", 6379)
        return make_store()


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
    from scout_auth._tokens import parse_token

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

"""Faults: Redis unreachable, slow or silently gone. A loopback proxy stands in for the
network; the real Redis server is never stopped.

Anything that cannot be verified answers 503 (``StoreUnavailable``); the
store and its change feed recover by themselves; a feed that comes back
flushes caches, so a revocation made during the outage is not missed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.testclient import TestClient

from scout_auth import (
    AsyncVerifier,
    KeyEvent,
    KeyRecord,
    KeyUpdate,
    LegacyRecord,
    RoleRecord,
    Verifier,
)
from scout_auth.exceptions import KeyDisabled, StoreError, StoreUnavailable
from scout_auth.stores.redis import FLUSH, RedisKeyStore
from scout_auth.testing._propagation import wait_until
from scout_auth.testing._store import T0, org, record
from tests.apps import starlette_app
from tests.stores.tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis

FAST = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3, "ping_interval": 0.2}


@pytest.fixture
def proxy(redis_url) -> Iterator[TcpProxy]:
    p = TcpProxy().start()
    yield p
    p.stop()


@pytest.fixture
def via_proxy(proxy, redis_prefix) -> Iterator[RedisKeyStore]:
    store = RedisKeyStore.from_url(proxy.url, prefix=redis_prefix, **FAST)  # type: ignore[arg-type]
    assert store.wait_listening(5)
    yield store
    store.close()


@pytest.fixture
def raw(redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def direct(redis_url, redis_prefix) -> Iterator[RedisKeyStore]:
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix, listen=False)
    yield store
    store.close()


LEGACY = LegacyRecord("org_x", "$argon2id$h", T0)
OPERATIONS = [
    pytest.param("get_key", ("k" * 20,), id="get_key"),
    pytest.param("list_keys", ("org_x",), id="list_keys"),
    pytest.param("add_key", (record("org_x"),), id="add_key"),
    pytest.param("update_key", ("k" * 20, KeyUpdate(enabled=False)), id="update_key"),
    pytest.param("rotate_key", ("k" * 20, record("org_x"), T0), id="rotate_key"),
    pytest.param("delete_key", ("k" * 20,), id="delete_key"),
    pytest.param("get_legacy", ("org_x",), id="get_legacy"),
    pytest.param("put_legacy", (LEGACY,), id="put_legacy"),
    pytest.param("delete_legacy", ("org_x",), id="delete_legacy"),
    pytest.param("find_legacy", (bytes(32),), id="find_legacy"),
    pytest.param("set_legacy_digest", ("org_x", "$argon2id$h", bytes(32), "p1"), id="set_digest"),
    pytest.param("legacy_digest_counts", (), id="legacy_digest_counts"),
]


@pytest.mark.parametrize(("method", "args"), OPERATIONS)
def test_redis_down_every_operation_raises_store_unavailable(via_proxy, proxy, method, args):
    proxy.stop()
    with pytest.raises(StoreUnavailable) as info:
        getattr(via_proxy, method)(*args)
    assert info.value.status == 503


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "args"), OPERATIONS)
async def test_redis_down_every_async_operation_raises_store_unavailable(
    via_proxy, proxy, method, args
):
    proxy.stop()
    with pytest.raises(StoreUnavailable):
        await getattr(via_proxy, "a" + method)(*args)
    await via_proxy.aclose()


def test_a_black_hole_times_out_as_configured(via_proxy, proxy):
    proxy.stall = True
    proxy.drop_connections()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        via_proxy.get_key("k" * 20)
    assert time.monotonic() - started < 5  # 0.3 s timeouts, one retry; never redis-py's back-off


def test_the_store_recovers_by_itself(via_proxy, proxy, direct):
    r = record(org())
    direct.add_key(r)
    assert via_proxy.get_key(r.key_id) == r
    proxy.stop()
    with pytest.raises(StoreUnavailable):
        via_proxy.get_key(r.key_id)
    proxy.start()
    assert via_proxy.get_key(r.key_id) == r


def test_middleware_answers_503_with_retry_after_then_recovers(via_proxy, proxy):
    from scout_auth import KeyManager

    new = KeyManager(via_proxy).create_key(org(), "billing sync")
    headers = {"authorization": f"Bearer {new.token}"}
    app = starlette_app(AsyncVerifier(via_proxy, cache_ttl=0))
    with TestClient(app) as client:
        assert client.get("/whoami", headers=headers).status_code == 200
        proxy.stop()
        answer = client.get("/whoami", headers=headers)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["code"] == "store_unavailable"
        proxy.start()
        assert client.get("/whoami", headers=headers).status_code == 200


def test_the_feed_reconnects_flushes_and_a_revocation_made_meanwhile_holds(
    via_proxy, proxy, direct
):
    from scout_auth import KeyManager

    events: list[KeyEvent] = []
    via_proxy.subscribe(events.append)
    new = KeyManager(direct).create_key(org(), "billing sync")
    assert wait_until(lambda: KeyEvent("created", new.key.org_id, new.key.key_id) in events)
    verifier = Verifier(via_proxy, cache_ttl=60)
    verifier.verify_token(new.token)  # cached for a minute

    proxy.stop()
    assert wait_until(lambda: not via_proxy.listening)
    direct.update_key(new.key.key_id, KeyUpdate(enabled=False))  # its event is lost
    assert verifier.verify_token(new.token).key_id == new.key.key_id  # TTL fallback: still cached

    proxy.start()
    assert wait_until(lambda: via_proxy.listening)
    assert FLUSH in events
    with pytest.raises(KeyDisabled):
        verifier.verify_token(new.token)  # the flush dropped the stale entry

    other = record(org())
    direct.add_key(other)  # and remote events flow again
    assert wait_until(lambda: KeyEvent("created", other.org_id, other.key_id) in events)


def test_a_dropped_feed_connection_is_noticed_at_once(via_proxy, proxy):
    listener = via_proxy._listener
    assert listener is not None
    before = listener.subscriptions
    proxy.drop_connections()
    assert wait_until(lambda: listener.subscriptions > before)


def test_a_silently_dead_feed_is_noticed_by_its_pings(via_proxy, proxy):
    proxy.frozen = True  # no RST, no FIN: only a missing pong tells
    assert wait_until(lambda: not via_proxy.listening, timeout=10)
    events: list[KeyEvent] = []
    via_proxy.subscribe(events.append)
    proxy.frozen = False
    proxy.drop_connections()
    assert wait_until(lambda: via_proxy.listening, timeout=10)
    assert FLUSH in events


# -- lifecycle writes whose reply is lost -------------------------------------
# The proxy holds back the server's answer to a lifecycle script: the script
# *ran*, the client timed out (a Redis that stalls as a write arrives).


@dataclass(frozen=True)
class Write:
    """One lifecycle write: its set-up, what it publishes, what it answers and leaves."""

    method: str
    #: (store with no fault, org) -> (args, the events the write publishes)
    prepare: Callable[[RedisKeyStore, str], tuple[tuple[Any, ...], list[KeyEvent]]]
    #: (args, result): the answer a successful call gives
    answer: Callable[[tuple[Any, ...], Any], bool]
    #: (store with no fault, args): the write took effect
    effect: Callable[[RedisKeyStore, tuple[Any, ...]], bool]


def _added(store: RedisKeyStore, org_id: str, **over: Any) -> KeyRecord:
    r = record(org_id, **over)
    store.add_key(r)
    return r


def _with_legacy(store: RedisKeyStore, org_id: str) -> None:
    store.put_legacy(LegacyRecord(org_id, "$argon2id$h", T0))


def _with_role(store: RedisKeyStore, org_id: str) -> None:
    store.put_role(RoleRecord(org_id, "reader", frozenset({"read"})))


def _prep_add(store, o):
    r = record(o)
    return (r,), [KeyEvent("created", o, r.key_id)]


def _prep_update(enabled: bool):
    def prepare(store, o):
        r = _added(store, o, enabled=not enabled)
        return (r.key_id, KeyUpdate(enabled=enabled)), [KeyEvent("updated", o, r.key_id)]

    return prepare


def _prep_rotate(store, o):
    old, new = _added(store, o), record(o)
    events = [KeyEvent("rotated", o, old.key_id), KeyEvent("created", o, new.key_id)]
    return (old.key_id, new, T0), events


def _prep_delete(store, o):
    r = _added(store, o)
    return (r.key_id,), [KeyEvent("deleted", o, r.key_id)]


def _prep_put_legacy(store, o):
    return (LegacyRecord(o, "$argon2id$h", T0),), [KeyEvent("legacy_imported", o)]


def _prep_delete_legacy(store, o):
    _with_legacy(store, o)
    return (o,), [KeyEvent("legacy_deleted", o)]


def _prep_legacy_off(store, o):
    _with_legacy(store, o)
    return (o, False), [KeyEvent("legacy_updated", o)]


def _prep_put_role(store, o):
    return (RoleRecord(o, "reader", frozenset({"read"})),), [KeyEvent("role_updated", o)]


def _prep_delete_role(store, o):
    _with_role(store, o)
    return (o, "reader"), [KeyEvent("role_deleted", o)]


def _key_enabled(store: RedisKeyStore, key_id: str) -> bool | None:
    found = store.get_key(key_id)
    return None if found is None else found.enabled


def _legacy_enabled(store: RedisKeyStore, org_id: str) -> bool | None:
    found = store.get_legacy(org_id)
    return None if found is None else found.enabled


def _enabled_is(args, result) -> bool:
    return result is not None and result.enabled is args[1].enabled


WRITES = [
    pytest.param(
        Write(
            "add_key",
            _prep_add,
            lambda args, result: result is None,
            lambda store, args: store.get_key(args[0].key_id) == args[0],
        ),
        id="create_key",
    ),
    pytest.param(
        Write(
            "update_key",
            _prep_update(False),
            _enabled_is,
            lambda store, args: _key_enabled(store, args[0]) is False,
        ),
        id="disable_key",
    ),
    pytest.param(
        Write(
            "update_key",
            _prep_update(True),
            _enabled_is,
            lambda store, args: _key_enabled(store, args[0]) is True,
        ),
        id="enable_key",
    ),
    pytest.param(
        Write(
            "rotate_key",
            _prep_rotate,
            lambda args, result: result is not None and result.replaced_by == args[1].key_id,
            lambda store, args: store.get_key(args[1].key_id) == args[1],
        ),
        id="rotate_key",
    ),
    pytest.param(
        Write(
            "delete_key",
            _prep_delete,
            lambda args, result: result is not None and result.key_id == args[0],
            lambda store, args: store.get_key(args[0]) is None,
        ),
        id="delete_key",
    ),
    pytest.param(
        Write(
            "put_legacy",
            _prep_put_legacy,
            lambda args, result: result is None,
            lambda store, args: store.get_legacy(args[0].org_id) == args[0],
        ),
        id="put_legacy",
    ),
    pytest.param(
        Write(
            "delete_legacy",
            _prep_delete_legacy,
            lambda args, result: result is True,
            lambda store, args: store.get_legacy(args[0]) is None,
        ),
        id="delete_legacy",
    ),
    pytest.param(
        Write(
            "set_legacy_enabled",
            _prep_legacy_off,
            lambda args, result: result is not None and result.enabled is False,
            lambda store, args: _legacy_enabled(store, args[0]) is False,
        ),
        id="disable_legacy",
    ),
    pytest.param(
        Write(
            "put_role",
            _prep_put_role,
            lambda args, result: result is None,
            lambda store, args: store.get_role(args[0].org_id, "reader") == args[0],
        ),
        id="put_role",
    ),
    pytest.param(
        Write(
            "delete_role",
            _prep_delete_role,
            lambda args, result: result is True,
            lambda store, args: store.get_role(args[0], "reader") is None,
        ),
        id="delete_role",
    ),
]


def _hold_scripts_of(proxy: TcpProxy, org_id: str, seconds: float, times: int | None) -> None:
    """Hold the answer to the org's next ``times`` scripts (``None``: every one).

    Every script is loaded first, so the held request is one that runs (not
    an ``EVALSHA`` answered ``NOSCRIPT``).
    """
    from scout_auth.stores._redis import legacy as _redis_legacy
    from scout_auth.stores._redis import ops as _redis_ops

    with redis.Redis(port=proxy.target[1], db=15) as client:
        for script in (*_redis_ops.SCRIPTS, *_redis_legacy.SCRIPTS):
            client.script_load(script.source)
    tag = f"{{o:{org_id}}}".encode()
    left = [times]

    def matches(data: bytes) -> bool:
        if b"EVAL" not in data or tag not in data or left[0] == 0:
            return False
        if left[0] is not None:
            left[0] -= 1
        return True

    proxy.hold_reply_when(matches, seconds)


@pytest.fixture
def observer(redis_url, redis_prefix) -> Iterator[list[KeyEvent]]:
    """Every event another instance receives through the change feed."""
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix)
    assert store.wait_listening(5)
    events: list[KeyEvent] = []
    store.subscribe(events.append)
    yield events
    store.close()


async def _call(store: RedisKeyStore, method: str, args: tuple[Any, ...], is_async: bool) -> Any:
    if is_async:
        return await getattr(store, "a" + method)(*args)
    return getattr(store, method)(*args)


SYNC_ASYNC = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


@pytest.mark.anyio
@SYNC_ASYNC
@pytest.mark.parametrize("write", WRITES)
async def test_a_write_whose_answer_comes_too_late_is_retried_exactly_once(
    via_proxy, proxy, direct, observer, write, is_async
):
    o = org()
    args, events = write.prepare(direct, o)
    _hold_scripts_of(proxy, o, seconds=1.0, times=1)  # the first answer only
    result = await _call(via_proxy, write.method, args, is_async)
    assert proxy.held_replies == 1  # the script ran, its answer was late, the store retried
    assert write.answer(args, result)  # not "not found", not "duplicate key id"
    assert write.effect(direct, args)
    assert wait_until(lambda: all(e in observer for e in events))
    time.sleep(0.2)  # a second run would have published by now
    assert [e for e in observer if e in events] == events  # the write ran once
    await via_proxy.aclose()


@pytest.mark.anyio
@SYNC_ASYNC
@pytest.mark.parametrize("write", WRITES)
async def test_a_write_whose_answer_is_lost_still_tells_the_writers_own_listeners(
    via_proxy, proxy, direct, write, is_async
):
    o = org()
    args, events = write.prepare(direct, o)
    local: list[KeyEvent] = []
    via_proxy.subscribe(local.append)
    _hold_scripts_of(proxy, o, seconds=1.5, times=None)  # every attempt times out
    with pytest.raises(StoreUnavailable):
        await _call(via_proxy, write.method, args, is_async)
    assert write.effect(direct, args)  # it did happen: the outcome is unknown to the caller
    assert all(e in local for e in events)  # so its own caches drop what it may have changed
    await via_proxy.aclose()


@pytest.mark.anyio
async def test_a_disable_whose_answer_is_lost_is_not_served_from_the_writers_cache(
    via_proxy, proxy, make
):
    from scout_auth import AsyncKeyManager

    new = await AsyncKeyManager(via_proxy).create_key(org(), "billing sync")
    verifier = make(via_proxy, cache_ttl=60)
    assert (await verifier.verify_token(new.token)).key_id == new.key.key_id  # cached
    _hold_scripts_of(proxy, new.key.org_id, seconds=1.5, times=None)
    with pytest.raises(StoreError):  # a management call: the outcome is unknown
        await AsyncKeyManager(via_proxy).disable_key(new.key.key_id)
    proxy.hold_reply_when(None)
    with pytest.raises(KeyDisabled):
        await verifier.verify_token(new.token)  # not 200 for the cache TTL
    await via_proxy.aclose()


@pytest.mark.parametrize("write", WRITES)
def test_a_client_that_retries_timeouts_itself_cannot_run_a_write_twice(
    proxy, redis_prefix, direct, observer, write
):
    # An application's own client, with redis-py's Retry (timeouts included,
    # as redis-py 6+ does by default) and no retries by the store: the request
    # id makes the client's resend a replay too.
    client = redis.Redis.from_url(proxy.url, socket_timeout=0.3, retry=Retry(NoBackoff(), 1))
    store = RedisKeyStore(client, prefix=redis_prefix, listen=False, retries=0)
    o = org()
    args, events = write.prepare(direct, o)
    _hold_scripts_of(proxy, o, seconds=1.0, times=1)
    result = getattr(store, write.method)(*args)
    assert proxy.held_replies == 1
    assert write.answer(args, result)
    assert wait_until(lambda: all(e in observer for e in events))
    time.sleep(0.2)
    assert [e for e in observer if e in events] == events
    client.close()


@pytest.mark.anyio
@SYNC_ASYNC
async def test_a_usage_flush_whose_answer_is_late_is_not_counted_twice(
    via_proxy, proxy, direct, is_async
):
    # Not idempotent, so not retried: a late answer loses the flush (503),
    # it never doubles it.
    r = _added(direct, org())
    _hold_scripts_of(proxy, r.org_id, seconds=1.0, times=1)
    with pytest.raises(StoreUnavailable):
        await _call(via_proxy, "record_usage", (r.key_id, 5, T0), is_async)
    found = direct.get_key(r.key_id)
    assert found is not None
    assert found.use_count == 5
    await via_proxy.aclose()


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        pytest.param("return false", None, id="false"),
        pytest.param("return 0", 0, id="zero"),
        pytest.param("return {ARGV[1], ''}", [b"x", b""], id="a-table"),
        pytest.param("return {1, ARGV[1]}", [1, b"x"], id="a-mixed-table"),
    ],
)
def test_a_once_script_replays_its_first_answer_and_does_nothing_else(raw, body, answer):
    from scout_auth.stores._redis.needs import ONCE_TTL_MS, once

    script = once("t", f"redis.call('INCR', KEYS[1])\n{body}")
    counter, entry = f"scout_test_once_{uuid.uuid4().hex}", f"scout_test_once_{uuid.uuid4().hex}"
    try:
        replies = [raw.eval(script.source, 2, counter, entry, "x") for _ in range(3)]
        assert replies == [answer] * 3
        assert raw.get(counter) == b"1"  # the body ran once
        assert 0 < raw.pttl(entry) <= ONCE_TTL_MS
    finally:
        raw.delete(counter, entry)

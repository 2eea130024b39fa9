"""Faults: Redis unreachable, slow or silently gone. A loopback proxy stands in for the
network; the real Redis server is never stopped.

Anything that cannot be verified answers 503 (``StoreUnavailable``); the
store and its change feed recover by themselves; a feed that comes back
flushes caches, so a revocation made during the outage is not missed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from scout_auth import AsyncVerifier, KeyEvent, KeyUpdate, LegacyRecord, Verifier
from scout_auth.exceptions import KeyDisabled, StoreUnavailable
from scout_auth.stores.redis import FLUSH, RedisKeyStore
from tests.apps import starlette_app
from tests.stores.contract import T0, org, record
from tests.stores.propagation import wait_until
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

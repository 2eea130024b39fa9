"""Revocation propagation on PostgreSQL: ``NOTIFY`` inside each write, a ``LISTEN`` feed.

A change made through any store reaches every other store's subscribers
once, only after it committed, never for a rolled-back write; the feed
reconnects by itself and flushes. The shared :class:`PropagationContract`
(warm caches, racing fills, a real fleet) runs at the end — the latency
distribution lives in ``benchmarks/revocation.py --store postgres``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import anyio.to_thread
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from scout_auth import KeyEvent, KeyManager, KeyUpdate, Verifier
from scout_auth.exceptions import KeyDisabled
from scout_auth.stores._feed import FLUSH
from scout_auth.stores.sql import SQLKeyStore
from scout_auth.testing import PropagationContract
from scout_auth.testing._propagation import wait_until
from scout_auth.testing._store import T0, org, record
from tests.stores.conftest import PER_TEST_LOOP
from tests.stores.fleet_contract import FleetPropagationContract
from tests.stores.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def make_store(postgres_url, postgres_channel) -> Iterator[Callable[..., SQLKeyStore]]:
    stores: list[SQLKeyStore] = []

    def make(url: str = postgres_url, **options) -> SQLKeyStore:
        options.setdefault("channel", postgres_channel)
        store = SQLKeyStore(url, async_engine_options=PER_TEST_LOOP, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def writer(make_store):
    """Another process's store, as far as the reader can tell (no shared memory)."""
    return make_store(listen=False)


@pytest.fixture
def reader(make_store):
    store = make_store()
    assert store.wait_listening(5)
    return store


@pytest.fixture
def fleet_store(postgres_url, postgres_channel) -> tuple[str, str]:
    return postgres_url, postgres_channel


@pytest.fixture
def admin(postgres_url) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def _of(events: list[KeyEvent], org_id: str) -> list[tuple[str, str | None]]:
    return [(e.action, e.key_id) for e in events if e.org_id == org_id]


# -- delivery ------------------------------------------------------------------
def test_two_stores_see_each_others_events_exactly_once(make_store):
    a, b = make_store(), make_store()
    seen_a: list[KeyEvent] = []
    seen_b: list[KeyEvent] = []
    a.subscribe(seen_a.append)
    b.subscribe(seen_b.append)
    assert a.wait_listening(5)
    assert b.wait_listening(5)
    o = org()
    r, s, successor = record(o), record(o), record(o)
    a.add_key(r)
    b.update_key(r.key_id, KeyUpdate(enabled=False))
    anyio.run(b.aadd_key, s)  # the async path announces too
    a.rotate_key(s.key_id, successor, T0)
    b.delete_key(r.key_id)
    expected = [
        ("created", r.key_id),
        ("updated", r.key_id),
        ("created", s.key_id),
        ("rotated", s.key_id),
        ("created", successor.key_id),
        ("deleted", r.key_id),
    ]
    assert wait_until(lambda: _of(seen_a, o) == expected and _of(seen_b, o) == expected)
    time.sleep(0.2)  # no echo trailing behind
    assert _of(seen_a, o) == expected
    assert _of(seen_b, o) == expected


def test_a_rolled_back_write_notifies_nothing(writer, reader):
    events: list[KeyEvent] = []
    reader.subscribe(events.append)
    r = record(org())
    writer.add_key(r)
    with pytest.raises(ValueError, match="duplicate key id"):  # UPDATE, INSERT fails: rollback
        writer.rotate_key(r.key_id, record(r.org_id, key_id=r.key_id), T0)
    writer.delete_key(r.key_id)  # a marker: everything before it has been delivered
    assert wait_until(lambda: ("deleted", r.key_id) in _of(events, r.org_id))
    assert _of(events, r.org_id) == [("created", r.key_id), ("deleted", r.key_id)]


def test_a_write_that_changes_nothing_notifies_nothing(writer, reader):
    events: list[KeyEvent] = []
    reader.subscribe(events.append)
    o = org()
    assert writer.update_key("no-such-key-" + o, KeyUpdate(enabled=False)) is None
    assert writer.delete_key("no-such-key-" + o) is None
    assert writer.delete_legacy(o) is False
    marker = record(o)
    writer.add_key(marker)
    assert wait_until(lambda: _of(events, o) == [("created", marker.key_id)])


def test_malformed_notifications_are_ignored_and_the_feed_goes_on(
    writer, reader, admin, postgres_channel, caplog
):
    events: list[KeyEvent] = []
    reader.subscribe(events.append)
    with admin.begin() as conn:
        for junk in ("not json", "{}", '{"origin": "x", "events": [[1]]}'):
            conn.execute(sa.select(sa.func.pg_notify(postgres_channel, junk)))
    r = record(org())
    writer.add_key(r)
    assert wait_until(lambda: ("created", r.key_id) in _of(events, r.org_id))
    assert "malformed" in caplog.text


def test_listen_false_still_notifies_and_runs_no_feed(writer, reader):
    events: list[KeyEvent] = []
    writer.subscribe(events.append)
    assert not writer.wait_listening(0.1)
    assert not writer.listening
    r = record(org())
    seen: list[KeyEvent] = []
    reader.subscribe(seen.append)
    writer.add_key(r)
    assert wait_until(lambda: ("created", r.key_id) in _of(seen, r.org_id))
    assert FLUSH not in events


@pytest.mark.parametrize("name", ["sqlite", "mariadb"])
def test_other_databases_have_no_feed(request, name):
    store = SQLKeyStore(request.getfixturevalue(f"{name}_url"))
    store.subscribe(lambda event: None)
    assert not store.wait_listening(0.1)
    assert not _feed_threads(store)
    store.close()


# -- the feed's life -----------------------------------------------------------
def _feed_threads(store: SQLKeyStore) -> list[threading.Thread]:
    name = f"scout-auth-events-{store.origin[:8]}"
    return [t for t in threading.enumerate() if t.name == name]


def test_the_feed_starts_with_the_first_subscriber_and_close_stops_it(make_store):
    store = make_store()
    assert not _feed_threads(store)  # nothing to deliver to yet: no connection, no thread
    events: list[KeyEvent] = []
    store.subscribe(events.append)
    assert wait_until(lambda: store.listening)
    assert events[:1] == [FLUSH]
    assert len(_feed_threads(store)) == 1
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 2
    assert not _feed_threads(store)
    assert not store.listening
    store.subscribe(events.append)  # a closed store's feed stays stopped
    assert not store.wait_listening(0.1)


@pytest.mark.anyio
async def test_aclose_stops_the_feed_off_the_loop(make_store):
    store = make_store()
    assert await anyio.to_thread.run_sync(store.wait_listening, 5)
    r = record(org())
    await store.aadd_key(r)
    await store.aclose()
    assert not _feed_threads(store)


def test_the_feed_reconnects_after_its_backend_is_terminated_and_flushes(reader, writer, admin):
    events: list[KeyEvent] = []
    reader.subscribe(events.append)
    feed = reader._feed
    assert feed is not None
    pid, before = feed.backend_pid, feed.subscriptions
    assert pid is not None
    with admin.begin() as conn:  # that one backend, nothing else
        assert conn.execute(sa.select(sa.func.pg_terminate_backend(pid))).scalar()
    assert wait_until(lambda: feed.subscriptions > before and reader.listening)
    assert feed.backend_pid != pid
    assert events.count(FLUSH) >= 1
    r = record(org())
    writer.add_key(r)  # remote events flow again
    assert wait_until(lambda: ("created", r.key_id) in _of(events, r.org_id))


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", 5432)) as p:
        yield p


def _through(url: str, proxy: TcpProxy) -> str:
    parsed = make_url(url).set(host="127.0.0.1", port=proxy.port)
    return parsed.render_as_string(hide_password=False)


def test_while_the_feed_is_down_caches_fall_back_to_their_ttl_then_flush(
    make_store, writer, proxy, postgres_url
):
    via_proxy = make_store(_through(postgres_url, proxy), connect_timeout=2)
    events: list[KeyEvent] = []
    via_proxy.subscribe(events.append)
    assert via_proxy.wait_listening(5)
    new = KeyManager(writer).create_key(org(), "billing sync")
    assert wait_until(lambda: ("created", new.key.key_id) in _of(events, new.key.org_id))
    verifier = Verifier(via_proxy, cache_ttl=60)
    verifier.verify_token(new.token)  # cached for a minute

    proxy.stop()
    assert wait_until(lambda: not via_proxy.listening)
    writer.update_key(new.key.key_id, KeyUpdate(enabled=False))  # its notification is lost
    assert verifier.verify_token(new.token).key_id == new.key.key_id  # TTL fallback

    events.clear()
    proxy.start()
    assert wait_until(lambda: via_proxy.listening, timeout=10)  # reconnected by itself
    assert FLUSH in events
    with pytest.raises(KeyDisabled):
        verifier.verify_token(new.token)  # the flush dropped the stale entry

    other = record(org())
    writer.add_key(other)
    assert wait_until(lambda: ("created", other.key_id) in _of(events, other.org_id))


def test_a_silently_dead_feed_is_noticed_by_its_pings(make_store, proxy, postgres_url):
    via_proxy = make_store(_through(postgres_url, proxy), connect_timeout=2, ping_interval=0.3)
    assert via_proxy.wait_listening(5)
    proxy.frozen = True  # no RST, no FIN: only an unanswered ping tells
    assert wait_until(lambda: not via_proxy.listening, timeout=10)
    events: list[KeyEvent] = []
    via_proxy.subscribe(events.append)
    proxy.frozen = False
    proxy.drop_connections()
    assert wait_until(lambda: via_proxy.listening, timeout=10)
    assert FLUSH in events


def test_a_frozen_feed_is_replaced_by_a_fresh_connection_within_the_ping_bound(
    make_store, writer, proxy, postgres_url
):
    # Issue 11, item 4: the feed used to reconnect through the store's pool,
    # got the pooled connection that had gone silent with it, and blocked in
    # LISTEN for good (store.listening stayed False, revocation fell back to
    # the cache TTL forever).
    ping = 0.3
    via_proxy = make_store(_through(postgres_url, proxy), connect_timeout=2, ping_interval=ping)
    events: list[KeyEvent] = []
    via_proxy.subscribe(events.append)
    assert via_proxy.wait_listening(5)
    r = record(org())
    writer.add_key(r)
    assert via_proxy.get_key(r.key_id) == r  # the store's pool now holds a connection too
    feed = via_proxy._feed
    assert feed is not None
    before = feed.subscriptions

    frozen_at = time.monotonic()
    assert proxy.freeze_open() >= 2  # the feed's connection and the pooled one go silent
    assert wait_until(lambda: feed.subscriptions > before and via_proxy.listening, timeout=5)
    replaced_in = time.monotonic() - frozen_at
    # within the ping interval (the next ping, its deadline), plus a fresh connection
    assert replaced_in < ping + 1.0, replaced_in
    writer.update_key(r.key_id, KeyUpdate(enabled=False))
    assert wait_until(lambda: ("updated", r.key_id) in _of(events, r.org_id), timeout=5)


def test_a_listen_that_gets_no_answer_is_given_up_and_tried_again(make_store, proxy, postgres_url):
    via_proxy = make_store(_through(postgres_url, proxy), connect_timeout=2, ping_interval=0.3)
    proxy.hold_reply_when(lambda data: b"LISTEN" in data, 10.0)  # the server stalls at LISTEN
    via_proxy.subscribe(lambda event: None)
    # the first LISTEN is abandoned by the watchdog, the feed reconnects and tries again
    assert wait_until(lambda: proxy.held_replies >= 2, timeout=5), proxy.held_replies
    assert not via_proxy.listening
    proxy.hold_reply_when(None)
    assert wait_until(lambda: via_proxy.listening, timeout=5)


# -- the shared suite ------------------------------------------------------------
class TestPostgresPropagation(PropagationContract, FleetPropagationContract):
    """Warm caches, ordering, racing fills and a real fleet, as on every store with a feed."""

"""Faults: a database that is down, comes back, hangs, goes silent or holds a lock.

Every store method then raises ``StoreUnavailable`` (the verifier answers
503) within a bound, and the same store object works again once the
database is back. A write whose COMMIT ran but whose reply was lost still
drops the key from the writer's own caches. The servers are taken down
with a loopback TCP proxy in front of them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from scout_auth import AsyncKeyManager, AsyncVerifier, KeyManager, LegacyRecord, Verifier
from scout_auth.exceptions import InvalidToken, KeyDisabled, StoreError, StoreUnavailable
from scout_auth.stores import KeyUpdate
from scout_auth.stores.sql import SQLKeyStore
from scout_auth.testing._store import T0, org, record
from tests.stores.conftest import PER_TEST_LOOP
from tests.stores.tcp_proxy import TcpProxy


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Each store method with arguments that would otherwise succeed.
CALLS: list[Any] = [
    pytest.param("get_key", lambda: ("k" * 20,), id="get_key"),
    pytest.param("list_keys", lambda: (org(),), id="list_keys"),
    pytest.param("add_key", lambda: (record(org()),), id="add_key"),
    pytest.param("update_key", lambda: ("k" * 20, KeyUpdate(enabled=False)), id="update_key"),
    pytest.param("rotate_key", lambda: ("k" * 20, record(org()), T0), id="rotate_key"),
    pytest.param("delete_key", lambda: ("k" * 20,), id="delete_key"),
    pytest.param("get_legacy", lambda: (org(),), id="get_legacy"),
    pytest.param("put_legacy", lambda: (LegacyRecord(org(), "$argon2id$h", T0),), id="put_legacy"),
    pytest.param("delete_legacy", lambda: (org(),), id="delete_legacy"),
]


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def unreachable_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    url = make_url(request.getfixturevalue(f"{request.param}_url"))
    return url.set(host="127.0.0.1", port=_closed_port()).render_as_string(hide_password=False)


@pytest.mark.parametrize(("method", "args"), CALLS)
def test_every_method_raises_store_unavailable_when_the_database_is_down(
    unreachable_url, method, args
):
    store = SQLKeyStore(unreachable_url, connect_timeout=2)
    with pytest.raises(StoreUnavailable) as caught:
        getattr(store, method)(*args())
    assert caught.value.status == 503
    assert caught.value.__cause__ is not None  # the driver error, kept for the logs
    store.close()


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "args"), CALLS)
async def test_every_async_twin_raises_store_unavailable_when_the_database_is_down(
    unreachable_url, method, args
):
    store = SQLKeyStore(unreachable_url, connect_timeout=2)
    with pytest.raises(StoreUnavailable):
        await getattr(store, "a" + method)(*args())
    await store.aclose()
    await _aiosqlite_workers_done()


async def _aiosqlite_workers_done() -> None:
    # After a failed connect aiosqlite stops its worker thread without awaiting
    # it; the thread then reports to the event loop, which must still be open.
    for _ in range(100):
        if not any("_connection_worker" in t.name for t in threading.enumerate()):
            return
        await anyio.sleep(0.01)


# -- through a proxy that goes down and comes back ----------------------------------
@pytest.fixture(params=["postgres", "mariadb"])
def proxied(request) -> Iterator[tuple[TcpProxy, str]]:
    url = make_url(request.getfixturevalue(f"{request.param}_url"))
    with TcpProxy((url.host or "127.0.0.1", url.port or 0)) as proxy:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
async def proxied_store(proxied) -> AsyncIterator[tuple[TcpProxy, SQLKeyStore]]:
    proxy, url = proxied
    store = SQLKeyStore(url, connect_timeout=2, statement_timeout=2)
    yield proxy, store
    await store.aclose()


@pytest.mark.anyio
async def test_store_recovers_without_rebuild_when_the_server_comes_back(proxied_store):
    proxy, store = proxied_store
    new = KeyManager(store).create_key(org(), "billing-sync prod")
    assert store.get_key(new.key.key_id) == new.key
    assert await store.aget_key(new.key.key_id) == new.key  # both pools hold a connection

    proxy.stop()
    for _ in range(2):  # first the pooled connections die, then reconnecting fails
        with pytest.raises(StoreUnavailable):
            store.get_key(new.key.key_id)
        with pytest.raises(StoreUnavailable):
            await store.aget_key(new.key.key_id)
    with pytest.raises(StoreUnavailable) as caught:
        Verifier(store).verify_token(new.token)
    assert caught.value.status == 503
    with pytest.raises(StoreUnavailable):
        await AsyncVerifier(store).verify_token(new.token)

    proxy.start()
    assert store.get_key(new.key.key_id) == new.key
    assert await store.aget_key(new.key.key_id) == new.key
    assert Verifier(store).verify_token(new.token).key_id == new.key.key_id
    assert (await AsyncVerifier(store).verify_token(new.token)).key_id == new.key.key_id
    assert KeyManager(store).disable_key(new.key.key_id).enabled is False


@pytest.mark.anyio
async def test_a_restart_between_two_calls_goes_unnoticed(proxied_store):
    proxy, store = proxied_store
    r = record(org())
    store.add_key(r)
    assert await store.aget_key(r.key_id) == r
    proxy.stop()  # every pooled connection is cut...
    proxy.start()  # ...and the server is back before the next call
    assert store.get_key(r.key_id) == r  # the dead connection is replaced, the call rerun
    assert await store.aget_key(r.key_id) == r
    proxy.stop()
    proxy.start()
    assert store.update_key(r.key_id, KeyUpdate(name="renamed")) == r.evolve(name="renamed")
    assert await store.adelete_key(r.key_id) == r.evolve(name="renamed")


def _bounded(call: Callable[[], object], limit: float = 30.0) -> BaseException | None:
    """Run ``call`` in a thread; fail the test if it has not returned after ``limit`` s."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert outcome, "the store call hung instead of timing out"
    return outcome[0]


def test_a_hung_server_fails_the_call_instead_of_hanging(proxied):
    proxy, url = proxied
    proxy.stall = True  # accepts, never answers
    store = SQLKeyStore(url, connect_timeout=1, statement_timeout=1)
    assert isinstance(_bounded(lambda: store.get_key("k" * 20)), StoreUnavailable)
    proxy.stall = False
    store.close()


@pytest.mark.anyio
async def test_an_async_call_to_a_hung_server_fails_instead_of_hanging(proxied):
    proxy, url = proxied
    proxy.stall = True
    store = SQLKeyStore(url, connect_timeout=1, statement_timeout=1)
    with pytest.raises(StoreUnavailable):
        await store.aget_key("k" * 20)
    await store.aclose()


# -- a lock held too long --------------------------------------------------------
@pytest.fixture(params=["postgres", "mariadb"])
def server(request) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.mark.anyio
async def test_a_write_stuck_behind_a_lock_times_out(server):
    store = SQLKeyStore(server, statement_timeout=0.5, async_engine_options=PER_TEST_LOOP)
    r = record(org())
    store.add_key(r)
    locker = sa.create_engine(server, poolclass=NullPool)
    with locker.connect() as conn, conn.begin():
        conn.execute(
            sa.text("SELECT key_id FROM scout_auth_keys WHERE key_id = :k FOR UPDATE"),
            {"k": r.key_id},
        )
        with pytest.raises(StoreUnavailable):
            store.update_key(r.key_id, KeyUpdate(name="renamed"))
        with pytest.raises(StoreUnavailable):
            await store.arotate_key(r.key_id, record(r.org_id), T0 + timedelta(1))
    # the lock is gone: the same store goes on, and nothing was half written
    assert store.get_key(r.key_id) == r
    assert store.update_key(r.key_id, KeyUpdate(name="renamed")) == r.evolve(name="renamed")
    locker.dispose()
    await store.aclose()


# -- a lifecycle write whose reply is lost (issue 11, item 2) ---------------------
def _cut_once_committed(proxy: TcpProxy, committed: Callable[[], bool]) -> threading.Thread:
    """Hold the reply to the next COMMIT, and cut every connection once it took effect.

    The server commits; the client hears nothing but a reset: the outcome of
    the write is unknown to it.
    """

    def cut() -> None:
        deadline = time.monotonic() + 4  # the reply is held for 5 s
        while not (proxy.held_replies and committed()) and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.drop_connections()

    proxy.hold_reply_when(lambda data: b"COMMIT" in data, 5.0)
    thread = threading.Thread(target=cut, daemon=True)
    thread.start()
    return thread


def _row(proxy: TcpProxy, url: str, key_id: str) -> Any:
    """The key's row, read straight from the server (not through the proxy)."""
    direct = make_url(url).set(host=proxy.target[0], port=proxy.target[1])
    engine = sa.create_engine(direct, poolclass=NullPool)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT enabled FROM scout_auth_keys WHERE key_id = :k"), {"k": key_id}
        ).first()
    engine.dispose()
    return row


def test_a_write_whose_reply_is_lost_drops_the_key_from_the_writers_own_cache(proxied):
    proxy, url = proxied
    # listen=False: a feed reconnecting after the cut would flush the cache and
    # hide what the writer itself must do.
    store = SQLKeyStore(url, connect_timeout=1, statement_timeout=1, listen=False)
    new = KeyManager(store).create_key(org(), "lost reply")
    verifier = Verifier(store, cache_ttl=60)
    assert verifier.verify_token(new.token).key_id == new.key.key_id  # cached for a minute

    cutter = _cut_once_committed(proxy, lambda: not _row(proxy, url, new.key.key_id).enabled)
    with pytest.raises(StoreError):  # the outcome is unknown to the caller...
        KeyManager(store).disable_key(new.key.key_id)
    cutter.join()
    proxy.hold_reply_when(None)
    assert proxy.held_replies == 1
    assert not _row(proxy, url, new.key.key_id).enabled  # ...but the write did commit
    with pytest.raises(KeyDisabled):  # and the writer's own verifier knows it at once
        verifier.verify_token(new.token)
    store.close()


@pytest.mark.anyio
async def test_an_async_write_whose_reply_is_lost_drops_the_key_from_the_cache(proxied):
    proxy, url = proxied
    store = SQLKeyStore(url, connect_timeout=1, statement_timeout=1, listen=False)
    new = await AsyncKeyManager(store).create_key(org(), "lost reply")
    verifier = AsyncVerifier(store, cache_ttl=60)
    assert (await verifier.verify_token(new.token)).key_id == new.key.key_id

    cutter = _cut_once_committed(proxy, lambda: _row(proxy, url, new.key.key_id) is None)
    with pytest.raises(StoreError):
        await AsyncKeyManager(store).delete_key(new.key.key_id)
    await anyio.to_thread.run_sync(cutter.join)
    proxy.hold_reply_when(None)
    assert _row(proxy, url, new.key.key_id) is None  # it was deleted
    with pytest.raises(InvalidToken):  # an unknown key, at once
        await verifier.verify_token(new.token)
    await store.aclose()


# -- a pooled connection that goes silent (issue 11, item 3) -----------------------
#: The store's read timeout with statement_timeout=0.5 (statement + 1 s).
READ_TIMEOUT = 1.5


def _silent_store(url: str) -> SQLKeyStore:
    return SQLKeyStore(url, connect_timeout=1, statement_timeout=0.5, listen=False)


def _timed(call: Callable[[], object], limit: float = 8.0) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    outcome = _bounded(call, limit)
    return outcome, time.monotonic() - started


@pytest.mark.parametrize("fault", ["freeze_open", "black_hole"])
def test_a_silent_pooled_connection_is_a_503_within_the_read_timeout(proxied, fault):
    proxy, url = proxied
    store = _silent_store(url)
    new = KeyManager(store).create_key(org(), "silent")  # the pool now holds a connection
    verifier = Verifier(store, cache_ttl=0)  # built first: it reads the store at startup
    if fault == "freeze_open":
        assert proxy.freeze_open() >= 1  # that connection goes silent; new ones work
    else:
        proxy.frozen = True  # every connection, old and new

    outcome, took = _timed(lambda: verifier.verify_token(new.token))
    assert isinstance(outcome, StoreUnavailable), outcome
    assert outcome.status == 503
    assert took < READ_TIMEOUT + 1.0

    if fault == "black_hole":  # a new connection is as silent: connect_timeout (2 s)
        outcome, took = _timed(lambda: store.get_key(new.key.key_id))
        assert isinstance(outcome, StoreUnavailable), outcome
        assert took < 2 + 1.0
        proxy.frozen = False
    # the dead connection is gone from the pool: the next request is answered
    assert verifier.verify_token(new.token).key_id == new.key.key_id
    store.close()


def test_an_async_call_on_a_silent_pooled_connection_is_a_503_within_the_read_timeout(proxied):
    proxy, url = proxied

    async def scenario() -> float:
        store = _silent_store(url)
        new = await AsyncKeyManager(store).create_key(org(), "silent")
        verifier = AsyncVerifier(store, cache_ttl=0)
        # Reads have a pool of their own (autocommit, issue 15): put a
        # connection in it, the one that then goes silent.
        assert await store.aget_key(new.key.key_id) is not None
        assert proxy.freeze_open() >= 1
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await verifier.verify_token(new.token)
        took = time.monotonic() - started
        assert (await verifier.verify_token(new.token)).key_id == new.key.key_id
        await store.aclose()
        return took

    # On its own thread and loop: a driver with no read timeout hangs there, not here.
    took: list[float] = []
    outcome = _bounded(lambda: took.append(anyio.run(scenario)), limit=8)
    assert outcome is None, outcome
    assert took[0] < READ_TIMEOUT + 1.0


def test_an_engine_passed_in_gets_the_read_timeout_when_asked(proxied):
    proxy, url = proxied
    engine = sa.create_engine(url)
    if engine.dialect.name != "postgresql":  # a MySQL driver times its reads itself
        with pytest.raises(ValueError, match="connect_args"):
            SQLKeyStore(engine=engine, read_timeout=0.5)
        return
    store = SQLKeyStore(engine=engine, read_timeout=0.5, listen=False)
    r = record(org())
    store.add_key(r)
    proxy.freeze_open()
    outcome, took = _timed(lambda: store.get_key(r.key_id))
    assert isinstance(outcome, StoreUnavailable), outcome
    assert took < 0.5 + 1.0
    assert store.get_key(r.key_id) == r
    engine.dispose()

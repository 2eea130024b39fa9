"""``wait_replicas``: ``WAIT`` after each revocation, on the same connection as the write.

On the shared Redis (a primary with no replica) every ``WAIT`` runs out its
timeout, which is what a lost or slow replica looks like: the write stands
and a warning says so. A private primary with one replica shows the
acknowledged case.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from scout_auth import KeyUpdate
from scout_auth.stores.redis import RedisKeyStore
from scout_auth.testing._store import org, record
from tests.conftest import unavailable
from tests.stores.tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis

WAIT = {"wait_replicas": 1, "wait_timeout": 0.2}


@pytest.fixture
def proxy(redis_url) -> Iterator[TcpProxy]:
    p = TcpProxy().start()
    yield p
    p.stop()


def _requests_seen(proxy: TcpProxy) -> list[bytes]:
    """Every request the proxy forwards from now on (nothing is held)."""
    seen: list[bytes] = []

    def record_it(data: bytes) -> bool:
        seen.append(data)
        return False

    proxy.hold_reply_when(record_it)
    return seen


@pytest.fixture
def waiting(proxy, redis_prefix) -> Iterator[RedisKeyStore]:
    store = RedisKeyStore.from_url(proxy.url, prefix=redis_prefix, listen=False, **WAIT)  # type: ignore[arg-type]
    yield store
    store.close()


async def _timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    if hasattr(result, "__await__"):
        result = await result
    return result, time.monotonic() - started


@pytest.mark.anyio
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_revocation_waits_for_replicas_and_reports_a_shortfall(
    waiting, proxy, caplog, is_async
):
    r = record(org())
    seen = _requests_seen(proxy)
    _, took = await _timed(lambda: waiting.aadd_key(r) if is_async else waiting.add_key(r))
    assert took < 0.2  # creating takes nothing away: no WAIT
    assert not any(b"WAIT" in d for d in seen)

    update = KeyUpdate(enabled=False)
    with caplog.at_level(logging.WARNING, logger="scout_auth"):
        method = waiting.aupdate_key if is_async else waiting.update_key
        disabled, took = await _timed(lambda: method(r.key_id, update))
    assert disabled is not None
    assert disabled.enabled is False  # the write stands: a shortfall is not an error
    assert took >= 0.2  # WAIT ran out its timeout: no replica acknowledged
    assert any(b"WAIT" in d and b"EVAL" in d for d in seen)  # one round trip, one connection
    assert "update_key acknowledged by 0 of 1 replicas within 200 ms" in caplog.text
    assert waiting.get_key(r.key_id) == disabled
    await waiting.aclose()


@pytest.mark.parametrize(
    "method",
    ["rotate_key", "delete_key", "put_role", "delete_role", "put_legacy", "set_legacy_enabled"],
)
def test_every_write_that_takes_access_away_waits(waiting, proxy, method):
    from scout_auth import LegacyRecord, RoleRecord
    from scout_auth.testing._store import T0

    o = org()
    old = record(o)
    waiting.add_key(old)
    waiting.put_role(RoleRecord(o, "reader", frozenset({"read"})))
    waiting.put_legacy(LegacyRecord(o, "$argon2id$h", T0))
    args = {
        "rotate_key": (old.key_id, record(o), T0),
        "delete_key": (old.key_id,),
        "put_role": (RoleRecord(o, "reader", frozenset()),),
        "delete_role": (o, "reader"),
        "put_legacy": (LegacyRecord(o, "$argon2id$other", T0),),
        "set_legacy_enabled": (o, False),
    }[method]
    seen = _requests_seen(proxy)
    getattr(waiting, method)(*args)
    assert sum(b"WAIT" in d for d in seen) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"wait_replicas": 0}, "at least 1", id="no-replica"),
        pytest.param({"wait_replicas": 1, "wait_timeout": 0}, "positive", id="no-timeout"),
        pytest.param(
            {"wait_replicas": 1, "wait_timeout": 1.0, "socket_timeout": 1.0},
            "shorter",
            id="timeout-not-below-socket-timeout",
        ),
    ],
)
def test_wait_options_are_checked_at_construction(redis_url, options, message):
    with pytest.raises(ValueError, match=message):
        RedisKeyStore.from_url(redis_url, listen=False, **options)


def test_a_client_without_a_socket_timeout_takes_any_wait_timeout(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    store = RedisKeyStore(client, prefix=redis_prefix, listen=False, wait_replicas=1)
    store.close()
    client.close()


# -- a private primary with one replica ---------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(server: str, port: int, workdir: str, *extra: str) -> subprocess.Popen[bytes]:
    options = ["--port", str(port), "--bind", "127.0.0.1", "--dir", workdir]
    return subprocess.Popen(  # noqa: S603
        [server, *options, "--save", "", "--appendonly", "no", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def replicated() -> Iterator[str]:
    """The URL of a private primary that has one replica (both stopped afterwards)."""
    server = shutil.which("redis-server")
    if server is None:
        unavailable("redis-server not on the PATH")
    workdir = tempfile.mkdtemp(prefix="scout-replica-")
    primary_port, replica_port = _free_port(), _free_port()
    nodes = [_start(server, primary_port, workdir)]
    try:
        nodes.append(
            _start(
                server,
                replica_port,
                workdir,
                "--replicaof",
                "127.0.0.1",
                str(primary_port),
                "--dbfilename",
                "replica.rdb",
            )
        )
        primary = redis.Redis(port=primary_port, socket_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                replica = primary.info("replication").get("slave0")
                if isinstance(replica, dict) and replica.get("state") == "online":
                    break  # synchronised: it acknowledges from now on
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the private replica did not connect")
            time.sleep(0.05)
        primary.set("scout_test_warm", "1")
        assert primary.wait(1, 10_000) == 1  # it acknowledges writes now
        primary.close()
        yield f"redis://127.0.0.1:{primary_port}/0"
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def test_with_a_replica_a_revocation_returns_once_it_is_acknowledged(replicated, caplog):
    store = RedisKeyStore.from_url(
        replicated, listen=False, socket_timeout=3, wait_replicas=1, wait_timeout=2
    )
    r = record(org())
    store.add_key(r)
    with caplog.at_level(logging.WARNING, logger="scout_auth"):
        started = time.monotonic()
        deleted = store.delete_key(r.key_id)
        took = time.monotonic() - started
    assert deleted == r
    assert took < 1  # acknowledged: the timeout did not run out
    assert "replicas" not in caplog.text
    store.close()

"""The fault proxy itself, against the shared Redis: each fault does what it says."""

from __future__ import annotations

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import require_server
from tests.stores.tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis


@pytest.fixture
def proxy():
    require_server("Redis", "127.0.0.1", 6379)
    with TcpProxy() as p:
        yield p


def _client(proxy: TcpProxy, timeout: float = 0.5) -> redis.Redis:
    # No retries: redis-py 6 retries a timed-out command on a new connection
    # by default, which would hide (and repeat) exactly what these faults do.
    return redis.Redis(port=proxy.port, db=15, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


def test_freeze_open_silences_open_connections_only(proxy):
    old = _client(proxy)
    assert old.ping()
    assert proxy.freeze_open() == 1
    with pytest.raises(redis.TimeoutError):
        old.ping()  # the pooled connection hangs until the client's timeout
    new = redis.Redis(port=proxy.port, db=15, socket_timeout=0.5, single_connection_client=True)
    assert new.ping()  # a fresh connection works
    old.close()
    new.close()


def test_hold_reply_when_delays_the_answer_to_a_matching_request(proxy):
    client = _client(proxy, timeout=0.3)
    key = f"scout_test_proxy_{time.monotonic_ns()}"
    proxy.hold_reply_when(lambda data: key.encode() in data and b"INCR" in data, 0.8)
    with pytest.raises(redis.TimeoutError):
        client.incr(key)  # ran on the server; the reply came too late
    proxy.hold_reply_when(None)
    time.sleep(0.6)
    direct = redis.Redis(db=15)
    assert direct.get(key) == b"1"  # the command did run, exactly once
    assert proxy.held_replies == 1
    direct.delete(key)
    direct.close()
    client.close()

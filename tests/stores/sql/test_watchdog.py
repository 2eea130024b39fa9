"""The SQL read deadline (``_sql_watchdog``) on plain socket pairs: cut late, never wrongly."""

from __future__ import annotations

import socket
import time

import pytest

from scout_auth.stores._sql.watchdog import NO_WATCH, WATCHDOG


class _Conn:
    """What the watchdog needs of a driver connection: ``fileno()``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_a_late_answer_gets_the_connection_cut(pair):
    client, _server = pair
    client.settimeout(5)
    started = time.monotonic()
    with WATCHDOG.watch(_Conn(client), 0.2) as watch:
        assert client.recv(1) == b""  # the blocked read ends: the socket was shut down
    assert watch.fired
    assert 0.15 < time.monotonic() - started < 2


def test_an_answer_in_time_ends_the_watch_and_nothing_is_cut(pair):
    client, server = pair
    with WATCHDOG.watch(_Conn(client), 0.2) as watch:
        server.sendall(b"x")
        assert client.recv(1) == b"x"
    time.sleep(0.4)
    assert not watch.fired
    server.sendall(b"y")
    assert client.recv(1) == b"y"  # still open


def test_arm_gives_each_round_trip_a_full_timeout(pair):
    client, server = pair
    with WATCHDOG.watch(_Conn(client), 0.3) as watch:
        for _ in range(4):  # 4 x 0.15 s: longer than one timeout, never one without answer
            time.sleep(0.15)
            watch.arm()
        assert not watch.fired
    server.sendall(b"z")
    assert client.recv(1) == b"z"


def test_a_descriptor_reused_after_the_driver_closed_its_socket_is_never_cut():
    a, b = socket.socketpair()
    watch = WATCHDOG.watch(_Conn(a), 0.2)
    number = a.fileno()
    a.close()  # the driver closes its connection while the watch is in force...
    c, d = socket.socketpair()  # ...and the number is handed out again
    try:
        assert number in (c.fileno(), d.fileno())
        time.sleep(0.4)
        assert watch.fired  # the watchdog cut the socket it pinned, not the new one
        d.sendall(b"ok")
        assert c.recv(2) == b"ok"
    finally:
        watch.__exit__(None, None, None)
        for sock in (b, c, d):
            sock.close()


def test_no_watch_without_a_timeout_or_a_socket(pair):
    client, _ = pair
    assert WATCHDOG.watch(_Conn(client), None) is NO_WATCH
    assert WATCHDOG.watch(object(), 1.0) is NO_WATCH  # a driver without fileno()

    class Lost:
        def fileno(self) -> int:
            raise OSError("the connection is lost")

    assert WATCHDOG.watch(Lost(), 1.0) is NO_WATCH
    with NO_WATCH as watch:
        watch.arm()
    assert not NO_WATCH.fired

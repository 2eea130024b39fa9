"""A client-side read timeout for drivers that have none: cut a connection whose answer is late.

Theory of operation
-------------------
libpq, and so psycopg, sync or async, waits for an answer for as long as
its socket stays open. ``statement_timeout`` runs on the server, which never
sees a statement sent into a dead connection, and TCP keepalives and
``tcp_user_timeout`` notice a peer that stops *acknowledging*, not one that
acknowledges and never answers (a stopped server process, a wedged proxy or
load balancer in between, a frozen pooled connection). So a store arms a
:class:`Watch` on the connection for each round trip it waits for.

One daemon thread per process, started on first use, keeps the deadlines of
the watches in force. It sleeps until the earliest one, and when a deadline
passes it shuts that connection's socket down (``shutdown(SHUT_RDWR)``). The
blocked call, sync or awaited on an event loop, then fails at once with a
connection error; SQLAlchemy discards the connection (and the pooled ones
opened before it) and the store raises ``StoreUnavailable``. Watches are
short-lived and all have about the same timeout, so a new watch seldom
wakes the thread: under load it wakes about once per timeout.

A watch pins its socket with a duplicate descriptor for as long as it is in
force. A watchdog that fires late can then only cut the socket it was armed
on, never one that reused a descriptor number the driver closed meanwhile.
The thread cuts, and :meth:`Watch.__exit__` releases, under one lock: once
a ``with`` block is left, its socket is never cut.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from types import TracebackType

__all__ = ["NO_WATCH", "WATCHDOG", "Watch", "Watchdog", "sever"]


def sever(fileno: int) -> None:
    """Shut a socket down under its owner: a call blocked on it fails at once."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fileno))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


class Watch:
    """A deadline on one connection; :meth:`arm` restarts it for the next round trip.

    Use it as a context manager: leaving the block ends the watch.
    """

    __slots__ = ("_dog", "_pinned", "deadline", "fired", "timeout")

    def __init__(self, dog: Watchdog | None, pinned: int, timeout: float) -> None:
        self._dog = dog
        self._pinned = pinned
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        #: Whether the deadline passed and the connection was cut.
        self.fired = False

    def arm(self) -> None:
        """Give the next round trip a full ``timeout`` from now."""
        # Only ever later than before: the thread, asleep until an earlier
        # deadline, finds this one moved when it wakes. No wake-up needed.
        self.deadline = time.monotonic() + self.timeout

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._dog is not None:
            self._dog.release(self)
            self._dog = None
            os.close(self._pinned)

    def cut(self) -> None:
        """Mark the watch fired and shut its socket down (the watchdog's thread calls it)."""
        self.fired = True
        sever(self._pinned)


class _NoWatch(Watch):
    __slots__ = ()

    def arm(self) -> None:
        pass


#: A watch that never fires: connections of drivers with a read timeout of their own.
NO_WATCH: Watch = _NoWatch(None, -1, math.inf)


class Watchdog:
    """The thread that cuts connections whose deadline passed (see the module docstring)."""

    def __init__(self) -> None:
        self._reset()
        # A forked child has no thread and maybe a lock held by a thread
        # that does not exist there: start afresh.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._watches: set[Watch] = set()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def watch(self, connection: object, timeout: float | None) -> Watch:
        """A watch on ``connection`` (anything with ``fileno()``), in force now.

        :data:`NO_WATCH` when ``timeout`` is ``None`` or the connection has no
        socket to cut (another driver, or one already closed: its first
        statement then fails at once, on its own).
        """
        if timeout is None:
            return NO_WATCH
        try:
            pinned = os.dup(connection.fileno())  # type: ignore[attr-defined]
        except Exception:  # no fileno(), a lost connection (psycopg raises), no descriptor left
            return NO_WATCH
        watch = Watch(self, pinned, timeout)
        with self._cond:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="scout-auth-sql-watchdog", daemon=True
                )
                self._thread.start()
            if watch.deadline < self._wake_at:
                self._cond.notify()
        return watch

    def release(self, watch: Watch) -> None:
        """End ``watch``: it is never cut from now on (what leaving its block does)."""
        with self._cond:
            self._watches.discard(watch)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for watch in [w for w in self._watches if w.deadline <= now]:
                    self._watches.discard(watch)
                    watch.cut()
                self._wake_at = min((w.deadline for w in self._watches), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)


#: The process's watchdog, shared by every store and change feed.
WATCHDOG = Watchdog()

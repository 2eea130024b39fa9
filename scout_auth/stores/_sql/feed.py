"""The PostgreSQL change feed: ``LISTEN`` on a dedicated psycopg connection.

Every lifecycle write of a :class:`~scout_auth.stores.sql.SQLKeyStore` on
PostgreSQL ends its transaction with ``pg_notify(channel, payload)`` (see
:func:`.ops.announcing`). This module is the receiving end: the shared
:class:`~._feed.ChangeFeed` loop (reconnect with back-off, flush after every
subscription, origin filter) around a PostgreSQL session:

1. open a new connection of its own (never a pooled one: it may have gone
   silent with the connection the feed just lost) and switch it to
   autocommit, so ``LISTEN`` takes effect at once and no transaction stays
   open; connecting is bounded by the engine's ``connect_timeout``;
2. ``LISTEN channel``, then report the subscription (the flush);
3. wait for notifications ``POLL`` seconds at a time, so a stop is noticed
   promptly; every ``ping_interval / 2`` send ``SELECT 1``.

``LISTEN`` and every ping run under the SQL watchdog (:mod:`.watchdog`):
an answer later than ``ping_interval / 2`` seconds (at least 0.25 s) gets
the socket shut down under it, so a silently dead peer ends the session —
and the loop opens a new one — instead of hanging it. A frozen feed is so
replaced within ``ping_interval`` (half an interval to the next ping, half
for its answer), plus a connect.

Imported only when a store starts listening: it needs psycopg 3.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from ..._core.store import KeyEvent
from .._feed import ChangeFeed
from .watchdog import WATCHDOG

__all__ = ["PostgresFeed"]


class PostgresFeed(ChangeFeed):
    """Deliver KeyEvents notified on ``channel`` by other stores to ``deliver``.

    Args:
        connect: Returns a new psycopg connection in autocommit mode, owned
            by the feed (it closes it).
        channel: The notification channel (a validated identifier).
        origin: This store's id; its own notifications are skipped.
        deliver: Called on the feed thread for each event.
        ping_interval: The bound on noticing a silent connection: a ping
            every ``ping_interval / 2`` seconds, and a ping (or the
            ``LISTEN``) unanswered for ``ping_interval / 2`` (at least
            0.25 s) ends the connection.
        max_backoff: Longest wait between reconnection attempts.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[object]],
        channel: str,
        origin: str,
        deliver: Callable[[KeyEvent], None],
        *,
        ping_interval: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        super().__init__(origin, deliver, max_backoff=max_backoff)
        self._connect = connect
        self._channel = channel
        self._ping_interval = ping_interval / 2
        self._answer_timeout = max(ping_interval / 2, 0.25)
        #: The server process id of the feed's connection while it is up.
        self.backend_pid: int | None = None

    def _session(self) -> None:
        conn = self._connect()
        try:
            self.backend_pid = conn.info.backend_pid
            with WATCHDOG.watch(conn, self._answer_timeout):
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._subscribed()
            next_ping = time.monotonic() + self._ping_interval
            while not self.stopping:
                for notify in conn.notifies(timeout=self.POLL):
                    self._received(notify.payload)
                if time.monotonic() >= next_ping:
                    self._ping(conn)
                    next_ping = time.monotonic() + self._ping_interval
        finally:
            self.backend_pid = None
            with contextlib.suppress(Exception):
                conn.close()

    def _ping(self, conn: psycopg.Connection[object]) -> None:
        # Notifications arriving meanwhile wait in psycopg's backlog for the
        # next notifies() call; none is lost.
        with WATCHDOG.watch(conn, self._answer_timeout):
            conn.execute("SELECT 1")

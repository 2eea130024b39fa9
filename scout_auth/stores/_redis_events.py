"""The change feed: a daemon thread that turns Redis pub/sub messages into KeyEvents.

Theory of operation
-------------------
Every write script ``PUBLISH``\\ es its events on ``<prefix>:events`` (see
:mod:`._redis_ops`). One listener thread per store subscribes with the sync
client and hands events written by *other* stores to the store's
subscribers, which invalidate their caches. A thread serves sync and async
verifiers alike and never touches an event loop (the cache is thread-safe).

Pub/sub is fire-and-forget: whatever is published while the listener is
not subscribed is lost. So every subscription confirmation — the first one
and each one after a reconnect — is followed by a local
``KeyEvent("flush", "*")``: caches drop everything they may have missed.
While the feed is down caches fall back to their TTL. The thread
reconnects by itself with capped exponential back-off and pings the server
so that a silently dead connection is noticed too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis

from ._base import KeyEvent
from ._redis_layout import decode_event_payload

__all__ = ["FLUSH", "EventListener"]

logger = logging.getLogger("scout_auth")

#: Delivered locally after every (re)subscription: events may have been missed.
FLUSH = KeyEvent("flush", "*")

_MIN_BACKOFF = 0.05


class EventListener:
    """Deliver remote KeyEvents from ``channel`` to ``deliver``, on a daemon thread.

    Args:
        client: A sync client; the listener takes one connection of its pool.
        channel: The events channel.
        origin: This store's id; messages it published itself are skipped
            (the store already told its subscribers).
        deliver: Called on the listener thread for each event.
        ping_interval: Seconds between liveness pings.
        max_backoff: Longest wait between reconnection attempts.
    """

    POLL = 0.1  # how long one wait for a message lasts; bounds the stop latency

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        origin: str,
        deliver: Callable[[KeyEvent], None],
        *,
        ping_interval: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        self._client = client
        self._channel = channel
        self._origin = origin
        self._deliver = deliver
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self.connected = threading.Event()
        #: How many times a subscription was confirmed (1 + reconnections).
        self.subscriptions = 0
        self._thread = threading.Thread(
            target=self._run, name=f"scout-auth-events-{origin[:8]}", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = _MIN_BACKOFF
        while not self._stop.is_set():
            subscriptions = self.subscriptions
            pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                self._listen(pubsub)
            except Exception as exc:  # the feed must outlive any failure: reconnect
                if self.connected.is_set():
                    logger.warning("key events feed lost (%s); caches fall back to TTL", exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    pubsub.close()
            if self.subscriptions != subscriptions:  # it was up: retry at once
                backoff = _MIN_BACKOFF
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self._max_backoff)

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        last_ping = time.monotonic()
        pong_due: float | None = None
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=self.POLL)
            now = time.monotonic()
            if message is not None:
                kind = message["type"]
                if kind == "subscribe":
                    self.subscriptions += 1
                    self.connected.set()
                    self._emit(FLUSH)
                elif kind == "message":
                    self._on_message(message["data"])
                elif kind == "pong":
                    pong_due = None
            if pong_due is not None and now > pong_due:
                raise redis.ConnectionError("no answer to a ping on the events connection")
            if pong_due is None and now - last_ping >= self._ping_interval:
                pubsub.ping()
                last_ping = now
                pong_due = now + max(self._ping_interval, 1.0)

    def _on_message(self, data: bytes | str) -> None:
        try:
            origin, events = decode_event_payload(data)
        except ValueError:
            logger.warning("ignored a malformed message on the key events channel")
            return
        if origin == self._origin:
            return
        for event in events:
            self._emit(event)

    def _emit(self, event: KeyEvent) -> None:
        try:
            self._deliver(event)
        except Exception:  # a broken subscriber must not stop revocations for the others
            logger.exception("key event subscriber failed")

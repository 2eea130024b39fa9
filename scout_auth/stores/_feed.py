"""The change feed shared by the networked stores: payloads and the listener thread.

Theory of operation
-------------------
A networked store announces each committed write on a channel of its
server (Redis ``PUBLISH``, PostgreSQL ``NOTIFY``) as one compact JSON
payload: the writing store's *origin* id and its events. One
:class:`ChangeFeed` thread per store subscribes and hands the events
written by *other* stores to the store's subscribers, which invalidate
their caches; its own echo is skipped (the writer already told its
subscribers, synchronously). A thread serves sync and async verifiers
alike and never touches an event loop (the cache is thread-safe).

Both channels are fire-and-forget: whatever is announced while the thread
is not subscribed is lost. So every subscription — the first one and each
one after a reconnect — is followed by a local :data:`FLUSH`: caches drop
everything they may have missed. While the feed is down caches fall back
to their TTL. The thread reconnects by itself with capped exponential
back-off (reset once a subscription succeeded). What is specific to a
server — connecting, subscribing, waiting for a message, noticing a
silently dead connection — is a subclass's :meth:`ChangeFeed._session`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence

from .._core.store import KeyEvent

__all__ = ["FLUSH", "ChangeFeed", "decode_event_payload", "encode_event_payload"]

logger = logging.getLogger("scout_auth")

#: Delivered locally after every (re)subscription: events may have been missed.
FLUSH = KeyEvent("flush", "*")

_MIN_BACKOFF = 0.05


def encode_event_payload(origin: str, events: Sequence[KeyEvent]) -> str:
    """The channel message for ``events`` written by the store ``origin`` (compact JSON)."""
    return json.dumps(
        {"origin": origin, "events": [[e.action, e.org_id, e.key_id] for e in events]},
        separators=(",", ":"),
    )


def decode_event_payload(data: bytes | str) -> tuple[str, list[KeyEvent]]:
    """``(origin, events)`` from a channel message; ``ValueError`` if malformed."""
    try:
        message = json.loads(data)
        events = [
            KeyEvent(str(action), str(org_id), None if key_id is None else str(key_id))
            for action, org_id, key_id in message["events"]
        ]
        return str(message["origin"]), events
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError("malformed event message") from exc


class ChangeFeed:
    """Deliver remote KeyEvents to ``deliver`` on a daemon thread, reconnecting forever.

    Subclasses implement :meth:`_session`: connect, subscribe, call
    :meth:`_subscribed` once the subscription is in force, pass each message
    to :meth:`_received`, return when :attr:`stopping` — and raise when the
    connection fails (the loop reconnects after a back-off).

    Args:
        origin: This store's id; messages it published itself are skipped.
        deliver: Called on the feed thread for each event.
        max_backoff: Longest wait between reconnection attempts.
    """

    POLL = 0.1  # how long one wait for a message lasts; bounds the stop latency

    def __init__(
        self, origin: str, deliver: Callable[[KeyEvent], None], *, max_backoff: float = 2.0
    ) -> None:
        self._origin = origin
        self._deliver = deliver
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self.connected = threading.Event()
        #: How many times a subscription was confirmed (1 + reconnections).
        self.subscriptions = 0
        self._thread = threading.Thread(
            target=self._run, name=f"scout-auth-events-{origin[:8]}", daemon=True
        )

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (sessions return promptly then)."""
        return self._stop.is_set()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _session(self) -> None:
        """One connection's life: subscribe, then receive until stopped or broken."""
        raise NotImplementedError

    def _subscribed(self) -> None:
        self.subscriptions += 1
        self.connected.set()
        self._emit(FLUSH)

    def _received(self, data: bytes | str) -> None:
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

    def _run(self) -> None:
        backoff = _MIN_BACKOFF
        while not self._stop.is_set():
            subscriptions = self.subscriptions
            try:
                self._session()
            except Exception as exc:  # the feed must outlive any failure: reconnect
                if self.connected.is_set():
                    logger.warning("key events feed lost (%s); caches fall back to TTL", exc)
            finally:
                self.connected.clear()
            if self.subscriptions != subscriptions:  # it was up: retry at once
                backoff = _MIN_BACKOFF
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self._max_backoff)

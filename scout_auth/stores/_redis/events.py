"""The Redis change feed: pub/sub messages on ``<prefix>:events`` become KeyEvents.

Every write script ``PUBLISH``\\ es its events on ``<prefix>:events`` (see
:mod:`.ops`). The reconnect loop, the flush after every
subscription confirmation and the delivery rules are the shared
:class:`~._feed.ChangeFeed`'s; this module adds the Redis session: subscribe
with the sync client, wait for messages, and ping the server so that a
silently dead connection is noticed too.

On a Redis Cluster the feed subscribes on the primary of the channel's slot
(``PUBLISH`` reaches every node). When that node fails, the client's slot
map still names it, and only commands refresh the map: a service whose
requests run on the asyncio client would retry the dead node forever. So
after a failed session the listener reads the slot map again before it
subscribes, and finds the promoted replica.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import redis

from ..._core.store import KeyEvent
from .._feed import FLUSH, ChangeFeed
from .connection import SyncClient

__all__ = ["FLUSH", "EventListener"]


class EventListener(ChangeFeed):
    """Deliver remote KeyEvents from ``channel`` to ``deliver``, on a daemon thread.

    Args:
        client: A sync client; the listener takes one connection of its pool
            (of a cluster client: a connection to the primary of the
            channel's slot; Redis Cluster forwards ``PUBLISH`` to every node).
        channel: The events channel.
        origin: This store's id; messages it published itself are skipped
            (the store already told its subscribers).
        deliver: Called on the listener thread for each event.
        ping_interval: Seconds between liveness pings.
        max_backoff: Longest wait between reconnection attempts.
    """

    def __init__(
        self,
        client: SyncClient,
        channel: str,
        origin: str,
        deliver: Callable[[KeyEvent], None],
        *,
        ping_interval: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        super().__init__(origin, deliver, max_backoff=max_backoff)
        self._client = client
        self._channel = channel
        self._ping_interval = ping_interval
        self._stale_slots = False

    def _session(self) -> None:
        if self._stale_slots:
            self._refresh_slot_map()
            self._stale_slots = False
        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel)
            self._listen(pubsub)
        except Exception:
            self._stale_slots = True  # the channel's node may be gone (a failover)
            raise
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()

    def _refresh_slot_map(self) -> None:
        """A cluster client reads its slot map again (a plain client has none)."""
        nodes = getattr(self._client, "nodes_manager", None)  # redis.cluster.RedisCluster's
        if nodes is not None:
            nodes.initialize()

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        last_ping = time.monotonic()
        pong_due: float | None = None
        while not self.stopping:
            message = pubsub.get_message(timeout=self.POLL)
            now = time.monotonic()
            if message is not None:
                kind = message["type"]
                if kind == "subscribe":
                    self._subscribed()
                elif kind == "message":
                    self._received(message["data"])
                elif kind == "pong":
                    pong_due = None
            if pong_due is not None and now > pong_due:
                raise redis.ConnectionError("no answer to a ping on the events connection")
            if pong_due is None and now - last_ping >= self._ping_interval:
                pubsub.ping()
                last_ping = now
                pong_due = now + max(self._ping_interval, 1.0)

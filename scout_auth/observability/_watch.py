"""The verifiers an observer was attached to, held weakly, and their summed state."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from .._drivers.observe import State, read_state

__all__ = ["Watched"]


class Watched:
    """Verifiers attached to one observer; :meth:`state` sums what they hold.

    With several verifiers on one observer, queue and buffer figures are
    summed and the feed counts as listening only if every feed listens.
    """

    __slots__ = ("_lock", "_refs")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, verifier: Any) -> None:
        with self._lock:
            self._refs.add(verifier)

    def state(self) -> State | None:
        """The summed state, or ``None`` while no verifier is attached."""
        with self._lock:
            verifiers = list(self._refs)
        states = [read_state(v) for v in verifiers]
        if not states:
            return None

        def total(values: list[int | None]) -> int | None:
            known = [v for v in values if v is not None]
            return sum(known) if known else None

        feeds = [s.feed_listening for s in states if s.feed_listening is not None]
        return State(
            legacy_admitted=sum(s.legacy_admitted for s in states),
            legacy_capacity=sum(s.legacy_capacity for s in states),
            audit_pending=total([s.audit_pending for s in states]),
            audit_dropped=total([s.audit_dropped for s in states]),
            feed_listening=all(feeds) if feeds else None,
            feed_reconnects=total([s.feed_reconnects for s in states]),
        )

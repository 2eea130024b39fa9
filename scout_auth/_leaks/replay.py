"""Replay guards: a report's body digest, remembered for a window.

A scanner's report carries no timestamp or nonce: the same signed body is
the same report, so a replay is refused by its SHA-256 digest. A guard
*claims* a digest (``True`` the first time within the window) and can
*release* it, so a report whose processing failed (the store was down) is
accepted when the scanner retries it. :class:`InMemoryReplayGuard` is one
process's; ``scout_auth.leaks.RedisReplayGuard`` shares the window across a
fleet.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_REPLAY_WINDOW", "InMemoryReplayGuard", "ReplayGuard"]

#: How long a report's digest is remembered (seconds).
DEFAULT_REPLAY_WINDOW = 24 * 3600.0
DEFAULT_MAX_ENTRIES = 100_000


@runtime_checkable
class ReplayGuard(Protocol):
    """Remembers report digests: sync and async methods side by side."""

    def claim(self, digest: bytes) -> bool:
        """``True`` if ``digest`` was not seen within the window (and now is)."""

    def release(self, digest: bytes) -> None:
        """Forget ``digest`` (its report was not processed)."""

    async def aclaim(self, digest: bytes) -> bool:
        """Async :meth:`claim`."""

    async def arelease(self, digest: bytes) -> None:
        """Async :meth:`release`."""


class InMemoryReplayGuard:
    """One process's replay guard: a bounded, time-ordered set of digests.

    Args:
        window: Seconds a digest is remembered.
        max_entries: At most this many digests; past it the oldest go first
            (only signed reports reach a guard, so only the scanner fills it).
        clock: Monotonic time source (tests).
    """

    def __init__(
        self,
        window: float = DEFAULT_REPLAY_WINDOW,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window > 0 or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("window must be > 0 and max_entries >= 1")
        self.window = float(window)
        self.max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryReplayGuard(window={self.window!r}, max_entries={self.max_entries!r})"

    def claim(self, digest: bytes) -> bool:
        """See :class:`ReplayGuard`."""
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if at > now - self.window and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest]
            if digest in self._seen:
                return False
            self._seen[digest] = now
            return True

    def release(self, digest: bytes) -> None:
        """See :class:`ReplayGuard`."""
        with self._lock:
            self._seen.pop(digest, None)

    async def aclaim(self, digest: bytes) -> bool:
        """See :class:`ReplayGuard` (no I/O: a plain call)."""
        return self.claim(digest)

    async def arelease(self, digest: bytes) -> None:
        """See :class:`ReplayGuard`."""
        self.release(digest)

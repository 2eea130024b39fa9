"""Replay protection for signed requests: a cache of recently seen nonces.

Theory of operation
-------------------
A signature is accepted for ``max_age`` seconds (``_sigpolicy``); inside that
window a copied request would verify again. So each ``(keyid, nonce)`` pair is
remembered until the signature would have expired anyway
(:meth:`RequestSignature.replay_ttl <scout_auth._httpsig.RequestSignature.replay_ttl>`),
and a second sighting is a replay (RFC 9421 §7.2.2).

Back ends implement :class:`NonceCache` with a sync and an async method side by
side (the store convention). ``remember`` must be atomic: "was it there?" and
"put it there" in one step (Redis: ``SET key 1 NX EX ttl``), or two parallel
replays could both pass.

:class:`InMemoryNonceCache` is the single-process reference. It is bounded:
expired entries are purged first, and if it is still full it **fails closed**
by raising :class:`~scout_auth.exceptions.StoreUnavailable` (503) rather than
evicting a live entry, because evicting one would reopen the replay window
for that request. Honest clients retry once entries expire.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .exceptions import ReplayDetected, StoreUnavailable

__all__ = ["InMemoryNonceCache", "NonceCache", "acheck_nonce", "check_nonce", "nonce_key"]


def nonce_key(key_id: str, nonce: str) -> str:
    """The cache key for a ``(keyid, nonce)`` pair.

    Nonces are scoped per key, so one client cannot burn another's nonces.
    The pair is length-prefixed (``keyid`` may contain any separator) and
    hashed, giving short fixed-size keys that do not echo client input.
    """
    material = f"{len(key_id)}:{key_id}:{nonce}".encode()
    return "scout-auth:nonce:" + hashlib.sha256(material).hexdigest()


@runtime_checkable
class NonceCache(Protocol):
    """Remembers nonces for a while. Sync and async methods behave the same."""

    def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds.

        Returns:
            ``True`` if ``key`` was not already present (first sighting),
            ``False`` if it was (a replay).

        Raises:
            StoreUnavailable: If the cache cannot answer; callers fail closed.
        """
        ...

    async def aremember(self, key: str, ttl: float) -> bool:
        """Async twin of :meth:`remember`."""
        ...


def check_nonce(cache: NonceCache, key_id: str, nonce: str, ttl: float) -> None:
    """Remember a nonce, or raise if it was already seen.

    Raises:
        ReplayDetected: If ``(key_id, nonce)`` is still remembered.
        StoreUnavailable: If the cache cannot answer.
    """
    if not cache.remember(nonce_key(key_id, nonce), ttl):
        raise ReplayDetected()


async def acheck_nonce(cache: NonceCache, key_id: str, nonce: str, ttl: float) -> None:
    """Async twin of :func:`check_nonce`."""
    if not await cache.aremember(nonce_key(key_id, nonce), ttl):
        raise ReplayDetected()


class InMemoryNonceCache:
    """A thread-safe, bounded, expiring :class:`NonceCache` for one process.

    Args:
        max_entries: Most live nonces kept at once.
        clock: Monotonic seconds; inject a fake one in tests.

    Example::

        cache = InMemoryNonceCache(max_entries=100_000)
        check_nonce(cache, sig.key_id, sig.nonce, sig.replay_ttl(now))
    """

    def __init__(
        self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        # Min-heap of (expiry, key): purging costs O(log n) per expired entry.
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._expiry)

    def _purge(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if expiry.get(key) == when:
                del expiry[key]

    def remember(self, key: str, ttl: float) -> bool:
        """See :meth:`NonceCache.remember`.

        Raises:
            StoreUnavailable: If ``max_entries`` live nonces are held (fail closed).
            ValueError: If ``ttl`` is not positive.
        """
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        with self._lock:
            now = self._clock()
            heap = self._heap
            if heap and heap[0][0] <= now:
                self._purge(now)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._max_entries:
                raise StoreUnavailable("Replay cache is full")
            when = now + ttl
            self._expiry[key] = when
            heapq.heappush(self._heap, (when, key))
            return True

    async def aremember(self, key: str, ttl: float) -> bool:
        """See :meth:`NonceCache.aremember`. Never blocks for long: no I/O."""
        return self.remember(key, ttl)

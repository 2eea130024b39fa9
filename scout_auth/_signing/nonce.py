"""Replay protection for signed requests: a cache of recently seen nonces.

Theory of operation
-------------------
A signature is accepted for ``max_age`` seconds (``policy``); inside that
window a copied request would verify again. So each ``(keyid, nonce)`` pair is
remembered until the signature would have expired anyway
(:meth:`RequestSignature.replay_ttl <scout_auth._signing.signature.RequestSignature.replay_ttl>`),
and a second sighting is a replay (RFC 9421 §7.2.2).

Back ends implement :class:`NonceCache` with a sync and an async method side by
side (the store convention). ``remember`` must be atomic: "was it there?" and
"put it there" in one step (Redis: one Lua script), or two parallel replays
could both pass.

The cache is shared by every key, and a live entry may never simply be
evicted (that would reopen the replay window for its request), so a full
cache can only refuse. Left at that, one key signing fast enough fills it
and every other org's signed requests are refused with it (a denial of
service). Each entry therefore names its ``owner`` (the signing key), and a
cache bounds each owner's live entries: a key over its bound is refused
*alone* with :class:`~scout_auth.exceptions.NonceQuotaExceeded` (429).

:class:`InMemoryNonceCache` is the single-process reference. Expired entries
are purged first; when it is full the key holding the most entries gives way
(see the class), and an unattributed entry meets a **fail-closed**
:class:`~scout_auth.exceptions.StoreUnavailable` (503). Honest clients retry
once entries expire.
"""

from __future__ import annotations

import hashlib
import heapq
import inspect
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..exceptions import NonceQuotaExceeded, ReplayDetected, StoreUnavailable

__all__ = [
    "DEFAULT_MAX_NONCES",
    "DEFAULT_MAX_NONCES_PER_KEY",
    "InMemoryNonceCache",
    "NonceCache",
    "acheck_nonce",
    "check_nonce",
    "nonce_key",
    "takes_owner",
]

#: Live nonces an :class:`InMemoryNonceCache` holds at most, all keys together.
DEFAULT_MAX_NONCES = 100_000
#: Live nonces one key may hold: about 33 signed requests per second
#: sustained over a 300 s freshness window.
DEFAULT_MAX_NONCES_PER_KEY = 10_000


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

    def remember(self, key: str, ttl: float, owner: str | None = None) -> bool:
        """Record ``key`` for ``ttl`` seconds, counted against ``owner``'s quota.

        Args:
            key: The entry (see :func:`nonce_key`).
            ttl: Seconds to keep it (positive).
            owner: The key id that signed the request. A cache bounds the
                live entries of each owner so that one key cannot use up the
                room every other key needs. ``None``: unattributed, only the
                cache's overall bound applies (callers written before owners
                existed).

        Returns:
            ``True`` if ``key`` was not already present (first sighting),
            ``False`` if it was (a replay).

        Raises:
            NonceQuotaExceeded: ``owner`` holds all the entries it may (429).
            StoreUnavailable: If the cache cannot answer; callers fail closed.
        """
        ...

    async def aremember(self, key: str, ttl: float, owner: str | None = None) -> bool:
        """Async twin of :meth:`remember`."""
        ...


def takes_owner(cache: object) -> bool:
    """Whether ``cache.remember`` accepts ``owner`` (caches written before it did not).

    A verifier passes the signing key only to a cache that takes it, so a
    third-party cache of the older two-argument protocol keeps working,
    without per-key bounds.
    """
    try:
        parameters = inspect.signature(cache.remember).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return "owner" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def check_nonce(cache: NonceCache, key_id: str, nonce: str, ttl: float) -> None:
    """Remember a nonce (counted against ``key_id``), or raise if it was already seen.

    Raises:
        ReplayDetected: If ``(key_id, nonce)`` is still remembered.
        NonceQuotaExceeded: If ``key_id`` holds all the nonces it may.
        StoreUnavailable: If the cache cannot answer.
    """
    if not cache.remember(nonce_key(key_id, nonce), ttl, owner=key_id):
        raise ReplayDetected()


async def acheck_nonce(cache: NonceCache, key_id: str, nonce: str, ttl: float) -> None:
    """Async twin of :func:`check_nonce`."""
    if not await cache.aremember(nonce_key(key_id, nonce), ttl, owner=key_id):
        raise ReplayDetected()


class InMemoryNonceCache:
    """A thread-safe, bounded, expiring :class:`NonceCache` for one process.

    Bounds, checked in this order when a new entry arrives:

    1. ``max_per_key`` live entries per owner: the owner is refused with
       :class:`~scout_auth.exceptions.NonceQuotaExceeded` (429, with the
       seconds until its oldest entry expires); nobody else is affected.
    2. ``max_entries`` live entries in all. When the cache is full, the
       key holding the **most** entries gives way: if that is another key
       than the caller's, all its entries are dropped and it is refused
       (429) until the last of them would have expired — dropping them
       reopens no replay window, since none of that key's requests is
       accepted meanwhile, and by then their signatures have expired too.
       If the caller's key holds the most (or as many), the caller is
       refused instead. An unattributed entry (``owner=None``) never
       displaces anyone: it gets :class:`~scout_auth.exceptions.StoreUnavailable`
       (503) from a full cache, the fail-closed answer.

    So a flooding key is refused alone however many keys it floods with:
    to have a key that holds ``n`` entries refused, ``max_entries / n``
    keys must each hold about as many at once (with the defaults, a key
    signing one request per second holds about 300, so some 300 keys
    flooding together). A global bound alone (``max_per_key`` times the
    number of keys) would be no such guarantee: keys are many, and one org
    may create several.

    The defaults (10 000 per key, 100 000 in all) let one key sustain about
    33 signed requests per second over the default 300 s window, ten keys
    at that rate at once, and cost about 32 MB when full (measured with
    tracemalloc: 19 MB of dicts and heaps plus the 130-byte entry keys;
    26 MB before entries had owners). A service with busier keys raises
    both.

    Every operation is O(log n) amortised: heaps of expiries, a count of
    entries per key bucketed by size to find the heaviest key, each entry
    dropped at most once. Memory follows the live entries (the heap is
    compacted when dropped entries would make it outgrow them).

    Args:
        max_entries: Most live nonces kept at once, all keys together.
        max_per_key: Most live nonces one owner may hold.
        clock: Monotonic seconds; inject a fake one in tests.

    Example::

        cache = InMemoryNonceCache(max_entries=100_000, max_per_key=10_000)
        check_nonce(cache, sig.key_id, sig.nonce, sig.replay_ttl(now))
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_NONCES,
        *,
        max_per_key: int = DEFAULT_MAX_NONCES_PER_KEY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_per_key < 1:
            raise ValueError("max_entries and max_per_key must be at least 1")
        self._max_entries = max_entries
        self._max_per_key = max_per_key
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (expiry, owner)
        self._entries: dict[str, tuple[float, str | None]] = {}
        # Min-heap of (expiry, key): purging costs O(log n) per expired entry.
        # Items of dropped entries stay until they expire (or a compaction).
        self._heap: list[tuple[float, str]] = []
        # Per owner, a min-heap of its entries' heap items (the same tuples):
        # its size is the owner's count, its top the time it gets room again.
        # Entries leave in heap order, so each owner's leave from its top.
        self._held: dict[str, list[tuple[float, str]]] = {}
        # Owners by count, to find the heaviest in O(1) amortised.
        self._by_count: dict[int, set[str]] = {}
        self._top = 0
        # Owners whose entries were dropped: refused until then.
        self._barred: dict[str, float] = {}
        self._bar_heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._entries)

    def held(self, owner: str) -> int:
        """Live entries ``owner`` holds now."""
        with self._lock:
            self._purge(self._clock())
            return len(self._held.get(owner, ()))

    def _recount(self, owner: str, before: int, after: int) -> None:
        by_count = self._by_count
        if before:
            bucket = by_count[before]
            bucket.discard(owner)
            if not bucket:
                del by_count[before]
        if after:
            by_count.setdefault(after, set()).add(owner)
            self._top = max(self._top, after)
        while self._top and self._top not in by_count:
            self._top -= 1

    def _purge(self, now: float) -> None:
        heap, entries, held = self._heap, self._entries, self._held
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is None or entry[0] != when:
                continue  # dropped with its owner
            del entries[key]
            owner = entry[1]
            if owner is not None:
                mine = held[owner]
                heapq.heappop(mine)
                self._recount(owner, len(mine) + 1, len(mine))
                if not mine:
                    del held[owner]
        bars = self._bar_heap
        while bars and bars[0][0] <= now:
            until, owner = heapq.heappop(bars)
            if self._barred.get(owner) == until:
                del self._barred[owner]

    def _drop(self, owner: str) -> None:
        # Bar ``owner`` until its last entry would have expired, then drop them.
        mine = self._held.pop(owner)
        until = max(mine)[0]
        self._recount(owner, len(mine), 0)
        entries = self._entries
        for _, key in mine:
            del entries[key]
        self._barred[owner] = until
        heapq.heappush(self._bar_heap, (until, owner))
        if len(self._heap) > 2 * self._max_entries:
            # Dropped entries' heap items would outlive them: rebuild, O(n)
            # once per max_entries dropped (owned items shared with ``_held``).
            heap = [item for items in self._held.values() for item in items]
            heap += [(when, key) for key, (when, o) in entries.items() if o is None]
            heapq.heapify(heap)
            self._heap = heap

    def remember(self, key: str, ttl: float, owner: str | None = None) -> bool:
        """See :meth:`NonceCache.remember`.

        Raises:
            NonceQuotaExceeded: ``owner`` holds ``max_per_key`` live nonces,
                or the most of a full cache, or gave way to a caller (429).
            StoreUnavailable: A full cache and no ``owner`` (fail closed).
            ValueError: If ``ttl`` is not positive.
        """
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        with self._lock:
            now = self._clock()
            if (self._heap and self._heap[0][0] <= now) or (
                self._bar_heap and self._bar_heap[0][0] <= now
            ):
                self._purge(now)
            # A replay is answered as one whatever the bounds: it spends nothing.
            if key in self._entries:
                return False
            if owner is None:
                if len(self._entries) >= self._max_entries:
                    raise StoreUnavailable("Replay cache is full")
                mine = None
            else:
                mine = self._admit(owner, now)
            item = (now + ttl, key)
            self._entries[key] = (item[0], owner)
            heapq.heappush(self._heap, item)
            if owner is not None:
                if mine is None:
                    mine = self._held[owner] = []
                heapq.heappush(mine, item)
                self._recount(owner, len(mine) - 1, len(mine))
            return True

    def _admit(self, owner: str, now: float) -> list[tuple[float, str]] | None:
        """``owner``'s expiries if it may add one (making room if need be), else raise."""
        barred = self._barred.get(owner)
        if barred is not None:
            raise _quota(barred - now)
        mine = self._held.get(owner)
        count = 0 if mine is None else len(mine)
        if mine is not None and count >= self._max_per_key:
            raise _quota(mine[0][0] - now)
        if len(self._entries) >= self._max_entries:
            if self._top <= count:
                if mine is None:  # full of unattributed entries: nobody to blame
                    raise StoreUnavailable("Replay cache is full")
                # Nobody holds more than this key: it is the one to wait.
                raise _quota(mine[0][0] - now)
            self._drop(next(iter(self._by_count[self._top])))
        return mine

    async def aremember(self, key: str, ttl: float, owner: str | None = None) -> bool:
        """See :meth:`NonceCache.aremember`. Never blocks for long: no I/O."""
        return self.remember(key, ttl, owner)


def _quota(seconds: float) -> NonceQuotaExceeded:
    return NonceQuotaExceeded(
        "This key has too many signed requests in flight; retry later",
        retry_after=max(1, math.ceil(seconds)),
    )

"""What a flood of wrong legacy secrets may cost: bounded, and mostly nothing.

Theory of operation
-------------------
A legacy secret is checked with argon2id, which is slow and memory-hard on
purpose (argon2-cffi's defaults: 64 MiB, three passes). Without a bound,
anyone who knows an org id could send distinct wrong secrets, each one
costing a worker thread and 64 MiB, and starve the application itself of
threads and memory. :class:`LegacyGuard` holds the two bounds the drivers
apply around :class:`~scout_auth._core.flow.CheckLegacySecret`:

* **Admission.** At most ``concurrency`` checks run at once and ``queue``
  more wait; beyond that :meth:`LegacyGuard.admitted` refuses at once with
  :class:`~scout_auth.exceptions.LegacyBusy` (503 + ``Retry-After``) rather
  than queue without end. The guard only counts; each driver waits in its
  own way (a semaphore for threads, an anyio ``CapacityLimiter`` of its own
  for tasks, never the default one that sync views run in).
* **Negative cache.** A secret found wrong is remembered for ``ttl``
  seconds (at most ``max_entries``, oldest evicted first), so repeating it
  costs one keyed hash instead of an argon2 run. The entry is a keyed
  BLAKE2b fingerprint (random per-process key) of the org id, the *stored
  hash* and the secret — never the secret in clear — so it only ever says
  "this secret does not match that hash", which stays true: a correct
  secret can never be refused by it, and an org whose record changed (a new
  secret imported, even by another process whose event has not arrived) no
  longer matches any entry. Legacy events still drop the org's entries
  (:meth:`forget`), so their memory goes at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from ..exceptions import LegacyBusy
from .flow import CheckLegacySecret

__all__ = [
    "DEFAULT_LEGACY_CONCURRENCY",
    "DEFAULT_LEGACY_NEGATIVE_SIZE",
    "DEFAULT_LEGACY_NEGATIVE_TTL",
    "DEFAULT_LEGACY_QUEUE",
    "LegacyGuard",
]

#: argon2 checks running at once (per verifier): 2 cores on the reference box.
DEFAULT_LEGACY_CONCURRENCY = 2
#: argon2 checks waiting for a slot before further ones are refused (503).
DEFAULT_LEGACY_QUEUE = 16
#: Seconds a wrong legacy secret is answered without argon2.
DEFAULT_LEGACY_NEGATIVE_TTL = 60.0
#: Most wrong legacy secrets remembered.
DEFAULT_LEGACY_NEGATIVE_SIZE = 10_000


def _count(name: str, value: object, minimum: int) -> int:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}")
    return value


class LegacyGuard:
    """Admission counting and the negative cache of one verifier's argon2 checks.

    Args:
        concurrency: Checks that may run at once (``>= 1``).
        queue: Checks that may wait for one of those (``>= 0``).
        ttl: Seconds a wrong secret is remembered (``0`` disables the cache).
        max_entries: Most wrong secrets remembered (``0`` disables the cache).
    """

    def __init__(self, *, concurrency: int, queue: int, ttl: float, max_entries: int) -> None:
        self.concurrency = _count("legacy_concurrency", concurrency, 1)
        self.queue = _count("legacy_queue", queue, 0)
        self.max_entries = _count("legacy_negative_size", max_entries, 0)
        if not ttl >= 0:  # also refuses NaN
            raise ValueError("legacy_negative_ttl must be >= 0")
        self.ttl = float(ttl)
        self._lock = threading.Lock()
        self._admitted = 0
        self._keyed = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=16)
        self._wrong: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._by_org: dict[str, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self._wrong)

    def __repr__(self) -> str:
        return (
            f"LegacyGuard(concurrency={self.concurrency}, queue={self.queue}, "
            f"admitted={self._admitted}, remembered={len(self._wrong)})"
        )

    @property
    def admitted_count(self) -> int:
        """Checks running or waiting right now."""
        return self._admitted

    # -- admission ----------------------------------------------------------------

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Count one check (running or waiting) for the ``with`` body.

        Raises:
            LegacyBusy: ``concurrency + queue`` checks are already admitted.
        """
        with self._lock:
            if self._admitted >= self.concurrency + self.queue:
                raise LegacyBusy()
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1

    # -- the negative cache -------------------------------------------------------

    def fingerprint(self, need: CheckLegacySecret) -> bytes:
        """A keyed digest of (org id, stored hash, secret); never the secret itself."""
        h = self._keyed.copy()
        for part in (need.record.org_id, need.record.secret_hash, need.secret):
            data = part.encode("utf-8", "surrogatepass")
            # Length-prefixed: no choice of parts can collide with another.
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
        return h.digest()

    def known_wrong(self, fp: bytes, now: float) -> bool:
        """Whether the secret behind ``fp`` was found wrong within the TTL."""
        entry = self._wrong.get(fp)
        if entry is None:
            return False
        if now < entry[1]:
            return True
        with self._lock:
            self._drop(fp)
        return False

    def checked(self, fp: bytes, org_id: str, matched: bool, now: float) -> bool:
        """Remember a mismatch for ``fp`` (an argon2 answer); returns ``matched``."""
        if matched or self.ttl <= 0 or self.max_entries <= 0:
            return matched
        with self._lock:
            self._drop(fp)
            self._wrong[fp] = (org_id, now + self.ttl)
            self._by_org.setdefault(org_id, set()).add(fp)
            while len(self._wrong) > self.max_entries:
                self._drop(next(iter(self._wrong)))
        return matched

    def forget(self, org_id: str) -> None:
        """Drop every remembered wrong secret of ``org_id`` (its legacy record changed)."""
        with self._lock:
            for fp in self._by_org.pop(org_id, ()):
                self._wrong.pop(fp, None)

    def clear(self) -> None:
        """Drop every remembered wrong secret."""
        with self._lock:
            self._wrong.clear()
            self._by_org.clear()

    def _drop(self, fp: bytes) -> None:
        # Caller holds the lock.
        entry = self._wrong.pop(fp, None)
        if entry is None:
            return
        fps = self._by_org.get(entry[0])
        if fps is not None:
            fps.discard(fp)
            if not fps:
                del self._by_org[entry[0]]

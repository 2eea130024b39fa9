"""Per-org rate limit of key creation: a token bucket per org, bounded in memory."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

from .http import ManageProblem

__all__ = ["CreateLimiter"]

#: Orgs remembered at once; the least recently seen is forgotten first (a
#: forgotten org starts with a full bucket, which only ever allows more).
MAX_TRACKED_ORGS = 10_000


class CreateLimiter:
    """At most ``burst`` creations per org at once, refilled at ``per_minute``.

    Per process: a fleet of ``n`` instances allows up to ``n`` times as
    much. It bounds a runaway script or a stolen admin session, not a
    determined attacker with many orgs (each org has its own bucket).
    """

    def __init__(self, per_minute: float = 20.0, burst: int = 20) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be > 0 and burst >= 1")
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, org_id: str, now: float) -> None:
        """Spend one creation of ``org_id``, or raise 429 with ``Retry-After``."""
        with self._lock:
            tokens, last = self._buckets.pop(org_id, (self._burst, now))
            tokens = min(self._burst, tokens + max(0.0, now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[org_id] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self._rate))
                raise ManageProblem(
                    429,
                    "rate_limited",
                    "Too many keys created for this organization; try again later.",
                    headers=[("retry-after", str(wait))],
                )
            self._buckets[org_id] = (tokens - 1.0, now)
            while len(self._buckets) > MAX_TRACKED_ORGS:
                self._buckets.popitem(last=False)

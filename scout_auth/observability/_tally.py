"""Request counts kept per thread, so the request path adds without a lock.

Each thread that reports gets a :class:`Shard` of its own (made once, under
the lock); only that thread ever writes to it, so ``row[i] += 1`` loses
nothing however the threads interleave. The collector folds the shards
when it is asked (:meth:`Tally.totals`), copying each dict and row first:
a scrape may see a count a request later than its sum, never a torn value.

Shards are found by :func:`threading.get_ident`. A thread that ends leaves
its shard, and its counts, to the next thread given the same ident (the
ids of ended threads are reused), so the number of shards follows the
number of threads alive at once, not the number ever started.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .._drivers.observe import Label

__all__ = ["Shard", "Tally"]


class Shard:
    """One thread's counts: a row per :class:`Label`, and cache look-ups."""

    __slots__ = ("lookups", "rows", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        #: label -> [count per bucket..., count above the last bound, sum of seconds]
        self.rows: dict[Label, list[float]] = {}
        self.lookups = [0, 0]  # hits, misses (the verifier's own look-ups)

    def row(self, label: Label) -> list[float]:
        """The row of ``label``, made on its first request in this thread."""
        row = self.rows.get(label)
        if row is None:
            row = self.rows[label] = [0] * self.width
        return row


class Tally:
    """Per-label request counts, a latency histogram of each, and cache look-ups.

    ``bounds`` are the histogram's upper bounds (increasing); an observer
    without a histogram of its own passes ``()`` and keeps only counts.
    """

    __slots__ = ("bounds", "lock", "shards")

    def __init__(self, bounds: Sequence[float] = ()) -> None:
        self.bounds = tuple(bounds)
        self.lock = threading.Lock()
        #: thread ident -> its shard; read by the request path without the lock.
        self.shards: dict[int, Shard] = {}

    def shard(self) -> Shard:
        """The calling thread's shard (made on its first request)."""
        ident = threading.get_ident()
        shard = self.shards.get(ident)
        if shard is None:
            with self.lock:
                shard = self.shards.setdefault(ident, Shard(len(self.bounds) + 2))
        return shard

    def totals(self) -> tuple[dict[Label, list[float]], tuple[int, int]]:
        """Every label's row summed over the threads, and (hits, misses)."""
        with self.lock:
            shards = list(self.shards.values())
        rows: dict[Label, list[float]] = {}
        hits = misses = 0
        for shard in shards:
            for label, row in dict(shard.rows).items():
                total = rows.get(label)
                copied = list(row)
                if total is None:
                    rows[label] = copied
                else:
                    rows[label] = [a + b for a, b in zip(total, copied, strict=True)]
            h, m = shard.lookups
            hits += h
            misses += m
        return rows, (hits, misses)

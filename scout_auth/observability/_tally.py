"""Request counts kept per thread, so the request path adds without a lock.

Each thread that reports gets a :class:`Shard` of its own (made once, under
the lock); only that thread ever writes to it, so ``row[i] += 1`` loses
nothing however the threads interleave. The collector folds the shards
when it is asked (:meth:`Tally.totals`), copying each dict and row first:
a scrape may see a count a request later than its sum, never a torn value.

Shards are found by :func:`threading.get_ident`. A thread that ends leaves
its shard, and its counts, to the next thread given the same ident (the
ids of ended threads are usually reused). Nothing guarantees that reuse
(a thread-per-request server could go on minting new idents), so once
:data:`MAX_SHARDS` shards exist, making another first folds the shards of
ended threads into one retired shard: memory follows the number of threads
alive at once, never the number ever started.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from .._core.records import OrgContext
from .._drivers.observe import Label, Observer
from .._drivers.observe import label as label_of
from ._watch import Watched

__all__ = ["MAX_SHARDS", "CountingObserver", "Shard", "Tally"]

#: Shards kept before those of ended threads are folded (see the module doc).
MAX_SHARDS = 64


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

    __slots__ = ("bounds", "lock", "retired", "shards")

    def __init__(self, bounds: Sequence[float] = ()) -> None:
        self.bounds = tuple(bounds)
        self.lock = threading.Lock()
        #: thread ident -> its shard; read by the request path without the lock.
        self.shards: dict[int, Shard] = {}
        #: the counts of ended threads' shards, folded (written under the lock).
        self.retired = Shard(len(self.bounds) + 2)

    def shard(self) -> Shard:
        """The calling thread's shard (made on its first request)."""
        ident = threading.get_ident()
        shard = self.shards.get(ident)
        if shard is None:
            with self.lock:
                shard = self.shards.get(ident)
                if shard is None:
                    if len(self.shards) >= MAX_SHARDS:
                        self._fold_ended()
                    shard = self.shards[ident] = Shard(len(self.bounds) + 2)
        return shard

    def _fold_ended(self) -> None:
        # Under the lock. The request path finds its shard by ident on every
        # call, so a thread unknown to ``threading`` (a foreign thread never
        # registered) whose shard is folded starts a new one: at most a count
        # in flight is lost, never a torn value.
        alive = {thread.ident for thread in threading.enumerate()}
        for ident in [ident for ident in self.shards if ident not in alive]:
            ended = self.shards.pop(ident)
            for label, row in dict(ended.rows).items():
                total = self.retired.row(label)
                for i, value in enumerate(row):
                    total[i] += value
            self.retired.lookups[0] += ended.lookups[0]
            self.retired.lookups[1] += ended.lookups[1]

    def totals(self) -> tuple[dict[Label, list[float]], tuple[int, int]]:
        """Every label's row summed over the threads, and (hits, misses)."""
        with self.lock:
            shards = list(self.shards.values())
            retired = Shard(self.retired.width)
            retired.rows = {label: list(row) for label, row in self.retired.rows.items()}
            retired.lookups = list(self.retired.lookups)
        shards.append(retired)
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


class CountingObserver(Observer):
    """What the metrics observers share: a :class:`Tally`, the verifiers they read.

    A subclass overrides :meth:`~.Observer.observe` (the request path, kept
    lock-free against ``_shards``); a request reported the long way
    (:meth:`request`) is given its label and goes there too.
    """

    __slots__ = ("_shards", "_tally", "_watched")

    def __init__(self, bounds: Sequence[float] = ()) -> None:
        # Per-thread counts, added to without a lock (see the module doc).
        self._tally = Tally(bounds)
        self._shards = self._tally.shards
        self._watched = Watched()

    def attach(self, verifier: Any) -> None:
        self._watched.add(verifier)

    def request(
        self,
        kind: str,
        outcome: str,
        status: int,
        seconds: float,
        context: OrgContext | None,
    ) -> None:
        self.observe(label_of(kind, outcome, status), seconds, context)

    def cache(self, hit: bool) -> None:
        self._tally.shard().lookups[0 if hit else 1] += 1

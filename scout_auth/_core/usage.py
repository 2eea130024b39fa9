"""Usage bookkeeping: counted in memory on the request path, written in the background.

Theory of operation
-------------------
Every successful verification calls :meth:`UsageRecorder.note`: one
``deque.append`` (atomic, no lock) and two comparisons — no I/O. The log is
folded into per-key tallies under a lock every few thousand uses and at
each flush, so memory stays bounded and no use is lost between threads.
At most once per ``interval`` a note answers "due", and the verifier then flushes from a
background thread (sync) or task (async): :meth:`UsageRecorder.drain` hands
over everything counted so far and the store adds it with an atomic
increment and a ``max(last_used_at)`` (``record_usage`` /
``record_legacy_usage``), so several instances flushing the same key merge
exactly. A key is therefore written at most once per interval per instance.
A failed flush puts its counts back for the next one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from .records import CredentialKind, OrgContext

__all__ = ["DEFAULT_USAGE_INTERVAL", "UsageRecorder", "UsageWrite"]

#: Seconds between two usage flushes of one verifier.
DEFAULT_USAGE_INTERVAL = 60.0

# Uses logged before they are folded into tallies (bounds the log's memory).
_FOLD_AT = 4096


@dataclass(frozen=True, slots=True)
class UsageWrite:
    """One store write: ``method`` (sync name) ``(ident, uses, last_used_at)``."""

    method: str
    ident: str
    uses: int
    last_used_at: datetime
    context: OrgContext

    @property
    def args(self) -> tuple[str, int, datetime]:
        """The store method's arguments."""
        return self.ident, self.uses, self.last_used_at


class _Tally:
    __slots__ = ("context", "last", "uses")

    def __init__(self, context: OrgContext, uses: int, last: float) -> None:
        self.context, self.uses, self.last = context, uses, last


class UsageRecorder:
    """Uses per key (and per org for legacy), since the last flush."""

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("usage_interval must be > 0 (or None to disable usage tracking)")
        self.interval = interval
        self._lock = threading.Lock()
        self._log: deque[tuple[OrgContext, float]] = deque()
        self._pending: dict[str, _Tally] = {}
        self._due = 0.0

    def note(self, context: OrgContext, now: float) -> bool:
        """Count one use; ``True`` when a flush is due (the caller schedules it)."""
        log = self._log
        log.append((context, now))
        if now < self._due and len(log) < _FOLD_AT:
            return False
        with self._lock:
            self._fold()
            if now < self._due:
                return False
            first = self._due == 0.0  # the first use: the first flush one interval later
            self._due = now + self.interval
            return not first

    def _fold(self) -> None:
        # Under the lock. popleft() is atomic: uses appended meanwhile stay
        # in the log for the next fold.
        log, pending = self._log, self._pending
        while log:
            context, now = log.popleft()
            tally = pending.get(context.key_id)
            if tally is None:
                pending[context.key_id] = _Tally(context, 1, now)
            else:
                tally.uses += 1
                if now > tally.last:
                    tally.last = now

    def pending(self) -> int:
        """Keys with uses not yet written."""
        with self._lock:
            self._fold()
            return len(self._pending)

    def drain(self) -> list[UsageWrite]:
        """Everything counted so far, as store writes; the counts start again at zero."""
        with self._lock:
            self._fold()
            pending, self._pending = self._pending, {}
        return list(self._writes(pending))

    def restore(self, writes: list[UsageWrite]) -> None:
        """Put back the counts of writes that failed (merged with newer ones)."""
        with self._lock:
            for write in writes:
                at = write.last_used_at.timestamp()
                tally = self._pending.get(write.context.key_id)
                if tally is None:
                    self._pending[write.context.key_id] = _Tally(write.context, write.uses, at)
                else:
                    tally.uses += write.uses
                    tally.last = max(tally.last, at)

    @staticmethod
    def _writes(pending: dict[str, _Tally]) -> Iterator[UsageWrite]:
        for t in pending.values():
            at = datetime.fromtimestamp(t.last, UTC)
            if t.context.kind is CredentialKind.LEGACY:
                yield UsageWrite("record_legacy_usage", t.context.org_id, t.uses, at, t.context)
            else:
                yield UsageWrite("record_usage", t.context.key_id, t.uses, at, t.context)

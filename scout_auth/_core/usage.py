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

The client address of a key's latest use rides along in the same write
(``last_used_address``): the note keeps the raw string the adapter resolved
(no parsing on the request path), the drain normalises it
(:func:`normalise_address`), and the store keeps the address that goes with
the ``max(last_used_at)`` it keeps, so instances merge the same way.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .records import CredentialKind, OrgContext

__all__ = ["DEFAULT_USAGE_INTERVAL", "UsageRecorder", "UsageWrite", "normalise_address"]

#: Seconds between two usage flushes of one verifier.
DEFAULT_USAGE_INTERVAL = 60.0

# Uses logged before they are folded into tallies (bounds the log's memory).
_FOLD_AT = 4096

# Longer is no IP address (the longest, IPv6 with a zone, is far shorter):
# not parsed at all, so an odd client string costs nothing.
_MAX_ADDRESS = 64


def normalise_address(value: str | None) -> str | None:
    """An IP address in its canonical text, or ``None`` for anything else.

    IPv6 is compressed and lower-case, an IPv4-mapped IPv6 address
    (``::ffff:192.0.2.7``) becomes its IPv4 address, a zone
    (``fe80::1%eth0``) is dropped (it means nothing off that host). A
    missing, over-long or unparseable value (``"testclient"``, a Unix
    socket path) is ``None``: never an error, never stored raw.
    """
    if not value or len(value) > _MAX_ADDRESS:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Address(int(address)))
    return str(address)


@dataclass(frozen=True, slots=True)
class UsageWrite:
    """One store write: ``method`` (sync name) ``(ident, uses, last_used_at[, address])``.

    ``address`` is the normalised client address of the latest use
    (``None``: not known); only ``record_usage`` takes it (legacy usage is
    per org, no key record keeps an address).
    """

    method: str
    ident: str
    uses: int
    last_used_at: datetime
    context: OrgContext
    address: str | None = None

    @property
    def args(self) -> tuple[Any, ...]:
        """The store method's arguments."""
        if self.method == "record_usage":
            return self.ident, self.uses, self.last_used_at, self.address
        return self.ident, self.uses, self.last_used_at


class _Tally:
    __slots__ = ("address", "context", "last", "uses")

    def __init__(self, context: OrgContext, uses: int, last: float, address: str | None) -> None:
        self.context, self.uses, self.last, self.address = context, uses, last, address


class UsageRecorder:
    """Uses per key (and per org for legacy), since the last flush."""

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("usage_interval must be > 0 (or None to disable usage tracking)")
        self.interval = interval
        self._lock = threading.Lock()
        self._log: deque[tuple[OrgContext, float, str | None]] = deque()
        self._pending: dict[str, _Tally] = {}
        self._due = 0.0

    def note(self, context: OrgContext, now: float, address: str | None = None) -> bool:
        """Count one use from ``address`` (raw, as resolved); ``True`` when a flush is due."""
        log = self._log
        log.append((context, now, address))
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
            context, now, address = log.popleft()
            tally = pending.get(context.key_id)
            if tally is None:
                pending[context.key_id] = _Tally(context, 1, now, address)
            else:
                tally.uses += 1
                if now >= tally.last:  # the address goes with the latest use
                    tally.last, tally.address = now, address

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
                    self._pending[write.context.key_id] = _Tally(
                        write.context, write.uses, at, write.address
                    )
                else:
                    tally.uses += write.uses
                    if at > tally.last:
                        tally.last, tally.address = at, write.address

    @staticmethod
    def _writes(pending: dict[str, _Tally]) -> Iterator[UsageWrite]:
        for t in pending.values():
            at = datetime.fromtimestamp(t.last, UTC)
            if t.context.kind is CredentialKind.LEGACY:
                yield UsageWrite("record_legacy_usage", t.context.org_id, t.uses, at, t.context)
            else:
                address = normalise_address(t.address)
                yield UsageWrite("record_usage", t.context.key_id, t.uses, at, t.context, address)

"""The audit buffer: the request path enqueues, a daemon thread writes.

Theory of operation
-------------------
:meth:`AuditBuffer.record` only appends to a bounded deque under a lock
held for a few instructions: it never waits for I/O and never raises, so a
slow or dead sink can never slow down or fail a request. A daemon thread
wakes every ``flush_interval`` (sooner when a batch is ready or a flush is
asked for), takes up to ``batch_size`` events and hands them to the sink's
``write``.

A batch the sink refuses is kept aside and retried first on the next round
(same batch, same order, so sinks that deduplicate retries by batch see the
same one); new events queue behind it meanwhile. A batch refused
``isolate_after`` rounds in a row is written one event at a time, to tell a
sink that is down from an event it will never take (a sink that lies about
one event must not stop the whole trail): events refused alone while the
sink accepts others — another of the batch, or the next queued event as a
probe — are dropped, counted in :attr:`dropped` and :attr:`refused`, and
logged by type only. If the first two events and the probe all fail, the
sink is down and nothing is dropped (at most three calls, not one per
event); a lone refused event with nothing queued behind it waits for one. The stores'
sinks deduplicate by event id, so writing part of a batch again is safe. When the queue is full the
policy decides what is lost — the new event (``drop_newest``, default: what
was already accepted stays) or the oldest queued one (``drop_oldest``:
recent activity wins) — and every lost event is counted in :attr:`dropped`.
The thread logs one warning per burst of drops (the request path logs
nothing: a log handler may block). :meth:`close` writes everything left;
what still cannot be written then is counted as dropped and logged.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from types import TracebackType
from typing import Literal

import anyio.to_thread

from .._audit.events import AuditEvent, AuditSink

__all__ = ["AuditBuffer", "DropPolicy"]

logger = logging.getLogger("scout_auth.audit")

DropPolicy = Literal["drop_newest", "drop_oldest"]
_POLICIES = ("drop_newest", "drop_oldest")


class AuditBuffer:
    """A bounded, non-blocking queue in front of an :class:`~scout_auth.audit.AuditSink`.

    Args:
        sink: Where events go (a store's ``audit_sink()``, a
            :class:`~scout_auth.audit.LoggingAuditSink`…).
        max_events: Most events queued at once (not counting one batch
            being retried).
        flush_interval: Seconds between background writes.
        policy: What a full buffer loses: ``"drop_newest"`` (the event being
            recorded) or ``"drop_oldest"`` (the oldest queued one).
        batch_size: Most events per ``sink.write`` call.
        isolate_after: Failed rounds of one batch before it is written event
            by event to find (and drop) events the sink refuses alone.

    Raises:
        ValueError: A bad size, interval or policy.

    Example:
        >>> from scout_auth.audit import AuditBuffer, LoggingAuditSink
        >>> with AuditBuffer(LoggingAuditSink()) as audit:
        ...     manager = KeyManager(store, audit=audit)  # doctest: +SKIP
        ...     # every recorded event is written when the block exits

    Create it in the process that uses it (after a pre-fork server forked):
    the writer thread starts in the constructor.
    """

    def __init__(
        self,
        sink: AuditSink,
        *,
        max_events: int = 10_000,
        flush_interval: float = 0.5,
        policy: DropPolicy = "drop_newest",
        batch_size: int = 500,
        isolate_after: int = 3,
    ) -> None:
        if max_events < 1 or batch_size < 1 or isolate_after < 1:
            raise ValueError("max_events, batch_size and isolate_after must be at least 1")
        if not flush_interval > 0:
            raise ValueError("flush_interval must be positive")
        if policy not in _POLICIES:
            raise ValueError(f"policy must be one of {_POLICIES}")
        self.sink = sink
        self.max_events = max_events
        self.flush_interval = flush_interval
        self.policy: DropPolicy = policy
        self.batch_size = batch_size
        self.isolate_after = isolate_after
        self._batch_failures = 0  # failed rounds of the batch in _retry
        self._refused = 0
        self._queue: collections.deque[AuditEvent] = collections.deque()
        self._retry: list[AuditEvent] = []
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._dropped = 0
        self._failures = 0
        self._written = 0
        self._requested = 0  # flush tickets handed out ...
        self._served = 0  # ... and the newest one a finished round covered
        self._last_ok = True
        self._closing = False
        self._seen_drops = 0
        self._in_burst = False
        self._lost_at_close = 0
        self._thread = threading.Thread(target=self._loop, name="scout-auth-audit", daemon=True)
        self._thread.start()
        # Interpreter exit without close(): still write what is queued.
        self._atexit = _Closer(self)
        atexit.register(self._atexit)

    def __repr__(self) -> str:
        return (
            f"AuditBuffer(sink={self.sink!r}, pending={self.pending}, dropped={self.dropped},"
            f" policy={self.policy!r})"
        )

    # -- the request path ---------------------------------------------------
    def record(self, event: AuditEvent) -> None:
        """Queue ``event`` for the writer thread. Never blocks on I/O, never raises.

        When the buffer is full (or closed) an event is lost per the policy
        and counted in :attr:`dropped`.
        """
        try:
            with self._lock:
                if self._closing or not isinstance(event, AuditEvent):
                    self._dropped += 1
                    return
                if len(self._queue) >= self.max_events:
                    self._dropped += 1
                    if self.policy == "drop_newest":
                        return
                    self._queue.popleft()
                self._queue.append(event)
                ready = len(self._queue) >= self.batch_size
            if ready:
                self._wake.set()
        except Exception:  # noqa: S110 - the request path must not fail for audit's sake
            pass

    # -- counters -------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Events lost so far: full buffer, recorded after close, unwritable at close."""
        return self._dropped

    @property
    def failures(self) -> int:
        """Failed ``sink.write`` calls so far (each one retried later)."""
        return self._failures

    @property
    def refused(self) -> int:
        """Events dropped because the sink refused them alone while it accepted others."""
        return self._refused

    @property
    def written(self) -> int:
        """Events the sink accepted so far."""
        return self._written

    @property
    def pending(self) -> int:
        """Events queued or waiting for a retry."""
        with self._lock:
            return len(self._queue) + len(self._retry)

    # -- flushing -------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Write everything recorded so far, now; wait for it.

        Args:
            timeout: Seconds to wait at most (``None``: until done).

        Returns:
            ``True`` if everything recorded before the call is written;
            ``False`` if the sink failed (the events stay queued for a
            retry) or the wait timed out. Never raises.
        """
        with self._lock:
            if not self._thread.is_alive():
                return not (self._queue or self._retry)
            self._requested += 1
            ticket = self._requested
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while self._served < ticket:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if not self._thread.is_alive():
                    break
                self._done.wait(remaining)
            return self._last_ok and not self._retry

    def close(self, timeout: float | None = 30.0) -> bool:
        """Write everything queued, stop the thread; later events are dropped.

        Events the sink still refuses on this last attempt are counted in
        :attr:`dropped` and logged. Idempotent.

        Returns:
            ``True`` if nothing was lost at close.
        """
        with self._lock:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
        if not already:
            atexit.unregister(self._atexit)
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            if not self._thread.is_alive():
                return not (self._queue or self._retry or self._lost_at_close)
            # A sink stuck in write(): stop waiting. The batch in its hands
            # may still land; what is queued behind it will not.
            lost = len(self._queue)
            self._queue.clear()
            self._dropped += lost
        logger.error("audit buffer close timed out: %d queued events dropped", lost)
        return False

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` from async code (waits in a worker thread)."""
        return await anyio.to_thread.run_sync(self.flush, timeout)

    async def aclose(self, timeout: float | None = 30.0) -> bool:
        """:meth:`close` from async code (waits in a worker thread)."""
        return await anyio.to_thread.run_sync(self.close, timeout)

    def __enter__(self) -> AuditBuffer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> AuditBuffer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the writer thread ----------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._lock:
                serving, closing = self._requested, self._closing
            ok = self._drain()
            self._report_drops()
            if closing:
                self._give_up_if_failing(ok)
            with self._done:
                self._last_ok = ok
                self._served = serving
                self._done.notify_all()
            if closing:
                return

    def _drain(self) -> bool:
        """Write batches until the queue is empty or the sink fails."""
        while True:
            with self._lock:
                if not self._retry:
                    take = min(self.batch_size, len(self._queue))
                    self._retry = [self._queue.popleft() for _ in range(take)]
                batch = self._retry
            if not batch:
                return True
            try:
                self.sink.write(batch)
            except Exception as exc:
                with self._lock:
                    self._failures += 1
                    self._batch_failures += 1
                    isolate = self._batch_failures >= self.isolate_after
                if isolate and self._isolate(batch):
                    continue  # the sink works: the refused events are gone
                if self._last_ok:  # once per outage, not every round
                    logger.warning(
                        "audit sink %r failed (%s); %d events kept for a retry",
                        self.sink,
                        type(exc).__name__,
                        len(batch),
                        exc_info=True,
                    )
                return False
            with self._lock:
                self._retry = []
                self._batch_failures = 0
                self._written += len(batch)
            if not self._last_ok:
                self._last_ok = True
                logger.info("audit sink %r works again", self.sink)

    def _write_one(self, event: AuditEvent) -> bool:
        try:
            self.sink.write([event])
        except Exception:
            with self._lock:
                self._failures += 1
            return False
        with self._lock:
            self._written += 1
        return True

    def _isolate(self, batch: list[AuditEvent]) -> bool:
        """Write ``batch`` event by event; ``False`` (batch kept) if the sink is down."""
        refused: list[AuditEvent] = []
        works = False
        for event in batch:
            if self._write_one(event):
                works = True
                continue
            refused.append(event)
            if works or (len(refused) < 2 and len(batch) > 1):
                continue  # with a second event of the batch still to ask
            # Nothing taken yet: down, or refusing these? Ask with the next queued one.
            with self._lock:
                probe = self._queue.popleft() if self._queue else None
            if probe is None or not self._write_one(probe):
                if probe is not None:
                    with self._lock:
                        self._queue.appendleft(probe)
                return False  # down (or undecidable): keep the batch, drop nothing
            works = True
        with self._lock:
            self._retry = []
            self._batch_failures = 0
            self._dropped += len(refused)
            self._refused += len(refused)
        if refused:
            # Never the event's contents: they are what the sink could not take.
            kinds = sorted({str(e.action) for e in refused})
            logger.error(
                "audit sink %r refused %d event(s) it accepts others beside (%s); dropped",
                self.sink,
                len(refused),
                ", ".join(kinds),
            )
        return True

    def _give_up_if_failing(self, ok: bool) -> None:
        if ok:
            return
        with self._lock:
            lost = len(self._retry) + len(self._queue)
            self._retry = []
            self._queue.clear()
            self._dropped += lost
            self._lost_at_close += lost
        logger.error("audit buffer closed with %d events the sink refused", lost)

    def _report_drops(self) -> None:
        dropped = self._dropped
        if dropped > self._seen_drops:
            if not self._in_burst:  # one warning per burst, from this thread only
                self._in_burst = True
                logger.warning(
                    "audit buffer full (policy %s): %d events dropped so far",
                    self.policy,
                    dropped,
                )
        else:
            self._in_burst = False  # a round without drops ends the burst
        self._seen_drops = dropped


class _Closer:
    """Closes a buffer at interpreter exit unless it was closed (holds no strong ref)."""

    __slots__ = ("ref",)

    def __init__(self, buffer: AuditBuffer) -> None:
        self.ref = weakref.ref(buffer)

    def __call__(self) -> None:
        buffer = self.ref()
        if buffer is not None:
            buffer.close(timeout=5.0)

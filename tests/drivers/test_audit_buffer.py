"""The audit buffer (``_drivers/audit_buffer.py``): never blocks, drops by policy, counts."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from scout_auth.audit import AuditBuffer, AuditEvent, InMemoryAuditSink


def ev(n: int = 0) -> AuditEvent:
    return AuditEvent("disabled", "org_1", key_id=f"k{n}")


class BlockingSink(InMemoryAuditSink):
    """A sink whose write() waits until released (forever unless told)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, events):
        self.entered.set()
        self.release.wait()
        super().write(events)


class FlakySink(InMemoryAuditSink):
    """Fails the first ``failures`` writes, then works; remembers every batch it saw."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.batches: list[list[str]] = []

    def write(self, events):
        self.batches.append([e.id for e in events])
        if self.failures:
            self.failures -= 1
            raise ConnectionError("sink down")
        super().write(events)


def test_record_then_close_writes_everything():
    sink = InMemoryAuditSink()
    with AuditBuffer(sink, flush_interval=60) as buffer:
        events = [ev(i) for i in range(25)]
        for e in events:
            buffer.record(e)
    assert len(sink) == 25
    assert buffer.written == 25
    assert buffer.dropped == 0
    assert buffer.pending == 0
    assert buffer.close() is True  # idempotent


def test_flush_writes_now_and_waits():
    sink = InMemoryAuditSink()
    buffer = AuditBuffer(sink, flush_interval=60)
    try:
        buffer.record(ev())
        assert buffer.flush(timeout=5) is True
        assert len(sink) == 1
    finally:
        buffer.close()


def test_background_thread_flushes_on_its_own():
    sink = InMemoryAuditSink()
    buffer = AuditBuffer(sink, flush_interval=0.01)
    try:
        buffer.record(ev())
        deadline = time.monotonic() + 5
        while len(sink) == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(sink) == 1
    finally:
        buffer.close()


def test_a_sink_that_blocks_forever_never_blocks_record():
    sink = BlockingSink()
    buffer = AuditBuffer(sink, max_events=100, flush_interval=0.01, batch_size=1)
    try:
        buffer.record(ev(0))
        assert sink.entered.wait(5)  # the writer thread is stuck inside write()
        started = time.perf_counter()
        for i in range(1000):
            buffer.record(ev(i))
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0  # 1000 calls; each one only appends
        assert buffer.dropped == 1000 - 100  # full: drop_newest, counted
        assert buffer.flush(timeout=0.05) is False  # times out, does not raise
    finally:
        sink.release.set()
        assert buffer.close(timeout=5) is True
    assert len(sink) == 101  # the stuck one and the 100 kept


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        pytest.param("drop_newest", ["k0", "k1", "k2"], id="drop-newest-keeps-first"),
        pytest.param("drop_oldest", ["k3", "k4", "k5"], id="drop-oldest-keeps-last"),
    ],
)
def test_a_full_buffer_drops_per_policy_and_counts(policy, kept, caplog):
    sink = BlockingSink()
    buffer = AuditBuffer(sink, max_events=3, flush_interval=0.01, policy=policy, batch_size=10)
    buffer.record(AuditEvent("created", "org_1", key_id="stuck"))
    assert sink.entered.wait(5)
    with caplog.at_level(logging.WARNING, logger="scout_auth.audit"):
        for i in range(6):
            buffer.record(ev(i))
        assert buffer.dropped == 3
        time.sleep(0.1)  # a few writer rounds: still one warning for this burst
        sink.release.set()
        assert buffer.close(timeout=5)
    assert sorted(str(e.key_id) for e in sink.query("org_1", limit=10)) == sorted(["stuck", *kept])
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1
    assert policy in warnings[0].getMessage()


def test_a_failing_sink_is_retried_with_the_same_batch():
    sink = FlakySink(failures=2)
    buffer = AuditBuffer(sink, flush_interval=60)
    try:
        first = [ev(i) for i in range(3)]
        for e in first:
            buffer.record(e)
        assert buffer.flush(timeout=5) is False  # failed: kept for a retry
        assert buffer.failures == 1
        assert buffer.pending == 3
        buffer.record(ev(9))
        assert buffer.flush(timeout=5) is False
        assert buffer.flush(timeout=5) is True
    finally:
        buffer.close()
    assert buffer.failures == 2
    assert buffer.dropped == 0
    ids = [e.id for e in first]
    assert sink.batches[:3] == [ids, ids, ids]  # the same batch, not merged with new events
    assert len(sink) == 4


def test_a_sink_failure_never_kills_the_thread(caplog):
    class Exploding(InMemoryAuditSink):
        calls = 0

        def write(self, events):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("boom")
            super().write(events)

    sink = Exploding()
    with caplog.at_level(logging.WARNING, logger="scout_auth.audit"):
        buffer = AuditBuffer(sink, flush_interval=60)
        buffer.record(ev())
        assert buffer.flush(timeout=5) is False
        assert buffer._thread.is_alive()
        assert buffer.flush(timeout=5) is True
        buffer.close()
    assert len(sink) == 1
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)


def test_close_counts_what_a_dead_sink_refuses(caplog):
    sink = FlakySink(failures=10**6)
    buffer = AuditBuffer(sink, flush_interval=60)
    for i in range(4):
        buffer.record(ev(i))
    with caplog.at_level(logging.ERROR, logger="scout_auth.audit"):
        assert buffer.close(timeout=5) is False
    assert buffer.dropped == 4  # counted and logged, never silent
    assert buffer.pending == 0
    assert any("4 events" in r.getMessage() for r in caplog.records)


def test_after_close_record_drops_and_counts():
    sink = InMemoryAuditSink()
    buffer = AuditBuffer(sink)
    buffer.close()
    buffer.record(ev())
    assert buffer.dropped == 1
    assert len(sink) == 0
    assert buffer.flush() is True  # nothing pending


def test_record_never_raises():
    buffer = AuditBuffer(InMemoryAuditSink())
    try:
        buffer.record("not an event")  # type: ignore[arg-type]
        assert buffer.dropped == 1
    finally:
        buffer.close()


@pytest.mark.anyio
async def test_async_flush_and_close():
    sink = InMemoryAuditSink()
    async with AuditBuffer(sink, flush_interval=60) as buffer:
        buffer.record(ev())
        assert await buffer.aflush(timeout=5) is True
        assert len(sink) == 1
        buffer.record(ev(1))
    assert len(sink) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_events": 0}, id="max-events-zero"),
        pytest.param({"batch_size": 0}, id="batch-size-zero"),
        pytest.param({"flush_interval": 0}, id="interval-zero"),
        pytest.param({"policy": "block"}, id="unknown-policy"),
    ],
)
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        AuditBuffer(InMemoryAuditSink(), **kwargs)


class PickySink(InMemoryAuditSink):
    """Works, except that it refuses every batch holding one of ``poison`` (a lying sink)."""

    def __init__(self, poison: set[str], *, down: bool = False) -> None:
        super().__init__()
        self.poison = poison
        self.down = down
        self.calls = 0

    def write(self, events):
        self.calls += 1
        if self.down or any(e.key_id in self.poison for e in events):
            raise ValueError("refused")
        super().write(events)


@pytest.mark.parametrize(
    ("poison", "batch", "then"),
    [
        pytest.param({"k1"}, 4, 0, id="one-bad-event-in-a-batch"),
        pytest.param({"k0"}, 4, 0, id="the-first-event-is-the-bad-one"),
        pytest.param({"k0", "k1", "k2"}, 3, 1, id="a-whole-batch-bad-next-event-probes"),
        pytest.param({"k0"}, 1, 1, id="a-lone-bad-event-next-event-probes"),
    ],
)
def test_an_event_the_sink_refuses_alone_does_not_stop_the_trail(poison, batch, then, caplog):
    sink = PickySink(poison)
    buffer = AuditBuffer(sink, flush_interval=60, batch_size=batch, isolate_after=2)
    try:
        for i in range(batch + then):
            buffer.record(ev(i))
        with caplog.at_level(logging.ERROR, logger="scout_auth.audit"):
            for _ in range(4):
                if buffer.flush(timeout=5):
                    break
        assert buffer.flush(timeout=5) is True
        for i in range(10, 13):  # the trail goes on
            buffer.record(ev(i))
        assert buffer.flush(timeout=5) is True
    finally:
        buffer.close()
    written = {e.key_id for e in sink.events()} if hasattr(sink, "events") else None
    assert buffer.refused == len(poison)
    assert buffer.dropped == len(poison)
    assert len(sink) == batch + then + 3 - len(poison)
    if written is not None:
        assert not written & poison
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors
    assert all("k0" not in m and "k1" not in m for m in errors)  # kinds only, no contents


def test_a_sink_that_is_down_drops_nothing_and_is_asked_four_times_a_round():
    sink = PickySink(set(), down=True)
    buffer = AuditBuffer(sink, flush_interval=60, batch_size=50, isolate_after=1)
    try:
        for i in range(60):
            buffer.record(ev(i))
        for _ in range(3):
            calls = sink.calls
            assert buffer.flush(timeout=5) is False
            assert sink.calls - calls == 4  # the batch, two of its events, one probe
        assert buffer.dropped == 0
        assert buffer.pending == 60
        sink.down = False
        assert buffer.flush(timeout=5) is True
    finally:
        buffer.close()
    assert len(sink) == 60
    assert buffer.refused == 0


def test_isolate_after_is_validated():
    with pytest.raises(ValueError, match="isolate_after"):
        AuditBuffer(InMemoryAuditSink(), isolate_after=0)

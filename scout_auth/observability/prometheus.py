"""Prometheus metrics through ``prometheus_client``: a collector you register.

Needs ``pip install 'scout-auth[prometheus]'``::

    from prometheus_client import REGISTRY
    from scout_auth.observability.prometheus import PrometheusObserver

    observer = PrometheusObserver()
    REGISTRY.register(observer)
    verifier = AsyncVerifier(store, observer=observer)

The request path makes one call that adds to this thread's own counts (no
lock: :mod:`scout_auth.observability._tally`); the metric families
are built when Prometheus scrapes (:meth:`PrometheusObserver.collect`), and
the queue, buffer and feed gauges are read then too. Labels are bounded:
``kind`` (3 values), ``outcome`` (``ok`` and the library's error codes),
``operation`` (a store method), ``result`` (hit / miss).
"""

from __future__ import annotations

from .._extras import require

require("prometheus_client")

import threading  # noqa: E402 - after the extra check, on purpose
from bisect import bisect_left  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from threading import get_ident  # noqa: E402

from prometheus_client.core import (  # noqa: E402
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector  # noqa: E402

from .._core.records import OrgContext  # noqa: E402
from .._drivers.observe import Label  # noqa: E402
from ._tally import CountingObserver  # noqa: E402

__all__ = ["DEFAULT_BUCKETS", "PrometheusObserver"]

#: Verification latency buckets, seconds: the warm path is tens of
#: microseconds, a cold look-up milliseconds, argon2 tens to hundreds.
DEFAULT_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class PrometheusObserver(CountingObserver, Collector):
    """Count verifications for Prometheus; register it with a ``CollectorRegistry``.

    Args:
        namespace: Prefix of every metric name (default ``scout_auth``).
        buckets: Upper bounds of the latency histogram, seconds, increasing.
    """

    __slots__ = (
        "_buckets",
        "_first",
        "_lock",
        "_namespace",
        "_store_errors",
        "_sum_at",
    )

    def __init__(
        self, *, namespace: str = "scout_auth", buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError("buckets must be increasing and not empty")
        if not namespace.replace("_", "").isalnum() or not namespace.isascii():
            raise ValueError("namespace must be letters, digits and underscores")
        self._namespace = namespace
        self._buckets = bounds
        self._first = bounds[0]
        self._sum_at = len(bounds) + 1  # a row: a count per bucket, +Inf's, then the sum
        super().__init__(bounds)  # per-thread counts, added to without a lock
        self._lock = threading.Lock()  # store errors only: a cold path
        self._store_errors: dict[str, int] = {}

    # -- what the verifier and adapters report --------------------------------

    def observe(self, label: Label, seconds: float, context: OrgContext | None) -> None:
        # The request path, once per request: two subscripts and two adds.
        # Subscripts, not .get(): no method call, and the KeyError (a
        # thread's or a label's first request) costs only when raised.
        try:
            row = self._shards[get_ident()].rows[label]
        except KeyError:
            row = self._tally.shard().row(label)
        # A warm request takes microseconds: the first bucket, without bisect.
        row[0 if seconds <= self._first else bisect_left(self._buckets, seconds)] += 1
        # The sum's index is held, not row[-1]: a negative index is not a
        # specialised subscript (it costs ~0.3k instructions more).
        row[self._sum_at] += seconds

    def store_error(self, operation: str) -> None:
        with self._lock:
            self._store_errors[operation] = self._store_errors.get(operation, 0) + 1

    # -- Prometheus -------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: the registry then calls :meth:`collect` at scrape time only."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """The metric families, built now from the counts and the verifiers' state."""
        ns = self._namespace
        rows, (hits, misses) = self._tally.totals()
        with self._lock:
            store_errors = dict(self._store_errors)
        width = len(self._buckets) + 1  # the buckets' counts; the sum is last
        outcomes: dict[tuple[str, str], int] = {}
        timings: dict[str, list[float]] = {}
        for key, row in rows.items():
            seen = int(sum(row[:width]))
            pair = (key.kind, key.outcome)
            outcomes[pair] = outcomes.get(pair, 0) + seen
            timing = timings.get(key.kind)
            timings[key.kind] = (
                list(row) if timing is None else [a + b for a, b in zip(timing, row, strict=True)]
            )
            if key.cache == "hit":
                hits += seen

        verifications = CounterMetricFamily(
            f"{ns}_verifications",
            "Verifications by how the request proved itself and their outcome (ok or error code)",
            labels=["kind", "outcome"],
        )
        for (kind, outcome), n in sorted(outcomes.items()):
            verifications.add_metric([kind, outcome], n)
        yield verifications

        duration = HistogramMetricFamily(
            f"{ns}_verification_duration_seconds",
            "Time the verification took (not the app's), by kind",
            labels=["kind"],
        )
        for kind, timing in sorted(timings.items()):
            running = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*self._buckets, float("inf")), timing[:-1], strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            duration.add_metric([kind], buckets, sum_value=timing[-1])
        yield duration

        lookups = CounterMetricFamily(
            f"{ns}_cache_lookups", "Look-ups of the verified cache", labels=["result"]
        )
        lookups.add_metric(["hit"], hits)
        lookups.add_metric(["miss"], misses)
        yield lookups

        errors = CounterMetricFamily(
            f"{ns}_store_errors",
            "Failed store or nonce-cache calls (each answered 503 store_unavailable)",
            labels=["operation"],
        )
        for operation, n in sorted(store_errors.items()):
            errors.add_metric([operation], n)
        yield errors

        def by_code(code: str) -> int:
            return sum(n for (_, outcome), n in outcomes.items() if outcome == code)

        yield CounterMetricFamily(
            f"{ns}_unavailable",
            "Requests answered 503 because the store could not be asked",
            value=by_code("store_unavailable"),
        )
        yield CounterMetricFamily(
            f"{ns}_replays_refused",
            "Signed requests refused as replays (nonce seen before)",
            value=by_code("replay_detected"),
        )
        yield CounterMetricFamily(
            f"{ns}_legacy_refused",
            "Legacy checks refused at once because the argon2 queue was full (503 legacy_busy)",
            value=by_code("legacy_busy"),
        )
        yield from self._state(ns)

    def _state(self, ns: str) -> Iterator[Metric]:
        state = self._watched.state()
        if state is None:
            return
        yield GaugeMetricFamily(
            f"{ns}_legacy_queue_depth",
            "Legacy (argon2) checks running or waiting",
            value=state.legacy_admitted,
        )
        yield GaugeMetricFamily(
            f"{ns}_legacy_queue_capacity",
            "Most legacy checks admitted at once (concurrency + queue)",
            value=state.legacy_capacity,
        )
        if state.audit_pending is not None and state.audit_dropped is not None:
            yield GaugeMetricFamily(
                f"{ns}_audit_buffer_depth",
                "Audit events waiting to be written",
                value=state.audit_pending,
            )
            yield CounterMetricFamily(
                f"{ns}_audit_dropped", "Audit events lost", value=state.audit_dropped
            )
        if state.feed_listening is not None:
            yield GaugeMetricFamily(
                f"{ns}_feed_listening",
                "1 while the store's change feed listens (revocations reach this process)",
                value=1 if state.feed_listening else 0,
            )
        if state.feed_reconnects is not None:
            yield CounterMetricFamily(
                f"{ns}_feed_reconnects",
                "Times the change feed reconnected",
                value=state.feed_reconnects,
            )

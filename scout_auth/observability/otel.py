"""OpenTelemetry traces and metrics of verification.

Needs ``pip install 'scout-auth[otel]'`` (``opentelemetry-api``; the SDK or
another implementation is the application's to configure)::

    from scout_auth.observability.otel import OTelObserver

    verifier = AsyncVerifier(store, observer=OTelObserver())

Traces: the verifier does not start a span per request. It sets
``scout_auth.kind`` and ``scout_auth.outcome`` on the *current* span (the
server span of your HTTP instrumentation), and ``scout_auth.org_id`` /
``scout_auth.key_id`` only with ``record_ids=True`` (they identify
customers). Cold steps get child spans: ``scout_auth.store.get_key`` and
the other store calls, ``scout_auth.nonce.remember``, ``scout_auth.argon2``;
a signed request's verification is recorded as ``scout_auth.verify_signature``
(a child of the current span covering the whole signature check, its
start and end taken from the adapter's clock).

Metrics (bounded attributes only, never an id): ``scout_auth.verifications``
{kind, outcome}, ``scout_auth.verification.duration`` {kind} (seconds),
``scout_auth.cache.lookups`` {result}, ``scout_auth.store.errors``
{operation}, and observable instruments for the argon2 queue, the audit
buffer and the change feed.
"""

from __future__ import annotations

from .._extras import require

require("opentelemetry")

import contextlib  # noqa: E402 - after the extra check, on purpose
import time  # noqa: E402
from collections.abc import Iterable, Iterator  # noqa: E402
from threading import get_ident  # noqa: E402
from typing import Any  # noqa: E402

from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.metrics import CallbackOptions, Observation  # noqa: E402

from .._core.records import OrgContext  # noqa: E402
from .._drivers.observe import Label  # noqa: E402
from ._tally import CountingObserver  # noqa: E402

__all__ = ["OTelObserver"]

_SCOPE = "scout_auth"


class OTelObserver(CountingObserver):
    """Report verifications to OpenTelemetry.

    Args:
        tracer_provider: Default: the global one (``trace.set_tracer_provider``).
        meter_provider: Default: the global one.
        record_ids: Also put ``scout_auth.org_id`` and ``scout_auth.key_id``
            on the current span of a verified request (default ``False``:
            they identify customers; never on metrics either way).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        record_ids: bool = False,
    ) -> None:
        self.record_ids = bool(record_ids)
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        # Counted per thread without a lock (_tally.py) and handed to the SDK
        # when it collects: the request path makes one SDK call (the histogram).
        super().__init__()
        meter.create_observable_counter(
            "scout_auth.verifications",
            callbacks=[self._verifications],
            unit="{request}",
            description="Verifications by kind and outcome (ok or the error code)",
        )
        self._duration = meter.create_histogram(
            "scout_auth.verification.duration",
            unit="s",
            description="Time the verification took (not the app's)",
        )
        meter.create_observable_counter(
            "scout_auth.cache.lookups",
            callbacks=[self._lookups],
            unit="{lookup}",
            description="Look-ups of the verified cache",
        )
        self._store_errors = meter.create_counter(
            "scout_auth.store.errors",
            unit="{error}",
            description="Failed store or nonce-cache calls (answered 503)",
        )
        meter.create_observable_gauge(
            "scout_auth.legacy.queue.depth",
            callbacks=[self._observe("legacy_admitted")],
            unit="{check}",
            description="Legacy (argon2) checks running or waiting",
        )
        meter.create_observable_gauge(
            "scout_auth.audit.buffer.depth",
            callbacks=[self._observe("audit_pending")],
            unit="{event}",
            description="Audit events waiting to be written",
        )
        meter.create_observable_counter(
            "scout_auth.audit.dropped",
            callbacks=[self._observe("audit_dropped")],
            unit="{event}",
            description="Audit events lost",
        )
        meter.create_observable_gauge(
            "scout_auth.feed.listening",
            callbacks=[self._observe("feed_listening")],
            description="1 while the store's change feed listens",
        )
        meter.create_observable_counter(
            "scout_auth.feed.reconnects",
            callbacks=[self._observe("feed_reconnects")],
            unit="{reconnect}",
            description="Times the change feed reconnected",
        )
        # Attribute dicts reused per kind: no allocation per request.
        self._kind_attrs: dict[str, dict[str, str]] = {}

    def _verifications(self, options: CallbackOptions) -> Iterable[Observation]:
        rows, _ = self._tally.totals()
        counts: dict[tuple[str, str], int] = {}
        for key, row in rows.items():
            pair = (key.kind, key.outcome)
            counts[pair] = counts.get(pair, 0) + int(row[0])
        return [
            Observation(n, {"kind": kind, "outcome": outcome})
            for (kind, outcome), n in sorted(counts.items())
        ]

    def _lookups(self, options: CallbackOptions) -> Iterable[Observation]:
        rows, (hits, misses) = self._tally.totals()
        hits += sum(int(row[0]) for key, row in rows.items() if key.cache == "hit")
        # A result not seen yet has no point (as the SDK's own counter would).
        pairs = ((hits, "hit"), (misses, "miss"))
        return [Observation(n, {"result": result}) for n, result in pairs if n]

    def _observe(self, field: str) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            state = self._watched.state()
            value = None if state is None else getattr(state, field)
            return [] if value is None else [Observation(int(value))]

        return callback

    def observe(self, label: Label, seconds: float, context: OrgContext | None) -> None:
        # The request path, once per request: a count of our own (no lock),
        # the SDK's histogram, and the current span when one records.
        # Subscripts, not .get(): no method call; a KeyError (a thread's or
        # a label's first request) costs only when raised.
        try:
            row = self._shards[get_ident()].rows[label]
        except KeyError:
            row = self._tally.shard().row(label)
        row[0] += 1
        kind = label.kind
        try:
            kind_attrs = self._kind_attrs[kind]
        except KeyError:
            kind_attrs = self._kind_attrs.setdefault(kind, {"kind": kind})
        self._duration.record(seconds, kind_attrs)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("scout_auth.kind", kind)
            span.set_attribute("scout_auth.outcome", label.outcome)
            if self.record_ids and context is not None:
                span.set_attribute("scout_auth.org_id", context.org_id)
                span.set_attribute("scout_auth.key_id", context.key_id)
        if kind == "signed":
            end = time.time_ns()
            child = self._tracer.start_span(
                "scout_auth.verify_signature",
                start_time=end - int(seconds * 1e9),
                attributes={"scout_auth.outcome": label.outcome},
            )
            child.end(end_time=end)

    def store_error(self, operation: str) -> None:
        self._store_errors.add(1, {"operation": operation})

    @contextlib.contextmanager
    def _span(self, name: str) -> Iterator[None]:
        with self._tracer.start_as_current_span("scout_auth." + name):
            yield

    def cold(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self._span(name)

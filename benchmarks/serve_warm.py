"""Serve N warm requests of one variant of :mod:`benchmarks.warm_bearer`, untimed.

For instruction counts, which do not move with the machine's load::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.serve_warm starlette scout 1200

Run it with 200 and with 1200 requests: the difference of the two
"Collected" counts divided by 1000 is the instructions per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc

from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth.observability import Observer

from . import warm_bearer as wb


def _observer(name: str) -> Observer | None:
    if name == "prometheus":
        from prometheus_client import CollectorRegistry

        from scout_auth.observability.prometheus import PrometheusObserver

        prometheus = PrometheusObserver()
        CollectorRegistry().register(prometheus)
        return prometheus
    if name == "otel":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        from scout_auth.observability.otel import OTelObserver

        # A real SDK: metrics aggregated in memory, a recording span per request.
        tracer_provider = TracerProvider()
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        return OTelObserver(tracer_provider=tracer_provider, meter_provider=provider)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve N warm requests of one variant")
    parser.add_argument("framework", choices=["starlette", "flask"])
    parser.add_argument("variant", choices=["bare", "hand", "scout"])
    parser.add_argument("requests", type=int)
    parser.add_argument(
        "--rule-scopes", type=int, default=0, help="scopes a route rule requires (see warm_bearer)"
    )
    parser.add_argument(
        "--observer",
        choices=["none", "prometheus", "otel"],
        default="none",
        help="metrics on: a PrometheusObserver, or an OTelObserver over the OTel SDK",
    )
    args = parser.parse_args(argv)
    required = wb.SCOPES[: args.rule_scopes]
    observer = _observer(args.observer)

    store = InMemoryKeyStore()
    token = KeyManager(store).create_key(wb.ORG, "bench", scopes=list(wb.SCOPES)).token
    if args.framework == "flask":
        apps = wb.flask_apps(token, store, required, observer)
        timer = wb.wsgi_timer(apps[args.variant], wb.wsgi_environ(token))
    else:
        loop = asyncio.new_event_loop()
        app = wb.starlette_apps(token, store, required, observer)[args.variant]
        timer = wb.asgi_timer(loop, app, wb.asgi_scope(token))
    timer(50)  # fills the cache, builds lazily made objects
    # Start the counted requests from an empty young generation and no
    # promotions pending, whatever the imports left: otherwise a full
    # collection (tens of thousands of objects, ~15M instructions) falls
    # inside one run's window and not the other's (benchmarks/README.md).
    gc.collect()
    timer(args.requests)


if __name__ == "__main__":
    main()

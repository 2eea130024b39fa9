"""Metrics and traces with the real prometheus_client and the OTel SDK's in-memory exporters."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.client import SigningAuth
from scout_auth.observability import OUTCOMES, Observer, read_state
from scout_auth.observability.otel import OTelObserver
from scout_auth.observability.prometheus import PrometheusObserver
from tests._support import TEST_LEGACY_PEPPER, cheap_hasher
from tests.apps import flask_app, starlette_app, wsgi_app

ORG = "org_obs"


def _store() -> tuple[InMemoryKeyStore, str]:
    store = InMemoryKeyStore()
    token = KeyManager(store).create_key(ORG, "k", scopes=["drive:read"]).token
    return store, token


def _options() -> dict[str, Any]:
    return {"legacy_pepper": TEST_LEGACY_PEPPER, "password_hasher": cheap_hasher()}


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


class FailingStore(InMemoryKeyStore):
    broken = False

    def get_key(self, key_id: str) -> Any:
        if self.broken:
            raise ConnectionError("down")
        return super().get_key(key_id)

    async def aget_key(self, key_id: str) -> Any:
        return self.get_key(key_id)


# -- prometheus_client ---------------------------------------------------------


def test_prometheus_counts_outcomes_latency_and_cache_starlette() -> None:
    store, token = _store()
    observer = PrometheusObserver()
    registry = CollectorRegistry()
    registry.register(observer)
    app = starlette_app(AsyncVerifier(store, observer=observer, **_options()))
    with TestClient(app) as client:
        for _ in range(3):
            assert (
                client.get("/whoami", headers={"authorization": f"Bearer {token}"}).status_code
                == 200
            )
        assert client.get("/whoami", headers={"authorization": "Bearer nope"}).status_code == 401
        assert client.get("/whoami").status_code == 401
    counts = _samples(registry, "scout_auth_verifications_total")
    assert counts[(("kind", "bearer"), ("outcome", "ok"))] == 3
    assert counts[(("kind", "bearer"), ("outcome", "invalid_token"))] == 1
    assert counts[(("kind", "bearer"), ("outcome", "missing_credentials"))] == 1
    cache = _samples(registry, "scout_auth_cache_lookups_total")
    assert cache[(("result", "hit"),)] == 2
    assert cache[(("result", "miss"),)] == 2  # the first good token, and the bad one
    histogram = _samples(registry, "scout_auth_verification_duration_seconds_count")
    assert histogram[(("kind", "bearer"),)] == 5
    inf = _samples(registry, "scout_auth_verification_duration_seconds_bucket")
    assert inf[(("kind", "bearer"), ("le", "+Inf"))] == 5
    # Gauges of the attached verifier's state.
    assert _samples(registry, "scout_auth_legacy_queue_depth") == {(): 0.0}
    assert _samples(registry, "scout_auth_legacy_queue_capacity")[()] > 0


def test_prometheus_labels_never_carry_ids() -> None:
    store, token = _store()
    observer = PrometheusObserver()
    registry = CollectorRegistry()
    registry.register(observer)
    verifier = Verifier(store, observer=observer, **_options())
    client = Client(flask_app(verifier))
    assert client.get("/whoami", headers={"authorization": f"Bearer {token}"}).status_code == 200
    text = generate_latest(registry).decode()
    key_id = verifier.verify_token(token).key_id
    assert ORG not in text
    assert key_id not in text
    for family in registry.collect():
        for sample in family.samples:
            assert set(sample.labels) <= {"kind", "outcome", "result", "operation", "le"}
            if "outcome" in sample.labels:
                assert sample.labels["outcome"] in OUTCOMES


def test_prometheus_legacy_and_signed_kinds_wsgi() -> None:
    store, token = _store()
    secret = "legacy-secret-of-the-old-system"
    KeyManager(
        store, legacy_pepper=TEST_LEGACY_PEPPER, password_hasher=cheap_hasher()
    ).import_legacy_key(ORG, secret)
    observer = PrometheusObserver()
    registry = CollectorRegistry()
    registry.register(observer)
    app = wsgi_app(Verifier(store, observer=observer, **_options()))
    client = Client(app)
    basic = base64.b64encode(f"{ORG}:{secret}".encode()).decode()
    assert client.get("/whoami", headers={"authorization": f"Basic {basic}"}).status_code == 200
    wrong = base64.b64encode(f"{ORG}:wrong".encode()).decode()
    assert client.get("/whoami", headers={"authorization": f"Basic {wrong}"}).status_code == 401
    signer = SigningAuth(token)
    headers = signer.signature_headers("GET", "http://localhost/whoami", [], b"")
    assert client.get("/whoami", headers=headers).status_code == 200
    assert client.get("/whoami", headers=headers).status_code == 401  # the same nonce again
    counts = _samples(registry, "scout_auth_verifications_total")
    assert counts[(("kind", "legacy"), ("outcome", "ok"))] == 1
    assert counts[(("kind", "legacy"), ("outcome", "invalid_token"))] == 1
    assert counts[(("kind", "signed"), ("outcome", "ok"))] == 1
    assert counts[(("kind", "signed"), ("outcome", "replay_detected"))] == 1
    assert _samples(registry, "scout_auth_replays_refused_total") == {(): 1.0}


def test_prometheus_store_errors_and_503() -> None:
    store = FailingStore()
    token = KeyManager(store).create_key(ORG, "k").token
    observer = PrometheusObserver()
    registry = CollectorRegistry()
    registry.register(observer)
    verifier = Verifier(store, observer=observer, cache_ttl=0, **_options())
    client = Client(wsgi_app(verifier))
    store.broken = True
    assert client.get("/whoami", headers={"authorization": f"Bearer {token}"}).status_code == 503
    errors = _samples(registry, "scout_auth_store_errors_total")
    assert errors == {(("operation", "store.get_key"),): 1.0}
    assert _samples(registry, "scout_auth_unavailable_total") == {(): 1.0}


def test_prometheus_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="buckets"):
        PrometheusObserver(buckets=[1.0, 0.5])
    with pytest.raises(ValueError, match="namespace"):
        PrometheusObserver(namespace="a-b")


def test_state_reads_audit_buffer_and_feed() -> None:
    from scout_auth.audit import AuditBuffer, InMemoryAuditSink

    store, _ = _store()
    with AuditBuffer(InMemoryAuditSink()) as audit:
        verifier = Verifier(store, audit=audit, **_options())
        state = read_state(verifier)
    assert state.audit_pending == 0
    assert state.audit_dropped == 0
    assert state.feed_listening is None  # the memory store has no feed


# -- OpenTelemetry ---------------------------------------------------------------


@pytest.fixture
def otel() -> tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider, MeterProvider]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return exporter, reader, tracer_provider, meter_provider


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


@pytest.mark.parametrize("record_ids", [False, True])
def test_otel_sets_attributes_on_the_current_span(otel: Any, record_ids: bool) -> None:
    exporter, reader, tracer_provider, meter_provider = otel
    store, token = _store()
    observer = OTelObserver(
        tracer_provider=tracer_provider, meter_provider=meter_provider, record_ids=record_ids
    )
    verifier = Verifier(store, observer=observer, **_options())
    app = wsgi_app(verifier)
    tracer = tracer_provider.get_tracer("test")
    client = Client(app)
    with tracer.start_as_current_span("server"):
        assert (
            client.get("/whoami", headers={"authorization": f"Bearer {token}"}).status_code == 200
        )
    spans = {s.name: s for s in exporter.get_finished_spans()}
    server = spans["server"]
    assert server.attributes is not None
    assert server.attributes["scout_auth.kind"] == "bearer"
    assert server.attributes["scout_auth.outcome"] == "ok"
    assert ("scout_auth.org_id" in server.attributes) is record_ids
    assert ("scout_auth.key_id" in server.attributes) is record_ids
    # The cold look-up is a child span of the server span.
    lookup = spans["scout_auth.store.get_key"]
    assert lookup.parent is not None
    assert lookup.parent.span_id == server.context.span_id
    points = _points(reader)
    (point,) = points["scout_auth.verifications"]
    assert dict(point.attributes) == {"kind": "bearer", "outcome": "ok"}
    assert point.value == 1
    assert points["scout_auth.verification.duration"][0].count == 1
    assert [dict(p.attributes) for p in points["scout_auth.cache.lookups"]] == [{"result": "miss"}]
    assert points["scout_auth.legacy.queue.depth"][0].value == 0
    # No metric attribute ever names the key or the org.
    for name, pts in points.items():
        for p in pts:
            assert ORG not in str(dict(p.attributes)), name


def test_otel_argon2_and_signed_spans_async(otel: Any) -> None:
    exporter, _reader, tracer_provider, meter_provider = otel
    store, token = _store()
    secret = "legacy-secret-of-the-old-system"
    KeyManager(
        store, legacy_pepper=TEST_LEGACY_PEPPER, password_hasher=cheap_hasher()
    ).import_legacy_key(ORG, secret)
    observer = OTelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)
    app = starlette_app(AsyncVerifier(store, observer=observer, **_options()))
    basic = base64.b64encode(f"{ORG}:{secret}".encode()).decode()
    with TestClient(app) as client:
        assert client.get("/whoami", headers={"authorization": f"Basic {basic}"}).status_code == 200
        assert client.get("/whoami", auth=SigningAuth(token)).status_code == 200
    names = [s.name for s in exporter.get_finished_spans()]
    assert "scout_auth.argon2" in names
    assert "scout_auth.verify_signature" in names
    assert "scout_auth.nonce.remember" in names


def test_otel_store_error_span_and_counter(otel: Any) -> None:
    exporter, reader, tracer_provider, meter_provider = otel
    store = FailingStore()
    token = KeyManager(store).create_key(ORG, "k").token
    observer = OTelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)
    verifier = Verifier(store, observer=observer, **_options())
    store.broken = True
    assert (
        Client(wsgi_app(verifier))
        .get("/whoami", headers={"authorization": f"Bearer {token}"})
        .status_code
        == 503
    )
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "scout_auth.store.get_key"]
    assert not span.status.is_ok
    points = _points(reader)
    assert [dict(p.attributes) for p in points["scout_auth.store.errors"]] == [
        {"operation": "store.get_key"}
    ]
    outcomes = {p.attributes["outcome"] for p in points["scout_auth.verifications"]}
    assert outcomes == {"store_unavailable"}


# -- the default ------------------------------------------------------------------


def test_no_observer_by_default_and_type_checked() -> None:
    store, _ = _store()
    verifier = Verifier(store, **_options())
    assert verifier.observer is None
    assert "_perform" not in vars(verifier)
    with pytest.raises(TypeError, match="Observer"):
        Verifier(store, observer=object(), **_options())  # type: ignore[arg-type]


def test_a_plain_observer_subclass_sees_requests() -> None:
    seen: list[tuple[str, str, int]] = []

    class Mine(Observer):
        def request(self, kind, outcome, status, seconds, context):
            seen.append((kind, outcome, status))

    store, token = _store()
    client = Client(wsgi_app(Verifier(store, observer=Mine(), **_options())))
    client.get("/whoami", headers={"authorization": f"Bearer {token}"})
    client.get("/whoami", headers={"authorization": "Basic !!!"})
    assert seen[0] == ("bearer", "ok", 200)
    assert seen[1][0] == "legacy"
    assert seen[1][1] in OUTCOMES
    assert seen[1][1] != "ok"


# -- the one call per request -------------------------------------------------------


def test_verifier_counts_its_own_cache_look_ups() -> None:
    # A script calling the verifier directly gets hits and misses too.
    store, token = _store()
    observer = PrometheusObserver()
    registry = CollectorRegistry()
    registry.register(observer)
    verifier = Verifier(store, observer=observer, **_options())
    for _ in range(3):
        verifier.verify_authorization(f"Bearer {token}")
    assert _samples(registry, "scout_auth_cache_lookups_total") == {
        (("result", "hit"),): 2.0,
        (("result", "miss"),): 1.0,
    }


def test_warm_hits_counted_once_through_the_adapter() -> None:
    # The warm path's hit rides on the request's label; a miss is counted
    # by verify_authorization alone (not by cached_authorization as well).
    store, token = _store()
    observer = PrometheusObserver()
    registry = CollectorRegistry()
    registry.register(observer)
    client = Client(flask_app(Verifier(store, observer=observer, **_options())))
    for _ in range(4):
        assert (
            client.get("/whoami", headers={"authorization": f"Bearer {token}"}).status_code == 200
        )
    assert _samples(registry, "scout_auth_cache_lookups_total") == {
        (("result", "hit"),): 3.0,
        (("result", "miss"),): 1.0,
    }
    assert _samples(registry, "scout_auth_verifications_total") == {
        (("kind", "bearer"), ("outcome", "ok")): 4.0
    }


def test_counts_from_many_threads_add_up() -> None:
    import threading

    from scout_auth.observability import ACCEPTED

    observer = PrometheusObserver(buckets=[0.5, 1.0])
    registry = CollectorRegistry()
    registry.register(observer)
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for i in range(2000):
            observer.observe(ACCEPTED[i % 2][0], 0.25 if i % 4 else 0.75, None)
            observer.cache(i % 2 == 0)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _samples(registry, "scout_auth_verifications_total") == {
        (("kind", "bearer"), ("outcome", "ok")): 16000.0
    }
    buckets = _samples(registry, "scout_auth_verification_duration_seconds_bucket")
    assert buckets[(("kind", "bearer"), ("le", "0.5"))] == 12000
    assert buckets[(("kind", "bearer"), ("le", "1.0"))] == 16000
    assert buckets[(("kind", "bearer"), ("le", "+Inf"))] == 16000
    total = _samples(registry, "scout_auth_verification_duration_seconds_sum")
    assert total[(("kind", "bearer"),)] == pytest.approx(12000 * 0.25 + 4000 * 0.75)
    # 8000 hits from the labels, 8000 + 8000 from cache() calls.
    assert _samples(registry, "scout_auth_cache_lookups_total") == {
        (("result", "hit"),): 16000.0,
        (("result", "miss"),): 8000.0,
    }


def test_a_plain_observer_subclass_sees_warm_hits() -> None:
    hits: list[bool] = []

    class Mine(Observer):
        def cache(self, hit: bool) -> None:
            hits.append(hit)

    store, token = _store()
    client = Client(wsgi_app(Verifier(store, observer=Mine(), **_options())))
    for _ in range(3):
        client.get("/whoami", headers={"authorization": f"Bearer {token}"})
    assert hits == [False, True, True]


def test_shards_of_ended_threads_are_folded_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that never reuses a thread ident (nothing guarantees reuse)
    # must not grow one shard per thread ever started.
    import itertools
    import threading

    from scout_auth.observability import ACCEPTED, _tally

    label = ACCEPTED[0][0]
    tally = _tally.Tally((0.5,))
    idents = itertools.count(10**9)
    current = [0]
    monkeypatch.setattr(threading, "get_ident", lambda: current[0])
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.main_thread()])
    for _ in range(1000):
        current[0] = next(idents)  # a new thread each time; the last one ended
        shard = tally.shard()
        shard.row(label)[0] += 1
        shard.lookups[0] += 1
        assert len(tally.shards) <= _tally.MAX_SHARDS
    rows, (hits, misses) = tally.totals()
    assert rows[label][0] == 1000
    assert (hits, misses) == (1000, 0)


def test_histogram_buckets_are_exact_at_their_bounds() -> None:
    # le is inclusive: a duration equal to a bound is counted in it, the
    # next float above it in the next bucket (the first bucket is decided
    # without bisect, the others with it: both sides of each bound).
    import math

    from scout_auth.observability import ACCEPTED

    observer = PrometheusObserver(buckets=[0.5, 1.0])
    registry = CollectorRegistry()
    registry.register(observer)
    durations = [0.0, 0.5, math.nextafter(0.5, 1.0), 1.0, math.nextafter(1.0, 2.0), 3.0]
    for seconds in durations:
        observer.observe(ACCEPTED[True][0], seconds, None)
    buckets = _samples(registry, "scout_auth_verification_duration_seconds_bucket")
    assert buckets[(("kind", "bearer"), ("le", "0.5"))] == 2
    assert buckets[(("kind", "bearer"), ("le", "1.0"))] == 4
    assert buckets[(("kind", "bearer"), ("le", "+Inf"))] == 6
    total = _samples(registry, "scout_auth_verification_duration_seconds_sum")
    assert total[(("kind", "bearer"),)] == pytest.approx(sum(durations))
    count = _samples(registry, "scout_auth_verification_duration_seconds_count")
    assert count[(("kind", "bearer"),)] == 6


@pytest.mark.parametrize("framework", ["starlette", "wsgi", "flask"])
def test_adapters_label_misses_hits_and_kinds(framework: str) -> None:
    # The adapters pick each request's label from precomputed constants:
    # a bearer token's first request is a miss, the next ones are warm hits;
    # a Basic legacy secret never rides the warm path.
    from scout_auth.observability import Label

    seen: list[Label] = []

    class Mine(Observer):
        def observe(self, label: Label, seconds: float, context: Any) -> None:
            assert seconds >= 0.0
            seen.append(label)

    store, token = _store()
    secret = "legacy-secret-of-the-old-system"
    KeyManager(
        store, legacy_pepper=TEST_LEGACY_PEPPER, password_hasher=cheap_hasher()
    ).import_legacy_key(ORG, secret)
    basic = base64.b64encode(f"{ORG}:{secret}".encode()).decode()
    requests = [f"Bearer {token}", f"Bearer {token}", f"Basic {basic}", f"Basic {basic}"]
    if framework == "starlette":
        app = starlette_app(AsyncVerifier(store, observer=Mine(), **_options()))
        with TestClient(app) as client:
            for value in requests:
                assert client.get("/whoami", headers={"authorization": value}).status_code == 200
    else:
        verifier = Verifier(store, observer=Mine(), **_options())
        wsgi = Client(wsgi_app(verifier) if framework == "wsgi" else flask_app(verifier))
        for value in requests:
            assert wsgi.get("/whoami", headers={"authorization": value}).status_code == 200
    assert [(x.kind, x.outcome, x.status, x.cache) for x in seen] == [
        ("bearer", "ok", 200, None),
        ("bearer", "ok", 200, "hit"),
        ("legacy", "ok", 200, None),
        ("legacy", "ok", 200, None),
    ]

"""Refusals of requests that named a real key reach the audit trail, from every adapter."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.audit import AuditBuffer, InMemoryAuditSink
from scout_auth.exceptions import KeyDisabled
from tests.apps import flask_app, starlette_app, wsgi_app


@pytest.fixture
def world():
    store = InMemoryKeyStore()
    m = KeyManager(store)
    reader = m.create_key("org_audit", "reporting", scopes=["files:read"])
    paused = m.create_key("org_audit", "paused partner")
    m.disable_key(paused.key.key_id)
    return store, reader, paused


RULES = [("GET", "/write", ["files:write"])]


def send(adapter: str, store, sink, path: str, token: str) -> int:
    headers = {"authorization": f"Bearer {token}"}
    verifier: Verifier | AsyncVerifier
    if adapter == "starlette":
        verifier = AsyncVerifier(store, audit=sink)
        with TestClient(starlette_app(verifier, rules=RULES)) as tc:
            status = tc.get(path, headers=headers).status_code
    elif adapter == "flask":
        verifier = Verifier(store, audit=sink)
        status = (
            flask_app(verifier, rules=RULES).test_client().get(path, headers=headers).status_code
        )
    else:
        verifier = Verifier(store, audit=sink)
        status = Client(wsgi_app(verifier, rules=RULES)).get(path, headers=headers).status_code
    assert verifier.audit is not None
    assert verifier.audit.flush(timeout=10)
    return int(status)


@pytest.mark.parametrize("adapter", ["starlette", "flask", "wsgi"])
def test_denials_that_named_a_real_key_are_recorded(world, adapter):
    store, reader, paused = world
    sink = InMemoryAuditSink()
    assert send(adapter, store, sink, "/whoami", paused.token) == 401
    assert send(adapter, store, sink, "/write", reader.token) == 403
    assert send(adapter, store, sink, "/whoami", "scout_sk_" + "a" * 70) == 401  # names no key
    assert send(adapter, store, sink, "/whoami", reader.token) == 200
    events = sink.query(org_id="org_audit").events
    assert [(e.action, e.reason, e.key_id) for e in events] == [
        ("denied", "insufficient_scope", reader.key.key_id),
        ("denied", "key_disabled", paused.key.key_id),
    ]
    assert {e.method for e in events} == {"GET"}
    assert {e.path for e in events} == {"/write", "/whoami"}
    for e in events:
        assert "scout_sk_" not in repr(e)


def test_without_an_audit_sink_nothing_is_recorded(world):
    store, _, paused = world
    verifier = Verifier(store)
    assert verifier.audit is None
    with pytest.raises(KeyDisabled) as excinfo:
        verifier.verify_token(paused.token)
    assert excinfo.value.subject == ("org_audit", paused.key.key_id, "paused partner")
    verifier.record_denial(excinfo.value, method="GET", path="/", client_ip=None)  # a no-op


def test_a_buffer_is_used_as_given(world):
    store, _, _ = world
    buffer = AuditBuffer(InMemoryAuditSink())
    assert Verifier(store, audit=buffer).audit is buffer
    buffer.close()


def test_a_refused_legacy_secret_is_recorded_once_legacy_is_off():
    from tests._support import cheap_hasher

    store = InMemoryKeyStore()
    manager = KeyManager(store, password_hasher=cheap_hasher())
    manager.import_legacy_key("org_old", "old-secret")
    manager.disable_legacy("org_old")
    sink = InMemoryAuditSink()
    verifier = Verifier(store, audit=sink, password_hasher=cheap_hasher())
    from scout_auth.exceptions import LegacyDisabled

    with pytest.raises(LegacyDisabled) as excinfo:
        verifier.verify_legacy("org_old", "old-secret")
    verifier.record_denial(excinfo.value, method="GET", path="/", client_ip="203.0.113.7")
    assert verifier.audit is not None
    assert verifier.audit.flush(timeout=10)
    [event] = sink.query(org_id="org_old").events
    assert (event.reason, event.key_id, event.client_ip) == (
        "legacy_disabled",
        "legacy:org_old",
        "203.0.113.7",
    )
    assert "old-secret" not in repr(event)


@pytest.mark.parametrize("adapter", ["starlette", "flask", "wsgi"])
def test_a_denial_behind_a_trusted_proxy_records_the_forwarded_client(world, adapter):
    # The same client address the IP allowlist would check: the proxy's last
    # X-Forwarded-For hop, not the proxy itself.
    store, _, paused = world
    sink = InMemoryAuditSink()
    proxy, client = "10.0.0.5", "198.51.100.23"
    options = {"trusted_proxies": ["10.0.0.0/8"]}
    headers = {"authorization": f"Bearer {paused.token}", "x-forwarded-for": client}
    verifier: Verifier | AsyncVerifier
    if adapter == "starlette":
        verifier = AsyncVerifier(store, audit=sink)
        with TestClient(starlette_app(verifier, **options), client=(proxy, 4711)) as tc:
            status = tc.get("/whoami", headers=headers).status_code
    else:
        verifier = Verifier(store, audit=sink)
        app = (
            flask_app(verifier, **options) if adapter == "flask" else wsgi_app(verifier, **options)
        )
        base = {"REMOTE_ADDR": proxy}
        status = Client(app).get("/whoami", headers=headers, environ_base=base).status_code
    assert status == 401
    assert verifier.audit is not None
    assert verifier.audit.flush(timeout=10)
    [event] = sink.query(org_id="org_audit").events
    assert (event.reason, event.client_ip) == ("key_disabled", client)

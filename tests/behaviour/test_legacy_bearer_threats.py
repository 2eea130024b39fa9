"""Threat table: legacy secrets sent as Bearer (issue 10), on every adapter.

An unmigrated client changes nothing: it sends the legacy secret as
``Authorization: Bearer <secret>`` (or in the ``X-API-Key`` style header).
Every adapter must accept exactly that, refuse everything near it with the
same problem+json answer, and never turn an unknown token into an argon2
run. Raw ASGI scopes and WSGI environs (tests/behaviour/drivers.py), so
what a server may hand over is what is tested.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.audit import AuditBuffer, InMemoryAuditSink
from tests._support import SpyHasher, cheap_hasher
from tests._support import basic_authorization as basic
from tests.apps import flask_app, starlette_app, wsgi_app
from tests.behaviour.drivers import Answer, asgi, wsgi
from tests.behaviour.fuzz_apps import fastapi_app

SECRET = "Old_System.Secret~42/+="
PAUSED = "paused-legacy-secret-0"


@pytest.fixture(scope="module")
def store() -> InMemoryKeyStore:
    store = InMemoryKeyStore()
    manager = KeyManager(store, password_hasher=cheap_hasher())
    manager.import_legacy_key("org_legacy", SECRET)
    manager.import_legacy_key("org_paused", PAUSED)
    manager.disable_legacy("org_paused")
    return store


Adapter = Callable[[list[tuple[str, str]]], Answer]


def _asgi(app: Any) -> Adapter:
    return lambda headers: asgi(app, "GET", "/whoami", headers)


def _wsgi(app: Any) -> Adapter:
    return lambda headers: wsgi(app, "GET", "/whoami", headers)


def starlette(store: InMemoryKeyStore, hasher: Any, audit: Any = None, **options: Any) -> Adapter:
    return _asgi(
        starlette_app(AsyncVerifier(store, password_hasher=hasher, audit=audit), **options)
    )


def fastapi(store: InMemoryKeyStore, hasher: Any, audit: Any = None, **options: Any) -> Adapter:
    return _asgi(fastapi_app(AsyncVerifier(store, password_hasher=hasher, audit=audit), **options))


def flask(store: InMemoryKeyStore, hasher: Any, audit: Any = None, **options: Any) -> Adapter:
    return _wsgi(flask_app(Verifier(store, password_hasher=hasher, audit=audit), **options))


def plain_wsgi(store: InMemoryKeyStore, hasher: Any, audit: Any = None, **options: Any) -> Adapter:
    return _wsgi(wsgi_app(Verifier(store, password_hasher=hasher, audit=audit), **options))


ADAPTERS = [
    pytest.param(starlette, id="starlette"),
    pytest.param(fastapi, id="fastapi"),
    pytest.param(flask, id="flask"),
    pytest.param(plain_wsgi, id="wsgi"),
]

# (Authorization value, status, code or None for 200 as org_legacy)
CASES = [
    pytest.param(f"Bearer {SECRET}", 200, None, id="bearer"),
    pytest.param(f"bearer {SECRET}", 200, None, id="scheme-lower-case"),
    pytest.param(f"BEARER   {SECRET}  ", 200, None, id="scheme-upper-and-spaces"),
    pytest.param(basic("org_legacy", SECRET), 200, None, id="basic-still-works"),
    pytest.param(f"Bearer {SECRET[:-1]}", 401, "invalid_token", id="one-char-short"),
    pytest.param(f"Bearer {SECRET}x", 401, "invalid_token", id="one-char-long"),
    pytest.param(f"Bearer {SECRET.swapcase()}", 401, "invalid_token", id="case-swapped"),
    pytest.param(f"Bearer {SECRET}, Bearer {SECRET}", 400, "invalid_request", id="twice"),
    pytest.param(f"Bearer {PAUSED}", 401, "legacy_disabled", id="switched-off"),
    pytest.param(basic("org_paused", PAUSED), 401, "legacy_disabled", id="basic-switched-off"),
    pytest.param("Bearer " + "scout_sk_" + SECRET, 401, "invalid_token", id="org-cred-prefix"),
    pytest.param("Bearer " + "x" * 4090, 400, "invalid_request", id="huge"),
    pytest.param("Bearer old\x7fsecret", 401, "invalid_token", id="del-byte"),
    pytest.param("Bearer old\xe9secret", 401, "invalid_token", id="latin-1-byte"),
    pytest.param(basic("org_legacy", SECRET + "x"), 401, "invalid_token", id="basic-wrong"),
    pytest.param(basic("org_paused", SECRET), 401, "invalid_token", id="basic-other-org"),
]


def _check(answer: Answer, status: int, code: str | None) -> None:
    assert answer.raised is None, answer.raised
    assert answer.status == status, answer.body
    if code is None:
        assert b"org_legacy" in answer.body
        return
    assert answer.code == code, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert SECRET.encode() not in answer.body


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("value", "status", "code"), CASES)
def test_legacy_credentials_answer_alike_everywhere(store, adapter, value, status, code):
    _check(adapter(store, cheap_hasher())([("authorization", value)]), status, code)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        pytest.param(SECRET, 200, None, id="legacy-secret"),
        pytest.param(SECRET + "x", 401, "invalid_token", id="wrong"),
        pytest.param(PAUSED, 401, "legacy_disabled", id="switched-off"),
    ],
)
def test_the_api_key_header_carries_a_legacy_secret(store, adapter, value, status, code):
    call = adapter(store, cheap_hasher(), header="X-API-Key")
    _check(call([("x-api-key", value)]), status, code)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_flood_of_random_bearer_tokens_runs_argon2_zero_times(store, adapter):
    hasher = SpyHasher()
    call = adapter(store, hasher)
    for _ in range(250):
        token = secrets.token_urlsafe(secrets.choice([6, 16, 32, 48]))
        _check(call([("authorization", f"Bearer {token}")]), 401, "invalid_token")
    assert hasher.verify_threads == []
    # The control: the real secret does reach argon2 (once, then cached).
    _check(call([("authorization", f"Bearer {SECRET}")]), 200, None)
    _check(call([("authorization", f"Bearer {SECRET}")]), 200, None)
    assert len(hasher.verify_threads) == 1


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_switched_off_legacy_bearer_is_audited_with_its_client(store, adapter):
    """How an admin finds the clients still sending the legacy secret (docs/usage-and-legacy.md)."""
    sink = InMemoryAuditSink()
    buffer = AuditBuffer(sink)
    call = adapter(store, cheap_hasher(), audit=buffer)
    _check(call([("authorization", f"Bearer {PAUSED}")]), 401, "legacy_disabled")
    assert buffer.flush(timeout=10)
    [event] = sink.query(org_id="org_paused").events
    assert (event.reason, event.key_id, event.path) == (
        "legacy_disabled",
        "legacy:org_paused",
        "/whoami",
    )
    assert event.client_ip == "203.0.113.9"
    assert PAUSED not in repr(event)

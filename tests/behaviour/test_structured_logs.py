"""Denials are logged with structured fields on every adapter (issue 16, structured logs).

JSON formatters (python-json-logger, structlog's stdlib bridge) emit what a
record carries in ``extra=``; these tests read the record attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from tests._support import cheap_hasher
from tests.apps import flask_app, starlette_app, wsgi_app
from tests.behaviour.drivers import Answer, asgi, wsgi


@pytest.fixture(scope="module")
def world():
    store = InMemoryKeyStore()
    manager = KeyManager(store, password_hasher=cheap_hasher())
    paused = manager.create_key("org_logs", "paused partner")
    manager.disable_key(paused.key.key_id)
    return store, paused


ADAPTERS: dict[str, Callable[[InMemoryKeyStore], tuple[Any, Callable[..., Answer]]]] = {
    "starlette": lambda s: (starlette_app(AsyncVerifier(s)), asgi),
    "flask": lambda s: (flask_app(Verifier(s)), wsgi),
    "wsgi": lambda s: (wsgi_app(Verifier(s)), wsgi),
}


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_a_denial_of_a_real_key_carries_its_fields(world, adapter, caplog):
    store, paused = world
    app, call = ADAPTERS[adapter](store)
    headers = [("authorization", f"Bearer {paused.token}"), ("x-request-id", "req-7\nforged")]
    with caplog.at_level(logging.INFO, logger="scout_auth"):
        answer = call(app, "GET", "/whoami", headers)
    assert answer.status == 401
    [record] = [r for r in caplog.records if r.getMessage().startswith("denied")]
    assert record.levelno == logging.INFO
    fields = {k: getattr(record, k) for k in ("code", "status", "method", "path", "org_id")}
    assert fields == {
        "code": "key_disabled",
        "status": 401,
        "method": "GET",
        "path": "/whoami",
        "org_id": "org_logs",
    }
    assert record.key_id == paused.key.key_id
    assert record.client_ip == "203.0.113.9"
    assert record.request_id == "req-7\\nforged"  # escaped: no forged log line
    assert paused.token not in caplog.text


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_an_anonymous_denial_names_no_org_or_key(world, adapter, caplog):
    store, _ = world
    app, call = ADAPTERS[adapter](store)
    with caplog.at_level(logging.INFO, logger="scout_auth"):
        call(app, "GET", "/whoami", [("authorization", "Bearer scout_sk_" + "a" * 70)])
    [record] = [r for r in caplog.records if r.getMessage().startswith("denied")]
    assert (record.code, record.org_id, record.key_id, record.request_id) == (
        "invalid_token",
        None,
        None,
        None,
    )

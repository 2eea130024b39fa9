"""The client address a key was last used from — as each adapter resolves it.

Each case runs one request through the Starlette middleware, the Flask
extension and the bare WSGI middleware from a chosen peer, flushes the
verifier's usage and reads ``last_used_address`` back: the address the
allowlist would see (trusted proxies honoured, a spoofed header from an
untrusted peer ignored), normalised, or ``None`` — never an error.
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from tests._support import cheap_hasher
from tests.apps import flask_app, starlette_app, wsgi_app

PROXY = "10.9.9.9"
XFF = {"trusted_proxies": [PROXY], "proxy_header": "x-forwarded", "proxy_hops": 1}

# (peer, adapter options, request headers, stored address)
CASES = [
    pytest.param("192.0.2.7", {}, {}, "192.0.2.7", id="direct-ipv4"),
    pytest.param("2001:DB8::1", {}, {}, "2001:db8::1", id="direct-ipv6-normalised"),
    pytest.param("::ffff:192.0.2.7", {}, {}, "192.0.2.7", id="ipv4-mapped-as-ipv4"),
    pytest.param("testclient", {}, {}, None, id="peer-not-an-address"),
    pytest.param(
        "198.51.100.1", XFF, {"x-forwarded-for": "192.0.2.99"}, "198.51.100.1", id="untrusted-xff"
    ),
    pytest.param(PROXY, XFF, {"x-forwarded-for": "203.0.113.5"}, "203.0.113.5", id="trusted-xff"),
    pytest.param(PROXY, XFF, {"x-forwarded-for": "2001:db8:0::5"}, "2001:db8::5", id="xff-ipv6"),
    pytest.param(PROXY, XFF, {}, None, id="trusted-proxy-without-header"),
    pytest.param(PROXY, XFF, {"x-forwarded-for": "not-an-ip"}, None, id="xff-garbage"),
    pytest.param(PROXY, XFF, {"x-forwarded-for": "1" * 5000}, None, id="xff-over-long"),
]


@pytest.mark.parametrize(("peer", "options", "headers", "stored"), CASES)
def test_every_adapter_records_the_resolved_address(peer, options, headers, stored):
    store = InMemoryKeyStore()
    manager = KeyManager(store, password_hasher=cheap_hasher())
    seen: dict[str, object] = {}
    for adapter in ("starlette", "flask", "wsgi"):
        new = manager.create_key("org_a", adapter)
        sent = {"authorization": f"Bearer {new.token}", **headers}
        if adapter == "starlette":
            averifier = AsyncVerifier(store)
            with TestClient(starlette_app(averifier, **options), client=(peer, 50000)) as tc:
                assert tc.get("/whoami", headers=sent).status_code == 200
            asyncio.run(averifier.aflush_usage())
        else:
            verifier = Verifier(store)
            build = flask_app if adapter == "flask" else wsgi_app
            app = build(verifier, **options)
            client = app.test_client() if adapter == "flask" else Client(app)  # type: ignore[union-attr]
            r = client.get("/whoami", headers=sent, environ_base={"REMOTE_ADDR": peer})
            assert r.status_code == 200
            verifier.flush_usage()
        key = manager.get_key(new.key.key_id)
        assert key.use_count == 1, adapter
        seen[adapter] = key.last_used_address
    assert seen == {"starlette": stored, "flask": stored, "wsgi": stored}

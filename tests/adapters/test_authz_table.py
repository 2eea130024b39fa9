"""Authorization cases — scopes, roles, IP allowlists, the legacy switch — in one table.

Each case runs through the Starlette middleware, the Flask extension and the
bare WSGI middleware, from a chosen client address; status, body and the
headers that matter must be the same bytes everywhere (as in
``test_middleware_table.py``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from tests._support import cheap_hasher
from tests.adapters.test_middleware_table import normalised
from tests.apps import flask_app, starlette_app, wsgi_app

PROXY = "10.9.9.9"


@dataclass
class World:
    tokens: dict[str, str]
    store: InMemoryKeyStore
    manager: KeyManager


def build_world() -> World:
    store = InMemoryKeyStore()
    m = KeyManager(store, password_hasher=cheap_hasher())
    m.put_role("org_a", "editor", ["drive:read", "drive:write"])
    m.put_role("org_a", "viewer", ["drive:read"])
    t = {
        "scoped": m.create_key("org_a", "reporting", scopes=["drive:read"]).token,
        "wildcard": m.create_key("org_a", "billing-sync prod", scopes=["drive:*"]).token,
        "editor": m.create_key("org_a", "cms sync", roles=["editor"]).token,
        "viewer_plus": m.create_key(
            "org_a", "mail digest", scopes=["mail:send"], roles=["viewer"]
        ).token,
        "ghost_role": m.create_key("org_a", "orphan", roles=["no-such-role"]).token,
        "unrestricted": m.create_key("org_b", "ops console").token,
        "empty_scopes": m.create_key("org_b", "nothing yet", scopes=[]).token,
        "office": m.create_key("org_a", "office importer", allowed_ips=["192.0.2.0/24"]).token,
        "office_v6": m.create_key("org_a", "v6 importer", allowed_ips=["2001:db8::/32"]).token,
        "office_scoped": m.create_key(
            "org_a", "office reader", scopes=["drive:read"], allowed_ips=["192.0.2.7"]
        ).token,
        "Case": m.create_key("org_a", "case test", scopes=["Drive:Write"]).token,
    }
    m.import_legacy_key("org_on", "old-secret-on")
    m.import_legacy_key("org_off", "old-secret-off")
    m.disable_legacy("org_off")
    return World(t, store, m)


def bearer(name: str):
    return lambda w: {"authorization": f"Bearer {w.tokens[name]}"}


def basic(org: str, secret: str):
    value = base64.b64encode(f"{org}:{secret}".encode()).decode()
    return lambda w: {"authorization": f"Basic {value}"}


def with_headers(make, **extra: str):
    return lambda w: {**make(w), **{k.replace("_", "-"): v for k, v in extra.items()}}


WRITE = {"required_scopes": ["drive:write"]}
READ = {"required_scopes": ["drive:read"]}
PROXIED = {"trusted_proxies": [PROXY]}
SCOPED_ONLY = {"require_scoped_keys": True}
IP = "198.51.100.1"  # an ordinary client outside every allowlist

# (headers, client address, adapter options, verifier options, status, code)
CASES = [
    # -- scopes -----------------------------------------------------------
    pytest.param(bearer("scoped"), IP, READ, {}, 200, None, id="scope-exact"),
    pytest.param(bearer("scoped"), IP, WRITE, {}, 403, "insufficient_scope", id="scope-missing"),
    pytest.param(bearer("wildcard"), IP, WRITE, {}, 200, None, id="scope-wildcard"),
    pytest.param(
        bearer("Case"), IP, WRITE, {}, 403, "insufficient_scope", id="scope-case-sensitive"
    ),
    pytest.param(bearer("empty_scopes"), IP, READ, {}, 403, "insufficient_scope", id="no-scope"),
    pytest.param(bearer("unrestricted"), IP, WRITE, {}, 200, None, id="unrestricted"),
    # -- roles ------------------------------------------------------------
    pytest.param(bearer("editor"), IP, WRITE, {}, 200, None, id="role-grants"),
    pytest.param(bearer("viewer_plus"), IP, READ, {}, 200, None, id="role-plus-own-scope"),
    pytest.param(bearer("viewer_plus"), IP, WRITE, {}, 403, "insufficient_scope", id="role-lacks"),
    pytest.param(
        bearer("ghost_role"),
        IP,
        READ,
        {},
        403,
        "insufficient_scope",
        id="missing-role-grants-nothing",
    ),
    # -- require_scoped_keys ------------------------------------------------
    pytest.param(
        bearer("unrestricted"),
        IP,
        {},
        SCOPED_ONLY,
        403,
        "insufficient_scope",
        id="scoped-only-refuses-unrestricted",
    ),
    pytest.param(bearer("scoped"), IP, READ, SCOPED_ONLY, 200, None, id="scoped-only-scoped-ok"),
    pytest.param(bearer("editor"), IP, WRITE, SCOPED_ONLY, 200, None, id="scoped-only-role-ok"),
    pytest.param(
        basic("org_on", "old-secret-on"),
        IP,
        {},
        SCOPED_ONLY,
        403,
        "insufficient_scope",
        id="scoped-only-refuses-legacy",
    ),
    # -- IP allowlists ------------------------------------------------------
    pytest.param(bearer("office"), "192.0.2.10", {}, {}, 200, None, id="ip-allowed"),
    pytest.param(bearer("office"), IP, {}, {}, 403, "ip_not_allowed", id="ip-refused"),
    pytest.param(
        bearer("office"),
        "testclient",
        {},
        {},
        403,
        "ip_not_allowed",
        id="ip-unparsable-fails-closed",
    ),
    pytest.param(bearer("office_v6"), "2001:db8::1", {}, {}, 200, None, id="ipv6-allowed"),
    pytest.param(
        bearer("office_v6"), "2001:db9::1", {}, {}, 403, "ip_not_allowed", id="ipv6-refused"
    ),
    pytest.param(bearer("office"), "::ffff:192.0.2.10", {}, {}, 200, None, id="ipv4-mapped-ipv6"),
    pytest.param(
        with_headers(bearer("office"), x_forwarded_for="203.0.113.5, 192.0.2.10"),
        PROXY,
        PROXIED,
        {},
        200,
        None,
        id="behind-trusted-proxy",
    ),
    pytest.param(
        with_headers(bearer("office"), forwarded='for="[2001:db8::5]:443", for=192.0.2.9:8080'),
        PROXY,
        {**PROXIED, "proxy_header": "forwarded"},
        {},
        200,
        None,
        id="forwarded-for-behind-trusted-proxy",
    ),
    pytest.param(
        with_headers(bearer("office"), x_forwarded_for="192.0.2.10, 198.51.100.1"),
        PROXY,
        PROXIED,
        {},
        403,
        "ip_not_allowed",
        id="only-the-last-hop-counts",
    ),
    pytest.param(
        with_headers(bearer("office"), x_forwarded_for="192.0.2.10"),
        IP,
        PROXIED,
        {},
        403,
        "ip_not_allowed",
        id="spoofed-xff-from-untrusted-peer",
    ),
    pytest.param(
        with_headers(bearer("office"), x_forwarded_for="192.0.2.10"),
        IP,
        {},
        {},
        403,
        "ip_not_allowed",
        id="spoofed-xff-without-proxy-setting",
    ),
    pytest.param(
        with_headers(bearer("office"), x_forwarded_for="unknown"),
        PROXY,
        PROXIED,
        {},
        403,
        "ip_not_allowed",
        id="unparsable-forwarded-fails-closed",
    ),
    pytest.param(bearer("office_scoped"), "192.0.2.7", READ, {}, 200, None, id="ip-and-scope"),
    pytest.param(
        bearer("office_scoped"), IP, WRITE, {}, 403, "ip_not_allowed", id="ip-checked-before-scope"
    ),
    # -- legacy switch ------------------------------------------------------
    pytest.param(basic("org_on", "old-secret-on"), IP, {}, {}, 200, None, id="legacy-enabled"),
    pytest.param(
        basic("org_off", "old-secret-off"), IP, {}, {}, 401, "legacy_disabled", id="legacy-disabled"
    ),
    pytest.param(
        basic("org_off", "wrong"),
        IP,
        {},
        {},
        401,
        "invalid_token",
        id="legacy-disabled-wrong-secret",
    ),
]


def answers(world: World, headers: dict[str, str], client_ip: str, options, verifier_options):
    """(status, headers, body) from each adapter, the request coming from ``client_ip``."""
    results: dict[str, Any] = {}
    verifier_options = {"password_hasher": cheap_hasher(), **verifier_options}
    app = starlette_app(AsyncVerifier(world.store, **verifier_options), **options)
    with TestClient(app, client=(client_ip, 50000)) as tc:
        s = tc.get("/whoami", headers=headers)
        results["starlette"] = (s.status_code, s.headers, s.content)
    environ = {"REMOTE_ADDR": client_ip}
    flask = flask_app(Verifier(world.store, **verifier_options), **options).test_client()
    r = flask.get("/whoami", headers=headers, environ_base=environ)
    results["flask"] = (r.status_code, r.headers, r.data)
    wsgi = Client(wsgi_app(Verifier(world.store, **verifier_options), **options))
    r = wsgi.get("/whoami", headers=headers, environ_base=environ)
    results["wsgi"] = (r.status_code, r.headers, r.data)
    return {k: normalised(*v) for k, v in results.items()}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@pytest.mark.parametrize(
    ("headers", "client_ip", "options", "verifier_options", "status", "code"), CASES
)
def test_every_adapter_authorizes_the_same(
    world, headers, client_ip, options, verifier_options, status, code
):
    results = answers(world, headers(world), client_ip, options, verifier_options)
    assert results["starlette"] == results["flask"] == results["wsgi"], results
    got_status, _got_headers, body = results["starlette"]
    assert got_status == status, body
    if code is not None:
        assert json.loads(body)["code"] == code


def test_a_role_change_takes_effect_at_once_everywhere():
    world = build_world()
    token = world.tokens["editor"]
    headers = {"authorization": f"Bearer {token}"}
    apps: dict[str, Any] = {
        "starlette": TestClient(starlette_app(AsyncVerifier(world.store, cache_ttl=3600), **WRITE)),
        "flask": flask_app(Verifier(world.store, cache_ttl=3600), **WRITE).test_client(),
        "wsgi": Client(wsgi_app(Verifier(world.store, cache_ttl=3600), **WRITE)),
    }
    for client in apps.values():  # warm every cache
        assert client.get("/whoami", headers=headers).status_code == 200
    world.manager.put_role("org_a", "editor", ["drive:read"])  # write taken away
    for name, client in apps.items():
        assert client.get("/whoami", headers=headers).status_code == 403, name
    world.manager.put_role("org_a", "editor", ["drive:*"])
    for name, client in apps.items():
        assert client.get("/whoami", headers=headers).status_code == 200, name
    world.manager.delete_role("org_a", "editor")
    for name, client in apps.items():
        assert client.get("/whoami", headers=headers).status_code == 403, name


def test_disabling_legacy_takes_effect_at_once_everywhere():
    world = build_world()
    headers = basic("org_on", "old-secret-on")(world)
    apps: dict[str, Any] = {
        "starlette": TestClient(starlette_app(AsyncVerifier(world.store, cache_ttl=3600))),
        "flask": flask_app(Verifier(world.store, cache_ttl=3600)).test_client(),
        "wsgi": Client(wsgi_app(Verifier(world.store, cache_ttl=3600))),
    }
    for client in apps.values():
        assert client.get("/whoami", headers=headers).status_code == 200
    world.manager.disable_legacy("org_on")
    for name, client in apps.items():
        r = client.get("/whoami", headers=headers)
        assert r.status_code == 401, name
        body = r.json() if hasattr(r, "json") and callable(r.json) else json.loads(r.data)
        assert body["code"] == "legacy_disabled"
        assert "Org Credential" in body["detail"]

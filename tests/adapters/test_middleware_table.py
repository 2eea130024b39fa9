"""One table of requests, answered identically by every adapter.

Each case runs through the Starlette middleware, the Flask extension and the
bare WSGI middleware; status, body and the headers that matter must be the
same bytes everywhere.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth._core.tokens import format_token, parse_token
from tests.apps import flask_app, starlette_app, wsgi_app

COMPARED_HEADERS = ("content-type", "www-authenticate", "retry-after", "cache-control")


class BrokenStore(InMemoryKeyStore):
    """A store whose reads fail, like a database that went away."""

    def get_key(self, key_id):
        raise ConnectionError("database unreachable")

    async def aget_key(self, key_id):
        raise ConnectionError("database unreachable")


@dataclass
class World:
    tokens: dict[str, str]
    store: InMemoryKeyStore


def build_world(store: InMemoryKeyStore) -> World:
    m = KeyManager(store)
    past = datetime.now(UTC) - timedelta(days=1)
    t = {
        "good": m.create_key("org_a", "billing-sync prod", scopes=["drive:*"]).token,
        "reader": m.create_key("org_a", "reporting", scopes=["drive:read"]).token,
        "unrestricted": m.create_key("org_b", "ops console").token,
        "expired": m.create_key("org_a", "old import", expires_at=past).token,
    }
    disabled = m.create_key("org_a", "paused partner")
    m.disable_key(disabled.key.key_id)
    t["disabled"] = disabled.token
    deleted = m.create_key("org_a", "retired partner")
    m.delete_key(deleted.key.key_id)
    t["deleted"] = deleted.token
    rotating = m.create_key("org_a", "nightly export")
    t["rotated_new"] = m.rotate_key(rotating.key.key_id, grace=timedelta(hours=1)).token
    t["rotated_old_in_grace"] = rotating.token
    cut = m.create_key("org_a", "compromised laptop")
    m.rotate_key(cut.key.key_id, grace=timedelta(0))
    t["rotated_old_no_grace"] = cut.token
    parsed = parse_token(t["good"])
    assert parsed is not None
    t["wrong_secret"] = format_token(parsed.key_id, bytes(32))
    t["unknown_key"] = format_token("a" * 20, parsed.seed)
    t["bad_checksum"] = t["good"][:-1] + ("A" if t["good"][-1] != "A" else "B")
    m.import_legacy_key("org_legacy", "old-system-secret")
    m.import_legacy_key("org_legacy_off", "paused-legacy-secret")
    m.disable_legacy("org_legacy_off")
    return World(t, store)


def bearer(name: str):
    return lambda w: {"authorization": f"Bearer {w.tokens[name]}"}


def basic(org: str, secret: str):
    value = base64.b64encode(f"{org}:{secret}".encode()).decode()
    return lambda w: {"authorization": f"Basic {value}"}


def raw(value: str):
    return lambda w: {"authorization": value}


# (headers builder, path, expected status, expected code or None for success)
CASES = [
    pytest.param(lambda w: {}, "/whoami", 401, "missing_credentials", id="no-header"),
    pytest.param(raw("Digest abc"), "/whoami", 401, "missing_credentials", id="unsupported-scheme"),
    pytest.param(raw("Bearer"), "/whoami", 401, "invalid_token", id="bearer-without-token"),
    pytest.param(raw("Bearer not-a-token"), "/whoami", 401, "invalid_token", id="garbage-token"),
    pytest.param(bearer("bad_checksum"), "/whoami", 401, "invalid_token", id="bad-checksum"),
    pytest.param(bearer("unknown_key"), "/whoami", 401, "invalid_token", id="unknown-key"),
    pytest.param(bearer("wrong_secret"), "/whoami", 401, "invalid_token", id="wrong-secret"),
    pytest.param(bearer("deleted"), "/whoami", 401, "invalid_token", id="deleted-key"),
    pytest.param(bearer("disabled"), "/whoami", 401, "key_disabled", id="disabled-key"),
    pytest.param(bearer("expired"), "/whoami", 401, "key_expired", id="expired-key"),
    pytest.param(bearer("rotated_old_no_grace"), "/whoami", 401, "key_expired", id="rotated-out"),
    pytest.param(bearer("rotated_old_in_grace"), "/whoami", 200, None, id="rotated-in-grace"),
    pytest.param(bearer("rotated_new"), "/whoami", 200, None, id="rotated-successor"),
    pytest.param(bearer("good"), "/whoami", 200, None, id="valid-key"),
    pytest.param(
        lambda w: {"authorization": f"bearer   {w.tokens['good']}"},
        "/whoami",
        200,
        None,
        id="scheme-case-and-spaces",
    ),
    pytest.param(bearer("unrestricted"), "/whoami", 200, None, id="unrestricted-key"),
    pytest.param(
        lambda w: {"authorization": f"Bearer {w.tokens['good']}, Bearer {w.tokens['reader']}"},
        "/whoami",
        400,
        "invalid_request",
        id="two-credentials",
    ),
    pytest.param(raw("Bearer " + "x" * 5000), "/whoami", 400, "invalid_request", id="huge-header"),
    pytest.param(basic("org_legacy", "old-system-secret"), "/whoami", 200, None, id="legacy-ok"),
    pytest.param(basic("org_legacy", "wrong"), "/whoami", 401, "invalid_token", id="legacy-wrong"),
    pytest.param(
        basic("nobody", "old-system-secret"),
        "/whoami",
        401,
        "invalid_token",
        id="legacy-unknown-org",
    ),
    pytest.param(raw("Basic !!notbase64"), "/whoami", 401, "invalid_token", id="basic-garbage"),
    pytest.param(raw("Bearer old-system-secret"), "/whoami", 200, None, id="legacy-as-bearer"),
    pytest.param(
        raw("bearer   old-system-secret "), "/whoami", 200, None, id="legacy-as-bearer-spaced"
    ),
    pytest.param(
        raw("Bearer old-system-secreT"), "/whoami", 401, "invalid_token", id="legacy-bearer-wrong"
    ),
    pytest.param(
        raw("Bearer paused-legacy-secret"),
        "/whoami",
        401,
        "legacy_disabled",
        id="legacy-bearer-disabled",
    ),
    pytest.param(
        basic("org_legacy_off", "paused-legacy-secret"),
        "/whoami",
        401,
        "legacy_disabled",
        id="legacy-basic-disabled",
    ),
    pytest.param(lambda w: {}, "/health", 200, None, id="exempt-exact"),
    pytest.param(lambda w: {}, "/public/info", 200, None, id="exempt-prefix"),
    pytest.param(bearer("disabled"), "/health", 200, None, id="exempt-ignores-credentials"),
    pytest.param(lambda w: {}, "/nope", 401, "missing_credentials", id="unknown-path-still-401"),
]


def _flask_client(world: World, **options) -> FlaskClient:
    return flask_app(Verifier(world.store), **options).test_client()


def answers(world: World, headers, path, **options):
    """(status, compared headers, body) from each adapter."""
    results = {}
    with TestClient(starlette_app(AsyncVerifier(world.store), **options)) as tc:
        s = tc.get(path, headers=headers(world))
        results["starlette"] = (s.status_code, s.headers, s.content)
    clients: tuple[tuple[str, FlaskClient | Client], ...] = (
        ("flask", _flask_client(world, **options)),
        ("wsgi", Client(wsgi_app(Verifier(world.store), **options))),
    )
    for name, client in clients:
        r = client.get(path, headers=headers(world))
        results[name] = (r.status_code, r.headers, r.data)
    return results


def normalised(status, headers, body):
    kept = {h: headers.get(h) for h in COMPARED_HEADERS if status >= 400}
    if status == 200 and body.startswith(b"{"):
        body = json.loads(body)
    return status, kept, body


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(InMemoryKeyStore())


@pytest.mark.parametrize(("headers", "path", "status", "code"), CASES)
def test_every_adapter_answers_the_same(world, headers, path, status, code):
    results = {k: normalised(*v) for k, v in answers(world, headers, path).items()}
    assert results["starlette"] == results["flask"] == results["wsgi"], results
    got_status, got_headers, body = results["starlette"]
    assert got_status == status
    if code is None:
        return
    problem = json.loads(body)
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"] == f"urn:scout-auth:problem:{code}"
    assert got_headers["content-type"] == "application/problem+json"
    challenge = got_headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="api"')
    if code == "missing_credentials":
        assert "error=" not in challenge
    elif status == 401:
        assert 'error="invalid_token"' in challenge


SCOPE_CASES = [
    pytest.param("good", 200, None, id="wildcard-grants"),
    pytest.param("reader", 403, "insufficient_scope", id="missing-scope"),
    pytest.param("unrestricted", 200, None, id="unrestricted-grants"),
    pytest.param("disabled", 401, "key_disabled", id="state-before-scope"),
    pytest.param("wrong_secret", 401, "invalid_token", id="secret-before-scope"),
]


@pytest.mark.parametrize(("token", "status", "code"), SCOPE_CASES)
def test_required_scopes_answer_the_same(world, token, status, code):
    results = answers(world, bearer(token), "/whoami", required_scopes=["drive:write"])
    results = {k: normalised(*v) for k, v in results.items()}
    assert results["starlette"] == results["flask"] == results["wsgi"], results
    got_status, got_headers, body = results["starlette"]
    assert got_status == status
    if code == "insufficient_scope":
        assert got_headers["www-authenticate"] == (
            'Bearer realm="api", error="insufficient_scope", scope="drive:write"'
        )
        assert json.loads(body)["missing_scopes"] == ["drive:write"]


@pytest.mark.parametrize(
    ("token", "status"),
    [pytest.param("good", 200, id="granted"), pytest.param("reader", 403, id="missing")],
)
def test_route_level_scopes_answer_the_same(world, token, status):
    with TestClient(starlette_app(AsyncVerifier(world.store))) as client:
        s = client.get("/write", headers=bearer(token)(world))
    f = _flask_client(world).get("/write", headers=bearer(token)(world))
    assert s.status_code == f.status_code == status
    if status == 403:
        assert s.content == f.data
        assert s.headers["www-authenticate"] == f.headers["www-authenticate"]
    else:
        assert s.json() == f.get_json()


def test_store_down_is_503_everywhere_never_200():
    world = build_world(InMemoryKeyStore())
    broken = BrokenStore()
    broken._keys = world.store._keys  # same data, failing reads
    broken_world = World(world.tokens, broken)
    results = answers(broken_world, bearer("good"), "/whoami")
    results = {k: normalised(*v) for k, v in results.items()}
    assert results["starlette"] == results["flask"] == results["wsgi"]
    status, headers, body = results["starlette"]
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body)["code"] == "store_unavailable"


def test_custom_header_carries_a_bare_token(world):
    results = answers(
        world, lambda w: {"x-api-key": w.tokens["good"]}, "/whoami", header="X-API-Key"
    )
    assert {k: v[0] for k, v in results.items()} == {"starlette": 200, "flask": 200, "wsgi": 200}


@pytest.mark.parametrize(
    ("value", "status"),
    [
        pytest.param("old-system-secret", 200, id="legacy-secret"),
        pytest.param("old-system-secret-not", 401, id="wrong-legacy-secret"),
    ],
)
def test_custom_header_carries_a_legacy_secret(world, value, status):
    results = answers(world, lambda w: {"x-api-key": value}, "/whoami", header="X-API-Key")
    results = {k: normalised(*v) for k, v in results.items()}
    assert results["starlette"] == results["flask"] == results["wsgi"], results
    assert results["starlette"][0] == status
    if status == 200:
        assert results["starlette"][2] == {
            "org": "org_legacy",
            "key": "legacy:org_legacy",
            "name": "legacy",
            "kind": "legacy",
        }

"""``ScoutAuthBackend``: scout keys beside other auth in Starlette's AuthenticationMiddleware."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager
from scout_auth.audit import AuditBuffer, InMemoryAuditSink
from scout_auth.starlette import ScoutAuthBackend, on_auth_error, org_context
from tests._support import basic_authorization, cheap_hasher

OAUTH_TOKEN = "eyJhbGciOi.oauth.access-token"


class OAuthBackend(AuthenticationBackend):
    """Stands in for a session or OAuth backend the app already has."""

    async def authenticate(self, conn: HTTPConnection) -> Any:
        if conn.headers.get("authorization") == f"Bearer {OAUTH_TOKEN}":
            return AuthCredentials(["oauth"]), SimpleUser("alice")
        return None


class FirstOf(AuthenticationBackend):
    """The first backend that does not abstain (the pattern docs/middleware.md shows)."""

    def __init__(self, *backends: AuthenticationBackend) -> None:
        self.backends = backends

    async def authenticate(self, conn: HTTPConnection) -> Any:
        for backend in self.backends:
            result = await backend.authenticate(conn)
            if result is not None:
                return result
        return None


@pytest.fixture(scope="module")
def world():
    store = InMemoryKeyStore()
    manager = KeyManager(store, password_hasher=cheap_hasher())
    keys = {
        "reader": manager.create_key("org_a", "reader", scopes=["files:read"]).token,
        "writer": manager.create_key("org_a", "writer", scopes=["files:*"]).token,
    }
    paused = manager.create_key("org_a", "paused")
    manager.disable_key(paused.key.key_id)
    keys["paused"] = paused.token
    manager.import_legacy_key("org_old", "legacy-secret-1")
    return store, keys


def make_app(store: InMemoryKeyStore, audit: Any = None, **options: Any) -> Starlette:
    verifier = AsyncVerifier(store, password_hasher=cheap_hasher(), audit=audit)

    async def whoami(request: Request) -> JSONResponse:
        try:
            org = org_context(request).org_id
        except LookupError:
            org = None
        return JSONResponse(
            {
                "user": request.user.display_name if request.user.is_authenticated else None,
                "org": org,
            }
        )

    @requires("files:write")
    async def write(request: Request) -> JSONResponse:
        return JSONResponse({"org": org_context(request).org_id})

    backend = FirstOf(ScoutAuthBackend(verifier, **options), OAuthBackend())
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/write", write, methods=["POST"])],
        middleware=[Middleware(AuthenticationMiddleware, backend=backend, on_error=on_auth_error)],
    )


@pytest.mark.parametrize(
    ("headers", "status", "expect"),
    [
        pytest.param({}, 200, {"user": None, "org": None}, id="nothing: anonymous"),
        pytest.param(
            {"authorization": f"Bearer {OAUTH_TOKEN}"},
            200,
            {"user": "alice", "org": None},
            id="oauth-token: the next backend",
        ),
        pytest.param(
            {"authorization": "Digest abc"}, 200, {"user": None, "org": None}, id="other-scheme"
        ),
        pytest.param(
            {"authorization": "Bearer unknown-thing"},
            200,
            {"user": None, "org": None},
            id="unknown-bearer: abstains",
        ),
        pytest.param(
            {"authorization": "Bearer legacy-secret-1"},
            200,
            {"user": "legacy", "org": "org_old"},
            id="legacy-as-bearer",
        ),
        pytest.param(
            {"authorization": basic_authorization("org_old", "legacy-secret-1")},
            200,
            {"user": "legacy", "org": "org_old"},
            id="legacy-as-basic",
        ),
        pytest.param(
            {"authorization": basic_authorization("alice", "her-password")},
            200,
            {"user": None, "org": None},
            id="a-persons-basic-login: abstains",
        ),
    ],
)
def test_the_backend_authenticates_scout_credentials_and_abstains_otherwise(
    world, headers, status, expect
):
    store, _ = world
    with TestClient(make_app(store)) as client:
        r = client.get("/whoami", headers=headers)
    assert r.status_code == status
    assert r.json() == expect


def test_an_org_credential_authenticates_with_its_scopes(world):
    store, keys = world
    with TestClient(make_app(store)) as client:
        r = client.get("/whoami", headers={"authorization": f"Bearer {keys['reader']}"})
        assert r.json() == {"user": "reader", "org": "org_a"}
        # Starlette's @requires sees the key's scopes (wildcards included).
        assert client.post(
            "/write", headers={"authorization": f"Bearer {keys['writer']}"}
        ).json() == {"org": "org_a"}
        assert (
            client.post("/write", headers={"authorization": f"Bearer {keys['reader']}"}).status_code
            == 403
        )


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        pytest.param("paused", 401, "key_disabled", id="disabled-key"),
        pytest.param("malformed", 401, "invalid_token", id="malformed-scout-token"),
        pytest.param("two", 400, "invalid_request", id="two-credentials"),
    ],
)
def test_a_refused_scout_credential_is_problem_json_and_audited(world, value, status, code):
    store, keys = world
    authorization = {
        "paused": f"Bearer {keys['paused']}",
        "malformed": "Bearer scout_sk_" + "a" * 70,
        "two": f"Bearer {keys['reader']}, Bearer {keys['writer']}",
    }[value]
    sink = InMemoryAuditSink()
    buffer = AuditBuffer(sink)
    with TestClient(make_app(store, audit=buffer)) as client:
        r = client.get("/whoami", headers={"authorization": authorization})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert json.loads(r.content)["code"] == code
    if value == "paused":
        assert buffer.flush(timeout=10)
        assert [e.reason for e in sink.query(org_id="org_a").events] == ["key_disabled"]


def test_signed_requests_are_refused_not_half_checked(world):
    store, _ = world
    with TestClient(make_app(store)) as client:
        r = client.get("/whoami", headers={"signature-input": "sig=()", "signature": "sig=:AA==:"})
    assert r.status_code == 400
    assert "ScoutAuthMiddleware" in json.loads(r.content)["detail"]


def test_required_scopes_and_the_api_key_header(world):
    store, keys = world
    app = make_app(store, header="X-API-Key", required_scopes=["files:write"])
    with TestClient(app) as client:
        ok = client.get("/whoami", headers={"x-api-key": keys["writer"]})
        refused = client.get("/whoami", headers={"x-api-key": keys["reader"]})
        ignored = client.get("/whoami", headers={"authorization": f"Bearer {keys['writer']}"})
    assert ok.json() == {"user": "writer", "org": "org_a"}
    assert (refused.status_code, json.loads(refused.content)["code"]) == (
        403,
        "insufficient_scope",
    )
    assert ignored.json() == {"user": None, "org": None}  # not the configured header


@pytest.mark.parametrize("option", ["exempt_paths", "rules", "max_body_size", "buffer_signed_body"])
def test_options_a_backend_cannot_honour_are_refused(option):
    value: Any = {
        "exempt_paths": ["/x"],
        "rules": [],
        "max_body_size": 1,
        "buffer_signed_body": True,
    }
    with pytest.raises(TypeError, match=option):
        ScoutAuthBackend(AsyncVerifier(InMemoryKeyStore()), **{option: value[option]})


def test_other_backends_errors_keep_starlettes_answer():
    from starlette.authentication import AuthenticationError

    response = on_auth_error(None, AuthenticationError("nope"))  # type: ignore[arg-type]
    assert (response.status_code, response.body) == (400, b"nope")

"""The plain WSGI middleware around a bare werkzeug app."""

from __future__ import annotations

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, OrgContext, Verifier
from scout_auth.wsgi import ENVIRON_KEY, ERROR_KEY, ScoutAuthMiddleware


@pytest.fixture
def store():
    return InMemoryKeyStore()


seen: list[OrgContext | None] = []


@Request.application
def app(request: Request) -> Response:
    seen.append(request.environ.get(ENVIRON_KEY))
    return Response("ok")


def test_context_in_environ_and_exempt_is_none(store):
    token = KeyManager(store).create_key("org_a", "nightly export").token
    client = Client(ScoutAuthMiddleware(app, verifier=Verifier(store), exempt_paths=["/health"]))
    seen.clear()
    assert client.get("/x", headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/health").status_code == 200
    assert seen[0] is not None
    assert seen[0].org_id == "org_a"
    assert seen[1] is None


def test_app_is_never_reached_when_rejected(store):
    seen.clear()
    client = Client(ScoutAuthMiddleware(app, verifier=Verifier(store)))
    assert client.get("/x").status_code == 401
    assert seen == []


def test_on_error_gets_environ_and_error(store):
    calls = []

    def hook(environ, exc):
        calls.append((environ[ERROR_KEY] is exc, exc.code))
        return Response("custom", status=exc.status)

    client = Client(ScoutAuthMiddleware(app, verifier=Verifier(store), on_error=hook))
    r = client.get("/x", headers={"authorization": "Bearer nope"})
    assert (r.status_code, r.text) == (401, "custom")
    assert calls == [(True, "invalid_token")]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"exempt_paths": "/health"}, id="exempt-paths-as-string"),
        pytest.param({"exempt_paths": ["health"]}, id="exempt-path-without-slash"),
        pytest.param({"header": " "}, id="empty-header"),
        pytest.param({"required_scopes": "files:read"}, id="scopes-as-string"),
    ],
)
def test_bad_options_fail_in_the_constructor(store, options):
    with pytest.raises((TypeError, ValueError)):
        ScoutAuthMiddleware(app, verifier=Verifier(store), **options)


def test_middleware_needs_a_sync_verifier(store):
    with pytest.raises(TypeError):
        ScoutAuthMiddleware(app, verifier=AsyncVerifier(store))  # type: ignore[arg-type]

"""The Flask extension inside real Flask apps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask, g

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.exceptions import KeyDisabled
from scout_auth.flask import ScoutAuth, current_org, require_scopes
from scout_auth.wsgi import ENVIRON_KEY, ERROR_KEY


@pytest.fixture
def store():
    return InMemoryKeyStore()


@pytest.fixture
def token(store):
    return KeyManager(store).create_key("org_a", "reporting", scopes=["files:read"]).token


def auth(token):
    return {"authorization": f"Bearer {token}"}


def test_app_factory_with_init_app(store, token):
    ext = ScoutAuth(verifier=Verifier(store))

    def create_app():
        app = Flask(__name__)
        ext.init_app(app)

        @app.get("/me")
        def me():
            return {
                "org": current_org.org_id,
                "g": g.scout_org.key_name,
                "environ": app.extensions["scout_auth"] is ext,
            }

        return app

    client = create_app().test_client()
    assert client.get("/me", headers=auth(token)).get_json() == {
        "org": "org_a",
        "g": "reporting",
        "environ": True,
    }
    assert client.get("/me").status_code == 401


def test_exempt_decorator_and_current_org_outside_auth(store, token):
    app = Flask(__name__)
    ext = ScoutAuth(app, verifier=Verifier(store))

    @app.get("/status")
    @ext.exempt
    def status():
        try:
            _ = current_org.org_id
        except LookupError:
            return "anonymous"
        return "authenticated"

    client = app.test_client()
    assert client.get("/status").text == "anonymous"


def test_require_scopes_decorator(store, token):
    app = Flask(__name__)
    ScoutAuth(app, verifier=Verifier(store))

    @app.get("/read")
    @require_scopes("files:read")
    def read():
        return "ok"

    @app.post("/write")
    @require_scopes("files:read", "files:write")
    def write():
        return "ok"

    client = app.test_client()
    assert client.get("/read", headers=auth(token)).status_code == 200
    r = client.post("/write", headers=auth(token))
    assert r.status_code == 403
    assert r.headers["www-authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="files:read files:write"'
    )
    assert r.get_json()["missing_scopes"] == ["files:write"]


def test_auth_error_raised_by_a_view_is_answered(store, token):
    app = Flask(__name__)
    ScoutAuth(app, verifier=Verifier(store))

    @app.get("/x")
    def x():
        raise KeyDisabled()

    r = app.test_client().get("/x", headers=auth(token))
    assert r.status_code == 401
    assert json.loads(r.data)["code"] == "key_disabled"


def test_on_error_hook(store):
    app = Flask(__name__)
    seen = []

    def hook(exc):
        seen.append(exc.code)
        return app.response_class("nope", status=exc.status)

    ScoutAuth(app, verifier=Verifier(store), on_error=hook)

    @app.get("/x")
    def x():
        return "never"

    r = app.test_client().get("/x")
    assert (r.status_code, r.text, seen) == (401, "nope", ["missing_credentials"])


def test_rejection_is_recorded_in_environ(store):
    app = Flask(__name__)
    ScoutAuth(app, verifier=Verifier(store))
    captured: dict[str, Any] = {}

    @app.after_request
    def after(response):
        from flask import request

        captured["ctx"] = request.environ.get(ENVIRON_KEY)
        captured["err"] = request.environ.get(ERROR_KEY)
        return response

    app.test_client().get("/x")
    assert captured["ctx"] is None
    assert captured["err"].code == "missing_credentials"


def test_extension_needs_a_sync_verifier(store):
    with pytest.raises(TypeError):
        ScoutAuth(Flask(__name__), verifier=AsyncVerifier(store))  # type: ignore[arg-type]

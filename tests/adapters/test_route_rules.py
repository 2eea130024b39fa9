"""Route rules and FastAPI dependencies: scopes per method and path."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, OrgContext, Verifier
from scout_auth._adapters.options import AdapterOptions, ScopeRule
from scout_auth.fastapi import current_org, require_scopes
from scout_auth.starlette import ScoutAuthMiddleware
from tests.apps import flask_app, starlette_app, wsgi_app

RULES = [
    ("GET", "/whoami", ["files:read"]),
    ("POST", "/echo", ["files:write"]),
    ("*", "/admin/*", ["admin"]),
    ("GET", "/orgs/{org}/files", ["files:read"]),
]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        pytest.param("GET", "/whoami", ("base", "files:read"), id="exact"),
        pytest.param("POST", "/whoami", ("base",), id="other-method"),
        pytest.param("DELETE", "/admin/users/7", ("base", "admin"), id="prefix-any-method"),
        pytest.param("GET", "/orgs/acme/files", ("base", "files:read"), id="param-segment"),
        pytest.param("GET", "/orgs/acme/x/files", ("base",), id="param-is-one-segment"),
        pytest.param(
            "GET", "/whoami/", ("base", "files:read"), id="trailing-slash-spelling-is-governed"
        ),
        pytest.param("GET", "/Whoami", ("base",), id="case-sensitive"),
    ],
)
def test_scopes_for(method, path, expected):
    options = AdapterOptions.build(required_scopes=["base"], rules=RULES)
    assert options.scopes_for(method, path) == expected


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(("GET", "whoami", ["x"]), id="relative-path"),
        pytest.param(("GET", "/x", "files:read"), id="scopes-as-string"),
        pytest.param(("GET", "/x", []), id="no-scopes"),
    ],
)
def test_bad_rules_fail_at_construction(rule):
    with pytest.raises((TypeError, ValueError)):
        ScopeRule.parse(*rule)


@pytest.fixture(scope="module")
def world():
    store = InMemoryKeyStore()
    m = KeyManager(store)
    return store, {
        "reader": m.create_key("org_a", "reporting", scopes=["files:read"]).token,
        "writer": m.create_key("org_a", "uploader", scopes=["files:*"]).token,
    }


@pytest.mark.parametrize(
    ("token", "method", "path", "status"),
    [
        pytest.param("reader", "GET", "/whoami", 200, id="read-rule-granted"),
        pytest.param("reader", "POST", "/echo", 403, id="write-rule-missing"),
        pytest.param("writer", "POST", "/echo", 200, id="write-rule-wildcard"),
    ],
)
def test_rules_answer_the_same_in_every_adapter(world, token, method, path, status):
    store, tokens = world
    headers = {"authorization": f"Bearer {tokens[token]}"}
    with TestClient(starlette_app(AsyncVerifier(store), rules=RULES)) as tc:
        s = tc.request(method, path, headers=headers)
    f = (
        flask_app(Verifier(store), rules=RULES)
        .test_client()
        .open(path, method=method, headers=headers)
    )
    w = Client(wsgi_app(Verifier(store), rules=RULES)).open(path, method=method, headers=headers)
    assert s.status_code == f.status_code == w.status_code == status
    if status == 403:
        assert s.content == f.data == w.data
        assert json.loads(s.content)["missing_scopes"] == ["files:write"]
        assert s.headers["www-authenticate"] == (
            'Bearer realm="api", error="insufficient_scope", scope="files:write"'
        )


def test_fastapi_dependencies(world):
    store, tokens = world
    app = FastAPI()
    app.add_middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store))

    @app.get("/me")
    def me(org: Annotated[OrgContext, Depends(current_org)]) -> dict[str, str]:
        return {"org": org.org_id, "key": org.key_name}

    @app.post("/files")
    def upload(
        org: Annotated[OrgContext, Depends(require_scopes("files:write"))],
    ) -> dict[str, str]:
        return {"org": org.org_id}

    with TestClient(app) as client:
        reader = {"authorization": f"Bearer {tokens['reader']}"}
        assert client.get("/me", headers=reader).json() == {"org": "org_a", "key": "reporting"}
        denied = client.post("/files", headers=reader)
        assert denied.status_code == 403
        assert denied.headers["content-type"] == "application/problem+json"
        assert denied.json()["code"] == "insufficient_scope"
        writer = {"authorization": f"Bearer {tokens['writer']}"}
        assert client.post("/files", headers=writer).json() == {"org": "org_a"}
        assert client.get("/me").status_code == 401


def _outcome(status: int) -> str:
    # The test apps route differently (404 or a catch-all 200): what matters
    # is whether the middleware let the request through.
    return str(status) if status in (401, 403) else "through"


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        pytest.param("/dossiers/été", "403", id="rule-on-non-ascii-path"),
        pytest.param("/dossiers/ete", "through", id="ascii-neighbour-no-rule"),
        pytest.param("/public/déjà", "through", id="non-ascii-exempt-path"),
    ],
)
def test_non_ascii_paths_match_rules_and_exemptions_as_routing_sees_them(world, path, outcome):
    # WSGI servers hand PATH_INFO over as UTF-8 bytes decoded as latin-1 (PEP
    # 3333); a rule written for the decoded path must still match, or the
    # scopes it requires would not be asked for (fail open).
    store, tokens = world
    options: dict[str, Any] = {
        "rules": [("*", "/dossiers/é*", ["files:write"])],
        "exempt_paths": ["/public/déjà"],
    }
    sent = {} if path.startswith("/public") else {"authorization": f"Bearer {tokens['reader']}"}
    with TestClient(starlette_app(AsyncVerifier(store), **options)) as tc:
        s = tc.get(path, headers=sent).status_code
    f = flask_app(Verifier(store), **options).test_client().get(path, headers=sent).status_code
    w = Client(wsgi_app(Verifier(store), **options)).get(path, headers=sent).status_code
    assert (_outcome(s), _outcome(f), _outcome(w)) == (outcome, outcome, outcome)

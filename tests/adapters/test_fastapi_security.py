"""FastAPI the FastAPI way (issue 16): security schemes, scopes in the schema, optional auth.

No ``from __future__ import annotations``: FastAPI must resolve the
parameter annotations of the views defined inside the app factories.

The generated ``openapi.json`` is the contract: these tests read it.
"""

import json
from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI, Security
from starlette.testclient import TestClient

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, OrgContext
from scout_auth.fastapi import OrgDep, ScoutSecurity, add_exception_handlers, scout_security
from scout_auth.starlette import ScoutAuthMiddleware
from tests._support import cheap_hasher


@pytest.fixture(scope="module")
def keys():
    store = InMemoryKeyStore()
    manager = KeyManager(store, password_hasher=cheap_hasher())
    return store, {
        "reader": manager.create_key("org_a", "reader", scopes=["files:read"]).token,
        "writer": manager.create_key("org_a", "writer", scopes=["files:*"]).token,
    }


def middleware_app(store: InMemoryKeyStore) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        ScoutAuthMiddleware,
        verifier=AsyncVerifier(store, password_hasher=cheap_hasher()),
        exempt_paths=["/openapi.json", "/docs"],
    )

    @app.get("/files")
    def files(
        org: Annotated[OrgContext, Security(scout_security, scopes=["files:read"])],
    ) -> dict[str, str]:
        return {"org": org.org_id}

    @app.post("/files")
    def upload(
        org: Annotated[OrgContext, Security(scout_security, scopes=["files:write"])],
    ) -> dict[str, str]:
        return {"org": org.org_id}

    @app.get("/me")
    def me(org: OrgDep) -> dict[str, str]:
        return {"key": org.key_name}

    return app


def test_openapi_lists_the_scheme_and_each_operations_scopes(keys):
    store, _ = keys
    with TestClient(middleware_app(store)) as client:
        schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "ScoutAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "scout_sk_…",
            "description": "An Org Credential (`scout_sk_…`) or an org's legacy secret.",
        }
    }
    paths = schema["paths"]
    assert paths["/files"]["get"]["security"] == [{"ScoutAuth": ["files:read"]}]
    assert paths["/files"]["post"]["security"] == [{"ScoutAuth": ["files:write"]}]
    assert paths["/me"]["get"]["security"] == [{"ScoutAuth": []}]


def test_scopes_are_enforced_and_named_in_the_403(keys):
    store, tokens = keys
    with TestClient(middleware_app(store)) as client:
        reader = {"authorization": f"Bearer {tokens['reader']}"}
        writer = {"authorization": f"Bearer {tokens['writer']}"}
        assert client.get("/files", headers=reader).json() == {"org": "org_a"}
        refused = client.post("/files", headers=reader)
        assert client.post("/files", headers=writer).json() == {"org": "org_a"}
        assert client.get("/me", headers=writer).json() == {"key": "writer"}
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert json.loads(refused.content)["missing_scopes"] == ["files:write"]
    assert 'scope="files:write"' in refused.headers["www-authenticate"]


def dependency_only_app(store: InMemoryKeyStore, **options: object) -> FastAPI:
    """No middleware: one router protected by the dependency, one public."""
    scheme = ScoutSecurity(verifier=AsyncVerifier(store, password_hasher=cheap_hasher()), **options)  # type: ignore[arg-type]
    optional = ScoutSecurity(
        verifier=AsyncVerifier(store, password_hasher=cheap_hasher()),
        auto_error=False,
        scheme_name="ScoutAuthOptional",
    )
    app = FastAPI()
    add_exception_handlers(app)
    private = APIRouter(dependencies=[Security(scheme, scopes=["files:read"])])

    @private.get("/private/files")
    def private_files() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/public")
    def public() -> dict[str, str]:
        return {"ok": "anyone"}

    @app.get("/hello")
    def hello(org: Annotated[OrgContext | None, Security(optional)]) -> dict[str, str | None]:
        return {"org": None if org is None else org.org_id}

    app.include_router(private)
    return app


def test_dependency_only_mode_protects_some_routers_and_not_others(keys):
    store, tokens = keys
    with TestClient(dependency_only_app(store)) as client:
        assert client.get("/public").json() == {"ok": "anyone"}
        missing = client.get("/private/files")
        ok = client.get("/private/files", headers={"authorization": f"Bearer {tokens['reader']}"})
        bad = client.get("/private/files", headers={"authorization": "Bearer scout_sk_" + "a" * 70})
    assert ok.json() == {"ok": "yes"}
    assert (missing.status_code, json.loads(missing.content)["code"]) == (
        401,
        "missing_credentials",
    )
    assert (bad.status_code, json.loads(bad.content)["code"]) == (401, "invalid_token")
    assert bad.headers["content-type"] == "application/problem+json"


def test_optional_auth_gives_none_without_a_credential_but_refuses_a_bad_one(keys):
    store, tokens = keys
    with TestClient(dependency_only_app(store)) as client:
        assert client.get("/hello").json() == {"org": None}
        good = {"authorization": f"Bearer {tokens['reader']}"}
        assert client.get("/hello", headers=good).json() == {"org": "org_a"}
        bad = client.get("/hello", headers={"authorization": "Bearer scout_sk_" + "b" * 70})
    assert bad.status_code == 401


def test_an_api_key_header_scheme(keys):
    store, tokens = keys
    app = dependency_only_app(store, header="X-API-Key")
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
        ok = client.get("/private/files", headers={"x-api-key": tokens["reader"]})
    assert schema["components"]["securitySchemes"]["ScoutAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An Org Credential (`scout_sk_…`) in the `X-API-Key` header.",
    }
    assert ok.json() == {"ok": "yes"}


def test_a_credential_no_middleware_verified_is_never_trusted(keys):
    """``scout_security`` without a verifier on a route the middleware does not cover."""
    _, tokens = keys
    app = FastAPI()
    add_exception_handlers(app)

    @app.get("/oops")
    def oops(org: OrgDep) -> dict[str, str]:
        return {"org": org.org_id}

    with TestClient(app) as client:
        r = client.get("/oops", headers={"authorization": f"Bearer {tokens['writer']}"})
    assert r.status_code == 401
    assert "ScoutSecurity a verifier" in json.loads(r.content)["detail"]

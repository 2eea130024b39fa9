"""Threat table: route rules and exemptions under every mount style and method alias.

Issue 9 defects 1 and 2. Rules and exemptions must match what the
application routes on, whichever way it is mounted, and a ``GET`` rule must
govern every method the framework serves with the ``GET`` view. Each case
runs on every adapter and mount style a user has; a key with no scopes must
never reach a view that a rule protects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from flask import Blueprint, Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request as WRequest
from werkzeug.wrappers import Response as WResponse

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.flask import ScoutAuth
from scout_auth.starlette import ScoutAuthMiddleware
from scout_auth.wsgi import ScoutAuthMiddleware as WSGIMiddleware
from tests.behaviour.drivers import Answer, Seen, asgi, wsgi


@dataclass
class World:
    tokens: dict[str, str]
    store: InMemoryKeyStore


@pytest.fixture(scope="module")
def world() -> World:
    store = InMemoryKeyStore()
    m = KeyManager(store)
    tokens = {
        "none": m.create_key("org_a", "no scopes at all", scopes=[]).token,
        "reader": m.create_key("org_a", "reporting", scopes=["files:read"]).token,
        "writer": m.create_key("org_a", "uploader", scopes=["files:read", "files:write"]).token,
    }
    return World(tokens, store)


def rules(prefix: str) -> list[tuple[str, str, list[str]]]:
    return [
        ("GET", f"{prefix}/files", ["files:read"]),
        ("POST", f"{prefix}/files*", ["files:write"]),
    ]


def options(prefix: str) -> dict[str, Any]:
    return {"rules": rules(prefix), "exempt_paths": [f"{prefix}/health"]}


Call = Callable[..., Answer]


# -- the apps: one small API, mounted every way a user mounts it ---------------


def starlette_routes(seen: Seen) -> list[Route]:
    async def files(request: Request) -> PlainTextResponse:
        seen.calls += 1
        seen.bodies.append(await request.body())
        return PlainTextResponse("files")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return [Route("/files", files, methods=["GET", "POST"]), Route("/health", health)]


def starlette_root_path(store: InMemoryKeyStore, seen: Seen) -> Call:
    # uvicorn --root-path /api: scope["root_path"] = "/api", scope["path"] = "/api/files".
    middleware = [Middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store), **options(""))]
    app = Starlette(routes=starlette_routes(seen), middleware=middleware)
    return lambda method, path, **kw: asgi(app, method, path, root_path="/api", **kw)


def starlette_mount(store: InMemoryKeyStore, seen: Seen) -> Call:
    middleware = [Middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store), **options(""))]
    inner = Starlette(routes=starlette_routes(seen), middleware=middleware)
    outer = Starlette(routes=[Mount("/api", app=inner)])
    return lambda method, path, **kw: asgi(outer, method, "/api" + path, **kw)


def starlette_outer(store: InMemoryKeyStore, seen: Seen) -> Call:
    # The middleware on the outer app: it routes on the full path.
    inner = Starlette(routes=starlette_routes(seen))
    middleware = [Middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store), **options("/api"))]
    outer = Starlette(routes=[Mount("/api", app=inner)], middleware=middleware)
    return lambda method, path, **kw: asgi(outer, method, "/api" + path, **kw)


def fastapi_router(seen: Seen) -> APIRouter:
    router = APIRouter()

    @router.api_route("/files", methods=["GET", "HEAD", "POST"])
    async def files(request: Request) -> PlainTextResponse:
        seen.calls += 1
        seen.bodies.append(await request.body())
        return PlainTextResponse("files")

    @router.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    return router


def fastapi_subapp(store: InMemoryKeyStore, seen: Seen) -> Call:
    sub = FastAPI()
    sub.include_router(fastapi_router(seen))
    sub.add_middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store), **options(""))
    app = FastAPI()
    app.mount("/api", sub)
    return lambda method, path, **kw: asgi(app, method, "/api" + path, **kw)


def fastapi_prefix(store: InMemoryKeyStore, seen: Seen) -> Call:
    app = FastAPI()
    app.include_router(fastapi_router(seen), prefix="/api")
    app.add_middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store), **options("/api"))
    return lambda method, path, **kw: asgi(app, method, "/api" + path, **kw)


def werkzeug_app(seen: Seen) -> Callable[..., Any]:
    @WRequest.application
    def app(request: WRequest) -> WResponse:
        if request.path == "/health":
            return WResponse("ok")
        if request.path != "/files":
            return WResponse("not found", status=404)
        seen.calls += 1
        seen.bodies.append(request.get_data())
        return WResponse("files")

    return app


def wsgi_dispatcher(store: InMemoryKeyStore, seen: Seen) -> Call:
    protected = WSGIMiddleware(werkzeug_app(seen), verifier=Verifier(store), **options(""))
    outer = DispatcherMiddleware(WResponse("not found", status=404), {"/api": protected})
    return lambda method, path, **kw: wsgi(outer, method, "/api" + path, **kw)


def wsgi_script_name(store: InMemoryKeyStore, seen: Seen) -> Call:
    # gunicorn behind a proxy that strips /api: SCRIPT_NAME=/api, PATH_INFO=/files.
    protected = WSGIMiddleware(werkzeug_app(seen), verifier=Verifier(store), **options(""))
    return lambda method, path, **kw: wsgi(protected, method, path, script_name="/api", **kw)


def flask_views(target: Flask | Blueprint, seen: Seen) -> None:
    @target.route("/files", methods=["GET", "POST"])
    def files() -> str:
        from flask import request

        seen.calls += 1
        seen.bodies.append(request.get_data())
        return "files"

    @target.route("/health")
    def health() -> str:
        return "ok"


def flask_blueprint(store: InMemoryKeyStore, seen: Seen) -> Call:
    app = Flask(__name__)
    bp = Blueprint("api", __name__)
    flask_views(bp, seen)
    app.register_blueprint(bp, url_prefix="/api")
    ScoutAuth(app, verifier=Verifier(store), **options("/api"))
    return lambda method, path, **kw: wsgi(app, method, "/api" + path, **kw)


def flask_dispatcher(store: InMemoryKeyStore, seen: Seen) -> Call:
    app = Flask(__name__)
    flask_views(app, seen)
    ScoutAuth(app, verifier=Verifier(store), **options(""))
    outer = DispatcherMiddleware(WResponse("not found", status=404), {"/api": app})
    return lambda method, path, **kw: wsgi(outer, method, "/api" + path, **kw)


MOUNTS = [
    pytest.param(starlette_root_path, id="starlette-uvicorn-root-path"),
    pytest.param(starlette_mount, id="starlette-Mount"),
    pytest.param(starlette_outer, id="starlette-middleware-outside-Mount"),
    pytest.param(fastapi_subapp, id="fastapi-sub-application"),
    pytest.param(fastapi_prefix, id="fastapi-APIRouter-prefix"),
    pytest.param(wsgi_dispatcher, id="wsgi-DispatcherMiddleware"),
    pytest.param(wsgi_script_name, id="wsgi-SCRIPT_NAME"),
    pytest.param(flask_blueprint, id="flask-blueprint-url_prefix"),
    pytest.param(flask_dispatcher, id="flask-under-DispatcherMiddleware"),
]

# (method, path below the mount, key, expected status, whether the view runs)
CASES = [
    pytest.param("GET", "/files", "none", 403, False, id="GET-rule-key-without-scope"),
    pytest.param("HEAD", "/files", "none", 403, False, id="HEAD-served-by-GET-view"),
    pytest.param("get", "/files", "none", 403, False, id="lower-case-method"),
    pytest.param("Head", "/files", "none", 403, False, id="mixed-case-HEAD"),
    pytest.param("POST", "/files", "reader", 403, False, id="POST-rule-reader"),
    pytest.param("POST", "/files", "none", 403, False, id="POST-rule-no-scope"),
    pytest.param("GET", "/files", None, 401, False, id="no-credentials"),
    pytest.param("GET", "/files", "reader", 200, True, id="GET-reader-allowed"),
    pytest.param("HEAD", "/files", "reader", 200, True, id="HEAD-reader-allowed"),
    pytest.param("POST", "/files", "writer", 200, True, id="POST-writer-allowed"),
    pytest.param("GET", "/health", None, 200, False, id="exemption-under-the-mount"),
]


@pytest.mark.parametrize(("method", "path", "key", "status", "runs"), CASES)
@pytest.mark.parametrize("mount", MOUNTS)
def test_rules_and_exemptions_follow_routing(world, mount, method, path, key, status, runs):
    seen = Seen()
    call = mount(world.store, seen)
    headers = [] if key is None else [("authorization", f"Bearer {world.tokens[key]}")]
    answer = call(method, path, headers=headers)
    assert answer.raised is None
    assert answer.status == status, (answer.status, answer.body)
    assert seen.calls == (1 if runs else 0)
    if status in (401, 403):
        assert answer.headers["content-type"] == "application/problem+json"


def test_route_path_is_the_path_without_root_path():
    from scout_auth._adapters.gate import route_path

    assert route_path("/api/files", "/api") == "/files"
    assert route_path("/api", "/api") == "/"
    assert route_path("/apix/files", "/api") == "/apix/files"  # not under the mount
    assert route_path("/files", "/api") == "/files"  # old Starlette: path already stripped
    assert route_path("/files", "") == "/files"


def test_a_star_rule_covers_every_method(world):
    for method in ("OPTIONS", "PATCH", "DELETE", "PROPFIND", "head"):
        seen = Seen()
        protected = WSGIMiddleware(
            werkzeug_app(seen),
            verifier=Verifier(world.store),
            rules=[("*", "/files", ["files:admin"])],
        )
        answer = wsgi(
            protected, method, "/files", [("authorization", f"Bearer {world.tokens['writer']}")]
        )
        assert answer.status == 403, method
        assert seen.calls == 0

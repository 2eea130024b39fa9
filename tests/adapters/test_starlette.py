"""The Starlette (ASGI) middleware inside real Starlette apps."""

from __future__ import annotations

import contextlib
import json

import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.exceptions import InsufficientScope
from scout_auth.starlette import (
    SCOPE_KEY,
    OrgCredentials,
    OrgScopes,
    OrgUser,
    ScoutAuthMiddleware,
)


@pytest.fixture
def store():
    return InMemoryKeyStore()


@pytest.fixture
def keys(store):
    m = KeyManager(store)
    return {
        "reader": m.create_key("org_a", "reporting", scopes=["files:read"]).token,
        "admin": m.create_key("org_a", "ops console", scopes=["files:*"]).token,
        "unrestricted": m.create_key("org_b", "migration job").token,
    }


def auth(token):
    return {"authorization": f"Bearer {token}"}


def make_app(store, routes, **options):
    return Starlette(
        routes=routes,
        middleware=[Middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store), **options)],
    )


async def user_view(request: Request) -> JSONResponse:
    user = request.user
    assert isinstance(user, OrgUser)
    return JSONResponse(
        {
            "identity": user.identity,
            "display": user.display_name,
            "authenticated": user.is_authenticated,
            "scopes": list(request.auth.scopes),
            "ctx_org": request.scope[SCOPE_KEY].org_id,
        }
    )


def test_request_user_and_auth_carry_the_org(store, keys):
    with TestClient(make_app(store, [Route("/me", user_view)])) as client:
        body = client.get("/me", headers=auth(keys["reader"])).json()
    assert body == {
        "identity": "org_a",
        "display": "reporting",
        "authenticated": True,
        "scopes": ["files:read"],
        "ctx_org": "org_a",
    }


def test_request_auth_is_authcredentials_with_lazy_settable_scopes(store, keys):
    async def view(request: Request) -> JSONResponse:
        creds = request.auth
        assert isinstance(creds, AuthCredentials)
        assert isinstance(creds, OrgCredentials)
        first = creds.scopes
        assert isinstance(first, OrgScopes)
        assert creds.scopes is first  # built once, then kept
        assert "files:read" in first
        assert "billing:write" not in first
        creds.scopes = ["replaced"]  # writable, as on AuthCredentials
        return JSONResponse({"scopes": list(first), "after": request.auth.scopes})

    with TestClient(make_app(store, [Route("/me", view)])) as client:
        body = client.get("/me", headers=auth(keys["reader"])).json()
    assert body == {"scopes": ["files:read"], "after": ["replaced"]}


@pytest.mark.parametrize(
    ("key", "status"),
    [
        pytest.param("reader", 200, id="exact-scope"),
        pytest.param("admin", 200, id="wildcard-scope"),
        pytest.param("unrestricted", 200, id="unrestricted-key"),
    ],
)
def test_starlette_requires_works_unchanged(store, keys, key, status):
    @requires("files:read")
    async def view(request):
        return PlainTextResponse("ok")

    @requires("billing:write")
    async def other(request):
        return PlainTextResponse("ok")

    with TestClient(make_app(store, [Route("/r", view), Route("/w", other)])) as client:
        assert client.get("/r", headers=auth(keys[key])).status_code == status
        expected = 200 if key == "unrestricted" else 403
        assert client.get("/w", headers=auth(keys[key])).status_code == expected


def test_exempt_path_sets_unauthenticated_user(store):
    async def view(request):
        return JSONResponse(
            {
                "auth": request.user.is_authenticated,
                "scopes": request.auth.scopes,
                "ctx": request.scope[SCOPE_KEY],
            }
        )

    with TestClient(make_app(store, [Route("/health", view)], exempt_paths=["/health"])) as client:
        assert client.get("/health").json() == {"auth": False, "scopes": [], "ctx": None}


def test_lifespan_passes_through(store):
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(
        routes=[],
        lifespan=lifespan,
        middleware=[Middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store))],
    )
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync-hook", "async-hook"])
def test_on_error_hook_can_answer(store, is_async):
    seen = []

    def hook(conn, exc):
        seen.append((conn.url.path, exc.code))
        return PlainTextResponse(f"custom {exc.code}", status_code=exc.status)

    async def ahook(conn, exc):
        return hook(conn, exc)

    app = make_app(store, [Route("/x", user_view)], on_error=ahook if is_async else hook)
    with TestClient(app) as client:
        r = client.get("/x")
    assert (r.status_code, r.text) == (401, "custom missing_credentials")
    assert seen == [("/x", "missing_credentials")]


def test_on_error_returning_none_keeps_the_default(store):
    app = make_app(store, [Route("/x", user_view)], on_error=lambda conn, exc: None)
    with TestClient(app) as client:
        r = client.get("/x")
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.anyio
async def test_auth_error_after_response_started_is_not_swallowed(store, keys):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise InsufficientScope(["x"], ["x"])

    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    mw = ScoutAuthMiddleware(app, verifier=AsyncVerifier(store))
    headers = [(b"authorization", f"Bearer {keys['reader']}".encode())]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    with pytest.raises(InsufficientScope):
        await mw(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"]  # no second response


def test_middleware_needs_an_async_verifier(store):
    with pytest.raises(TypeError):
        ScoutAuthMiddleware(Starlette(), verifier=Verifier(store))  # type: ignore[arg-type]


async def ws_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"org": websocket.scope[SCOPE_KEY].org_id})
    await websocket.close()


def test_websocket_handshake_is_authenticated(store, keys):
    app = make_app(store, [WebSocketRoute("/ws", ws_endpoint)])
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers=auth(keys["reader"])) as ws:
            assert ws.receive_json() == {"org": "org_a"}
        with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/ws"):
            pass
        assert denied.value.status_code == 401
        assert json.loads(denied.value.content)["code"] == "missing_credentials"


@pytest.mark.anyio
async def test_websocket_without_denial_extension_closes_1008(store):
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("app reached without credentials")

    mw = ScoutAuthMiddleware(app, verifier=AsyncVerifier(store))
    scope = {"type": "websocket", "path": "/ws", "headers": [], "extensions": {}}
    await mw(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "missing_credentials"}]


def test_response_is_streamed_untouched(store, keys):
    async def stream(request):
        async def gen():
            for i in range(3):
                yield f"chunk{i};".encode()

        from starlette.responses import StreamingResponse

        return StreamingResponse(gen(), media_type="text/plain")

    with TestClient(make_app(store, [Route("/s", stream)])) as client:
        assert client.get("/s", headers=auth(keys["reader"])).text == "chunk0;chunk1;chunk2;"


def test_custom_response_type_is_allowed_from_hook(store):
    app = make_app(store, [Route("/x", user_view)], on_error=lambda c, e: Response(status_code=418))
    with TestClient(app) as client:
        assert client.get("/x").status_code == 418

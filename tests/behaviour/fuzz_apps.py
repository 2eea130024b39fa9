"""The fuzz apps and the credentials the adapter fuzz properties send.

Per adapter, the apps of tests/apps.py and a *catch-all* app that answers
200 to every path and method, so the adapter (its exemptions and
``rules=``) is the only thing between a request and a 2xx. Every app is
configured alike: :data:`RULES`, a small ``max_body_size`` (the 413 path is
reachable) and 127.0.0.0/8 and ::1 as trusted proxies (the forwarding
headers are parsed when the peer is one of them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI
from fastapi import Request as FastAPIRequest
from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.routing import Rule

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth._core.tokens import format_token, parse_token
from scout_auth.fastapi import current_org
from scout_auth.fastapi import require_scopes as fastapi_require_scopes
from scout_auth.flask import ScoutAuth
from scout_auth.starlette import ScoutAuthMiddleware
from tests._support import cheap_hasher
from tests.apps import EXEMPT, flask_app, starlette_app, wsgi_app

__all__ = [
    "ASGI_ADAPTERS",
    "HOST",
    "OPTIONS",
    "RULES",
    "TARGETS",
    "World",
    "fastapi_app",
    "world",
]

#: The route rules every fuzz app is configured with.
RULES = [("*", "/write*", ["drive:write"]), ("GET", "/read", ["drive:read"])]
OPTIONS: dict[str, Any] = {
    "rules": RULES,
    "max_body_size": 1024,
    # The forwarding headers are parsed when the peer is 127.0.0.1 or ::1.
    "trusted_proxies": ["127.0.0.0/8", "::1"],
}
HOST = "testserver"
ASGI_ADAPTERS = frozenset({"starlette", "fastapi"})
#: (adapter, app): the apps of tests/apps.py, and catch-all apps whose only
#: protection is the adapter (every path, every method answers 200).
TARGETS = [
    ("starlette", "apps"),
    ("starlette", "catchall"),
    ("fastapi", "apps"),
    ("fastapi", "catchall"),
    ("flask", "apps"),
    ("flask", "catchall"),
    ("wsgi", "catchall"),  # tests/apps.py's bare WSGI app answers 200 everywhere
]
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"]


@dataclass
class World:
    """One store and the credentials the properties send."""

    store: InMemoryKeyStore
    #: A valid key granting no scope at all (``scopes=[]``).
    empty: str
    #: Like ``empty``, but only from 10.0.0.0/8.
    empty_ip_bound: str
    #: A key granting ``drive:*`` (signs the near-valid requests).
    signer: str
    #: Tokens that must never authenticate (disabled, deleted, expired, forged).
    invalid: list[str]
    _apps: dict[tuple[str, str], Any] = field(default_factory=dict)

    def app(self, adapter: str, kind: str) -> Any:
        """The fuzz app for ``(adapter, kind)``, built once."""
        key = (adapter, kind)
        if key not in self._apps:
            self._apps[key] = _build_app(self.store, adapter, kind)
        return self._apps[key]


def _build_world() -> World:
    store = InMemoryKeyStore()
    m = KeyManager(store, password_hasher=cheap_hasher())
    empty = m.create_key("org_a", "fuzz no scopes", scopes=[]).token
    bound = m.create_key("org_a", "fuzz ip bound", scopes=[], allowed_ips=["10.0.0.0/8"]).token
    signer = m.create_key("org_a", "fuzz signer", scopes=["drive:*"]).token
    disabled = m.create_key("org_a", "fuzz paused")
    m.disable_key(disabled.key.key_id)
    deleted = m.create_key("org_a", "fuzz retired")
    m.delete_key(deleted.key.key_id)
    expired = m.create_key(
        "org_a", "fuzz expired", expires_at=datetime.now(UTC) - timedelta(days=1)
    )
    m.import_legacy_key("org_legacy", "old-system-secret")
    parsed = parse_token(signer)
    assert parsed is not None
    invalid = [
        disabled.token,
        deleted.token,
        expired.token,
        format_token(parsed.key_id, bytes(32)),  # right key id, wrong secret
        format_token("a" * 20, parsed.seed),  # unknown key id
        signer[:-1] + ("A" if signer[-1] != "A" else "B"),  # bad checksum
    ]
    return World(store, empty, bound, signer, invalid)


world = _build_world()


# -- apps --------------------------------------------------------------------


def _routed_text(method: str, path: str) -> str:
    return json.dumps({"method": method, "path": path})


class _CatchAll:
    """An ASGI endpoint for every method (a function endpoint would be GET only)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        await request.body()  # a signed body is checked as it is read
        text = _routed_text(request.method, "/" + request.path_params["rest"])
        await PlainTextResponse(text)(scope, receive, send)


def _starlette_catchall(verifier: AsyncVerifier) -> Starlette:
    return Starlette(
        routes=[Route("/{rest:path}", _CatchAll())],
        middleware=[
            Middleware(ScoutAuthMiddleware, verifier=verifier, exempt_paths=EXEMPT, **OPTIONS)
        ],
    )


def fastapi_app(verifier: AsyncVerifier, kind: str = "apps", **options: Any) -> FastAPI:
    """The FastAPI fuzz app: the routes of tests/apps.py as dependencies, or a catch-all."""
    app = FastAPI()
    app.add_middleware(
        ScoutAuthMiddleware, verifier=verifier, exempt_paths=EXEMPT, **{**OPTIONS, **options}
    )
    if kind == "catchall":

        @app.api_route("/{rest:path}", methods=_ALL_METHODS)
        async def anything(rest: str, request: FastAPIRequest) -> Any:
            await request.body()
            return {"method": request.method, "path": "/" + rest}

        return app
    read_scope = Depends(fastapi_require_scopes("drive:read"))
    write_scope = Depends(fastapi_require_scopes("drive:write"))
    org = Depends(current_org)

    @app.get("/health")
    @app.get("/public/info")
    def health() -> Any:
        return PlainTextResponse("ok")

    @app.get("/whoami")
    def whoami(ctx: Any = org) -> Any:
        return {"org": ctx.org_id}

    @app.api_route("/write", methods=["GET", "POST"])
    def write(ctx: Any = write_scope) -> Any:
        return {"org": ctx.org_id}

    @app.get("/read")
    def read(ctx: Any = read_scope) -> Any:
        return {"org": ctx.org_id}

    @app.api_route("/echo", methods=["POST", "PUT"])
    async def echo(request: FastAPIRequest, ctx: Any = org) -> Any:
        return {"org": ctx.org_id, "bytes": len(await request.body())}

    return app


def _flask_catchall(verifier: Verifier) -> Flask:
    app = Flask("fuzz_catchall")
    ScoutAuth(app, verifier=verifier, exempt_paths=EXEMPT, **OPTIONS)
    # Rules added to the map directly take every method (add_url_rule would not).
    app.url_map.add(Rule("/", endpoint="anything", defaults={"rest": ""}))
    app.url_map.add(Rule("/<path:rest>", endpoint="anything"))

    def anything(rest: str) -> str:
        from flask import request

        request.get_data()
        return _routed_text(request.method, "/" + rest)

    app.view_functions["anything"] = anything
    return app


def _build_app(store: InMemoryKeyStore, adapter: str, kind: str) -> Any:
    hasher = cheap_hasher()
    if adapter == "starlette":
        averifier = AsyncVerifier(store, password_hasher=hasher)
        if kind == "apps":
            return starlette_app(averifier, **OPTIONS)
        return _starlette_catchall(averifier)
    if adapter == "fastapi":
        return fastapi_app(AsyncVerifier(store, password_hasher=hasher), kind)
    verifier = Verifier(store, password_hasher=hasher)
    if adapter == "flask":
        app = flask_app(verifier, **OPTIONS) if kind == "apps" else _flask_catchall(verifier)
        app.config["PROPAGATE_EXCEPTIONS"] = True  # an exception escapes: seen as a 500
        return app
    return wsgi_app(verifier, **OPTIONS)

"""The same small API three times: Starlette, Flask and a bare WSGI app.

Used by the behavioural table (every case must be answered identically) and
the integration tests.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Flask, request
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from werkzeug.wrappers import Request as WRequest
from werkzeug.wrappers import Response as WResponse

from scout_auth import AsyncVerifier, OrgContext, Verifier
from scout_auth.flask import ScoutAuth, current_org
from scout_auth.flask import require_scopes as flask_require_scopes
from scout_auth.starlette import ScoutAuthMiddleware, org_context, require_scopes
from scout_auth.wsgi import ENVIRON_KEY
from scout_auth.wsgi import ScoutAuthMiddleware as WSGIMiddleware

EXEMPT = ["/health", "/public/*"]


def describe(ctx: OrgContext) -> dict[str, Any]:
    return {"org": ctx.org_id, "key": ctx.key_id, "name": ctx.key_name, "kind": str(ctx.kind)}


def echo(ctx: OrgContext, body: bytes) -> dict[str, Any]:
    return {**describe(ctx), "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def starlette_app(verifier: AsyncVerifier, **options: Any) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse(describe(org_context(request)))

    async def write(request: Request) -> JSONResponse:
        return JSONResponse(describe(require_scopes(request, "drive:write")))

    @requires("drive:read")
    async def read(request: Request) -> JSONResponse:
        return JSONResponse(describe(org_context(request)))

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def echo_view(request: Request) -> JSONResponse:
        return JSONResponse(echo(org_context(request), await request.body()))

    options.setdefault("exempt_paths", EXEMPT)
    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/echo", echo_view, methods=["POST", "PUT"]),
            Route("/write", write, methods=["GET", "POST"]),
            Route("/read", read),
            Route("/health", health),
            Route("/public/info", health),
        ],
        middleware=[Middleware(ScoutAuthMiddleware, verifier=verifier, **options)],
    )


def flask_app(verifier: Verifier, **options: Any) -> Flask:
    app = Flask(__name__)
    options.setdefault("exempt_paths", EXEMPT)
    ScoutAuth(app, verifier=verifier, **options)

    @app.route("/whoami")
    def whoami() -> Any:
        return describe(current_org)

    @app.route("/echo", methods=["POST", "PUT"])
    def echo_view() -> Any:
        return echo(current_org, request.get_data())

    @app.route("/write", methods=["GET", "POST"])
    @flask_require_scopes("drive:write")
    def write() -> Any:
        return describe(current_org)

    @app.route("/read")
    @flask_require_scopes("drive:read")
    def read() -> Any:
        return describe(current_org)

    @app.route("/health")
    @app.route("/public/info")
    def health() -> str:
        return "ok"

    return app


def wsgi_app(verifier: Verifier, **options: Any) -> WSGIMiddleware:
    """A bare werkzeug app; its per-route scope checks raise like the others."""

    @WRequest.application
    def app(request: WRequest) -> WResponse:
        ctx = request.environ.get(ENVIRON_KEY)
        if ctx is None:  # exempt path
            return WResponse("ok", content_type="text/plain; charset=utf-8")
        if request.path == "/echo":
            return WResponse(
                json.dumps(echo(ctx, request.get_data())), content_type="application/json"
            )
        return WResponse(json.dumps(describe(ctx)), content_type="application/json")

    options.setdefault("exempt_paths", EXEMPT)
    return WSGIMiddleware(app, verifier=verifier, **options)

"""A small Starlette API protected by scout_auth.

Run it alone (an in-memory store with one bootstrap key printed at start)::

    python -m examples.starlette_app

or build it around your own store with :func:`create_app`.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, KeyStore
from scout_auth.starlette import ScoutAuthMiddleware, org_context, require_scopes


async def list_files(request: Request) -> JSONResponse:
    ctx = org_context(request)
    return JSONResponse({"org": ctx.org_id, "key": ctx.key_name, "files": ["q3-report.pdf"]})


async def upload_file(request: Request) -> JSONResponse:
    ctx = require_scopes(request, "files:write")  # 403 problem+json if not granted
    return JSONResponse({"org": ctx.org_id, "stored": len(await request.body())}, status_code=201)


@requires("files:read")  # Starlette's own decorator works too
async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"org": request.user.identity, "key": request.user.display_name})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app(store: KeyStore, **verifier_options: Any) -> Starlette:
    """The example API, protected by scout_auth over ``store``.

    ``verifier_options`` go to :class:`~scout_auth.AsyncVerifier` (``cache_ttl``…).
    """
    verifier = AsyncVerifier(store, **verifier_options)
    return Starlette(
        routes=[
            Route("/files", list_files, methods=["GET"]),
            Route("/files", upload_file, methods=["POST"]),
            Route("/whoami", whoami),
            Route("/health", health),
        ],
        middleware=[Middleware(ScoutAuthMiddleware, verifier=verifier, exempt_paths=["/health"])],
    )


if __name__ == "__main__":
    import uvicorn

    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_demo", "local development", scopes=["files:*"])
    print(f"curl -H 'Authorization: Bearer {new.token}' http://127.0.0.1:8000/files")
    uvicorn.run(create_app(store), host="127.0.0.1", port=8000)

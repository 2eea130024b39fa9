"""The app the browser tests drive: a protected API and the keys page, one key store.

``GET /login?as=admin`` signs the browser in with a test cookie:

* ``admin``: Alice, admin of ``org_1``;
* ``viewer``: Victor, viewer of ``org_1``;
* ``admin2``: Bea, admin of ``org_2``.

``GET /api/whoami`` is protected by scout_auth (an Org Credential as Bearer);
the keys page is mounted at ``/settings/api-keys``. :func:`attacker_app` is
another origin's page that posts a form at the create endpoint.
"""

from __future__ import annotations

import html
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from scout_auth import AsyncKeyManager, AsyncVerifier, InMemoryKeyStore, KeyVault
from scout_auth.audit import AuditBuffer
from scout_auth.manage import ManagementApp, Principal
from scout_auth.starlette import ScoutAuthMiddleware, org_context

MOUNT = "/settings/api-keys"
COOKIE = "test_login"

USERS = {
    "admin": Principal("alice@example.com", admin_orgs=frozenset({"org_1"})),
    "viewer": Principal("victor@example.com", viewer_orgs=frozenset({"org_1"})),
    "admin2": Principal("bea@example.com", admin_orgs=frozenset({"org_2"})),
}


def authorize(request: Request) -> Principal | None:
    """The test login: the cookie names a user of :data:`USERS`."""
    return USERS.get(request.cookies.get(COOKIE, ""))


async def login(request: Request) -> Response:
    who = request.query_params.get("as", "")
    if who not in USERS:
        return Response("unknown user", status_code=400)
    response = RedirectResponse(f"{MOUNT}/", status_code=303)
    response.set_cookie(COOKIE, who, httponly=True, samesite="lax")
    return response


async def whoami(request: Request) -> JSONResponse:
    ctx = org_context(request)
    return JSONResponse({"org": ctx.org_id, "key": ctx.key_id})


def create_app(store: InMemoryKeyStore) -> Starlette:
    """The host application: login, protected API, keys page."""
    audit = store.audit_sink()
    # cache_ttl=0: a switch in the page takes effect on the very next call;
    # a short flush interval: refusals reach the key's page within the test.
    verifier = AsyncVerifier(store, cache_ttl=0, audit=AuditBuffer(audit, flush_interval=0.05))
    protected = Starlette(
        routes=[Route("/whoami", whoami)],
        middleware=[Middleware(ScoutAuthMiddleware, verifier=verifier)],
    )
    # A key vault: the page offers recoverable keys and Reveal.
    vault = KeyVault({"browser-kek": secrets.token_bytes(32)})
    keys = ManagementApp(AsyncKeyManager(store, audit=audit, vault=vault), authorize=authorize)
    return Starlette(
        routes=[
            Route("/login", login),
            Mount(MOUNT, app=keys),
            Mount("/api", app=protected),
        ]
    )


def attacker_app(target: str) -> Starlette:
    """Another origin's page: an auto-submitting form at ``target`` (a cross-site POST)."""
    page = f"""<!doctype html><html><body>
<form id="f" method="post" action="{html.escape(target)}" enctype="text/plain">
<input name='{{"name":"planted","x":"' value='"}}'>
</form>
<script>document.getElementById("f").submit();</script>
</body></html>"""

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    return Starlette(routes=[Route("/", index)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Starlette) -> Iterator[int]:
    """``app`` under uvicorn on a free loopback port, in a background thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(5)

"""The example Starlette API with the Settings → API Keys page mounted beside it.

One store behind both: a key made in the page works against the API at once,
and stops the moment the page switches it off or deletes it.

``GET /demo/login`` signs the browser in as an admin of one org with a
cookie made for this process. It is a demo's stand-in for your real login
(``authorize`` is where your session goes): anyone who can open that URL is
admin, so serve it on loopback only, never in production.

    python -m examples.keys_app      # then open the printed URL
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from examples import starlette_app
from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyStore
from scout_auth.manage import ManagementApp, Principal

#: Where the keys page is mounted.
KEYS_PAGE = "/settings/api-keys"
#: The one-click demo login.
LOGIN = "/demo/login"
_COOKIE = "demo_session"


def create_app(
    store: KeyStore,
    *,
    org_id: str = "org_demo",
    user: str = "admin@acme.example",
    audit: Any = None,
    **verifier_options: Any,
) -> Starlette:
    """The example API at ``/``, the keys page at :data:`KEYS_PAGE`, a demo login at :data:`LOGIN`.

    ``audit``: the sink the page's history reads (default: the store's own
    when it has one, as the in-memory store does).
    """
    session = secrets.token_urlsafe(32)  # this process's only valid cookie
    admin = Principal(user, admin_orgs=frozenset({org_id}))

    def authorize(request: Request) -> Principal | None:
        sent = request.cookies.get(_COOKIE, "")
        return admin if hmac.compare_digest(sent.encode(), session.encode()) else None

    async def login(request: Request) -> Response:
        # Back to the page that sent us here, and only ever to the keys page.
        wanted = request.query_params.get("next", "")
        target = wanted if wanted.startswith(f"{KEYS_PAGE}/") else f"{KEYS_PAGE}/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(_COOKIE, session, httponly=True, samesite="strict")
        return response

    if audit is None and hasattr(store, "audit_sink"):
        audit = store.audit_sink()
    keys = ManagementApp(AsyncKeyManager(store, audit=audit), authorize=authorize, login_url=LOGIN)
    return Starlette(
        routes=[
            Route(LOGIN, login),
            Mount(KEYS_PAGE, app=keys),
            Mount("", app=starlette_app.create_app(store, **verifier_options)),
        ]
    )


if __name__ == "__main__":
    import uvicorn

    print(f"open http://127.0.0.1:8000{LOGIN} (signs you in as admin of org_demo)")
    uvicorn.run(create_app(InMemoryKeyStore()), host="127.0.0.1", port=8000)

"""Starlette (any ASGI app): a pure ASGI authentication middleware.

Example::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from scout_auth import AsyncVerifier, InMemoryKeyStore
    from scout_auth.starlette import ScoutAuthMiddleware

    verifier = AsyncVerifier(InMemoryKeyStore())
    app = Starlette(routes=[...], middleware=[
        Middleware(ScoutAuthMiddleware, verifier=verifier, exempt_paths=["/health"]),
    ])

Every HTTP request (and every websocket handshake) to a non-exempt path must
carry a valid credential; the org context is then attached as
``scope["auth"]`` / ``scope["user"]`` (so ``request.auth``, ``request.user``
and Starlette's ``@requires`` work unchanged) and under
``scope["scout_auth.org"]`` (see :func:`org_context`). Other requests are
answered with ``application/problem+json`` (401/403/400/503). An
:class:`~scout_auth.exceptions.AuthError` raised by the app before it
started its response (for example by :func:`require_scopes`) is answered the
same way.

To put scout keys *beside* session or OAuth authentication, inside
Starlette's own ``AuthenticationMiddleware``, use :class:`ScoutAuthBackend`
instead: it returns ``None`` for a request that carries no scout credential.
"""

from __future__ import annotations

from .auth import SCOPE_KEY, OrgCredentials, OrgScopes, OrgUser, org_context, require_scopes
from .backend import ScoutAuthBackend, ScoutAuthenticationError, on_auth_error
from .middleware import ErrorHandler, ScoutAuthMiddleware

__all__ = [
    "SCOPE_KEY",
    "ErrorHandler",
    "OrgCredentials",
    "OrgScopes",
    "OrgUser",
    "ScoutAuthBackend",
    "ScoutAuthMiddleware",
    "ScoutAuthenticationError",
    "on_auth_error",
    "org_context",
    "require_scopes",
]

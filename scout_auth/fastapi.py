"""FastAPI dependencies over :mod:`scout_auth.starlette`.

FastAPI is Starlette: protect the app with
:class:`~scout_auth.starlette.ScoutAuthMiddleware`, then ask for the org (or
for scopes) in a route's parameters::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from scout_auth import AsyncVerifier, OrgContext
    from scout_auth.fastapi import current_org, require_scopes
    from scout_auth.starlette import ScoutAuthMiddleware

    app = FastAPI()
    app.add_middleware(ScoutAuthMiddleware, verifier=AsyncVerifier(store))

    @app.post("/files")
    def upload(org: Annotated[OrgContext, Depends(require_scopes("files:write"))]):
        return {"org": org.org_id}

A missing scope raises :class:`~scout_auth.exceptions.InsufficientScope`,
which the middleware answers with 403 problem+json and
``WWW-Authenticate: Bearer error="insufficient_scope", scope="…"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import FastAPI, Security
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBearer, SecuritySchemeType
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from starlette.requests import Request
from starlette.responses import Response

from ._adapters.options import AdapterOptions
from ._adapters.requests import asgi_client_ip
from ._core.flow import check_scopes
from ._core.problem import problem_for
from ._core.records import CredentialKind, OrgContext
from ._drivers.observe import ACCEPTED, report
from ._drivers.verifier import AsyncVerifier
from .exceptions import AuthError, MissingCredentials
from .starlette import SCOPE_KEY, org_context
from .starlette import require_scopes as _require_scopes

# A module constant: reading the enum member per request costs a lookup more.
_LEGACY = CredentialKind.LEGACY

__all__ = [
    "OrgDep",
    "ScoutSecurity",
    "add_exception_handlers",
    "current_org",
    "require_scopes",
    "scout_security",
]


def current_org(request: Request) -> OrgContext:
    """Dependency: the verified org of the request."""
    return org_context(request)


def require_scopes(*scopes: str) -> Callable[[Request], OrgContext]:
    """Dependency factory: the verified org, provided it grants every scope in ``scopes``."""

    def dependency(request: Request) -> OrgContext:
        return _require_scopes(request, *scopes)

    dependency.__name__ = "require_scopes_" + "_".join(scopes).replace(":", "_")
    return dependency


class ScoutSecurity(SecurityBase):
    """A FastAPI security scheme for scout credentials: ``Security(scheme, scopes=[...])``.

    Being a ``SecurityBase``, it appears in ``openapi.json`` under
    ``components.securitySchemes`` (Swagger UI then shows **Authorize**), and
    each operation lists the scopes it asks for; a request that lacks one is
    refused with 403 ``insufficient_scope`` naming them.

    Two modes:

    * **Behind** :class:`~scout_auth.starlette.ScoutAuthMiddleware` (no
      ``verifier``): the middleware verified the request; the dependency
      checks its scopes and returns the org.
    * **Dependency only** (``verifier=``): no middleware; the dependency
      verifies the credential itself, so some routers can be protected and
      others not. Call :func:`add_exception_handlers` once so its refusals
      are answered with problem+json (the middleware does that otherwise).

    Args:
        verifier: An :class:`~scout_auth.AsyncVerifier` for the dependency
            only mode; ``None``: rely on the middleware.
        header: Where the credential is (default ``authorization``: an HTTP
            bearer scheme in the schema); any other header (``X-API-Key``)
            is an ``apiKey`` scheme of that header.
        scheme_name: The scheme's name in ``openapi.json``.
        description: Its description there.
        auto_error: ``False``: a request without a credential gets ``None``
            (optional auth); a credential presented and refused is still
            refused.
        trusted_proxies: As for the middleware (dependency only mode): whose
            ``X-Forwarded-For`` gives the client address IP allowlists check.

    Example::

        from typing import Annotated
        from fastapi import FastAPI, Security
        from scout_auth import OrgContext
        from scout_auth.fastapi import OrgDep, scout_security

        @app.get("/files")
        def files(org: Annotated[OrgContext, Security(scout_security, scopes=["files:read"])]):
            ...

        @app.get("/me")
        def me(org: OrgDep): ...
    """

    def __init__(
        self,
        *,
        verifier: AsyncVerifier | None = None,
        header: str = "authorization",
        scheme_name: str = "ScoutAuth",
        description: str | None = None,
        auto_error: bool = True,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        if verifier is not None and not isinstance(verifier, AsyncVerifier):
            raise TypeError("ScoutSecurity needs an AsyncVerifier (or none, behind the middleware)")
        self.verifier = verifier
        # The adapters' own option parsing: header name, its Bearer wrapping, proxies.
        self.options = AdapterOptions.build(header=header, trusted_proxies=trusted_proxies)
        self.header = self.options.header
        self.auto_error = auto_error
        self.scheme_name = scheme_name
        text = description or (
            "An Org Credential (`scout_sk_…`) or an org's legacy secret."
            if self.header == "authorization"
            else f"An Org Credential (`scout_sk_…`) in the `{header}` header."
        )
        self.model: HTTPBearer | APIKey
        if self.header == "authorization":
            self.model = HTTPBearer(bearerFormat="scout_sk_…", description=text)
        else:
            self.model = APIKey(
                **{"in": APIKeyIn.header},
                name=header,
                description=text,
                type=SecuritySchemeType.apiKey,
            )

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes
    ) -> OrgContext | None:
        context = request.scope.get(SCOPE_KEY)
        if context is None:
            context = await self._verify(request, security_scopes.scopes)
            if context is None:
                return None
        check_scopes(context, tuple(security_scopes.scopes))
        return context

    async def _verify(self, request: Request, scopes: list[str]) -> OrgContext | None:
        values = request.headers.getlist(self.header)
        if not values:
            if not self.auto_error:
                return None
            raise MissingCredentials()
        if self.verifier is None:
            # A credential, yet no middleware verified it: a route the
            # middleware exempts, or no middleware at all. Never trust it.
            raise MissingCredentials(
                "This route is not behind ScoutAuthMiddleware: give ScoutSecurity a verifier"
            )
        # Repeated fields join with ", " (RFC 9110 §5.3); the verifier refuses that.
        authorization = self.options.authorization(", ".join(values))
        client_ip = asgi_client_ip(request.scope, self.options.proxies)
        observer = self.verifier.observer  # observability: None is off
        started = time.perf_counter() if observer is not None else 0.0  # off: no clock read
        try:
            # verify_authorization answers a cached credential from the cache.
            context = await self.verifier.verify_authorization(
                authorization, required_scopes=scopes, client_ip=client_ip
            )
        except AuthError as exc:
            if observer is not None:
                report(observer, False, authorization, None, exc, started)
            self.verifier.record_denial(
                exc, method=request.method, path=request.url.path, client_ip=client_ip
            )
            raise
        if observer is not None:  # one call, a precomputed label (observe.py)
            label = ACCEPTED[False][context.kind is _LEGACY]
            observer.observe(label, time.perf_counter() - started, context)
        request.scope[SCOPE_KEY] = context
        return context


#: The scheme behind :class:`~scout_auth.starlette.ScoutAuthMiddleware`.
scout_security = ScoutSecurity()

#: The verified org, as a parameter type: ``def view(org: OrgDep)``.
OrgDep = Annotated[OrgContext, Security(scout_security)]


def add_exception_handlers(app: FastAPI, *, realm: str = "api") -> None:
    """Answer a refusal raised in a dependency (dependency-only mode) with problem+json."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthError)
        status, headers, body = problem_for(exc, realm=realm)
        return Response(body, status_code=status, headers=dict(headers))

    app.add_exception_handler(AuthError, handler)

"""A Starlette ``AuthenticationBackend`` that abstains when a request carries no scout credential.

:class:`~scout_auth.starlette.ScoutAuthMiddleware` owns every request it
protects. Some apps authenticate people with sessions or OAuth and services
with scout keys, inside Starlette's own ``AuthenticationMiddleware``: a
backend that answers ``None`` ("not mine") lets the next one try, as DRF's
``authenticate()`` does. What a backend cannot do stays with the middleware:
checking a signed body as it streams (a backend never sees the body) and
denying a websocket handshake before the app runs.
"""

from __future__ import annotations

from typing import Unpack

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response

from .._adapters.options import AdapterKwargs, AdapterOptions
from .._adapters.requests import asgi_client_ip
from .._core.credentials import split_authorization
from .._core.problem import problem_for
from .._core.tokens import TOKEN_PREFIX
from .._drivers.verifier import AsyncVerifier
from ..exceptions import AuthError, InvalidRequest, InvalidToken, MissingCredentials
from .auth import SCOPE_KEY, OrgCredentials, OrgUser

__all__ = ["ScoutAuthBackend", "ScoutAuthenticationError", "on_auth_error"]

_BACKEND_OPTIONS = frozenset(
    {"header", "required_scopes", "trusted_proxies", "proxy_header", "proxy_hops"}
)


class ScoutAuthenticationError(AuthenticationError):
    """A scout credential was presented and refused; ``error`` says why."""

    def __init__(self, error: AuthError) -> None:
        super().__init__(error.detail)
        self.error = error


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """``AuthenticationMiddleware(on_error=...)``: scout refusals as problem+json.

    The same status, ``WWW-Authenticate`` and body as the middleware's; any
    other backend's error gets Starlette's default answer (400, plain text).
    """
    if isinstance(exc, ScoutAuthenticationError):
        status, headers, body = problem_for(exc.error)
        return Response(body, status_code=status, headers=dict(headers))
    return PlainTextResponse(str(exc), status_code=400)


class ScoutAuthBackend(AuthenticationBackend):
    """Authenticate scout credentials inside Starlette's ``AuthenticationMiddleware``.

    Returns ``None`` when the request carries no scout credential, so another
    backend may authenticate it: no credential header, a scheme other than
    ``Bearer`` / ``Basic``, a bearer token that is neither an Org Credential
    nor a known legacy secret (an OAuth access token, say), or a Basic
    credential that is no org's legacy secret (a person's login for another
    backend). A
    credential that *is* scout's and is refused (a malformed ``scout_sk_``
    token, a disabled key, a missing scope, a store outage) raises
    :class:`ScoutAuthenticationError`: pass :func:`on_auth_error` as the
    middleware's ``on_error`` to answer it as problem+json.

    Signed requests (RFC 9421) are refused with 400 ``invalid_request``: a
    backend never sees the body, so it cannot check the digest the signature
    covers. Use :class:`~scout_auth.starlette.ScoutAuthMiddleware` for them.

    Args:
        verifier: An :class:`~scout_auth.AsyncVerifier`.
        **options: ``header``, ``required_scopes``, ``trusted_proxies``,
            ``proxy_header``, ``proxy_hops`` as for the middleware. Path
            rules and exemptions are the app's business here (``@requires``):
            passing them is a ``TypeError``, not a silent no-op.

    Example::

        from starlette.middleware import Middleware
        from starlette.middleware.authentication import AuthenticationMiddleware
        from scout_auth.starlette import ScoutAuthBackend, on_auth_error

        app = Starlette(routes=..., middleware=[
            Middleware(AuthenticationMiddleware, backend=ScoutAuthBackend(verifier),
                       on_error=on_auth_error),
        ])
    """

    def __init__(self, verifier: AsyncVerifier, **options: Unpack[AdapterKwargs]) -> None:
        if not isinstance(verifier, AsyncVerifier):
            raise TypeError("ScoutAuthBackend needs an AsyncVerifier")
        # Silently ignoring exempt_paths= or rules= would leave routes open
        # that the caller believes protected: refuse what a backend cannot do.
        unusable = sorted(set(options) - _BACKEND_OPTIONS)
        if unusable:
            raise TypeError(
                f"ScoutAuthBackend does not take {', '.join(unusable)}: use "
                "ScoutAuthMiddleware, or the app's own @requires for per-route scopes"
            )
        self.verifier = verifier
        self.options = AdapterOptions.build(**options)
        self.required_scopes = self.options.required_scopes

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, OrgUser] | None:
        """The org's credentials and user, ``None`` if no scout credential, or raise."""

        headers = conn.headers
        if "signature-input" in headers or "signature" in headers:
            raise ScoutAuthenticationError(
                InvalidRequest(
                    "Signed requests need ScoutAuthMiddleware: an authentication "
                    "backend cannot check the body the signature covers"
                )
            )
        values = headers.getlist(self.options.header)
        if not values:
            return None
        # Repeated fields join with ", " (RFC 9110 §5.3); the verifier refuses that.
        authorization = self.options.authorization(", ".join(values))
        client_ip = asgi_client_ip(conn.scope, self.options.proxies)
        try:
            # verify_authorization answers a cached credential from the cache.
            context = await self.verifier.verify_authorization(
                authorization, required_scopes=self.required_scopes, client_ip=client_ip
            )
        except MissingCredentials:
            return None  # another scheme: another backend's
        except InvalidToken as exc:
            # The verifier already split the header; only this refusal needs
            # to know which scheme it was, so it is split again here alone.
            scheme, rest = split_authorization(authorization)
            if scheme == "basic" or rest[: len(TOKEN_PREFIX)].lower() != TOKEN_PREFIX:
                # Not an Org Credential, nor a known legacy secret: an OAuth
                # token, or a person's HTTP Basic login for another backend.
                return None
            raise self._refused(conn, exc, client_ip) from None
        except AuthError as exc:
            raise self._refused(conn, exc, client_ip) from None
        conn.scope[SCOPE_KEY] = context
        return OrgCredentials(context.scopes), OrgUser(context)

    def _refused(
        self, conn: HTTPConnection, exc: AuthError, client_ip: str | None
    ) -> ScoutAuthenticationError:
        self.verifier.record_denial(
            exc, method=conn.scope.get("method", "GET"), path=conn.url.path, client_ip=client_ip
        )
        return ScoutAuthenticationError(exc)

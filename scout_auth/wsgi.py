"""A werkzeug WSGI middleware for any WSGI app.

Example::

    from scout_auth import InMemoryKeyStore, Verifier
    from scout_auth.wsgi import ScoutAuthMiddleware

    app.wsgi_app = ScoutAuthMiddleware(app.wsgi_app, verifier=Verifier(store))

A verified request reaches the app with the :class:`~scout_auth.OrgContext`
in ``environ["scout_auth.org"]`` (``None`` on exempt paths); any other gets
the same ``problem+json`` answer as the ASGI middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from ._adapter import AdapterOptions
from ._problem import problem_for
from ._verifier import Verifier
from .exceptions import AuthError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ENVIRON_KEY", "ERROR_KEY", "ScoutAuthMiddleware", "problem_response"]

#: Where the :class:`~scout_auth.OrgContext` lives in the WSGI environ.
ENVIRON_KEY = "scout_auth.org"
#: Where a rejected request's :class:`~scout_auth.exceptions.AuthError` lives.
ERROR_KEY = "scout_auth.error"

logger = logging.getLogger("scout_auth")

ErrorHandler = Callable[["WSGIEnvironment", AuthError], Response | None]


def problem_response(exc: AuthError, *, realm: str = "api") -> Response:
    """A werkzeug Response answering ``exc`` (problem+json)."""
    status, headers, body = problem_for(exc, realm=realm)
    return Response(body, status=status, headers=headers)


def environ_header(environ: WSGIEnvironment, header: str) -> str | None:
    """Read ``header`` from a WSGI environ (PEP 3333 ``HTTP_*`` keys)."""
    value = environ.get("HTTP_" + header.upper().replace("-", "_"))
    return value if isinstance(value, str) else None


class ScoutAuthMiddleware:
    """Authenticate every request before it reaches the wrapped WSGI app.

    Args:
        app: The WSGI app to protect.
        verifier: A :class:`~scout_auth.Verifier`.
        exempt_paths: Paths served without credentials (``"/public/*"`` for
            a prefix).
        header: Header carrying the credential (default ``authorization``).
        realm: ``WWW-Authenticate`` realm.
        required_scopes: Scopes every non-exempt request needs.
        on_error: ``on_error(environ, exc)`` may return a werkzeug Response
            to send instead of the default answer; ``None`` keeps it.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        verifier: Verifier,
        exempt_paths: Iterable[str] = (),
        header: str = "authorization",
        realm: str = "api",
        required_scopes: Iterable[str] = (),
        on_error: ErrorHandler | None = None,
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise TypeError("the WSGI middleware needs a (sync) Verifier")
        self.app = app
        self.verifier = verifier
        self.options = AdapterOptions.build(
            exempt_paths=exempt_paths, header=header, realm=realm, required_scopes=required_scopes
        )
        self.on_error = on_error

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[ENVIRON_KEY] = None
        if self.options.is_exempt(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        try:
            environ[ENVIRON_KEY] = self.verifier.verify_authorization(
                self.options.authorization(environ_header(environ, self.options.header)),
                required_scopes=self.options.required_scopes,
            )
        except AuthError as exc:
            environ[ERROR_KEY] = exc
            logger.info(
                "denied %s %s: %s",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                exc.code,
            )
            response = self.on_error(environ, exc) if self.on_error is not None else None
            if response is None:
                response = problem_response(exc, realm=self.options.realm)
            return response(environ, start_response)
        return self.app(environ, start_response)

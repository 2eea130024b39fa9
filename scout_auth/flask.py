"""A Flask extension.

Example::

    from flask import Flask
    from scout_auth import Verifier
    from scout_auth.flask import ScoutAuth, current_org, require_scopes

    app = Flask(__name__)
    auth = ScoutAuth(app, verifier=Verifier(store), exempt_paths=["/health"])

    @app.get("/files")
    @require_scopes("drive:read")
    def files():
        return {"org": current_org.org_id}

    @app.get("/status")
    @auth.exempt
    def status():
        return "ok"

Every request to a non-exempt path needs a valid credential (checked in a
``before_request`` hook); the :class:`~scout_auth.OrgContext` is then
``flask.g.scout_org`` (also :data:`current_org`, and
``request.environ["scout_auth.org"]``). Rejections, and any
:class:`~scout_auth.exceptions.AuthError` raised by a view, are answered with
the same problem+json bytes as :mod:`scout_auth.wsgi` and
:mod:`scout_auth.starlette`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, Unpack, cast

from flask import Flask, Request, current_app, g, request
from werkzeug.local import LocalProxy
from werkzeug.wrappers import Response

from ._adapters.gate import Gate
from ._adapters.options import AdapterKwargs, AdapterOptions
from ._core.flow import check_scopes
from ._core.records import OrgContext
from ._drivers.verifier import Verifier
from .exceptions import AuthError
from .wsgi import ENVIRON_KEY, _authenticate, _deny, problem_response

__all__ = ["ErrorHandler", "ScoutAuth", "current_org", "require_scopes"]

logger = logging.getLogger("scout_auth")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: ``on_error``: given the refusal, return a response to send, or ``None`` for the default.
ErrorHandler = Callable[[AuthError], Response | None]


# The current request's ``g`` and request objects, without going through the
# proxies' attribute look-ups (werkzeug's LocalProxy API; read per call).
_current_g = cast("LocalProxy[Any]", g)._get_current_object
_current_request = cast("LocalProxy[Request]", request)._get_current_object


def _current_org() -> OrgContext:
    context: OrgContext | None = getattr(_current_g(), "scout_org", None)
    if context is None:
        raise LookupError("this request was not authenticated (exempt path?)")
    return context


current_org: OrgContext = cast(OrgContext, LocalProxy(_current_org))


def require_scopes(*scopes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a view: answer 403 ``insufficient_scope`` unless the key grants ``scopes``."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            check_scopes(_current_org(), scopes)
            return view(*args, **kwargs)

        return wrapper

    return decorate


class ScoutAuth:
    """Protect a Flask app with scout_auth.

    Args:
        app: The app (or call :meth:`init_app` later, app-factory style).
        verifier: A :class:`~scout_auth.Verifier`.
        exempt_paths: Paths served without credentials (``"/public/*"`` for
            a prefix); views can also be marked with :meth:`exempt`.
        header: Header carrying the credential (default ``authorization``).
        realm: ``WWW-Authenticate`` realm.
        required_scopes: Scopes every non-exempt request needs.
        on_error: ``on_error(exc)`` may return a Response to send instead of
            the default problem+json answer; ``None`` keeps the default.
        max_body_size: Largest body of a signed request; 413 above.
        rules: Route rules ``(method, path pattern, scopes)``, e.g.
            ``("POST", "/files/*", ["files:write"])``: a matching request
            needs those scopes too (403 ``insufficient_scope`` otherwise).
        trusted_proxies: Reverse proxies whose forwarding headers are
            believed for signed requests and IP allowlists (see
            :mod:`scout_auth.wsgi`).
        proxy_header: The header family those proxies write: ``"x-forwarded"``
            (default: ``X-Forwarded-For`` / ``-Proto`` / ``-Host``) or
            ``"forwarded"`` (RFC 7239 ``Forwarded``); the other is ignored.
        proxy_hops: How many trusted proxies append to that header (default
            1): the value that many places from the right is believed; a
            shorter chain leaves the client address unknown (docs/middleware.md).

    Signed requests are verified, and their body read and checked against
    ``Content-Digest``, before any view runs (as in :mod:`scout_auth.wsgi`).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: Verifier,
        on_error: ErrorHandler | None = None,
        **options: Unpack[AdapterKwargs],
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise TypeError("ScoutAuth needs a (sync) Verifier")
        self.verifier = verifier
        self.options = AdapterOptions.build(**options)
        self.gate = Gate(self.options)
        self.on_error = on_error
        self._exempt_views: set[Callable[..., Any]] = set()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the hooks on ``app``."""
        app.extensions["scout_auth"] = self
        app.before_request(self._authenticate)
        app.register_error_handler(AuthError, self._handle_error)

    def exempt(self, view: Callable[P, R]) -> Callable[P, R]:
        """Mark a view as served without credentials."""
        self._exempt_views.add(view)
        return view

    def _exempt_view(self, req: Request) -> bool:
        view = current_app.view_functions.get(req.endpoint or "")
        return view is not None and view in self._exempt_views

    def _authenticate(self) -> Response | None:
        # Resolve the context proxies once instead of once per attribute.
        req = _current_request()
        environ = req.environ
        context: OrgContext | None = None
        try:
            # req.path is what Flask routes on: PATH_INFO below the mount
            # (SCRIPT_NAME), UTF-8 decoded, blueprint prefixes included;
            # req.method is upper-cased, as werkzeug routes it.
            required = self.gate.scopes(req.method, req.path)
            if required is not None and not (self._exempt_views and self._exempt_view(req)):
                context = _authenticate(self.verifier, self.gate, environ, required)
        except AuthError as exc:
            return self._handle_error(exc)
        finally:
            # Set exactly once, whatever happened (g's __setattr__ is Python code).
            _current_g().scout_org = context
            environ[ENVIRON_KEY] = context
        if context is not None:
            # A signed body was replaced by its verified copy: forget any
            # stream werkzeug may have opened on the original.
            req.__dict__.pop("stream", None)
        return None

    def _handle_error(self, exc: AuthError) -> Response:
        req = _current_request()
        _deny(self.verifier, self.options, req.environ, exc, req.method, req.path)
        response = self.on_error(exc) if self.on_error is not None else None
        return response if response is not None else problem_response(exc, realm=self.options.realm)

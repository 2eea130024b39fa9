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

import click
from flask import Blueprint, Flask, Request, current_app, g, request
from werkzeug.local import LocalProxy
from werkzeug.wrappers import Response

from ._adapters.gate import Gate
from ._adapters.options import AdapterKwargs, AdapterOptions
from ._core.flow import check_scopes
from ._core.records import OrgContext
from ._drivers.verifier import Verifier
from .exceptions import AuthError, ConfigurationError
from .stores._open import open_store
from .wsgi import ENVIRON_KEY, _authenticate, _deny, problem_response

__all__ = [
    "CONFIG_KEYS",
    "VERIFIER_CONFIG_KEYS",
    "ErrorHandler",
    "ScoutAuth",
    "current_org",
    "require_scopes",
]

logger = logging.getLogger("scout_auth")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
V = TypeVar("V", bound="Callable[..., Any] | Blueprint")

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


#: ``app.config`` keys :meth:`ScoutAuth.init_app` reads, and the option each sets.
CONFIG_KEYS = {
    "SCOUT_AUTH_EXEMPT_PATHS": "exempt_paths",
    "SCOUT_AUTH_HEADER": "header",
    "SCOUT_AUTH_REALM": "realm",
    "SCOUT_AUTH_REQUIRED_SCOPES": "required_scopes",
    "SCOUT_AUTH_MAX_BODY_SIZE": "max_body_size",
    "SCOUT_AUTH_RULES": "rules",
    "SCOUT_AUTH_TRUSTED_PROXIES": "trusted_proxies",
    "SCOUT_AUTH_PROXY_HEADER": "proxy_header",
    "SCOUT_AUTH_PROXY_HOPS": "proxy_hops",
}
#: ``app.config`` keys that build the verifier when none is passed.
VERIFIER_CONFIG_KEYS = {
    "SCOUT_AUTH_CACHE_TTL": "cache_ttl",
    "SCOUT_AUTH_LEGACY_PEPPER": "legacy_pepper",
    "SCOUT_AUTH_REQUIRE_SCOPED_KEYS": "require_scoped_keys",
}


class _AppAuth:
    """One app's verifier, options and hooks (an extension may serve several apps)."""

    def __init__(
        self,
        extension: ScoutAuth,
        verifier: Verifier,
        options: AdapterOptions,
        on_error: ErrorHandler | None,
    ) -> None:
        self.extension = extension
        self.verifier = verifier
        self.options = options
        self.gate = Gate(options)
        self.on_error = on_error

    def authenticate(self) -> Response | None:
        """The ``before_request`` hook."""
        # Resolve the context proxies once instead of once per attribute.
        req = _current_request()
        environ = req.environ
        context: OrgContext | None = None
        try:
            # req.path is what Flask routes on: PATH_INFO below the mount
            # (SCRIPT_NAME), UTF-8 decoded, blueprint prefixes included;
            # req.method is upper-cased, as werkzeug routes it.
            required = self.gate.scopes(req.method, req.path)
            ext = self.extension
            exempts = ext._exempt_views or ext._exempt_blueprints  # usually none: no call
            if required is not None and not (exempts and ext._exempted(req)):
                context = _authenticate(self.verifier, self.gate, environ, required)
        except AuthError as exc:
            return self.handle_error(exc)
        finally:
            # Set exactly once, whatever happened (g's __setattr__ is Python code).
            _current_g().scout_org = context
            environ[ENVIRON_KEY] = context
        if context is not None:
            # A signed body was replaced by its verified copy: forget any
            # stream werkzeug may have opened on the original.
            req.__dict__.pop("stream", None)
        return None

    def handle_error(self, exc: AuthError) -> Response:
        """The ``AuthError`` handler (refusals, and errors views raise)."""
        req = _current_request()
        _deny(self.verifier, self.options, req.environ, exc, req.method, req.path)
        response = self.on_error(exc) if self.on_error is not None else None
        return response if response is not None else problem_response(exc, realm=self.options.realm)


class ScoutAuth:
    """Protect a Flask app with scout_auth.

    Configure it in code, in ``app.config`` (``SCOUT_AUTH_*``, read by
    :meth:`init_app`; arguments given here win), or both::

        auth = ScoutAuth()            # app factory style
        def create_app():
            app = Flask(__name__)
            app.config["SCOUT_AUTH_STORE"] = "postgresql+psycopg://…"
            app.config["SCOUT_AUTH_EXEMPT_PATHS"] = ["/health"]
            auth.init_app(app)
            return app

    Args:
        app: The app (or call :meth:`init_app` later, app-factory style).
        verifier: A :class:`~scout_auth.Verifier`; default: one on the
            store ``app.config["SCOUT_AUTH_STORE"]`` names (a URL, as the CLI
            takes, or a store object), with ``SCOUT_AUTH_CACHE_TTL``,
            ``SCOUT_AUTH_LEGACY_PEPPER`` and ``SCOUT_AUTH_REQUIRE_SCOPED_KEYS``.
        exempt_paths: Paths served without credentials (``"/public/*"`` for
            a prefix); views and whole blueprints can also be marked with
            :meth:`exempt`. Config: ``SCOUT_AUTH_EXEMPT_PATHS``.
        header: Header carrying the credential (default ``authorization``).
            Config: ``SCOUT_AUTH_HEADER``.
        realm: ``WWW-Authenticate`` realm (``SCOUT_AUTH_REALM``).
        required_scopes: Scopes every non-exempt request needs
            (``SCOUT_AUTH_REQUIRED_SCOPES``).
        on_error: ``on_error(exc)`` may return a Response to send instead of
            the default problem+json answer; ``None`` keeps the default.
        max_body_size: Largest body of a signed request; 413 above
            (``SCOUT_AUTH_MAX_BODY_SIZE``).
        rules: Route rules ``(method, path pattern, scopes)``, e.g.
            ``("POST", "/files/*", ["files:write"])``: a matching request
            needs those scopes too (403 ``insufficient_scope`` otherwise).
            Config: ``SCOUT_AUTH_RULES``.
        trusted_proxies: Reverse proxies whose forwarding headers are
            believed for signed requests and IP allowlists (see
            :mod:`scout_auth.wsgi`). Config: ``SCOUT_AUTH_TRUSTED_PROXIES``.
        proxy_header: The header family those proxies write: ``"x-forwarded"``
            (default: ``X-Forwarded-For`` / ``-Proto`` / ``-Host``) or
            ``"forwarded"`` (RFC 7239 ``Forwarded``); the other is ignored.
            Config: ``SCOUT_AUTH_PROXY_HEADER``.
        proxy_hops: How many trusted proxies append to that header (default
            1): the value that many places from the right is believed; a
            shorter chain leaves the client address unknown (docs/middleware.md).
            Config: ``SCOUT_AUTH_PROXY_HOPS``.

    Signed requests are verified, and their body read and checked against
    ``Content-Digest``, before any view runs (as in :mod:`scout_auth.wsgi`).
    :meth:`init_app` also adds ``flask scout-auth …``: the ``scout-auth``
    command line on the app's store.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: Verifier | None = None,
        on_error: ErrorHandler | None = None,
        **options: Unpack[AdapterKwargs],
    ) -> None:
        if verifier is not None and not isinstance(verifier, Verifier):
            raise TypeError("ScoutAuth needs a (sync) Verifier")
        self._verifier = verifier
        self._on_error = on_error
        AdapterOptions.build(**options)  # a bad argument fails here, not at init_app
        self._options = options
        self._exempt_views: set[Callable[..., Any]] = set()
        self._exempt_blueprints: set[str] = set()
        # The last app's state, for the single-app attributes below.
        self._state: _AppAuth | None = None
        if app is not None:
            self.init_app(app)

    @property
    def verifier(self) -> Verifier:
        """The verifier passed in, else that of the app last initialised."""
        if self._verifier is not None:
            return self._verifier
        return self._app_state().verifier

    @property
    def options(self) -> AdapterOptions:
        """The adapter options of that app."""
        return self._app_state().options

    @property
    def gate(self) -> Gate:
        """The request gate of that app."""
        return self._app_state().gate

    def _app_state(self) -> _AppAuth:
        if self._state is None:
            raise RuntimeError("ScoutAuth.init_app(app) has not been called yet")
        return self._state

    def init_app(self, app: Flask) -> None:
        """Register the hooks and ``flask scout-auth`` on ``app``; reads its ``SCOUT_AUTH_*``."""
        config = app.config
        options: dict[str, Any] = {
            option: config[key] for key, option in CONFIG_KEYS.items() if key in config
        }
        options.update(self._options)  # arguments win over config
        verifier = self._verifier or self._verifier_from(app)
        state = _AppAuth(self, verifier, AdapterOptions.build(**options), self._on_error)
        self._state = state
        app.extensions["scout_auth"] = self
        app.before_request(state.authenticate)
        app.register_error_handler(AuthError, state.handle_error)
        app.cli.add_command(_cli_command(verifier))

    @staticmethod
    def _verifier_from(app: Flask) -> Verifier:
        store: Any = app.config.get("SCOUT_AUTH_STORE")
        if store is None:
            raise ConfigurationError(
                "ScoutAuth needs a verifier= or app.config['SCOUT_AUTH_STORE'] (a store URL)"
            )
        if isinstance(store, str):
            store = open_store(store)
        kwargs: dict[str, Any] = {
            option: app.config[key]
            for key, option in VERIFIER_CONFIG_KEYS.items()
            if key in app.config
        }
        return Verifier(store, **kwargs)

    def exempt(self, view: V) -> V:
        """Serve a view, or every view of a blueprint, without credentials."""
        if isinstance(view, Blueprint):
            self._exempt_blueprints.add(view.name)
        else:
            self._exempt_views.add(view)
        return view

    def _exempted(self, req: Request) -> bool:
        if self._exempt_blueprints:
            # Nested blueprints: "parent.child"; exempting the parent covers its children.
            names = req.blueprints
            if any(name in self._exempt_blueprints for name in names):
                return True
        if not self._exempt_views:
            return False
        view = current_app.view_functions.get(req.endpoint or "")
        return view is not None and view in self._exempt_views

    # Kept for callers of the single-app API.
    def _authenticate(self) -> Response | None:
        return self._app_state().authenticate()

    def _handle_error(self, exc: AuthError) -> Response:
        return self._app_state().handle_error(exc)


def _cli_command(verifier: Verifier) -> click.Command:
    """``flask scout-auth ARGS``: ``scout-auth ARGS`` on this app's store."""

    @click.command(
        "scout-auth",
        context_settings={"ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        """The scout-auth command line on this app's key store (``flask scout-auth --help``)."""
        from . import cli

        code = cli.main(list(args), store=verifier.store)
        if code:
            raise SystemExit(code)

    return command

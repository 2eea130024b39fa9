"""The management API and page as a Flask blueprint: the same handlers, driven sync."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable
from typing import Any

import flask

from .._adapters.proxies import TrustedProxies
from .._adapters.requests import wsgi_client_ip, wsgi_request
from .._audit.events import AuditSink
from .._core.records import OrgContext
from .._drivers.manager import KeyManager
from .._drivers.verifier import Verifier
from .._manage.access import Principal
from .._manage.http import (
    ManageProblem,
    ManageRequest,
    ManageResponse,
    error_response,
    problem_response,
)
from .._manage.needs import Authorize, Call, ManageNeed, QueryAudit, VerifyKey
from .._manage.routes import handle
from .._mounting import flask_mount, flask_response, read_flask_body, run_flow
from ._common import BODY_LIMIT, answer_locally, audit_error, joined, query_sink, settings

__all__ = ["SyncAuthorize", "management_blueprint"]

#: ``authorize(request) -> Principal | None``, given ``flask.request``.
SyncAuthorize = Callable[[flask.Request], "Principal | None"]

# Every method a client may plausibly send goes to the handlers, which answer
# 405 as problem+json like the ASGI app; werkzeug answers a method outside
# this list itself (its HTML 405) before any view runs.
_METHODS = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
]  # fmt: skip


def management_blueprint(
    manager: KeyManager,
    *,
    authorize: SyncAuthorize,
    verifier: Verifier | None = None,
    audit: AuditSink | None = None,
    login_url: str | None = None,
    create_per_minute: float = 20.0,
    trusted_proxies: Iterable[str] = (),
    proxy_header: str = "x-forwarded",
    title: str = "API Keys",
    name: str = "scout_auth_manage",
    clock: Callable[[], float] = time.time,
) -> flask.Blueprint:
    """The Settings → API Keys page and its JSON API, as a blueprint to register.

    The arguments are :class:`~scout_auth.manage.ManagementApp`'s, over a
    sync :class:`~scout_auth.KeyManager` and :class:`~scout_auth.Verifier`;
    ``authorize`` gets ``flask.request`` and must be sync. Register it under
    the prefix you want: the same requests get the same answers as the ASGI
    app's, byte for byte.

    Example::

        app.register_blueprint(
            management_blueprint(KeyManager(store), authorize=authorize),
            url_prefix="/settings/api-keys",
        )
    """
    if not isinstance(manager, KeyManager):
        raise TypeError("management_blueprint needs a KeyManager (ASGI: ManagementApp)")
    if not callable(authorize) or inspect.iscoroutinefunction(authorize):
        raise TypeError("authorize must be a sync callable: authorize(request) -> Principal | None")
    sink = query_sink(audit, manager.audit)
    app_settings = settings(
        has_audit=sink is not None,
        has_vault=manager.vault is not None,
        login_url=login_url,
        title=title,
        create_per_minute=create_per_minute,
    )
    proxies = TrustedProxies.parse(trusted_proxies, header=proxy_header)
    made: list[Verifier] = [] if verifier is None else [verifier]

    def machine_verifier() -> Verifier:
        if not made:
            made.append(Verifier(manager.store, legacy_bearer=False))
        return made[0]

    def verify(environ: dict[str, Any], body: bytes) -> OrgContext:
        http = wsgi_request(environ, proxies)
        client_ip = wsgi_client_ip(environ, proxies)
        if http.field("signature") is not None or http.field("signature-input") is not None:
            verified = machine_verifier().verify_signed_request(http, client_ip=client_ip)
            verified.body.feed(body, final=True)
            return verified.context
        return machine_verifier().verify_authorization(
            http.field("authorization"), client_ip=client_ip
        )

    def respond(path: str) -> ManageResponse:
        request = flask.request
        try:
            body = read_flask_body(request, BODY_LIMIT)
        except ManageProblem as problem:
            return problem_response(problem)
        http = wsgi_request(request.environ, proxies)
        manage_request = ManageRequest(
            method=request.method.upper(),
            path="/" + path,
            query=request.query_string.decode("latin-1"),
            headers=joined(http.headers),
            body=body,
            origin=f"{http.scheme}://{http.authority}",
            mount=flask_mount(request, path),
            now=clock(),
        )

        def perform(need: ManageNeed) -> object:
            if isinstance(need, Call):
                return getattr(manager, need.method)(*need.args, **need.kwargs)
            if isinstance(need, Authorize):
                return authorize(request)
            if isinstance(need, VerifyKey):
                return verify(request.environ, body)
            if isinstance(need, QueryAudit):
                assert sink is not None
                try:
                    return sink.query(**need.kwargs)
                except ValueError as exc:
                    raise audit_error(exc) from exc
            raise AssertionError(need)

        flow = handle(manage_request, app_settings)
        return run_flow(flow, perform, error_response, answer_locally)

    blueprint = flask.Blueprint(name, __name__)

    # merge_slashes=False: "/api//keys" is the handlers' 404, not werkzeug's
    # redirect. (A path right after the prefix that starts with "/" matches
    # no rule: werkzeug's own 404 page.)
    @blueprint.route(
        "/", defaults={"path": ""}, methods=_METHODS, strict_slashes=False, merge_slashes=False
    )
    @blueprint.route("/<path:path>", methods=_METHODS, merge_slashes=False)
    def view(path: str) -> flask.Response:
        return flask_response(respond(path))

    return blueprint

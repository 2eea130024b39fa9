"""The route table and :func:`handle`: one request in, one response out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from .._core.lifecycle import unprintable
from .._core.records import OrgContext
from . import api, pages
from .access import Principal, check_csrf, is_key_request, key_principal
from .context import Context, Settings
from .http import ManageProblem, ManageRequest, ManageResponse, json_response
from .needs import Authorize, Flow, VerifyKey
from .openapi import document

__all__ = ["MAX_BODY", "ROUTES", "Route", "handle"]

#: Largest request body (the adapters answer 413 above it, unread).
MAX_BODY = 64 * 1024

Handler = Callable[[Context], Flow[ManageResponse]]
Kind = Literal["api", "page"]


@dataclass(frozen=True, slots=True)
class Route:
    """``method`` + ``path`` (``{name}`` segments) → ``handler``.

    ``name`` is the OpenAPI ``operationId``; ``kind`` says whether a visitor
    without a principal is sent to the login page (``page``) or answered 401.
    """

    method: str
    path: str
    handler: Handler
    name: str
    kind: Kind = "api"

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The path parameters when ``segments`` fit this route's path, else ``None``."""
        parts = self.path.strip("/").split("/") if self.path != "/" else []
        if len(parts) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{"):
                params[part[1:-1]] = segment
            elif part != segment:
                return None
        return params


_ORG = "/api/orgs/{org}"
ROUTES: tuple[Route, ...] = (
    Route("GET", "/", pages.home, "page_home", "page"),
    Route("GET", "/orgs/{org}", pages.keys_page_view, "page_keys", "page"),
    Route("GET", "/orgs/{org}/keys/{key}", pages.key_page, "page_key", "page"),
    Route("GET", f"{_ORG}/keys", api.list_keys, "list_keys"),
    Route("POST", f"{_ORG}/keys", api.create_key, "create_key"),
    Route("GET", f"{_ORG}/keys/{{key}}", api.get_key, "get_key"),
    Route("PATCH", f"{_ORG}/keys/{{key}}", api.update_key, "update_key"),
    Route("DELETE", f"{_ORG}/keys/{{key}}", api.delete_key, "delete_key"),
    Route("POST", f"{_ORG}/keys/{{key}}/enable", api.set_enabled(True), "enable_key"),
    Route("POST", f"{_ORG}/keys/{{key}}/disable", api.set_enabled(False), "disable_key"),
    Route("POST", f"{_ORG}/keys/{{key}}/rotate", api.rotate_key, "rotate_key"),
    Route("POST", f"{_ORG}/keys/{{key}}/reveal", api.reveal_key, "reveal_key"),
    Route("GET", f"{_ORG}/report", api.key_report, "key_report"),
    Route("GET", f"{_ORG}/legacy", api.legacy_status, "legacy_status"),
    Route("POST", f"{_ORG}/legacy/enable", api.set_legacy(True), "enable_legacy"),
    Route("POST", f"{_ORG}/legacy/disable", api.set_legacy(False), "disable_legacy"),
    Route("GET", f"{_ORG}/roles", api.list_roles, "list_roles"),
    Route("PUT", f"{_ORG}/roles/{{name}}", api.put_role, "put_role"),
    Route("DELETE", f"{_ORG}/roles/{{name}}", api.delete_role, "delete_role"),
    Route("GET", f"{_ORG}/scopes", api.list_catalogue, "list_scope_catalogue"),
    Route("PUT", f"{_ORG}/scopes/{{name}}", api.put_catalogue, "publish_scope"),
    Route("DELETE", f"{_ORG}/scopes/{{name}}", api.delete_catalogue, "unpublish_scope"),
    Route("GET", f"{_ORG}/audit", api.audit, "audit"),
)


def _segments(path: str) -> list[str] | None:
    if path in ("", "/"):
        return []
    segments = path.strip("/").split("/") if path.endswith("/") else path[1:].split("/")
    # A path parameter is an id: no empty segment, no control character or lone
    # surrogate (a page naming it could not be encoded), bounded.
    for segment in segments:
        if not segment or len(segment) > 255 or unprintable(segment):
            return None
    return segments


def _route(request: ManageRequest) -> tuple[Route, dict[str, str]]:
    segments = _segments(request.path)
    if segments is None:
        raise ManageProblem(404, "not_found", "No such page or endpoint.")
    method = "GET" if request.method == "HEAD" else request.method
    allowed: list[str] = []
    for route in ROUTES:
        params = route.match(segments)
        if params is None:
            continue
        if route.method == method:
            return route, params
        allowed.append(route.method)
    if allowed:
        allow = ", ".join(sorted({*allowed, "HEAD"} if "GET" in allowed else set(allowed)))
        raise ManageProblem(
            405, "method_not_allowed", "This endpoint does not take that method.",
            headers=[("allow", allow)],
        )  # fmt: skip
    raise ManageProblem(404, "not_found", "No such page or endpoint.")


def _principal(request: ManageRequest) -> Flow[Principal | None]:
    if is_key_request(request.headers):
        context: OrgContext = yield VerifyKey()
        return key_principal(context)
    principal = yield Authorize()
    if principal is not None and not isinstance(principal, Principal):
        raise TypeError("authorize() must return a scout_auth.manage.Principal or None")
    if principal is not None:
        check_csrf(request.method, request.headers, request.origin)
    return principal


def _public(request: ManageRequest) -> Flow[ManageResponse | None]:
    """The answers that need no principal: static assets and the OpenAPI document."""
    path = request.path
    if path.startswith("/static/") and request.method in ("GET", "HEAD"):
        response: ManageResponse = yield from pages.asset(path[len("/static/") :])
        return response
    if path == "/openapi.json" and request.method in ("GET", "HEAD"):
        return json_response(document(request.mount, ROUTES))
    return None


def handle(request: ManageRequest, settings: Settings) -> Flow[ManageResponse]:
    """Answer ``request``: route, authenticate, check access, run the handler.

    Raises what handlers and needs raise; :func:`~.http.error_response`
    turns it into the answer.
    """
    public = yield from _public(request)
    if public is not None:
        return _head(request, public)
    route, params = _route(request)
    principal = yield from _principal(request)
    if principal is None:
        if route.kind == "page" and settings.login_url is not None:
            return pages.login_redirect(settings.login_url, request.mount + request.path)
        challenge = ("www-authenticate", 'Bearer realm="scout-auth-manage"')
        raise ManageProblem(401, "not_signed_in", "Sign in to manage keys.", headers=[challenge])
    org = params.get("org")
    if org is not None and not principal.can_view(org):
        # Not "forbidden": whether the org exists is none of their business.
        raise ManageProblem(404, "not_found", "No such organization.")
    ctx = Context(request, settings, principal, params)
    response = yield from route.handler(ctx)
    return _head(request, response)


def _head(request: ManageRequest, response: ManageResponse) -> ManageResponse:
    # HEAD: the GET answer's status and headers, no body (RFC 9110 §9.3.2).
    return replace(response, body=b"") if request.method == "HEAD" else response

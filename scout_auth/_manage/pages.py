"""The Settings → API Keys pages: server-rendered, each a flow of needs like the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .._audit.events import AuditPage
from .._core.lifecycle import WEAK_NAME_PATTERN
from .access import CSRF_HEADER, Principal
from .api import MAX_GRACE_SECONDS, MAX_REPORT_DAYS, audit_page, org_key
from .context import Context
from .http import BASE_HEADERS, ManageProblem, ManageResponse
from .needs import Asset, Call, Flow, Render
from .parse import Query
from .views import (
    event_view,
    key_view,
    keys_page,
    legacy_view,
    report_view,
    role_view,
    scope_view,
)

__all__ = ["asset", "home", "html_response", "key_page", "keys_page_view", "login_redirect"]

#: Every asset comes from this app's own origin: no CDN, no inline script.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: Expiry presets of the create dialog, in days (``None``: never).
EXPIRY_PRESETS: tuple[int | None, ...] = (7, 30, 90, 365, None)
#: Grace periods of the rotate dialog, in seconds.
GRACE_PRESETS = (0, 3600, 86400, 7 * 86400, MAX_GRACE_SECONDS)

KEYS_PER_PAGE = 50


def html_response(body: bytes, status: int = 200) -> ManageResponse:
    """A page with the headers every page carries."""
    headers = [
        ("content-type", "text/html; charset=utf-8"),
        *BASE_HEADERS,
        ("content-security-policy", CSP),
    ]
    return ManageResponse(status, headers, body)


def login_redirect(login_url: str, next_path: str) -> ManageResponse:
    """303 to the host's login page, coming back here after."""
    sep = "&" if "?" in login_url else "?"
    location = f"{login_url}{sep}next={quote(next_path, safe='/')}"
    return ManageResponse(303, [("location", location), *BASE_HEADERS], b"")


def _base(ctx: Context) -> dict[str, Any]:
    return {
        "title": ctx.settings.title,
        "base": ctx.request.mount.rstrip("/"),
        "user": ctx.principal.user,
        "csrf_header": CSRF_HEADER,
        "has_vault": ctx.settings.has_vault,
    }


def home(request_ctx: Context) -> Flow[ManageResponse]:
    """GET /: the one org's page, or a picker when the principal sees several."""
    principal: Principal = request_ctx.principal
    orgs = principal.orgs
    if len(orgs) == 1:
        location = request_ctx.url(f"/orgs/{quote(orgs[0], safe='')}")
        return ManageResponse(303, [("location", location), *BASE_HEADERS], b"")
    context = {
        **_base(request_ctx),
        "orgs": [{"id": o, "admin": principal.can_admin(o)} for o in orgs],
    }
    body: bytes = yield Render("orgs.html", context)
    return html_response(body)


def keys_page_view(ctx: Context) -> Flow[ManageResponse]:
    """GET /orgs/{org}: the key list, the create dialog, key hygiene, the legacy card."""
    query = Query(ctx.request.query)
    windows = {
        "expiring_days": query.integer("expiring_days", 14, 1, MAX_REPORT_DAYS),
        "unused_days": query.integer("unused_days", 30, 1, MAX_REPORT_DAYS),
    }
    keys = yield Call("list_keys", (ctx.org_id,))
    items, next_cursor, total = keys_page(
        keys, ctx.now, limit=KEYS_PER_PAGE, cursor=query.text("cursor", 512),
        search=query.text("q", 200),
    )  # fmt: skip
    catalogue = yield Call("list_scope_catalogue", (ctx.org_id,))
    roles = yield Call("list_roles", (ctx.org_id,))
    report = yield Call("key_report", (ctx.org_id,), windows)
    context = {
        **_base(ctx),
        "org_id": ctx.org_id,
        "orgs": ctx.principal.orgs,
        "can_admin": ctx.principal.can_admin(ctx.org_id),
        "keys": items,
        "total": total,
        "next_cursor": next_cursor,
        "query": query.text("q", 200) or "",
        "legacy": legacy_view(keys.legacy),
        "report": report_view(report),
        "catalogue": [scope_view(s) for s in catalogue],
        "roles": [role_view(r) for r in roles],
        "api": ctx.url(f"/api/orgs/{quote(ctx.org_id, safe='')}"),
        "weak_name_pattern": WEAK_NAME_PATTERN,
        "expiry_presets": EXPIRY_PRESETS,
        "grace_presets": GRACE_PRESETS,
    }
    body: bytes = yield Render("keys.html", context)
    return html_response(body)


def key_page(ctx: Context) -> Flow[ManageResponse]:
    """GET /orgs/{org}/keys/{key}: one key, its change history, its recent denials."""
    key = yield from org_key(ctx, ctx.params["key"])
    history: list[dict[str, Any]] = []
    denials: list[dict[str, Any]] = []
    if ctx.settings.has_audit:
        empty = Query("")
        changes: AuditPage = yield from audit_page(ctx, empty, key_id=key.key_id, limit=50)
        history = [event_view(e) for e in changes if e.action != "denied"]
        refused: AuditPage = yield from audit_page(
            ctx, empty, key_id=key.key_id, limit=20, actions=["denied"]
        )
        denials = [event_view(e) for e in refused]
    context = {
        **_base(ctx),
        "org_id": ctx.org_id,
        "can_admin": ctx.principal.can_admin(ctx.org_id),
        "key": key_view(key, ctx.now),
        "history": history,
        "denials": denials,
        "has_audit": ctx.settings.has_audit,
        "api": ctx.url(f"/api/orgs/{quote(ctx.org_id, safe='')}"),
        "expiry_presets": EXPIRY_PRESETS,
        "grace_presets": GRACE_PRESETS,
    }
    body: bytes = yield Render("key.html", context)
    return html_response(body)


def asset(name: str) -> Flow[ManageResponse]:
    """GET /static/{name}: a file shipped in the package (public: no secrets in assets)."""
    found: tuple[bytes, str] | None = yield Asset(name)
    if found is None:
        raise ManageProblem(404, "not_found", "No such file.")
    data, media_type = found
    headers = [
        ("content-type", media_type),
        ("cache-control", "public, max-age=3600"),
        ("x-content-type-options", "nosniff"),
    ]
    return ManageResponse(200, headers, data)

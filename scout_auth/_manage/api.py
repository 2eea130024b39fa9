"""The JSON API's handlers, written once (each a flow of needs, see ``__init__``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from .._audit.events import MAX_PAGE_SIZE, AuditPage
from .._core.lifecycle import is_weak_name
from .._core.records import KeyRecord, NewKey, RoleRecord
from .._core.store import KEEP, _Keep
from ..exceptions import KeyNotFound
from .access import check_ceiling, check_result, effective_scopes
from .context import Context
from .http import ManageProblem, ManageResponse, json_response
from .needs import Call, Flow, QueryAudit
from .parse import Body, Query, invalid, json_body
from .views import (
    KEY_STATUSES,
    event_view,
    key_view,
    keys_page,
    legacy_view,
    report_view,
    role_view,
    scope_view,
)

Keep = Literal[_Keep.KEEP]
Handler = Callable[[Context], Flow[ManageResponse]]

#: Longest rotation grace period the API accepts (30 days).
MAX_GRACE_SECONDS = 30 * 24 * 3600
#: Longest expiry preset, in days (10 years).
MAX_EXPIRY_DAYS = 3650
#: Keys per page at most.
MAX_KEYS_PAGE = 200


T = TypeVar("T")


def _kept(value: T | Keep, current: T) -> T:
    return current if isinstance(value, _Keep) else value


def _no_content() -> ManageResponse:
    response = json_response(None, 204)
    # 204 has no body (RFC 9110 §15.3.5): no content-type either.
    return ManageResponse(204, [h for h in response.headers if h[0] != "content-type"], b"")


def org_key(ctx: Context, key_id: str) -> Flow[KeyRecord]:
    """The key ``key_id`` of the path's org; 404 for another org's key (not revealed)."""
    key: KeyRecord = yield Call("get_key", (key_id,))
    if key.org_id != ctx.org_id:
        raise KeyNotFound(key_id)
    return key


def _check_result(
    ctx: Context,
    *,
    scopes: Iterable[str] | None,
    roles: Iterable[str],
    expires_at: datetime | None,
    allowed_ips: Iterable[str] | None,
    what: str,
) -> Flow[None]:
    """A key acting as principal: the key as it will be must fit within the acting key.

    Judged on the result, not the request: dropping a role from a key with
    no scopes of its own makes it unrestricted although nothing was "added".
    """
    if not ctx.principal.is_key:
        return
    names = frozenset(roles)
    role_scopes: dict[str, frozenset[str]] = {}
    if names:
        known: list[RoleRecord] = yield Call("list_roles", (ctx.org_id,))
        role_scopes = {r.name: r.scopes for r in known}
    own = None if scopes is None else frozenset(scopes)
    check_result(
        ctx.principal,
        granted=effective_scopes(own, names, role_scopes),
        expires_at=expires_at,
        allowed_ips=allowed_ips,
        what=what,
    )


def _check_key(ctx: Context, key: KeyRecord, what: str) -> Flow[None]:
    """:func:`_check_result` of an existing key as it stands (enable, rotate)."""
    yield from _check_result(
        ctx, scopes=key.scopes, roles=key.roles, expires_at=key.expires_at,
        allowed_ips=key.allowed_ips, what=what,
    )  # fmt: skip


def list_keys(ctx: Context) -> Flow[ManageResponse]:
    """GET keys: one page of the org's keys, with the legacy status."""
    query = Query(ctx.request.query)
    limit = query.integer("limit", 50, 1, MAX_KEYS_PAGE)
    statuses = query.texts("status")
    for status in statuses:
        if status not in KEY_STATUSES:
            raise invalid("status", f"must be one of {', '.join(KEY_STATUSES)}")
    keys = yield Call("list_keys", (ctx.org_id,))
    items, next_cursor, total = keys_page(
        keys,
        ctx.now,
        limit=limit,
        cursor=query.text("cursor", 512),
        statuses=statuses,
        search=query.text("q", 200),
    )
    body = {
        "items": items,
        "next_cursor": next_cursor,
        "total": total,
        "legacy": legacy_view(keys.legacy),
    }
    return json_response(body)


def _expiry(ctx: Context, body: Body) -> datetime | Keep | None:
    """``expires_at`` or ``expires_in_days`` (never both); a past expiry is refused."""
    if "expires_at" in body and "expires_in_days" in body:
        raise invalid("expires_in_days", "give expires_at or expires_in_days, not both")
    days = body.integer("expires_in_days", 1, MAX_EXPIRY_DAYS)
    if days is not None:
        return ctx.now + timedelta(days=days)
    if "expires_at" not in body:
        body.moment("expires_at")  # mark it read
        return KEEP
    moment = body.moment("expires_at")
    if moment is not None and moment <= ctx.now:
        raise invalid("expires_at", "must be in the future")
    return moment


def _new_key_body(ctx: Context, new: NewKey, **more: Any) -> ManageResponse:
    body: dict[str, Any] = {"token": new.token, "key": key_view(new.key, ctx.now), **more}
    body["warnings"] = ["weak_name"] if is_weak_name(new.key.name) else []
    org, key = quote(ctx.org_id, safe=""), quote(new.key.key_id, safe="")
    location = ctx.url(f"/api/orgs/{org}/keys/{key}")
    return json_response(body, 201, [("location", location)])


def create_key(ctx: Context) -> Flow[ManageResponse]:
    """POST keys: a new key; the token is in this response only."""
    ctx.require_admin()
    body = json_body(ctx.request)
    name = body.text("name", required=True, max_length=200)
    description = body.text("description", max_length=1000) or ""
    scopes = body.strings("scopes", nullable=True)
    roles = body.strings("roles")
    allowed_ips = body.strings("allowed_ips", nullable=True)
    expires = _expiry(ctx, body)
    recoverable = body.boolean("recoverable") or False
    body.done()
    if recoverable and not ctx.settings.has_vault:
        raise invalid("recoverable", "this deployment has no key vault: keys are shown once")
    yield from _check_result(
        ctx, scopes=scopes, roles=roles or (), allowed_ips=allowed_ips,
        expires_at=None if isinstance(expires, _Keep) else expires, what="new key",
    )  # fmt: skip
    ctx.settings.limiter.take(ctx.org_id, ctx.request.now)
    new: NewKey = yield Call(
        "create_key",
        (ctx.org_id, name),
        {
            "description": description,
            "scopes": scopes,
            "roles": roles,
            "allowed_ips": allowed_ips,
            "expires_at": None if isinstance(expires, _Keep) else expires,
            "recoverable": recoverable,
            "actor": ctx.actor,
        },
    )
    return _new_key_body(ctx, new)


def get_key(ctx: Context) -> Flow[ManageResponse]:
    """GET one key."""
    key = yield from org_key(ctx, ctx.params["key"])
    return json_response(key_view(key, ctx.now))


def update_key(ctx: Context) -> Flow[ManageResponse]:
    """PATCH a key: any of its editable fields, in one atomic write."""
    ctx.require_admin()
    body = json_body(ctx.request)
    changes: dict[str, Any] = {
        "name": body.text("name", max_length=200),
        "description": body.text("description", max_length=1000),
        "enabled": body.boolean("enabled"),
        "roles": body.strings("roles"),
    }
    scopes = body.strings("scopes", nullable=True)
    changes["scopes"] = scopes if "scopes" in body else KEEP
    allowed_ips = body.strings("allowed_ips", nullable=True)
    changes["allowed_ips"] = allowed_ips if "allowed_ips" in body else KEEP
    changes["expires_at"] = _expiry(ctx, body)
    body.done()
    key_id = ctx.params["key"]
    key = yield from org_key(ctx, key_id)
    only_disables = (
        changes["enabled"] is False
        and all(changes[f] is None for f in ("name", "description", "roles"))
        and all(isinstance(changes[f], _Keep) for f in ("scopes", "allowed_ips", "expires_at"))
    )
    if not only_disables:  # disabling hands nobody anything
        yield from _check_result(
            ctx,
            scopes=key.scopes if isinstance(changes["scopes"], _Keep) else changes["scopes"],
            roles=key.roles if changes["roles"] is None else changes["roles"],
            expires_at=_kept(changes["expires_at"], key.expires_at),
            allowed_ips=_kept(changes["allowed_ips"], key.allowed_ips),
            what="key update",
        )
    updated: KeyRecord = yield Call("update_key", (key_id,), {**changes, "actor": ctx.actor})
    return json_response(key_view(updated, ctx.now))


def set_enabled(enabled: bool) -> Handler:
    """POST enable / disable."""

    def handler(ctx: Context) -> Flow[ManageResponse]:
        ctx.require_admin()
        key_id = ctx.params["key"]
        key = yield from org_key(ctx, key_id)
        if enabled:  # switching a key back on gives its grants back: the ceiling applies
            yield from _check_key(ctx, key, "enabled key")
        method = "enable_key" if enabled else "disable_key"
        changed: KeyRecord = yield Call(method, (key_id,), {"actor": ctx.actor})
        return json_response(key_view(changed, ctx.now))

    return handler


def rotate_key(ctx: Context) -> Flow[ManageResponse]:
    """POST rotate: a successor key; the old one works for the grace period."""
    ctx.require_admin()
    body = json_body(ctx.request)
    grace = body.integer("grace_seconds", 0, MAX_GRACE_SECONDS)
    body.done()
    key_id = ctx.params["key"]
    old = yield from org_key(ctx, key_id)
    if old.replaced_by is not None:
        raise ManageProblem(409, "already_rotated", "This key was already rotated.")
    # The successor's token holds the old key's grants: a key may rotate only
    # what it could have created.
    yield from _check_key(ctx, old, "rotated key")
    ctx.settings.limiter.take(ctx.org_id, ctx.request.now)
    new: NewKey = yield Call(
        "rotate_key",
        (key_id,),
        {"grace": timedelta(seconds=86400 if grace is None else grace), "actor": ctx.actor},
    )
    previous: KeyRecord = yield Call("get_key", (key_id,))
    return _new_key_body(ctx, new, previous=key_view(previous, ctx.now))


def reveal_key(ctx: Context) -> Flow[ManageResponse]:
    """POST reveal: a recoverable key's token again, to a person who confirms by its name.

    Only people who administer the org (a key acting as principal could
    reach a wider key's token this way), only with a vault, only for keys
    created recoverable, and only with ``{"confirm": "<the key's name>"}``:
    a fresh, deliberate step, recorded as ``revealed`` in the audit trail.
    """
    ctx.require_admin()
    if ctx.principal.is_key:
        raise ManageProblem(403, "not_an_admin", "Only a person can reveal a key.")
    body = json_body(ctx.request)
    confirm = body.text("confirm", required=True, max_length=200)
    body.done()
    if not ctx.settings.has_vault:
        raise ManageProblem(
            409, "not_recoverable", "This deployment has no key vault: keys are shown once."
        )
    key_id = ctx.params["key"]
    key = yield from org_key(ctx, key_id)
    if confirm != key.name:
        raise invalid("confirm", "type the key's name to confirm")
    token: str = yield Call("reveal_key", (key_id,), {"actor": ctx.actor})
    return json_response({"token": token, "key": key_view(key, ctx.now)})


def delete_key(ctx: Context) -> Flow[ManageResponse]:
    """DELETE a key: permanent, immediate on every instance."""
    ctx.require_admin()
    key_id = ctx.params["key"]
    yield from org_key(ctx, key_id)
    yield Call("delete_key", (key_id,), {"actor": ctx.actor})
    return _no_content()


#: The largest window of the key report, in days (as ``KeyManager.key_report``).
MAX_REPORT_DAYS = 3660


def key_report(ctx: Context) -> Flow[ManageResponse]:
    """GET report: keys expiring, unused, old halves still used, policy breaches."""
    query = Query(ctx.request.query)
    kwargs = {
        "expiring_days": query.integer("expiring_days", 14, 1, MAX_REPORT_DAYS),
        "unused_days": query.integer("unused_days", 30, 1, MAX_REPORT_DAYS),
    }
    report = yield Call("key_report", (ctx.org_id,), kwargs)
    return json_response(report_view(report))


def legacy_status(ctx: Context) -> Flow[ManageResponse]:
    """GET legacy: the org's legacy secret, its use over 30 days, the switch."""
    status = yield Call("legacy_status", (ctx.org_id, 30))
    return json_response(legacy_view(status))


def set_legacy(enabled: bool) -> Handler:
    """POST legacy/enable, legacy/disable (404 when the org has no legacy secret)."""

    def handler(ctx: Context) -> Flow[ManageResponse]:
        ctx.require_admin()
        if enabled and ctx.principal.is_key:
            # A legacy secret is unrestricted: no key may switch one back on.
            raise ManageProblem(
                403, "scope_ceiling", "A key cannot switch a legacy secret back on."
            )
        method = "enable_legacy" if enabled else "disable_legacy"
        yield Call(method, (ctx.org_id,), {"actor": ctx.actor})
        status = yield Call("legacy_status", (ctx.org_id, 30))
        return json_response(legacy_view(status))

    return handler


def list_roles(ctx: Context) -> Flow[ManageResponse]:
    """GET roles."""
    roles = yield Call("list_roles", (ctx.org_id,))
    return json_response({"items": [role_view(r) for r in roles]})


def put_role(ctx: Context) -> Flow[ManageResponse]:
    """PUT a role's scopes (create or replace)."""
    ctx.require_admin()
    body = json_body(ctx.request)
    scopes = body.strings("scopes")
    body.done()
    if scopes is None:
        raise invalid("scopes", "is required")
    check_ceiling(ctx.principal, scopes, "role")
    role = yield Call("put_role", (ctx.org_id, ctx.params["name"], scopes), {"actor": ctx.actor})
    return json_response(role_view(role))


def delete_role(ctx: Context) -> Flow[ManageResponse]:
    """DELETE a role."""
    ctx.require_admin()
    yield Call("delete_role", (ctx.org_id, ctx.params["name"]), {"actor": ctx.actor})
    return _no_content()


def list_catalogue(ctx: Context) -> Flow[ManageResponse]:
    """GET scopes: the org's scope catalogue."""
    entries = yield Call("list_scope_catalogue", (ctx.org_id,))
    return json_response({"items": [scope_view(e) for e in entries]})


def put_catalogue(ctx: Context) -> Flow[ManageResponse]:
    """PUT a catalogue entry (name in the path, description in the body)."""
    ctx.require_admin()
    body = json_body(ctx.request)
    description = body.text("description", max_length=500) or ""
    body.done()
    info = yield Call(
        "publish_scope", (ctx.org_id, ctx.params["name"], description), {"actor": ctx.actor}
    )
    return json_response(scope_view(info))


def delete_catalogue(ctx: Context) -> Flow[ManageResponse]:
    """DELETE a catalogue entry."""
    ctx.require_admin()
    yield Call("unpublish_scope", (ctx.org_id, ctx.params["name"]), {"actor": ctx.actor})
    return _no_content()


def audit_page(ctx: Context, query: Query, **fixed: Any) -> Flow[AuditPage]:
    """One page of the org's audit trail, filtered by the query (and ``fixed``)."""
    if not ctx.settings.has_audit:
        raise ManageProblem(404, "audit_not_configured", "No audit trail is configured.")
    kwargs: dict[str, Any] = {
        "org_id": ctx.org_id,
        "key_id": query.text("key_id"),
        "limit": query.integer("limit", 50, 1, MAX_PAGE_SIZE),
        "before": query.text("cursor", 512),
        "actor": query.text("actor", 200),
        "since": query.moment("since"),
        "until": query.moment("until"),
    }
    actions = query.texts("action")
    if actions:
        kwargs["actions"] = actions
    kwargs.update(fixed)
    page: AuditPage = yield QueryAudit(kwargs)
    return page


def audit(ctx: Context) -> Flow[ManageResponse]:
    """GET audit: the org's trail, newest first, filtered, cursor-paginated."""
    page = yield from audit_page(ctx, Query(ctx.request.query))
    return json_response({"items": [event_view(e) for e in page], "next_cursor": page.next})

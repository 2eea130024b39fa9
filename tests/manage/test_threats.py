"""Who may do what, as one table run on every route of both mountings.

Every API route is tried by every kind of caller the threat model names:
nobody, another org's admin, a viewer, an admin whose request did not come
from the page (no CSRF header, a foreign ``Origin``, ``Sec-Fetch-Site:
cross-site``), and Org Credentials that may not manage keys. A refused
change must leave the store exactly as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth.manage import ROUTES

from .harness import Answer, Harness

#: A valid body for every route that takes one: a refusal is about access only.
BODIES: dict[str, Any] = {
    "create_key": {"name": "billing-sync prod", "scopes": ["drive:read"]},
    "update_key": {"description": "changed"},
    "rotate_key": {"grace_seconds": 60},
    "put_role": {"scopes": ["drive:read"]},
    "publish_scope": {"description": "Read files"},
    "reveal_key": {"confirm": "crm export"},
}

API_ROUTES = [r for r in ROUTES if r.kind == "api"]


def seed(manager: KeyManager) -> dict[str, str]:
    key = manager.create_key(
        "org_1", "crm export", scopes=["drive:read"], recoverable=True
    ).key.key_id
    manager.put_role("org_1", "reader", ["drive:read"])
    manager.publish_scope("org_1", "drive:read", "Read files")
    manager.import_legacy_key("org_1", "old-shared-secret-123")
    return {"org": "org_1", "key": key, "name": "reader"}


def path_of(route_path: str, params: dict[str, str]) -> str:
    if "/scopes/" in route_path:
        params = {**params, "name": "drive:read"}
    path = route_path
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    return path


def snapshot(manager: KeyManager) -> object:
    keys = [(k.key_id, k.name, k.description, k.enabled, k.scopes, k.expires_at, k.replaced_by)
            for k in manager.list_keys("org_1")]  # fmt: skip
    legacy = manager.legacy_status("org_1")
    return (
        keys,
        manager.list_roles("org_1"),
        manager.list_scope_catalogue("org_1"),
        (legacy.exists, legacy.enabled),
    )


def send(api: Harness, route: Any, params: dict[str, str], **how: Any) -> Answer:
    body = BODIES.get(route.name) if route.method in ("POST", "PUT", "PATCH") else None
    if body is None and route.method in ("POST", "PUT", "PATCH"):
        body = {}
    return api.call(route.method, path_of(route.path, params), json=body, **how)


def make_token(api: Harness, scopes: list[str] | None, *, enabled: bool = True) -> str:
    new = api.manager.create_key("org_1", "automation bot", scopes=scopes)
    if not enabled:
        api.manager.disable_key(new.key.key_id)
    return new.token


# (case, how to call, expected status and code for reads, for changes)
CALLERS: list[tuple[str, dict[str, Any], tuple[int, str] | None, tuple[int, str] | None]] = [
    ("nobody", {"user": None}, (401, "not_signed_in"), (401, "not_signed_in")),
    ("unknown user", {"user": "mallory"}, (401, "not_signed_in"), (401, "not_signed_in")),
    ("another org's admin", {"user": "other"}, (404, "not_found"), (404, "not_found")),
    ("viewer", {"user": "viewer"}, None, (403, "not_an_admin")),
    ("admin, no CSRF header", {"csrf": False}, None, (403, "csrf_header_missing")),
    ("admin, foreign Origin", {"headers": {"origin": "https://evil.example"}}, None,
     (403, "cross_site_request")),
    ("admin, Origin null", {"headers": {"origin": "null"}}, None, (403, "cross_site_request")),
    ("admin, cross-site fetch", {"headers": {"sec-fetch-site": "cross-site"}}, None,
     (403, "cross_site_request")),
    ("admin, same-site (sibling subdomain)", {"headers": {"sec-fetch-site": "same-site"}}, None,
     (403, "cross_site_request")),
    ("admin, legacy Basic header", {"headers": {"authorization": "Basic b3JnXzE6b2xk"}}, None,
     None),
]  # fmt: skip


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("case", CALLERS, ids=lambda c: c[0])
def test_callers_on_every_route(api: Harness, route: Any, case: Any) -> None:
    _, how, on_read, on_change = case
    params = seed(api.manager)
    before = snapshot(api.manager)
    answer = send(api, route, params, **how)
    expected = on_read if route.method == "GET" else on_change
    if expected is None:
        assert answer.status < 400, answer.body
        return
    assert (answer.status, answer.code) == expected, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["cache-control"] == "no-store"
    assert snapshot(api.manager) == before


KEY_CALLERS = [
    ("unrestricted key", lambda api: make_token(api, None), (403, "insufficient_scope")),
    ("key without keys:manage", lambda api: make_token(api, ["drive:read"]),
     (403, "insufficient_scope")),
    ("disabled manage key", lambda api: make_token(api, ["keys:manage"], enabled=False),
     (401, "key_disabled")),
    # Well formed, of a key this store never had: a made-up (or deleted) credential.
    ("unknown key", lambda api: KeyManager(InMemoryKeyStore()).create_key("org_1", "x").token,
     None),
    ("another org's manage key",
     lambda api: api.manager.create_key("org_2", "bot", scopes=["keys:manage"]).token,
     (404, "not_found")),
]  # fmt: skip


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("case", KEY_CALLERS, ids=lambda c: c[0])
@pytest.mark.parametrize("signed", [False, True], ids=["bearer", "signed"])
def test_keys_that_may_not_manage(api: Harness, route: Any, case: Any, signed: bool) -> None:
    _, token_of, expected = case
    params = seed(api.manager)
    token = token_of(api)
    before = snapshot(api.manager)
    # No session and no CSRF header: a key needs neither, and gets nothing else.
    answer = send(api, route, params, user=None, csrf=False, token=token, signed=signed)
    if expected is None:  # the code differs by scheme (invalid_token, signature_invalid)
        assert answer.status == 401, answer.body
    else:
        assert (answer.status, answer.code) == expected, answer.body
    assert snapshot(api.manager) == before


def test_a_session_cannot_borrow_a_bad_key(api: Harness) -> None:
    # A broken credential is never "no credential": the admin's session does not apply.
    params = seed(api.manager)
    answer = api.call("GET", "/api/orgs/org_1/keys", token="scout_sk_broken")
    assert answer.status == 401
    del params

"""The management API's behaviour, on both mountings (Starlette app, Flask blueprint)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scout_auth import InMemoryKeyStore, Verifier, WeakKeyNameWarning
from scout_auth.exceptions import AuthError

from .harness import MOUNT, Harness


def verifies(store: InMemoryKeyStore, token: str) -> bool:
    verifier = Verifier(store, cache_ttl=0, legacy_bearer=False)
    try:
        verifier.verify_token(token)
    except AuthError:
        return False
    finally:
        verifier.close()
    return True


def test_create_returns_the_token_once_and_it_works(api: Harness) -> None:
    answer = api.call(
        "POST",
        "/api/orgs/org_1/keys",
        json={"name": "billing-sync prod", "description": "nightly", "scopes": ["drive:read"]},
    )
    assert answer.status == 201
    assert answer.headers["cache-control"] == "no-store"
    data = answer.json()
    assert data["token"].startswith("scout_sk_" + data["key"]["id"])
    assert data["key"]["created_by"] == "alice@example.com"
    assert data["key"]["description"] == "nightly"
    assert data["key"]["status"] == "active"
    assert data["warnings"] == []
    assert answer.headers["location"] == f"{MOUNT}/api/orgs/org_1/keys/{data['key']['id']}"
    assert verifies(api.store, data["token"])
    # Never again: not in the list, not in the key, not in the audit trail.
    for path in ("/api/orgs/org_1/keys", f"/api/orgs/org_1/keys/{data['key']['id']}",
                 "/api/orgs/org_1/audit"):  # fmt: skip
        shown = api.call("GET", path)
        assert shown.status == 200
        assert data["token"] not in shown.body.decode()
        assert data["token"].rsplit("_", 1)[1] not in shown.body.decode()


def test_lifecycle_through_the_api(api: Harness) -> None:
    created = api.create(scopes=["drive:read"])
    key_id, token = created["key"]["id"], created["token"]
    base = f"/api/orgs/org_1/keys/{key_id}"

    assert api.call("POST", f"{base}/disable").json()["status"] == "disabled"
    assert not verifies(api.store, token)
    assert api.call("POST", f"{base}/enable").json()["status"] == "active"
    assert verifies(api.store, token)

    patched = api.call(
        "PATCH", base, json={"name": "billing-sync eu", "description": "eu", "scopes": None}
    ).json()
    assert (patched["name"], patched["description"], patched["scopes"]) == (
        "billing-sync eu", "eu", None,
    )  # fmt: skip

    rotated = api.call("POST", f"{base}/rotate", json={"grace_seconds": 3600})
    assert rotated.status == 201
    new = rotated.json()
    assert new["previous"]["status"] == "rotation_grace"
    assert new["previous"]["replaced_by"] == new["key"]["id"]
    assert verifies(api.store, token)
    assert verifies(api.store, new["token"])
    again = api.call("POST", f"{base}/rotate", json={})
    assert (again.status, again.code) == (409, "already_rotated")

    assert api.call("DELETE", base).status == 204
    assert not verifies(api.store, token)
    assert api.call("GET", base).status == 404

    actions = [e["action"] for e in api.call("GET", "/api/orgs/org_1/audit").json()["items"]]
    assert actions[0] == "deleted"
    assert "rotated" in actions
    assert "created" in actions
    actors = {e["actor"] for e in api.call("GET", "/api/orgs/org_1/audit").json()["items"]}
    assert actors == {"alice@example.com"}


def test_list_paginates_by_cursor_without_repeats(api: Harness) -> None:
    ids = [api.manager.create_key("org_1", f"integration {i}").key.key_id for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = api.call("GET", "/api/orgs/org_1/keys" + query).json()
        assert page["total"] == 7
        seen += [k["id"] for k in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    bad = api.call("GET", "/api/orgs/org_1/keys?cursor=not-a-cursor")
    assert (bad.status, bad.json()["errors"][0]["field"]) == (422, "cursor")


def test_list_filters_by_status_and_name(api: Harness) -> None:
    keep = api.manager.create_key("org_1", "billing-sync prod")
    off = api.manager.create_key("org_1", "crm export")
    api.manager.disable_key(off.key.key_id)
    soon = datetime.now(UTC) + timedelta(days=2)
    api.manager.create_key("org_1", "warehouse", expires_at=soon)
    by_status = api.call("GET", "/api/orgs/org_1/keys?status=disabled,expires_soon").json()
    assert {k["name"] for k in by_status["items"]} == {"crm export", "warehouse"}
    by_name = api.call("GET", "/api/orgs/org_1/keys?q=BILLING").json()
    assert [k["id"] for k in by_name["items"]] == [keep.key.key_id]
    assert api.call("GET", "/api/orgs/org_1/keys?status=bogus").status == 422


def test_expiry_presets_and_weak_name_warning(api: Harness) -> None:
    with pytest.warns(WeakKeyNameWarning):  # the manager warns too; the API answers it
        data = api.create("test", expires_in_days=7)
    assert data["warnings"] == ["weak_name"]
    expires = datetime.fromisoformat(data["key"]["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert data["key"]["status"] == "expires_soon"


def test_audit_filters(api: Harness) -> None:
    created = api.create()
    key_id = created["key"]["id"]
    api.call("POST", f"/api/orgs/org_1/keys/{key_id}/disable")
    other = api.create("crm export")
    page = api.call("GET", f"/api/orgs/org_1/audit?key_id={key_id}").json()
    assert [e["action"] for e in page["items"]] == ["disabled", "created"]
    page = api.call("GET", "/api/orgs/org_1/audit?action=created").json()
    assert {e["key_id"] for e in page["items"]} == {key_id, other["key"]["id"]}
    page = api.call("GET", "/api/orgs/org_1/audit?actor=nobody").json()
    assert page["items"] == []
    page = api.call("GET", "/api/orgs/org_1/audit?limit=1").json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = api.call("GET", f"/api/orgs/org_1/audit?limit=10&cursor={page['next_cursor']}")
    assert len(rest.json()["items"]) == 2
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.call("GET", f"/api/orgs/org_1/audit?since={future}").json()["items"] == []
    assert api.call("GET", "/api/orgs/org_1/audit?since=yesterday").status == 422
    assert api.call("GET", "/api/orgs/org_1/audit?cursor=%00%01").status == 422


def test_roles_catalogue_and_legacy(api: Harness) -> None:
    put = api.call("PUT", "/api/orgs/org_1/roles/reader", json={"scopes": ["drive:read"]})
    assert put.json() == {"name": "reader", "scopes": ["drive:read"]}
    assert api.call("GET", "/api/orgs/org_1/roles").json()["items"] == [put.json()]
    scope = api.call("PUT", "/api/orgs/org_1/scopes/drive:read", json={"description": "Read"})
    assert scope.json() == {"name": "drive:read", "description": "Read"}
    assert api.call("GET", "/api/orgs/org_1/scopes").json()["items"] == [scope.json()]
    assert api.call("DELETE", "/api/orgs/org_1/scopes/drive:read").status == 204
    assert api.call("DELETE", "/api/orgs/org_1/scopes/drive:read").status == 404
    assert api.call("DELETE", "/api/orgs/org_1/roles/reader").status == 204

    legacy = api.call("GET", "/api/orgs/org_1/legacy").json()
    assert legacy["exists"] is False
    assert api.call("POST", "/api/orgs/org_1/legacy/disable").status == 404
    api.manager.import_legacy_key("org_1", "old-shared-secret-123")
    assert api.call("POST", "/api/orgs/org_1/legacy/disable").json()["enabled"] is False
    assert api.call("POST", "/api/orgs/org_1/legacy/enable").json()["enabled"] is True


def test_another_orgs_key_is_not_found_through_my_org(api: Harness) -> None:
    theirs = api.manager.create_key("org_2", "their key").key.key_id
    for method, suffix in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/disable"),
                           ("POST", "/rotate")]:  # fmt: skip
        answer = api.call(method, f"/api/orgs/org_1/keys/{theirs}{suffix}", json={})
        assert (answer.status, answer.code) == (404, "not_found"), (method, suffix)
    assert api.manager.get_key(theirs).enabled


def test_rate_limit_on_create() -> None:
    api = Harness("starlette", create_per_minute=2)
    api.create("one integration")
    api.create("two integration")
    answer = api.call("POST", "/api/orgs/org_1/keys", json={"name": "three integration"})
    assert (answer.status, answer.code) == (429, "rate_limited")
    assert int(answer.headers["retry-after"]) >= 1
    assert len(api.manager.list_keys("org_1")) == 2


def test_head_405_and_unknown_paths(api: Harness) -> None:
    head = api.call("HEAD", "/api/orgs/org_1/keys")
    assert head.status == 200
    assert head.body == b""
    wrong = api.call("PUT", "/api/orgs/org_1/keys", json={})
    assert wrong.status == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST"
    for path in ("/api/orgs/org_1/nothing", "/api/orgs//keys", "/api/orgs/org_1/keys/a/b/c"):
        assert api.call("GET", path).status == 404, path


@pytest.mark.parametrize("user", ["admin", "viewer"])
def test_openapi_is_public_and_names_every_route(api: Harness, user: str) -> None:
    doc = api.call("GET", "/openapi.json", user=None).json()
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": MOUNT}]

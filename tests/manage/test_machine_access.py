"""Org Credentials with ``keys:manage``: Unkey-style root keys for automation."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import Harness


@pytest.fixture
def bot(api: Harness) -> str:
    """A token holding keys:manage and drive:* (its ceiling)."""
    return api.manager.create_key(
        "org_1", "provisioning bot", scopes=["keys:manage", "drive:*"]
    ).token


@pytest.mark.parametrize("signed", [False, True], ids=["bearer", "signed"])
def test_a_manage_key_manages_its_own_org_within_its_scopes(
    api: Harness, bot: str, signed: bool
) -> None:
    how: dict[str, Any] = {"user": None, "csrf": False, "token": bot, "signed": signed}
    listed = api.call("GET", "/api/orgs/org_1/keys", **how)
    assert listed.status == 200
    assert listed.json()["total"] == 1
    created = api.call(
        "POST", "/api/orgs/org_1/keys", json={"name": "drive sync", "scopes": ["drive:read"]}, **how
    )
    assert created.status == 201, created.body
    key = created.json()["key"]
    assert key["created_by"].startswith("key:")
    off = api.call("POST", f"/api/orgs/org_1/keys/{key['id']}/disable", **how)
    assert off.json()["status"] == "disabled"
    event = api.call("GET", "/api/orgs/org_1/audit?action=disabled").json()["items"][0]
    assert event["actor"] == key["created_by"]


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"name": "wider", "scopes": ["billing:read"]}, "billing:read"),
        ({"name": "wider", "scopes": ["*"]}, "*"),
        ({"name": "wider", "scopes": ["keys:*"]}, "keys:*"),
        ({"name": "wider"}, "unrestricted"),
        ({"name": "wider", "scopes": None}, "unrestricted"),
        ({"name": "wider", "scopes": [], "roles": ["billing"]}, "billing:read"),
    ],
)
def test_a_key_never_grants_more_than_it_holds(
    api: Harness, bot: str, body: dict[str, object], what: str
) -> None:
    api.manager.put_role("org_1", "billing", ["billing:read"])
    answer = api.call("POST", "/api/orgs/org_1/keys", json=body, user=None, csrf=False, token=bot)
    assert (answer.status, answer.code) == (403, "scope_ceiling"), answer.body
    assert what in answer.json()["detail"]
    assert len(api.manager.list_keys("org_1")) == 1


def test_a_key_cannot_widen_rotate_or_role_past_its_ceiling(api: Harness, bot: str) -> None:
    how: dict[str, Any] = {"user": None, "csrf": False, "token": bot}
    wide = api.manager.create_key("org_1", "billing export", scopes=["billing:read"]).key.key_id
    narrow = api.manager.create_key("org_1", "drive export", scopes=["drive:read"]).key.key_id
    refused = [
        ("PATCH", f"/api/orgs/org_1/keys/{narrow}", {"scopes": ["billing:read"]}),
        ("PATCH", f"/api/orgs/org_1/keys/{narrow}", {"scopes": None}),
        ("POST", f"/api/orgs/org_1/keys/{wide}/rotate", {}),
        ("PUT", "/api/orgs/org_1/roles/billing", {"scopes": ["billing:*"]}),
    ]
    for method, path, body in refused:
        answer = api.call(method, path, json=body, **how)
        assert (answer.status, answer.code) == (403, "scope_ceiling"), (method, path)
    assert api.manager.get_key(narrow).scopes == frozenset({"drive:read"})
    assert api.manager.get_key(wide).replaced_by is None
    assert api.manager.list_roles("org_1") == []
    # Within the ceiling it may.
    ok = api.call("POST", f"/api/orgs/org_1/keys/{narrow}/rotate", json={}, **how)
    assert ok.status == 201


def test_a_manage_key_cannot_reach_another_org(api: Harness, bot: str) -> None:
    api.manager.create_key("org_2", "their key")
    answer = api.call("GET", "/api/orgs/org_2/keys", user=None, csrf=False, token=bot)
    assert (answer.status, answer.code) == (404, "not_found")


def test_a_signed_body_must_match_its_digest(api: Harness, bot: str) -> None:
    # Signed for one body, sent with another: the digest the signature covers fails.
    from scout_auth.client import SigningAuth

    from .harness import BASE, MOUNT

    url = MOUNT + "/api/orgs/org_1/keys"
    signed_for = b'{"name": "drive sync", "scopes": ["drive:read"]}'
    headers = {"content-type": "application/json"}
    headers.update(
        SigningAuth(bot).signature_headers("POST", BASE + url, headers.items(), signed_for)
    )
    sent = b'{"name": "drive sync", "scopes": ["drive:*"]}'
    answer = api.call("POST", "/api/orgs/org_1/keys", body=sent, headers=headers, user=None,
                      csrf=False)  # fmt: skip
    assert answer.status == 401
    assert len(api.manager.list_keys("org_1")) == 1

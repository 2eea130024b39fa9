"""Recoverable keys through the API and the page (issue 14's vault, on issue 13's page)."""

from __future__ import annotations

import pytest

from .harness import Harness


def recoverable(api: Harness) -> dict[str, object]:
    return api.create("billing-sync prod", recoverable=True)


def test_an_admin_reveals_a_recoverable_key_after_typing_its_name(api: Harness) -> None:
    made = recoverable(api)
    key = made["key"]
    assert isinstance(key, dict)
    assert key["recoverable"] is True
    path = f"/api/orgs/org_1/keys/{key['id']}/reveal"
    wrong = api.call("POST", path, json={"confirm": "billing-sync"})
    assert (wrong.status, wrong.json()["errors"][0]["field"]) == (422, "confirm")
    shown = api.call("POST", path, json={"confirm": "billing-sync prod"})
    assert shown.status == 200
    assert shown.headers["cache-control"] == "no-store"
    assert shown.json()["token"] == made["token"]
    event = api.call("GET", "/api/orgs/org_1/audit?action=revealed").json()["items"]
    assert [(e["key_id"], e["actor"]) for e in event] == [(key["id"], "alice@example.com")]


def test_keys_made_without_it_are_never_revealed(api: Harness) -> None:
    key = api.create()["key"]
    answer = api.call(
        "POST", f"/api/orgs/org_1/keys/{key['id']}/reveal", json={"confirm": key["name"]}
    )
    assert (answer.status, answer.code) == (409, "not_recoverable")
    assert "scout_sk_" not in answer.body.decode()


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_without_a_vault_keys_are_shown_once(kind: str) -> None:
    api = Harness(kind, vault=False)
    refused = api.call("POST", "/api/orgs/org_1/keys", json={"name": "crm export",
                                                              "recoverable": True})  # fmt: skip
    assert (refused.status, refused.json()["errors"][0]["field"]) == (422, "recoverable")
    key = api.create()["key"]
    reveal = api.call(
        "POST", f"/api/orgs/org_1/keys/{key['id']}/reveal", json={"confirm": key["name"]}
    )
    assert (reveal.status, reveal.code) == (409, "not_recoverable")
    page = api.call("GET", "/orgs/org_1").body.decode()
    assert "Keys are shown once" in page
    assert "js-reveal" not in page


def test_viewers_and_keys_cannot_reveal(api: Harness) -> None:
    key = recoverable(api)["key"]
    assert isinstance(key, dict)
    path = f"/api/orgs/org_1/keys/{key['id']}/reveal"
    body = {"confirm": key["name"]}
    assert api.call("POST", path, json=body, user="viewer").status == 403
    bot = api.manager.create_key("org_1", "provisioning bot", scopes=["keys:manage", "*"]).token
    answer = api.call("POST", path, json=body, user=None, csrf=False, token=bot)
    assert (answer.status, answer.code) == (403, "not_an_admin")
    assert api.call("POST", path, json=body, csrf=False).status == 403  # no CSRF header


def test_the_page_offers_reveal_only_for_recoverable_keys_to_admins(api: Harness) -> None:
    recoverable(api)
    api.create("crm export")
    admin = api.call("GET", "/orgs/org_1").body.decode()
    assert admin.count('class="js-reveal"') == 1
    assert 'id="create-recoverable"' in admin
    viewer = api.call("GET", "/orgs/org_1", user="viewer").body.decode()
    assert "js-reveal" not in viewer


def test_rotating_a_recoverable_key_keeps_it_recoverable(api: Harness) -> None:
    key = recoverable(api)["key"]
    assert isinstance(key, dict)
    rotated = api.call("POST", f"/api/orgs/org_1/keys/{key['id']}/rotate", json={}).json()
    assert rotated["key"]["recoverable"] is True
    shown = api.call(
        "POST", f"/api/orgs/org_1/keys/{rotated['key']['id']}/reveal",
        json={"confirm": rotated["key"]["name"]},
    )  # fmt: skip
    assert shown.json()["token"] == rotated["token"]

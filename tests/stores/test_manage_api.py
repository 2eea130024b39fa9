"""The management API over every real store, through both mountings (issue 13).

The API tests run on the in-memory store; this runs one key's whole story —
create, list and page, edit, disable, rotate, delete, audit, catalogue —
on SQLite, PostgreSQL, MariaDB and Redis, where datetimes, ordering and the
audit sink are the back end's own.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from scout_auth import Verifier
from scout_auth.exceptions import AuthError
from scout_auth.manage import Principal
from tests.manage.harness import Harness
from tests.stores.test_legacy_bearer_stores import store  # noqa: F401  (the fixture)


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_a_key_story_through_the_api(store: Any, kind: str) -> None:  # noqa: F811
    org = f"org_{uuid.uuid4().hex[:12]}"
    admin = Principal("alice@example.com", admin_orgs=[org])

    def authorize(request: Any) -> Principal:
        return admin

    async def aauthorize(request: Any) -> Principal:
        return admin

    api = Harness(kind, store, authorize=aauthorize if kind == "starlette" else authorize)
    base = f"/api/orgs/{org}"
    made = [api.call("POST", f"{base}/keys", json={"name": f"integration {i}"}) for i in range(3)]
    assert [m.status for m in made] == [201, 201, 201]
    first = made[0].json()
    key_id, token = first["key"]["id"], first["token"]

    page = api.call("GET", f"{base}/keys?limit=2").json()
    assert page["total"] == 3
    rest = api.call("GET", f"{base}/keys?limit=2&cursor={page['next_cursor']}").json()
    assert [k["id"] for k in page["items"] + rest["items"]] == [m.json()["key"]["id"] for m in made]

    edited = api.call(
        "PATCH", f"{base}/keys/{key_id}",
        json={"description": "nightly sync", "scopes": ["drive:read"], "expires_in_days": 30},
    ).json()  # fmt: skip
    assert (edited["description"], edited["scopes"]) == ("nightly sync", ["drive:read"])
    assert edited["created_by"] == "alice@example.com"

    verifier = Verifier(store, cache_ttl=0, legacy_bearer=False)

    def works(t: str) -> bool:
        try:
            verifier.verify_token(t)
        except AuthError:
            return False
        return True

    try:
        assert api.call("POST", f"{base}/keys/{key_id}/disable").status == 200
        assert not works(token)
        assert api.call("POST", f"{base}/keys/{key_id}/enable").status == 200
        rotated = api.call("POST", f"{base}/keys/{key_id}/rotate", json={"grace_seconds": 600})
        new_token = rotated.json()["token"]
        assert works(token)
        assert works(new_token)
        assert api.call("DELETE", f"{base}/keys/{key_id}").status == 204
        assert not works(token)
        assert works(new_token)
    finally:
        verifier.close()

    assert api.call("PUT", f"{base}/scopes/drive:read", json={"description": "Read"}).status == 200
    assert api.call("GET", f"{base}/scopes").json()["items"] == [
        {"name": "drive:read", "description": "Read"}
    ]
    trail = api.call("GET", f"{base}/audit?key_id={key_id}").json()["items"]
    assert [e["action"] for e in trail][:2] == ["deleted", "rotated"]
    assert {e["actor"] for e in trail} == {"alice@example.com"}

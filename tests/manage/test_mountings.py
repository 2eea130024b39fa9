"""Both mountings answer the same requests with the same bytes; FastAPI mounts it too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyManager
from scout_auth.manage import ManagementApp

from .harness import MOUNT, Harness, aauthorize

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()

#: Headers the frameworks add or word their own way; everything else must match.
FRAMEWORK_HEADERS = {"content-length", "date", "server", "connection"}


@pytest.fixture
def pair() -> tuple[Harness, Harness, dict[str, str]]:
    store = InMemoryKeyStore()
    seeder = KeyManager(store, audit=store.audit_sink(), clock=lambda: NOW)
    one = seeder.create_key("org_1", "billing-sync prod", scopes=["drive:read"], actor="seed")
    two = seeder.create_key("org_1", "crm export", description="nightly")
    seeder.disable_key(two.key.key_id, actor="seed")
    seeder.put_role("org_1", "reader", ["drive:read"])
    seeder.publish_scope("org_1", "drive:read", "Read files")
    ids = {"one": one.key.key_id, "two": two.key.key_id}
    starlette = Harness("starlette", store, clock=lambda: NOW)
    flask = Harness("flask", store, clock=lambda: NOW)
    return starlette, flask, ids


REQUESTS = [
    ("GET", "/api/orgs/org_1/keys", None, {}),
    ("GET", "/api/orgs/org_1/keys?limit=1", None, {}),
    ("GET", "/api/orgs/org_1/keys/{one}", None, {}),
    ("GET", "/api/orgs/org_1/roles", None, {}),
    ("GET", "/api/orgs/org_1/scopes", None, {}),
    ("GET", "/api/orgs/org_1/legacy", None, {}),
    ("GET", "/api/orgs/org_1/keys/nope", None, {}),
    ("GET", "/api/orgs/org_2/keys", None, {}),
    ("GET", "/api/orgs/org_1/keys", None, {"user": None}),
    ("POST", "/api/orgs/org_1/keys", {"name": ""}, {}),
    ("POST", "/api/orgs/org_1/keys", {"name": "x"}, {"csrf": False}),
    ("POST", "/api/orgs/org_1/keys", {"name": "x"}, {"user": "viewer"}),
    ("PUT", "/api/orgs/org_1/keys", {}, {}),
    ("HEAD", "/api/orgs/org_1/keys", None, {}),
    ("GET", "/openapi.json", None, {"user": None}),
    ("PATCH", "/api/orgs/org_1/keys/{two}", {"description": "weekly"}, {}),
]


@pytest.mark.parametrize(("method", "path", "body", "how"), REQUESTS)
def test_same_bytes(pair: tuple[Harness, Harness, dict[str, str]], method: str, path: str,
                    body: object, how: dict[str, object]) -> None:  # fmt: skip
    starlette, flask, ids = pair
    path = path.format(**ids)
    a = starlette.call(method, path, json=body, **how)  # type: ignore[arg-type]
    if method == "PATCH":  # undo, so the Flask call makes the same change
        starlette.manager.set_description(ids["two"], "nightly")
    b = flask.call(method, path, json=body, **how)  # type: ignore[arg-type]
    assert (a.status, a.body) == (b.status, b.body)
    strip = lambda h: {k: v for k, v in h.items() if k not in FRAMEWORK_HEADERS}  # noqa: E731
    assert strip(a.headers) == strip(b.headers)


def test_fastapi_mounts_the_app() -> None:
    store = InMemoryKeyStore()
    app = FastAPI()
    app.mount(MOUNT, ManagementApp(AsyncKeyManager(store), authorize=aauthorize))
    client = TestClient(app)
    answer = client.post(
        MOUNT + "/api/orgs/org_1/keys",
        json={"name": "billing-sync prod"},
        headers={"x-test-user": "admin", "x-scout-auth-request": "1"},
    )
    assert answer.status_code == 201
    assert (
        client.get(MOUNT + "/api/orgs/org_1/keys", headers={"x-test-user": "admin"}).json()["total"]
        == 1
    )


def test_the_app_refuses_the_wrong_manager() -> None:
    store = InMemoryKeyStore()
    with pytest.raises(TypeError):
        ManagementApp(KeyManager(store), authorize=aauthorize)  # type: ignore[arg-type]
    from scout_auth.manage import management_blueprint

    with pytest.raises(TypeError):
        management_blueprint(AsyncKeyManager(store), authorize=lambda r: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        management_blueprint(KeyManager(store), authorize=aauthorize)  # type: ignore[arg-type]

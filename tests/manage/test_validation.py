"""Bad input gets a clear 4xx naming the field, and nothing is written."""

from __future__ import annotations

import io
from typing import Any

import anyio
import pytest
from werkzeug.test import EnvironBuilder

from .harness import MOUNT, Harness

FAR = "2999-01-01T00:00:00Z"

# (body, the field the 422 names)
BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({}, "name"),
    ({"name": ""}, ""),
    ({"name": "   "}, ""),
    ({"name": "x" * 201}, "name"),
    ({"name": 5}, "name"),
    ({"name": "a\x00b"}, ""),
    ({"name": "line\r\nforged"}, ""),
    ({"name": "ok name", "description": "x" * 1001}, "description"),
    ({"name": "ok name", "description": "bell\x07"}, ""),
    ({"name": "ok name", "scopes": "drive:read"}, "scopes"),
    ({"name": "ok name", "scopes": [1]}, "scopes"),
    ({"name": "ok name", "scopes": ["has space"]}, ""),
    ({"name": "ok name", "scopes": ["x"] * 101}, "scopes"),
    ({"name": "ok name", "roles": None}, "roles"),
    ({"name": "ok name", "allowed_ips": ["10.0.0.0/33"]}, ""),
    ({"name": "ok name", "allowed_ips": ["not an ip"]}, ""),
    ({"name": "ok name", "allowed_ips": []}, ""),
    ({"name": "ok name", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "ok name", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
    ({"name": "ok name", "expires_at": "tomorrow"}, "expires_at"),
    ({"name": "ok name", "expires_at": 17}, "expires_at"),
    ({"name": "ok name", "expires_in_days": 0}, "expires_in_days"),
    ({"name": "ok name", "expires_in_days": 3651}, "expires_in_days"),
    ({"name": "ok name", "expires_in_days": True}, "expires_in_days"),
    ({"name": "ok name", "expires_in_days": 7, "expires_at": FAR}, "expires_in_days"),
    ({"name": "ok name", "admin": True}, "admin"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES, ids=lambda v: repr(v)[:40])
def test_bad_create_is_422_with_the_field(api: Harness, body: dict[str, Any], field: str) -> None:
    answer = api.call("POST", "/api/orgs/org_1/keys", json=body)
    assert (answer.status, answer.code) == (422, "invalid_argument"), answer.body
    assert answer.json()["errors"][0]["field"] == field
    assert api.manager.list_keys("org_1") == []


def test_bad_update_writes_nothing(api: Harness) -> None:
    key_id = api.create()["key"]["id"]
    before = api.manager.get_key(key_id)
    for body in (
        {"name": "fine", "scopes": ["bad scope"]},
        {"description": "fine", "expires_at": "2020-01-01T00:00:00Z"},
        {"enabled": "yes"},
        {"name": "fine", "bogus": 1},
    ):
        answer = api.call("PATCH", f"/api/orgs/org_1/keys/{key_id}", json=body)
        assert answer.status == 422, body
    assert api.manager.get_key(key_id) == before


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b"[" * 50_000 + b"]" * 50_000, "application/json", 413, "body_too_large"),
        (b"[" * 20_000 + b"]" * 20_000, "application/json", 400, "invalid_json"),
        (b'["a list"]', "application/json", 422, "invalid_argument"),
        (b'"a string"', "application/json", 422, "invalid_argument"),
        (b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"name": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b"x" * (64 * 1024 + 1), "application/json", 413, "body_too_large"),
    ],
    ids=[
        "broken",
        "not-utf8",
        "huge-nesting",
        "deep-nesting",
        "list",
        "string",
        "form",
        "text-plain",
        "too-large",
    ],
)
def test_bodies_that_are_not_a_json_object(
    api: Harness, body: bytes, content_type: str, status: int, code: str
) -> None:
    answer = api.call(
        "POST", "/api/orgs/org_1/keys", body=body, headers={"content-type": content_type}
    )
    assert (answer.status, answer.code) == (status, code), answer.body[:200]
    assert api.manager.list_keys("org_1") == []


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", "²".encode(), b"9" * 30, b"70000"])
def test_bad_content_length_is_refused_unread(api: Harness, length: bytes) -> None:
    # Sent raw: test clients rewrite Content-Length from the body they send.
    raw = {"x-test-user": "admin", "x-scout-auth-request": "1", "content-length": length}
    if api.kind == "starlette":
        status = asgi_status(api.client.app, raw)
    else:
        status = wsgi_status(api.client.application, raw)
    assert status in (400, 413)
    assert api.manager.list_keys("org_1") == []


def asgi_status(app: Any, headers: dict[str, Any]) -> int:
    scope = {
        "type": "http", "method": "POST", "path": MOUNT + "/api/orgs/org_1/keys",
        "raw_path": (MOUNT + "/api/orgs/org_1/keys").encode(), "root_path": "",
        "query_string": b"", "scheme": "http", "server": ("testserver", 80),
        "headers": [(k.encode(), v if isinstance(v, bytes) else v.encode())
                    for k, v in {**headers, "host": "testserver"}.items()],
        "client": ("127.0.0.1", 1234), "http_version": "1.1",
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return int(sent[0]["status"])


def wsgi_status(app: Any, headers: dict[str, Any]) -> int:
    environ = EnvironBuilder(path=MOUNT + "/api/orgs/org_1/keys", method="POST").get_environ()
    for name, value in headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_LENGTH" else "HTTP_" + key] = text
    environ["wsgi.input"] = io.BytesIO(b"")
    statuses: list[str] = []
    b"".join(app(environ, lambda status, _headers: statuses.append(status)))
    return int(statuses[0].split()[0])


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=abc", "limit=%C2%B2", "status=" + "x" * 70,
     "&".join(f"q{i}=1" for i in range(60))],
    ids=["zero", "too-many", "word", "unicode-digit", "long-status", "many-fields"],
)  # fmt: skip
def test_bad_query_strings(api: Harness, query: str) -> None:
    answer = api.call("GET", f"/api/orgs/org_1/keys?{query}")
    assert answer.status in (400, 422), answer.body


@pytest.mark.parametrize(
    "name", ["Rechnungs-Sync Zürich", "請求同期", "<script>alert(1)</script>", "emoji 🔑 key"]
)
def test_non_ascii_and_markup_names_round_trip_as_data(api: Harness, name: str) -> None:
    data = api.create(name)
    assert data["key"]["name"] == name
    assert api.call("GET", f"/api/orgs/org_1/keys/{data['key']['id']}").json()["name"] == name


@pytest.mark.parametrize("org", ["org%2F1", "%00", "a" * 256, "org_1%0d%0aX-Forged: 1"])
def test_strange_org_ids_are_not_found(api: Harness, org: str) -> None:
    answer = api.call("GET", f"/api/orgs/{org}/keys")
    assert answer.status == 404

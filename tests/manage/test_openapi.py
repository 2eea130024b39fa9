"""The management API's OpenAPI document: valid 3.1, equal to the route table, true of real answers.

Real answers of both mountings (the Starlette app and the Flask
blueprint) are checked against the schema their operation documents for
their status: the status is documented, the media type too, the body
validates (formats included), documented required headers are sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest

from scout_auth import WeakKeyNameWarning
from scout_auth._manage.openapi import OPERATIONS, document
from scout_auth._manage.routes import ROUTES, Route
from scout_auth.manage import Principal
from tests.openapi_checks import check_answer, dangling_refs, meta_errors, validator

from .harness import MOUNT, Answer, Harness

ORG = "org_1"
#: An org id outside latin-1 (found by schemathesis: its Location header was a 500).
WIDE_ORG = "org-\u0100\u00e9"
DOC = document(MOUNT, ROUTES)
API_ROUTES = [r for r in ROUTES if r.kind == "api"]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# --- the document itself ---------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    # The OAS 3.1 meta-schema (the one schemathesis validates with), then
    # every component schema against JSON Schema 2020-12 itself.
    assert meta_errors(DOC) == []


def test_every_api_route_is_documented_and_nothing_else() -> None:
    documented = {
        (method.upper(), path, op["operationId"])
        for path, item in DOC["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }
    assert documented == {(r.method, r.path, r.name) for r in API_ROUTES}
    assert set(OPERATIONS) == {r.name for r in API_ROUTES}
    ids = [op["operationId"] for item in DOC["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_path_parameters_are_declared_and_bounded() -> None:
    params = DOC["components"]["parameters"]
    for route in API_ROUTES:
        op = DOC["paths"][route.path][route.method.lower()]
        declared = [params[p["$ref"].rsplit("/", 1)[1]] for p in op.get("parameters", [])]
        in_path = {p["name"] for p in declared if p["in"] == "path"}
        assert in_path == {s[1:-1] for s in route.path.split("/") if s.startswith("{")}
        for p in declared:
            if p["in"] == "path":
                assert p["required"] is True
                assert p["schema"]["minLength"] == 1
                assert p["schema"]["maxLength"] == 255


def test_every_reference_resolves() -> None:
    assert dangling_refs(DOC) == []


def test_route_without_an_entry_is_refused() -> None:
    stray = Route("GET", "/api/orgs/{org}/stray", API_ROUTES[0].handler, "stray")
    with pytest.raises(LookupError, match="stray"):
        document(MOUNT, (*ROUTES, stray))


def test_server_url_is_the_mount() -> None:
    assert document("/x/", ROUTES)["servers"] == [{"url": "/x"}]
    assert document("", ROUTES)["servers"] == [{"url": "/"}]


def test_document_is_a_fresh_copy() -> None:
    first = document(MOUNT, ROUTES)
    first["components"]["schemas"]["Key"]["properties"].clear()
    assert document(MOUNT, ROUTES)["components"]["schemas"]["Key"]["properties"]


# --- real answers against it -------------------------------------------------


def _validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    return validator(DOC, schema)


def conforms(method: str, path: str, answer: Answer) -> str:
    """Assert ``answer`` is what the document says; return its operationId."""
    segments = path.split("?", 1)[0].strip("/").split("/")
    route = next(r for r in API_ROUTES if r.method == method and r.match(segments) is not None)
    responses = DOC["paths"][route.path][method.lower()]["responses"]
    check_answer(DOC, responses, answer.status, answer.headers, answer.body, route.name)
    return route.name


KEYS = f"/api/orgs/{ORG}/keys"


def test_real_answers_conform(api: Harness) -> None:
    seen: set[tuple[str, int]] = set()

    def check(method: str, path: str, status: int, **kwargs: Any) -> Any:
        answer = api.call(method, path, **kwargs)
        assert answer.status == status, (method, path, answer.body)
        seen.add((conforms(method, path, answer), status))
        return answer.json() if answer.body else None

    api.manager.import_legacy_key(ORG, "an-old-shared-secret-0123456789")
    api.manager.put_role(ORG, "reader", ["drive:read"])
    new = check("POST", KEYS, 201, json={
        "name": "billing-sync prod", "description": "Nightly billing export",
        "scopes": ["drive:read"], "roles": ["reader"], "allowed_ips": ["10.0.0.0/8"],
        "expires_in_days": 30,
    })  # fmt: skip
    key = new["key"]["id"]
    with pytest.warns(WeakKeyNameWarning):
        weak = check("POST", KEYS, 201, json={"name": "key1", "scopes": None, "expires_at": None})
    assert weak["warnings"] == ["weak_name"]
    check("GET", f"{KEYS}?limit=1&status=active,expires_soon&q=billing", 200)
    page = check("GET", f"{KEYS}?limit=1", 200)
    check("GET", f"{KEYS}?cursor={page['next_cursor']}", 200)
    check("GET", f"{KEYS}/{key}", 200)
    check("PATCH", f"{KEYS}/{key}", 200, json={
        "description": "x", "enabled": False, "allowed_ips": None,
        "expires_at": "2999-01-01T00:00:00Z",
    })  # fmt: skip
    check("POST", f"{KEYS}/{key}/enable", 200)
    check("POST", f"{KEYS}/{key}/disable", 200)
    rotated = check("POST", f"{KEYS}/{key}/rotate", 201, json={"grace_seconds": 60})
    assert rotated["previous"]["replaced_by"] == rotated["key"]["id"]
    check("POST", f"{KEYS}/{key}/rotate", 409)
    api.store.record_usage(key, 1, datetime.now(UTC) + timedelta(seconds=1), "2001:db8::1")
    assert check("GET", f"{KEYS}/{key}", 200)["last_used_address"] == "2001:db8::1"
    report = check("GET", f"/api/orgs/{ORG}/report?expiring_days=60&unused_days=1", 200)
    assert report["expiring"] == []  # the rotated-out key was disabled above
    check("GET", f"/api/orgs/{ORG}/report", 200, user="viewer")
    check("GET", f"/api/orgs/{ORG}/report?unused_days=0", 422)
    check("GET", f"/api/orgs/{ORG}/audit", 200)
    check("GET", f"/api/orgs/{ORG}/audit?action=created&action=rotated&limit=2", 200)
    check("GET", f"/api/orgs/{ORG}/audit?since=2000-01-01T00:00:00Z&key_id={key}", 200)
    check("GET", f"/api/orgs/{ORG}/legacy", 200)
    check("POST", f"/api/orgs/{ORG}/legacy/disable", 200)
    check("POST", f"/api/orgs/{ORG}/legacy/enable", 200)
    check("PUT", f"/api/orgs/{ORG}/roles/writer", 200, json={"scopes": ["drive:write"]})
    check("GET", f"/api/orgs/{ORG}/roles", 200)
    check("DELETE", f"/api/orgs/{ORG}/roles/writer", 204)
    check("PUT", f"/api/orgs/{ORG}/scopes/drive:read", 200, json={"description": "Read files"})
    check("GET", f"/api/orgs/{ORG}/scopes", 200)
    check("DELETE", f"/api/orgs/{ORG}/scopes/drive:read", 204)
    check("DELETE", f"{KEYS}/{key}", 204)

    # Problems.
    check("GET", KEYS, 401, user=None, csrf=False)
    check("GET", KEYS, 401, user=None, token="scout_sk_nope_nope")
    check("POST", KEYS, 403, user="viewer", json={"name": "x"})
    check("POST", KEYS, 403, csrf=False, json={"name": "x"})
    check("POST", KEYS, 403, headers={"sec-fetch-site": "cross-site"}, json={})
    plain = api.manager.create_key(ORG, "reporting", scopes=["drive:read"]).token
    check("GET", KEYS, 403, user=None, token=plain)
    check("GET", "/api/orgs/org_2/keys", 404)
    check("GET", f"{KEYS}/{key}", 404)
    check("DELETE", f"/api/orgs/{ORG}/roles/nobody", 404)
    check("GET", f"{KEYS}?limit=0", 422)
    check("GET", f"/api/orgs/{ORG}/audit?since=yesterday", 422)
    check("POST", KEYS, 422, json={"name": "x", "colour": "red"})
    check("POST", KEYS, 422, json={"name": "x", "expires_at": None, "expires_in_days": 3})
    check("PUT", f"/api/orgs/{ORG}/roles/bad%20name", 422, json={"scopes": []})
    check("POST", KEYS, 400, body=b"{", headers={"content-type": "application/json"})
    check("POST", KEYS, 415, body=b"name=x", headers={"content-type": "text/plain"})
    check("POST", KEYS, 413, body=b"x" * 70_000)

    # A key with keys:manage is a principal of its own org.
    manager_token = api.manager.create_key(
        ORG, "key admin", scopes=["keys:manage", "drive:read"]
    ).token
    check("GET", KEYS, 200, user=None, token=manager_token)
    check("POST", KEYS, 403, user=None, token=manager_token,
          json={"name": "wider", "scopes": ["drive:write"]})  # fmt: skip

    wanted = {
        ("create_key", 201), ("list_keys", 200), ("get_key", 200), ("update_key", 200),
        ("rotate_key", 201), ("audit", 200), ("legacy_status", 200), ("list_roles", 200),
        ("put_role", 200), ("list_scope_catalogue", 200), ("publish_scope", 200),
        ("list_keys", 401), ("create_key", 403), ("list_keys", 404), ("list_keys", 422),
        ("key_report", 200), ("key_report", 422),
    }  # fmt: skip
    assert wanted <= seen


def test_the_check_catches_a_wrong_answer() -> None:
    # The validator is not vacuous: a view missing a field, an extra field,
    # a bad date-time or an undocumented status all fail.
    key_schema = _validator({"$ref": "#/components/schemas/Key"})
    assert not key_schema.is_valid({"id": "k"})
    ok = Answer(200, {"content-type": "application/json"}, b'{"items":[]}')
    conforms("GET", f"/api/orgs/{ORG}/roles", ok)
    for wrong in (
        Answer(200, {"content-type": "application/json"}, b'{"items":[],"more":1}'),
        Answer(200, {"content-type": "text/html"}, b'{"items":[]}'),
        Answer(201, {"content-type": "application/json"}, b'{"items":[]}'),
        Answer(401, {"content-type": "application/problem+json"}, b'{"code":"x"}'),
    ):
        with pytest.raises(AssertionError):
            conforms("GET", f"/api/orgs/{ORG}/roles", wrong)
    event: dict[str, str | None] = {
        "id": "e",
        "at": "yesterday",
        "action": "created",
        "org_id": ORG,
    }
    event |= {f: None for f in ("key_id", "key_name", "actor", "reason", "method", "path")}
    event |= {"client_ip": None, "replaced_by": None}
    assert not _validator({"$ref": "#/components/schemas/AuditEvent"}).is_valid(event)
    assert _validator({"$ref": "#/components/schemas/AuditEvent"}).is_valid(
        {**event, "at": "2026-01-01T00:00:00.000000+00:00"}
    )


def test_served_document_is_the_document(api: Harness) -> None:
    answer = api.call("GET", "/openapi.json", user=None)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == DOC


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_location_of_a_non_ascii_org_is_percent_encoded(kind: str) -> None:
    api = Harness(kind, authorize=lambda request: Principal("ann", admin_orgs=[WIDE_ORG]))
    path = f"/api/orgs/{quote(WIDE_ORG, safe='')}/keys"
    answer = api.call("POST", path, json={"name": "billing-sync prod"})
    assert answer.status == 201
    key = answer.json()["key"]
    assert key["org_id"] == WIDE_ORG
    assert answer.headers["location"] == f"{MOUNT}{path}/{key['id']}"
    conforms("POST", path, answer)
    assert api.call("GET", answer.headers["location"][len(MOUNT) :]).status == 200


def test_method_not_allowed_is_a_problem_with_allow(api: Harness) -> None:
    # 405 belongs to no operation (the method is not one): still a Problem.
    answer = api.call("PUT", KEYS)
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD, POST"
    assert answer.headers["content-type"] == "application/problem+json"
    assert _validator({"$ref": "#/components/schemas/Problem"}).is_valid(answer.json())

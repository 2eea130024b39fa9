"""Schemathesis against the ASGI management app: no server error, every answer as documented.

A bounded run (a few examples per operation, the whole file well under a
minute) of the document the app serves, against the app mounted in
Starlette. The host's ``authorize`` makes the caller an admin of the org
in the path and the CSRF header rides on every call, so changes reach the
handlers; org ``org_1`` is seeded (keys in every status, a role, a
published scope, a legacy secret, audit events) and the generator is
steered to it and its ids half the time, so reads and changes hit real
records. Seeds a case deletes are put back before the next.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyManager
from scout_auth._core.records import RoleRecord, ScopeInfo
from scout_auth._manage.routes import ROUTES
from scout_auth.manage import CSRF_HEADER, ManagementApp, Principal

MOUNT = "/settings/api-keys"
ORG = "org_1"

store = InMemoryKeyStore()
_seed = KeyManager(store, audit=store.audit_sink())
_seed.import_legacy_key(ORG, "an-old-shared-secret-0123456789")
_seed.put_role(ORG, "reader", ["drive:read"])
_seed.publish_scope(ORG, "drive:read", "Read files")
_keys = [
    _seed.create_key(ORG, "billing-sync prod", scopes=["drive:read"], roles=["reader"]).key,
    _seed.create_key(ORG, "nightly export", scopes=None, allowed_ips=["10.0.0.0/8"]).key,
    _seed.create_key(
        ORG, "expiring soon", scopes=["a:b"], expires_at=datetime.now(UTC) + timedelta(days=2)
    ).key,
]
_seed.disable_key(_keys[1].key_id)
# No API makes an expired key: age one in the store.
_old = _seed.create_key(ORG, "expired", scopes=["drive:read"]).key
store.delete_key(_old.key_id)
store.add_key(replace(_old, expires_at=datetime.now(UTC) - timedelta(days=1)))
_keys.append(_old)
_rotated = _seed.create_key(ORG, "to be rotated", scopes=["drive:read"]).key
_seed.rotate_key(_rotated.key_id, actor="seed")
SEEDED = {k.key_id: store.get_key(k.key_id) for k in [*_keys, _rotated]}
ROLE = RoleRecord(ORG, "reader", frozenset({"drive:read"}))
SCOPE = ScopeInfo(ORG, "drive:read", "Read files")
LEGACY = store.get_legacy(ORG)


def _restore_seeds() -> None:
    # A case may delete a seed: put it back so later cases still find it.
    for key_id, record in SEEDED.items():
        if record is not None and store.get_key(key_id) is None:
            store.add_key(record)
    if store.get_role(ORG, ROLE.name) is None:
        store.put_role(ROLE)
    if not store.list_scope_infos(ORG):
        store.put_scope_info(SCOPE)
    if LEGACY is not None and store.get_legacy(ORG) is None:
        store.put_legacy(LEGACY)


def authorize(request: Request) -> Principal:
    """An admin of the org in the path (and of ``org_1``)."""
    path = request.scope["path"]
    orgs = {ORG}
    if "/api/orgs/" in path:
        orgs.add(path.split("/api/orgs/", 1)[1].split("/", 1)[0])
    return Principal("fuzzer@example.com", admin_orgs=orgs)


app = Starlette(
    routes=[
        Mount(
            MOUNT,
            app=ManagementApp(
                AsyncKeyManager(store, audit=store.audit_sink()),
                authorize=authorize,
                create_per_minute=100_000,
            ),
        )
    ]
)


def _steered(document: dict[str, Any]) -> dict[str, Any]:
    """The served document, its path parameters steered to the seeds half the time.

    Only what is generated changes (``anyOf`` of the seeds and the
    documented schema, plus explicit examples): the answers are checked
    against the document as served.
    """
    doc = copy.deepcopy(document)
    seeds = {"org": [ORG], "key": list(SEEDED), "role": [ROLE.name], "scope": [SCOPE.name]}
    for name, values in seeds.items():
        param = doc["components"]["parameters"][name]
        param["schema"] = {"anyOf": [{"enum": values}, param["schema"]]}
        param["examples"] = {f"seed{i}": {"value": v} for i, v in enumerate(values)}
    return doc


def _served() -> dict[str, Any]:
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        answer = client.get(f"{MOUNT}/openapi.json")
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


schema = schemathesis.openapi.from_dict(_steered(_served()))
schema.app = app


def _routable(path_parameters: dict[str, Any] | None) -> bool:
    """Whether every path value reaches the app as one segment.

    Negative cases break the documented pattern on purpose; those that are
    not one segment once decoded (empty, a ``/``, a dot segment, a control
    character: Starlette's own ``Mount`` answers a newline with its
    plain-text 404), as the server decodes them, may never reach the app
    or reach another route, so its document cannot speak for them: they
    are checked for server errors only. Too long ones do reach it (404)
    and are checked in full.
    """
    for value in (path_parameters or {}).values():
        # What the server decodes: the client sends a "%0A" in a value as it is.
        text = unquote(str(value))
        if (
            text in ("", ".", "..")
            or "/" in text
            or any(ord(c) < 32 or ord(c) == 127 for c in text)
        ):
            return False
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
HEADERS = {CSRF_HEADER: "1"}
#: (operationId, status) of every answer the run got, for the last test.
SEEN: Counter[tuple[str, int]] = Counter()


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_answers_as_documented(case: schemathesis.Case[Any]) -> None:
    _restore_seeds()
    checks: Any = CHECKS if _routable(case.path_parameters) else [not_a_server_error]
    response = case.call_and_validate(headers=HEADERS, checks=checks)
    SEEN[case.operation.definition.raw["operationId"], response.status_code] += 1


def test_every_operation_is_fuzzed() -> None:
    assert {op.definition.raw["operationId"] for op in _operations()} == {
        r.name for r in ROUTES if r.kind == "api"
    }


def test_the_run_reached_real_records() -> None:
    # Runs after the fuzzing above (file order): the seeds were found, so
    # reads and changes of real keys, roles and scopes were checked.
    assert SEEN, "needs test_api_answers_as_documented to run first (run the whole file)"
    wanted = [
        ("get_key", 200), ("update_key", 200), ("list_keys", 200), ("audit", 200),
        ("delete_key", 204), ("delete_role", 204), ("unpublish_scope", 204),
    ]  # fmt: skip
    for pair in wanted:
        assert SEEN[pair], (pair, sorted(SEEN))


def _operations() -> list[Any]:
    results: list[Any] = list(schema.get_all_operations())
    return [result.ok() for result in results]

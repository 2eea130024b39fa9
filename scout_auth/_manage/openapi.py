"""The OpenAPI 3.1 document of the management API, built from the route table.

Theory of operation: :data:`OPERATIONS` says, per operationId (a route's
``name``), what the operation takes and answers; the route table says
where it lives. :func:`document` joins the two, so a route cannot be
served undocumented (a route without an entry raises, and a test holds
the table and the routes equal) nor documented unserved. The schemas are
in :mod:`.openapi_schemas`; tests check real answers of both mountings
against them.

Statuses: every operation may answer 400 (a malformed credential, bad
``Content-Length``, too many query parameters), 401, 403, 404 (an org the
principal may not see is "not found"), 413, 429 (a signing key over its
nonce quota), 503 (store outage); :attr:`_Op.errors` adds the operation's
own (415 and 422 where a body or a query is read, 409 for a second
rotation). 405 has no operation to belong to: a method a path does not
take is answered 405 with ``Allow``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .access import MANAGE_SCOPE
from .openapi_schemas import COMPONENTS, ref

if TYPE_CHECKING:
    from .routes import Route

__all__ = ["OPERATIONS", "document"]


@dataclass(frozen=True, slots=True)
class _Op:
    """One operation: summary, tag, the success answer, its inputs and own errors."""

    summary: str
    tag: str
    status: int = 200
    answer: str | None = None  # component schema of the success body (None: no body)
    body: str | None = None  # component schema of the request body
    query: tuple[str, ...] = ()  # component parameters
    errors: tuple[int, ...] = ()


_BODY = (415, 422)  # a JSON body is read
_KEYS_QUERY = ("keysLimit", "keysCursor", "keysStatus", "keysQ")
_AUDIT_QUERY = (
    "auditKey", "auditAction", "auditActor", "auditSince", "auditUntil", "auditCursor",
    "auditLimit",
)  # fmt: skip

#: Every API operation, by operationId.
OPERATIONS: dict[str, _Op] = {
    "list_keys": _Op("One page of the org's keys, oldest first", "keys", answer="KeyPage",
                     query=_KEYS_QUERY, errors=(422,)),
    "create_key": _Op("Create a key (the token is in this answer only)", "keys", 201, "NewKey",
                      "CreateKey", errors=_BODY),
    "get_key": _Op("One key", "keys", answer="Key"),
    "update_key": _Op("Change a key's editable fields", "keys", answer="Key", body="UpdateKey",
                      errors=_BODY),
    "delete_key": _Op("Delete a key, at once and for good", "keys", 204),
    "enable_key": _Op("Enable a key", "keys", answer="Key"),
    "disable_key": _Op("Disable a key", "keys", answer="Key"),
    "rotate_key": _Op("Rotate a key: a successor; the old key works for the grace period",
                      "keys", 201, "RotatedKey", "Rotate", errors=(409, *_BODY)),
    "reveal_key": _Op("Show a recoverable key's token again (org admins, typed confirmation)",
                      "keys", answer="RevealedKey", body="RevealKey", errors=(409, *_BODY)),
    "key_report": _Op("Key hygiene: keys expiring, unused, still used in grace, breaking the "
                      "lifetime policy", "keys", answer="KeyReport",
                      query=("reportExpiringDays", "reportUnusedDays"), errors=(422,)),
    "legacy_status": _Op("The org's legacy secret: its use and its switch", "legacy",
                         answer="Legacy"),
    "enable_legacy": _Op("Switch legacy authentication on", "legacy", answer="Legacy"),
    "disable_legacy": _Op("Switch legacy authentication off", "legacy", answer="Legacy"),
    "list_roles": _Op("The org's roles", "roles", answer="RoleList"),
    "put_role": _Op("Create or replace a role", "roles", answer="Role", body="PutRole",
                    errors=_BODY),
    "delete_role": _Op("Delete a role", "roles", 204, errors=(422,)),
    "list_scope_catalogue": _Op("The org's scope catalogue", "scopes", answer="ScopeList"),
    "publish_scope": _Op("Publish a scope (or change its description)", "scopes",
                         answer="ScopeInfo", body="PublishScope", errors=_BODY),
    "unpublish_scope": _Op("Remove a scope from the catalogue", "scopes", 204, errors=(422,)),
    "audit": _Op("The org's audit trail, newest first", "audit", answer="AuditPage",
                 query=_AUDIT_QUERY, errors=(422,)),
}  # fmt: skip

_COMMON_ERRORS = (400, 401, 403, 404, 413, 429, 503)

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}

#: Why each status happens (``#/components/responses/<status>``).
_ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Malformed: a body that is not JSON, a bad Content-Length, too many query "
          "parameters, or a malformed credential.", {}),
    401: ("Not signed in, or the credential is missing, invalid, expired or disabled.",
          {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}),
    403: (f"Not allowed: a viewer's change, a key without `{MANAGE_SCOPE}` or granting "
          "above its own scopes, or a session change without the CSRF header or cross-site.",
          {}),
    404: ("No such organization (or not one of yours), key, role or scope; or, for the "
          "audit trail, none is configured.", {}),
    409: ("The key was already rotated.", {}),
    413: ("The body is larger than 64 KiB.", {}),
    415: ("The body is not `application/json`.", {}),
    422: ("A field or parameter is invalid: `errors` names it.", {}),
    429: ("Too many keys created or rotated for this org, or too many signed requests by "
          "this key.", _RETRY_AFTER),
    503: ("The key store is unavailable.", _RETRY_AFTER),
}  # fmt: skip

_RESPONSES: dict[str, Any] = {
    str(status): {
        "description": description,
        **({"headers": headers} if headers else {}),
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }
    for status, (description, headers) in _ERRORS.items()
}

_PATH_PARAMETERS = {"org": "org", "key": "key"}


def _parameters(path: str, op: _Op) -> list[dict[str, Any]]:
    params = []
    for part in path.split("/"):
        if part.startswith("{"):
            name = part[1:-1]
            # {name} is a role's or a scope's, by the tag.
            component = _PATH_PARAMETERS.get(name) or ("role" if op.tag == "roles" else "scope")
            params.append({"$ref": f"#/components/parameters/{component}"})
    params.extend({"$ref": f"#/components/parameters/{q}"} for q in op.query)
    return params


def _success(op: _Op) -> dict[str, Any]:
    if op.answer is None:
        return {"description": "Done."}
    answer: dict[str, Any] = {
        "description": "Created." if op.status == 201 else "OK.",
        "content": {"application/json": {"schema": ref(op.answer)}},
    }
    if op.status == 201:
        answer["headers"] = {
            "Location": {
                "description": "The new key's URL.",
                "required": True,
                "schema": {"type": "string"},
            }
        }
    return answer


def _operation(route: Route) -> dict[str, Any]:
    try:
        op = OPERATIONS[route.name]
    except KeyError:
        raise LookupError(f"route {route.name!r} has no entry in openapi.OPERATIONS") from None
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": op.summary,
        "tags": [op.tag],
    }
    parameters = _parameters(route.path, op)
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        operation["requestBody"] = {
            "required": False,  # an empty body reads as {}
            "content": {"application/json": {"schema": ref(op.body)}},
        }
    statuses = sorted({*_COMMON_ERRORS, *op.errors})
    operation["responses"] = {
        str(op.status): _success(op),
        **{str(s): {"$ref": f"#/components/responses/{s}"} for s in statuses},
    }
    return operation


def document(mount: str, routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI document of ``routes``' API operations, its server URL the mount prefix.

    A fresh copy each time: the caller may change it.

    Raises:
        LookupError: An API route has no entry in :data:`OPERATIONS`.
    """
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.kind == "api":
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "scout_auth key management",
                "version": "1",
                "description": (
                    "Create, change, rotate and delete an organization's API keys; its roles, "
                    "scope catalogue, legacy secret and audit trail. Answers are never cached "
                    "(`Cache-Control: no-store`); errors are RFC 9457 problem details."
                ),
            },
            "servers": [{"url": mount.rstrip("/") or "/"}],
            "security": [{"orgCredential": [MANAGE_SCOPE]}, {"session": []}],
            "tags": [{"name": t} for t in ("keys", "legacy", "roles", "scopes", "audit")],
            "paths": paths,
            "components": {**COMPONENTS, "responses": _RESPONSES},
        }
    )

"""The JSON Schemas of the management API's bodies, as OpenAPI 3.1 components.

Each schema says exactly what its counterpart accepts or produces: request
bodies what :class:`~.parse.Body` reads in :mod:`.api` (unknown fields are
refused, so ``additionalProperties: false``), responses what :mod:`.views`
builds (closed too: a field added to a view without its schema fails the
tests, which check real answers against these). Problems stay open
(RFC 9457 §3.2: extension members), as credential failures add some.
"""

from __future__ import annotations

from typing import Any

from .._audit.events import FIELDS, MAX_PAGE_SIZE, AuditAction
from .._core.catalogue import MAX_SCOPE_DESCRIPTION_LENGTH
from .._core.lifecycle import MAX_NAME_LENGTH
from .._core.problem import PROBLEM_TYPE_BASE
from .access import CSRF_HEADER, MANAGE_SCOPE
from .api import MAX_EXPIRY_DAYS, MAX_GRACE_SECONDS, MAX_KEYS_PAGE
from .views import KEY_STATUSES

__all__ = ["COMPONENTS", "PARAMETERS", "SCHEMAS", "SECURITY", "ref"]

Schema = dict[str, Any]

#: ``parse._strings``: lists of at most 100 strings of at most 200 characters.
_MAX_ITEMS = 100
#: ``Body.text``'s limit for a key description.
_MAX_DESCRIPTION = 1000
#: ``Query.texts``: a repeatable parameter takes at most 20 values of at most 64 characters.
_MAX_QUERY_VALUES = 20

#: A scope or role name (``lifecycle._SCOPE_TOKEN``): printable ASCII, no space, ``"`` or ``\``.
SCOPE_PATTERN = r"^[\x21\x23-\x5b\x5d-\x7e]+$"


def ref(name: str) -> Schema:
    """A ``$ref`` to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _record(properties: dict[str, Schema]) -> Schema:
    # A view: every field always there (``null`` when it has no value).
    return _object(properties, required=tuple(properties))


def _strings(item: Schema | None = None, max_items: int = _MAX_ITEMS) -> Schema:
    items = item or {"type": "string", "maxLength": MAX_NAME_LENGTH}
    return {"type": "array", "items": items, "maxItems": max_items}


_TIME: Schema = {"type": "string", "format": "date-time"}
_OPTIONAL_TIME = _nullable(_TIME)
_TEXT = {"type": "string"}
_OPTIONAL_TEXT = _nullable(_TEXT)
_TEXTS: Schema = {"type": "array", "items": _TEXT}
_COUNT: Schema = {"type": "integer", "minimum": 0}
_SCOPE: Schema = {"type": "string", "pattern": SCOPE_PATTERN, "maxLength": MAX_NAME_LENGTH}
_CURSOR = _nullable({"type": "string"})

# A time as the API reads it: RFC 3339 with an offset, at most 40 characters.
_TIME_IN: Schema = {"type": "string", "format": "date-time", "maxLength": 40}
# A key's editable fields as parse.Body reads them; a ``null`` reads as absent
# unless it says something (no scope restriction, no IP allowlist, no expiry).
_KEY_FIELDS: dict[str, Schema] = {
    "description": _nullable({"type": "string", "maxLength": _MAX_DESCRIPTION}),
    "scopes": {**_nullable(_strings(_SCOPE)), "description": "`null`: every scope."},
    "roles": _strings(_SCOPE),
    "allowed_ips": {
        **_nullable(_strings({"type": "string", "maxLength": MAX_NAME_LENGTH})),
        "description": "IP addresses or CIDR ranges; `null`: from anywhere.",
    },
    "expires_at": {**_nullable(_TIME_IN), "description": "In the future; `null`: never."},
    "expires_in_days": _nullable({"type": "integer", "minimum": 1, "maximum": MAX_EXPIRY_DAYS}),
}
_NAME: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}
# The key report's windows (KeyManager.key_report: 1 to 3660 days).
_REPORT_DAYS: Schema = {"type": "integer", "minimum": 1, "maximum": 3660}
# The client address of the key's latest use (normalised IP text, at most 64).
_LAST_USED_ADDRESS: Schema = {
    **_nullable({"type": "string", "maxLength": 64}),
    "description": "The client address of the last use (trusted proxies honoured); "
    "`null`: not known.",
}
# expires_at and expires_in_days are two ways to say one thing: 422 for both.
_ONE_EXPIRY: Schema = {"not": {"required": ["expires_at", "expires_in_days"]}}

_KEY: Schema = _record(
    {
        "id": _TEXT,
        "org_id": _TEXT,
        "name": _TEXT,
        "description": {"type": "string", "description": '`""`: none.'},
        "status": {"type": "string", "enum": list(KEY_STATUSES)},
        "enabled": {"type": "boolean"},
        "created_at": _TIME,
        "created_by": _OPTIONAL_TEXT,
        "expires_at": _OPTIONAL_TIME,
        "scopes": {**_nullable(_TEXTS), "description": "`null`: unrestricted."},
        "roles": _TEXTS,
        "allowed_ips": {**_nullable(_TEXTS), "description": "CIDR ranges; `null`: anywhere."},
        "replaced_by": _OPTIONAL_TEXT,
        "last_used_at": _OPTIONAL_TIME,
        "last_used_address": _LAST_USED_ADDRESS,
        "use_count": _COUNT,
        "recoverable": {
            "type": "boolean",
            "description": "Whether an org admin can reveal it again (a key vault holds it).",
        },
        "token_prefix": {"type": "string", "pattern": "^scout_sk_"},
    }
)

_NEW_KEY_FIELDS: dict[str, Schema] = {
    "token": {
        "type": "string",
        "pattern": "^scout_sk_",
        "description": "The bearer token: in this answer only, never again.",
    },
    "key": ref("Key"),
    "warnings": {"type": "array", "items": {"type": "string", "enum": ["weak_name"]}},
}

_PROBLEM: Schema = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable, `detail` is for people.",
    "properties": {
        "type": {"type": "string", "format": "uri", "examples": [PROBLEM_TYPE_BASE + "not_found"]},
        "title": _TEXT,
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": _TEXT,
        "code": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "errors": {
            "type": "array",
            "description": '422: which field is wrong and why (`""`: the request as a whole).',
            "items": _object({"field": _TEXT, "message": _TEXT}, required=("field", "message")),
        },
        "required_scopes": {"type": "array", "items": _TEXT},
        "missing_scopes": {"type": "array", "items": _TEXT},
    },
    "required": ["type", "title", "status", "detail", "code"],
}

#: The component schemas, by name.
SCHEMAS: dict[str, Schema] = {
    "Key": _KEY,
    "NewKey": _object(_NEW_KEY_FIELDS, required=("token", "key", "warnings")),
    "RotatedKey": _object(
        {**_NEW_KEY_FIELDS, "previous": {**ref("Key"), "description": "The old key, in grace."}},
        required=("token", "key", "warnings", "previous"),
    ),
    "Legacy": _record(
        {
            "exists": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "last_used_at": _OPTIONAL_TIME,
            "requests": {**_COUNT, "description": "Legacy requests in the last `days` days."},
            "days": {"type": "integer", "minimum": 1},
        }
    ),
    "KeyPage": _record(
        {
            "items": {"type": "array", "items": ref("Key")},
            "next_cursor": _CURSOR,
            "total": {**_COUNT, "description": "Keys matching the filters, on every page."},
            "legacy": ref("Legacy"),
        }
    ),
    "KeyReport": _record(
        {
            "at": _TIME,
            "expiring_days": _REPORT_DAYS,
            "unused_days": _REPORT_DAYS,
            "expiring": {
                "type": "array",
                "items": ref("Key"),
                "description": "Enabled keys expiring within `expiring_days`, soonest first.",
            },
            "unused": {
                "type": "array",
                "items": ref("Key"),
                "description": "Enabled, unexpired keys not used for `unused_days`, idlest first.",
            },
            "grace_in_use": {
                "type": "array",
                "description": "Rotated-out keys in grace, used after their successor was made.",
                "items": _record({"key": ref("Key"), "replaced_by": _TEXT, "rotated_at": _TIME}),
            },
            "policy_breaches": {
                "type": "array",
                "description": "Enabled keys that break the org's lifetime policy.",
                "items": _record({"key": ref("Key"), "why": _TEXT}),
            },
        }
    ),
    "Role": _record({"name": _TEXT, "scopes": _TEXTS}),
    "RoleList": _record({"items": {"type": "array", "items": ref("Role")}}),
    "ScopeInfo": _record({"name": _TEXT, "description": _TEXT}),
    "ScopeList": _record({"items": {"type": "array", "items": ref("ScopeInfo")}}),
    "AuditEvent": _record(
        {
            **{name: _OPTIONAL_TEXT for name in FIELDS},
            "id": _TEXT,
            "at": _TIME,
            "action": {"type": "string", "enum": [a.value for a in AuditAction]},
            "org_id": _TEXT,
        }
    ),
    "AuditPage": _record(
        {"items": {"type": "array", "items": ref("AuditEvent")}, "next_cursor": _CURSOR}
    ),
    "Problem": _PROBLEM,
    "CreateKey": {
        **_object(
            {
                "name": _NAME,
                **_KEY_FIELDS,
                "recoverable": {
                    **_nullable({"type": "boolean"}),
                    "description": "Keep it encrypted so admins can reveal it (needs a vault).",
                },
            },
            required=("name",),
        ),
        **_ONE_EXPIRY,
        "description": "Give `expires_at` or `expires_in_days`, not both (neither: never expires).",
    },
    "UpdateKey": {
        **_object(
            {"name": _nullable(_NAME), **_KEY_FIELDS, "enabled": _nullable({"type": "boolean"})}
        ),
        **_ONE_EXPIRY,
        "description": "Only the fields given change, in one atomic write.",
    },
    "Rotate": _object(
        {
            "grace_seconds": {
                **_nullable({"type": "integer", "minimum": 0, "maximum": MAX_GRACE_SECONDS}),
                "description": "How long the old key keeps working (default, `null`: 86400).",
            }
        }
    ),
    "RevealKey": _object(
        {"confirm": {**_NAME, "description": "The key's name, typed to confirm."}},
        required=("confirm",),
    ),
    "RevealedKey": _object(
        {"token": _NEW_KEY_FIELDS["token"], "key": ref("Key")}, required=("token", "key")
    ),
    "PutRole": _object({"scopes": _strings(_SCOPE)}, required=("scopes",)),
    "PublishScope": _object(
        {"description": _nullable({"type": "string", "maxLength": MAX_SCOPE_DESCRIPTION_LENGTH})}
    ),
}


def _path_param(name: str, description: str) -> Schema:
    # routes._segments: a segment is 1 to 255 characters, no control character;
    # a "/" (sent as %2F) would split it into two segments.
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"^[^/\x00-\x1f\x7f]+$",
        },
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _repeated(name: str, values: list[str], description: str) -> Schema:
    schema = {"type": "array", "maxItems": _MAX_QUERY_VALUES,
              "items": {"type": "string", "enum": values}}  # fmt: skip
    return {**_query(name, schema, description), "style": "form", "explode": True}


def _limit(high: int, default: int = 50) -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": high, "default": default}


#: The parameters, by name (``#/components/parameters/...``).
PARAMETERS: dict[str, Schema] = {
    "org": _path_param("org", "The organization (the host application's org id)."),
    "key": _path_param("key", "The key id."),
    "role": _path_param("name", "The role's name (a scope-like token)."),
    "scope": _path_param("name", "The scope (no `*`)."),
    "keysLimit": _query("limit", _limit(MAX_KEYS_PAGE), "Keys per page."),
    "keysCursor": _query(
        "cursor", {"type": "string", "maxLength": 512}, "The `next_cursor` of the page before."
    ),
    "keysStatus": _repeated(
        "status", list(KEY_STATUSES), "Only keys with one of these statuses (repeat or `a,b`)."
    ),
    "keysQ": _query(
        "q", {"type": "string", "maxLength": 200}, "Only keys whose name or id contains this."
    ),
    "reportExpiringDays": _query(
        "expiring_days", {**_REPORT_DAYS, "default": 14}, "Keys expiring within this many days."
    ),
    "reportUnusedDays": _query(
        "unused_days", {**_REPORT_DAYS, "default": 30}, "Keys not used for this many days."
    ),
    "auditKey": _query("key_id", {"type": "string", "maxLength": 255}, "Only this key's events."),
    "auditAction": _repeated(
        "action", [a.value for a in AuditAction], "Only these actions (repeat or `a,b`)."
    ),
    "auditActor": _query("actor", {"type": "string", "maxLength": 200}, "Only this actor's."),
    "auditSince": _query("since", _TIME_IN, "Only events at or after this time."),
    "auditUntil": _query("until", _TIME_IN, "Only events before this time."),
    "auditCursor": _query(
        "cursor", {"type": "string", "maxLength": 512}, "The `next_cursor` of the page before."
    ),
    "auditLimit": _query("limit", _limit(MAX_PAGE_SIZE), "Events per page."),
}

#: The security schemes: a host session (with the CSRF header) or an Org Credential.
SECURITY: dict[str, Schema] = {
    "orgCredential": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "scout_sk_<key id>_<secret>",
        "description": (
            f"An Org Credential whose scopes name `{MANAGE_SCOPE}` explicitly (an unrestricted "
            "key does not count, legacy secrets never do) manages its own organization's keys, "
            "and grants no scope it does not hold. RFC 9421 signed requests with such a key "
            "are accepted too."
        ),
    },
    "session": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": (
            "The host application's own sign-in (its session cookie), resolved by its "
            "`authorize(request)` hook. Every change (any method but GET, HEAD, OPTIONS) must "
            f"also carry the `{CSRF_HEADER}` header with any non-empty value and must not be "
            "cross-site (`Sec-Fetch-Site`, `Origin`): otherwise 403."
        ),
    },
}

#: ``components`` minus the responses (built with the operations).
COMPONENTS: dict[str, Any] = {
    "schemas": SCHEMAS,
    "parameters": PARAMETERS,
    "securitySchemes": SECURITY,
}

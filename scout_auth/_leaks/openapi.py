"""The OpenAPI 3.1 document of the receiver, built from its settings and refusal table.

Theory of operation: the receiver has one operation, ``POST`` to the mount
point (``report_leaks``); what it takes comes from the
:class:`~.flow.ReceiverSettings` (which signatures it checks, the HMAC
header's name, the body and token limits), what it refuses from
:data:`~.flow.REFUSALS`, the table :func:`~.flow.refuse` takes each
refusal's status from. So a refusal cannot be raised undocumented, and
each documented status lists exactly its codes (an ``enum`` the tests
check real answers against). 404 (a path below the mount) and 405 (another
method) have no operation to belong to: they are components only.
"""

from __future__ import annotations

import copy
from typing import Any

from .._core.problem import PROBLEM_TYPE_BASE
from .flow import _TEXT_LIMIT, REFUSALS, ReceiverSettings

__all__ = ["OPERATION_STATUSES", "document"]

Schema = dict[str, Any]

#: The statuses ``report_leaks`` answers besides 200 (404 and 405 are another path's or method's).
OPERATION_STATUSES = (400, 401, 409, 413, 503)

_TEXT: Schema = {"type": "string", "maxLength": _TEXT_LIMIT}
_OPTIONAL_TEXT: Schema = {"oneOf": [_TEXT, {"type": "null"}]}


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schemas(settings: ReceiverSettings) -> dict[str, Schema]:
    return {
        "Report": {
            "type": "array",
            "description": "What the scanner found: one entry per token (a token may repeat).",
            "maxItems": settings.max_tokens,
            "items": _ref("schemas", "ReportedToken"),
        },
        "ReportedToken": {
            "type": "object",
            "description": "GitHub's secret-scanning partner format; other members are ignored.",
            "properties": {
                "token": {**_TEXT, "minLength": 1, "description": "The token as found."},
                "type": {**_OPTIONAL_TEXT, "description": "The scanner's name for its type."},
                "url": {**_OPTIONAL_TEXT, "description": "Where it was found."},
                "source": {**_OPTIONAL_TEXT, "description": "`content`, `commit`, `gist`…"},
            },
            "required": ["token"],
        },
        "Labels": {
            "type": "array",
            "description": "One label per reported entry, in the report's order.",
            "items": _ref("schemas", "Label"),
        },
        "Label": {
            "type": "object",
            "properties": {
                "token_raw": {**_TEXT, "minLength": 1},
                "token_type": {**_TEXT, "description": 'The entry\'s `type` (`""`: none).'},
                "label": {
                    "enum": ["true_positive", "false_positive"],
                    "description": (
                        "`true_positive`: one of our keys, now disabled (or deleted); "
                        "`false_positive`: not a key of ours (or already gone)."
                    ),
                },
            },
            "required": ["token_raw", "token_type", "label"],
            "additionalProperties": False,
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; `code` is stable, `detail` is for people.",
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri",
                    "examples": [PROBLEM_TYPE_BASE + "replayed"],
                },
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "code": {"enum": sorted(REFUSALS)},
            },
            "required": ["type", "title", "status", "detail", "code"],
        },
    }


def _security(settings: ReceiverSettings) -> tuple[dict[str, Schema], list[dict[str, list[str]]]]:
    schemes: dict[str, Schema] = {}
    requirements: list[dict[str, list[str]]] = []
    if settings.has_scanner_keys:
        schemes["githubSignature"] = {
            "type": "apiKey",
            "in": "header",
            "name": "Github-Public-Key-Signature",
            "description": (
                "Base64 of the ECDSA P-256 / SHA-256 signature (DER) of the raw body, by the "
                "key `Github-Public-Key-Identifier` names in the scanner's published key "
                "document (`https://api.github.com/meta/public_keys/secret_scanning`)."
            ),
        }
        schemes["githubKeyIdentifier"] = {
            "type": "apiKey",
            "in": "header",
            "name": "Github-Public-Key-Identifier",
            "description": "The `key_identifier` of the signing key (hex).",
        }
        requirements.append({"githubSignature": [], "githubKeyIdentifier": []})
    if settings.hmac_secret is not None:
        schemes["hmac"] = {
            "type": "apiKey",
            "in": "header",
            "name": settings.hmac_header,
            "description": "`sha256=<hex>`: HMAC-SHA256 of the raw body under the shared secret.",
        }
        requirements.append({"hmac": []})
    return schemes, requirements


def _responses(settings: ReceiverSettings) -> dict[str, Schema]:
    statuses = sorted({status for status, _ in REFUSALS.values()})
    responses: dict[str, Schema] = {}
    for status in statuses:
        codes = sorted(code for code, (s, _) in REFUSALS.items() if s == status)
        lines = "\n".join(f"* `{code}`: {REFUSALS[code][1]}" for code in codes)
        if status == 413:
            lines += f"\n\n(Limits here: {settings.max_body} bytes, {settings.max_tokens} tokens.)"
        schema = {
            "allOf": [
                _ref("schemas", "Problem"),
                {"properties": {"status": {"const": status}, "code": {"enum": codes}}},
            ]
        }
        response: Schema = {
            "description": lines,
            "content": {"application/problem+json": {"schema": schema}},
        }
        if status == 503:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before the scanner retries.",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
        responses[str(status)] = response
    return responses


def document(mount: str, settings: ReceiverSettings) -> dict[str, Any]:
    """The OpenAPI document of a receiver with ``settings``, its server URL the mount prefix.

    A fresh copy each time: the caller may change it.
    """
    schemes, requirements = _security(settings)
    operation = {
        "operationId": "report_leaks",
        "summary": "Report leaked tokens: each real key is stopped at once",
        "description": (
            "The body is checked in this order, and nothing past a refusal happens: its size, "
            "its signature (the GitHub headers, when sent, before the HMAC one), its shape, "
            "then the replay guard (the same body twice is refused), then one key at a time. "
            "A reported key of ours is disabled (or deleted, as the receiver is configured) "
            "and labelled `true_positive`. Signed by GitHub's partner program "
            "(`Github-Public-Key-Signature`, `Github-Public-Key-Identifier`) or with the HMAC "
            "header: see `securitySchemes`."
        ),
        "security": requirements,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("schemas", "Report")}},
        },
        "responses": {
            "200": {
                "description": "Every entry labelled.",
                "content": {"application/json": {"schema": _ref("schemas", "Labels")}},
            },
            **{str(s): _ref("responses", str(s)) for s in OPERATION_STATUSES},
        },
    }
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "scout_auth secret-scanning receiver",
                "version": "1",
                "description": (
                    "Where a secret scanner (GitHub's secret-scanning partner program, or any "
                    "scanner signing with a shared HMAC secret) reports tokens it found in "
                    "public. Answers are never cached (`Cache-Control: no-store`); refusals are "
                    "RFC 9457 problem details with a stable `code`. A path below the mount "
                    "point is 404, another method than POST 405 (`#/components/responses`)."
                ),
            },
            "servers": [{"url": mount.rstrip("/") or "/"}],
            "paths": {"/": {"post": operation}},
            "components": {
                "schemas": _schemas(settings),
                "responses": _responses(settings),
                "securitySchemes": schemes,
            },
        }
    )

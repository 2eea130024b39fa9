"""Requests and responses of the management API, as plain values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.problem import PROBLEM_TYPE_BASE, problem_for
from ..exceptions import (
    AuthError,
    InvalidKeyOperation,
    KeyNotFound,
    KeyNotRecoverable,
    StoreError,
    VaultError,
)

__all__ = [
    "ManageProblem",
    "ManageRequest",
    "ManageResponse",
    "error_response",
    "json_response",
]

#: Headers on every answer: nothing here may be cached or framed (keys,
#: tokens, audit trails), and a browser must not sniff a JSON body as HTML.
BASE_HEADERS: tuple[tuple[str, str], ...] = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)


@dataclass(frozen=True, slots=True)
class ManageRequest:
    """One request as an adapter read it.

    Attributes:
        method: The method, upper-case.
        path: The path inside the mount (``/api/orgs/org_1/keys``): what the
            framework routes on, the mount prefix removed.
        query: The raw query string (no ``?``).
        headers: Header names lower-case; repeated headers joined by ``", "``.
        body: The body, at most :data:`~.routes.MAX_BODY` bytes (the adapter
            answers 413 above that without calling :func:`~.routes.handle`).
        origin: This server's own origin as the request reached it
            (``https://app.example``), for the same-origin check.
        mount: The mount prefix (``/settings/api-keys``), for links in pages.
        now: POSIX time of the request.
    """

    method: str
    path: str
    query: str
    # Never in a repr (tracebacks that record locals): Authorization, Cookie.
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    origin: str
    mount: str
    now: float


@dataclass(frozen=True, slots=True)
class ManageResponse:
    """What to send: status, headers and the whole body."""

    status: int
    headers: Sequence[tuple[str, str]]
    body: bytes = field(repr=False)


class ManageProblem(Exception):
    """An answer other than success, as a problem+json body (RFC 9457).

    Attributes:
        status: The HTTP status.
        code: A stable machine-readable code (``key_not_found``).
        detail: A sentence for a person; never a secret.
        errors: For 422: ``[{"field": ..., "message": ...}]``.
        headers: Extra headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] = (),
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = list(errors)
        self.headers = list(headers)


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid argument",
    429: "Too many requests",
    503: "Service unavailable",
}


def _dumps(data: object) -> bytes:
    # Compact, key order as built, non-ASCII escaped: identical bytes from
    # every mounting, and no encoding question for any client.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def json_response(
    data: object, status: int = 200, headers: Sequence[tuple[str, str]] = ()
) -> ManageResponse:
    """A JSON answer with the headers every answer carries."""
    return ManageResponse(
        status, [("content-type", "application/json"), *BASE_HEADERS, *headers], _dumps(data)
    )


def problem_response(problem: ManageProblem) -> ManageResponse:
    """The problem+json answer of ``problem``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + problem.code,
        "title": _TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.errors:
        body["errors"] = problem.errors
    headers = [("content-type", "application/problem+json"), *BASE_HEADERS, *problem.headers]
    return ManageResponse(problem.status, headers, _dumps(body))


def error_response(exc: Exception) -> ManageResponse | None:
    """The answer to an exception a handler or a need raised, or ``None`` for a bug.

    Both adapters wrap their drive loop in this one translation: unknown ids
    are 404, bad arguments 422, store outages 503, credential failures
    their own status and challenge (the middlewares' exact problem).
    """
    if isinstance(exc, ManageProblem):
        return problem_response(exc)
    if isinstance(exc, KeyNotFound):
        return problem_response(ManageProblem(404, "not_found", "No such key, role or scope."))
    if isinstance(exc, KeyNotRecoverable):
        detail = "This key was created without recovery: it can never be shown again."
        return problem_response(ManageProblem(409, "not_recoverable", detail))
    if isinstance(exc, VaultError):
        # Ids only (VaultError's own rule); the KEK may be missing or the KMS down.
        return problem_response(ManageProblem(503, "vault_error", str(exc)[:300]))
    if isinstance(exc, InvalidKeyOperation):
        detail = str(exc)
        errors = [{"field": "", "message": detail}]
        return problem_response(ManageProblem(422, "invalid_argument", detail, errors=errors))
    if isinstance(exc, AuthError):
        status, headers, body = problem_for(exc, realm="scout-auth-manage")
        return ManageResponse(status, [*headers, *BASE_HEADERS[1:]], body)
    if isinstance(exc, StoreError):
        detail = "The key store is unavailable; try again."
        retry = [("retry-after", str(exc.retry_after))]
        return problem_response(ManageProblem(503, "store_unavailable", detail, headers=retry))
    return None

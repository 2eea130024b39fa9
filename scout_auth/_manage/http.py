"""Requests and responses of the management API, as plain values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._adapters import answers
from .._adapters.answers import Problem, Response
from .._core.problem import problem_for
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


#: What to send: the shared :class:`~scout_auth._adapters.answers.Response`.
ManageResponse = Response
#: An answer other than success: the shared :class:`~scout_auth._adapters.answers.Problem`.
ManageProblem = Problem


def json_response(
    data: object, status: int = 200, headers: Sequence[tuple[str, str]] = ()
) -> ManageResponse:
    """A JSON answer with the headers every answer carries."""
    return answers.json_response(data, status, headers, base=BASE_HEADERS)


def problem_response(problem: ManageProblem) -> ManageResponse:
    """The problem+json answer of ``problem``."""
    return answers.problem_response(problem, base=BASE_HEADERS)


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

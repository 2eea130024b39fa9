"""Answers of the mountable apps, as plain values: a response, a problem, the body limit.

The management API (``_manage``) and the secret-scanning receiver
(``_leaks``) are independent siblings; what both answer alike lives here,
one layer down, so neither copies it: the :class:`Response` an adapter
sends, the :class:`Problem` a handler raises and its RFC 9457 body, the
compact JSON both write, and the declared-length check of a request body
(:class:`BodyLimit`). Each face keeps its own headers (``base`` below) and
its own translation of foreign errors.

No I/O: the framework glue that reads bodies and sends these is
``scout_auth/_mounting.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.problem import PROBLEM_TYPE_BASE
from ..exceptions import BodyTooLarge, InvalidRequest
from .gate import content_length

__all__ = [
    "TITLES",
    "BodyLimit",
    "Problem",
    "Response",
    "dumps",
    "json_response",
    "problem_response",
]

Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Response:
    """What to send: status, headers (names lower-case) and the whole body."""

    status: int
    headers: Headers
    body: bytes = field(repr=False)


class Problem(Exception):
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
        headers: Headers = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = list(errors)
        self.headers = list(headers)


#: A problem's ``title`` by its status.
TITLES = {
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


def dumps(data: object) -> bytes:
    """Compact JSON, key order as built, non-ASCII escaped.

    Identical bytes from every mounting, and no encoding question for any client.
    """
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def json_response(
    data: object, status: int = 200, headers: Headers = (), *, base: Headers
) -> Response:
    """A JSON answer: ``content-type``, the face's ``base`` headers, then ``headers``."""
    return Response(status, [("content-type", "application/json"), *base, *headers], dumps(data))


def problem_response(problem: Problem, *, base: Headers) -> Response:
    """The problem+json answer of ``problem``, with the face's ``base`` headers."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + problem.code,
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.errors:
        body["errors"] = problem.errors
    headers = [("content-type", "application/problem+json"), *base, *problem.headers]
    return Response(problem.status, headers, dumps(body))


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The largest body a face reads, and the sentence of its 413.

    The adapters check the declared length before reading
    (:meth:`check_declared`) and stop reading one byte past ``size``.
    """

    size: int
    detail: str

    def too_large(self) -> Problem:
        """The 413 of a body past the limit."""
        return Problem(413, "body_too_large", self.detail)

    def check_declared(self, value: str | None) -> None:
        """400 for a malformed ``Content-Length`` (RFC 9110 §8.6), 413 past the limit, unread."""
        try:
            declared = content_length(value)
        except InvalidRequest:
            raise Problem(400, "invalid_request", "Bad Content-Length.") from None
        except BodyTooLarge:
            raise self.too_large() from None
        if declared is not None and declared > self.size:
            raise self.too_large()

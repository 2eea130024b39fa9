"""Error answers, built once for every adapter.

An :class:`~scout_auth.exceptions.AuthError` becomes a status, headers and an
``application/problem+json`` body (RFC 9457). Both middlewares send exactly
these bytes, so ASGI and WSGI apps answer every case identically.

``WWW-Authenticate`` follows RFC 6750 §3: a request without credentials gets
a bare challenge (§3.1: "SHOULD NOT include an error code"); every other
401 says ``error="invalid_token"`` (our finer reason is in the body's
``code``); 400 says ``invalid_request`` and 403 ``insufficient_scope`` with
the ``scope`` attribute (§3.1). 429 (a key over its nonce quota) and 503
carry no challenge, since new credentials would not help, but do carry
``Retry-After``.
"""

from __future__ import annotations

import json
import re

from ..exceptions import (
    AuthError,
    InsufficientScope,
    LegacyBusy,
    MissingCredentials,
    NonceQuotaExceeded,
    StoreUnavailable,
)

__all__ = ["PROBLEM_TYPE_BASE", "Problem", "problem_for"]

#: ``type`` URIs are ``PROBLEM_TYPE_BASE + code`` (RFC 9457 §3.1.1).
PROBLEM_TYPE_BASE = "urn:scout-auth:problem:"

Problem = tuple[int, list[tuple[str, str]], bytes]

# RFC 6750 §3: realm and scope values are quoted-strings without '"' or '\'.
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _quoted(value: str) -> str:
    return '"' + _UNSAFE.sub("", value) + '"'


def _challenge(exc: AuthError, realm: str) -> str | None:
    parts = [f"realm={_quoted(realm)}"]
    if isinstance(exc, MissingCredentials):
        pass
    elif isinstance(exc, InsufficientScope):
        parts.append('error="insufficient_scope"')
        parts.append(f"scope={_quoted(' '.join(exc.required))}")
    elif exc.status == 400:
        parts.append('error="invalid_request"')
    elif exc.status == 401:
        parts.append('error="invalid_token"')
    else:
        return None
    return "Bearer " + ", ".join(parts)


def problem_for(exc: AuthError, *, realm: str = "api") -> Problem:
    """The status, headers and body answering ``exc``."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + exc.code,
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
    }
    if isinstance(exc, InsufficientScope):
        body["required_scopes"] = list(exc.required)
        body["missing_scopes"] = list(exc.missing)
    headers = [
        ("content-type", "application/problem+json"),
        ("cache-control", "no-store"),
    ]
    challenge = _challenge(exc, realm)
    if challenge is not None:
        headers.append(("www-authenticate", challenge))
    # RFC 9110 §10.2.3 for 503, RFC 6585 §4 for 429: when to try again.
    if isinstance(exc, StoreUnavailable | LegacyBusy | NonceQuotaExceeded):
        headers.append(("retry-after", str(exc.retry_after)))
    return exc.status, headers, json.dumps(body, separators=(",", ":")).encode()

"""Parsing the ``Authorization`` header into a credential. Pure string work.

Schemes (RFC 9110 §11.6.2: the scheme is case-insensitive):

* ``Bearer scout_sk_…`` — an Org Credential (RFC 6750 §2.1).
* ``Basic base64(org_id:secret)`` — an org's legacy symmetric secret
  (RFC 7617). The org id tells the verifier which single hash to check, so
  legacy verification never scans the stored hashes.
* ``Bearer <legacy secret>`` — the same secret as old clients send it. A
  bearer token that starts with ``scout_sk_`` is an Org Credential and must
  parse as one; anything else may be a legacy secret, found through its
  peppered look-up digest (see :mod:`scout_auth._core.pepper`), never a scan.

Anything else counts as *no* credentials: RFC 6750 §3.1 says a request that
"attempted using an unsupported authentication method" gets a challenge
without an error code.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from ..exceptions import InvalidRequest, InvalidToken, MissingCredentials
from .tokens import TOKEN_PREFIX, ParsedToken, parse_token

__all__ = [
    "BearerCredential",
    "Credential",
    "LegacyCredential",
    "LegacyToken",
    "parse_authorization",
    "parse_basic",
    "parse_bearer",
    "parse_bearer_or_legacy",
    "split_authorization",
]

_MAX_HEADER = 4096
_PREFIX_LENGTH = len(TOKEN_PREFIX)


@dataclass(frozen=True, slots=True)
class BearerCredential:
    """A parsed ``scout_sk_`` token."""

    token: str = field(repr=False)
    parsed: ParsedToken


@dataclass(frozen=True, slots=True)
class LegacyCredential:
    """An org id and its legacy secret."""

    org_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class LegacyToken:
    """A bearer token that is not an Org Credential: maybe an org's legacy secret."""

    secret: str = field(repr=False)


Credential = BearerCredential | LegacyCredential | LegacyToken


def parse_bearer(token: str) -> BearerCredential:
    """Parse a bare token; :class:`InvalidToken` if malformed or its checksum fails."""
    parsed = parse_token(token)
    if parsed is None:
        raise InvalidToken()
    return BearerCredential(token=token, parsed=parsed)


def parse_bearer_or_legacy(token: str, legacy: bool) -> BearerCredential | LegacyToken:
    """A bearer token as an Org Credential, or (with ``legacy``) as a maybe-legacy secret.

    A token that starts with ``scout_sk_`` (in any case) is an Org
    Credential whatever ``legacy`` says: malformed, it is refused here,
    before any store access.
    A legacy candidate must be visible ASCII (RFC 6750 §2.1 allows less, but
    old systems issued secrets of their own alphabets; a space or control
    character cannot have come through a client unchanged).

    Raises:
        InvalidToken: Neither (no store access needed to say so).
    """
    if not legacy or token[:_PREFIX_LENGTH].lower() == TOKEN_PREFIX:
        # "SCOUT_SK_…" too: a mangled Org Credential, not an old system's secret.
        return parse_bearer(token)
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise InvalidToken()
    return LegacyToken(token)


def parse_authorization(value: str | None, *, legacy_bearer: bool = False) -> Credential:
    """Parse an ``Authorization`` header value.

    ``legacy_bearer``: a bearer token that is not an Org Credential is a
    :class:`LegacyToken` (else it is refused).

    Raises:
        MissingCredentials: No header, or a scheme scout_auth does not handle.
        InvalidRequest: A header too long to be a credential, or several credentials.
        InvalidToken: A bearer token or Basic credential that does not parse.
    """
    scheme, rest = split_authorization(value)
    if scheme == "bearer":
        return parse_bearer_or_legacy(rest, legacy_bearer)
    return parse_basic(rest)


def split_authorization(value: str | None) -> tuple[str, str]:
    """Split an ``Authorization`` value into ``("bearer" | "basic", rest)``; parse nothing more.

    Raises:
        MissingCredentials: No header, or a scheme scout_auth does not handle.
        InvalidRequest: A header too long to be a credential, or several credentials.
    """
    if not value:
        raise MissingCredentials()
    if len(value) > _MAX_HEADER:
        raise InvalidRequest("Authorization header too long")
    if "," in value:
        # Repeated headers arrive joined by ", " (RFC 9110 §5.3); neither a
        # token nor base64 contains a comma. Never pick one of several.
        raise InvalidRequest("More than one credential presented")
    if value.startswith("Bearer "):
        # The usual spelling, split with one slice; the general rule below
        # gives the same answer (the value starts with no whitespace).
        return "bearer", value[7:].strip()
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme != "bearer" and scheme != "basic":
        raise MissingCredentials()
    return scheme, rest.strip()


def parse_basic(value: str) -> LegacyCredential:
    """Parse the base64 ``org_id:secret`` of a Basic credential; :class:`InvalidToken` if bad."""
    # b64decode() of a str with a non-ASCII character (``Basic \xe9``) raises a
    # plain ValueError, not binascii.Error: both are "not a credential" (401).
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidToken() from None
    org_id, sep, secret = decoded.partition(":")
    if not sep or not org_id or not secret:
        raise InvalidToken()
    if any(ord(c) < 32 or ord(c) == 127 for c in org_id):
        # No org id holds a control character (KeyManager refuses them), and
        # the org id goes to the store as is: a NUL makes PostgreSQL raise,
        # which would answer an anonymous client 503 instead of 401.
        raise InvalidToken()
    return LegacyCredential(org_id=org_id, secret=secret)

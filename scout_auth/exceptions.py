"""Exceptions raised by scout_auth.

Every request-level failure is an :class:`AuthError`; each subclass carries
the HTTP ``status`` it maps to and a stable machine ``code`` that the
middlewares put in the ``problem+json`` body (RFC 9457) and, for 401/403,
in ``WWW-Authenticate`` (RFC 6750 §3). The adapters translate at the boundary;
the core never builds a response itself.

Management operations (:class:`~scout_auth.KeyManager`) raise
:class:`KeyNotFound`, :class:`InvalidKeyOperation` or, on a store outage,
:class:`StoreError` (not an authentication failure); revealing a key raises
:class:`KeyNotRecoverable` or :class:`VaultError` too (docs/vault.md).

The tree::

    ScoutAuthError                    never raised directly
    ├── AuthError                     never raised directly; .status, .code
    │   ├── InvalidRequest            400 invalid_request
    │   ├── MissingCredentials        401 missing_credentials
    │   ├── InvalidToken              401 invalid_token
    │   ├── KeyDisabled               401 key_disabled
    │   ├── KeyExpired                401 key_expired
    │   ├── InsufficientScope         403 insufficient_scope
    │   ├── IpNotAllowed              403 ip_not_allowed
    │   ├── LegacyDisabled            401 legacy_disabled
    │   ├── StoreUnavailable          503 store_unavailable (also a StoreError)
    │   ├── LegacyBusy                503 legacy_busy
    │   ├── SignatureError            never raised directly: any signature refusal
    │   │   ├── SignatureInvalid          401 signature_invalid
    │   │   │   └── WrongAuthority        401 wrong_authority
    │   │   ├── SignatureMissingComponent 401 signature_missing_component
    │   │   ├── SignatureExpired          401 signature_expired
    │   │   ├── SignatureNotYetValid      401 signature_not_yet_valid
    │   │   ├── NonceRequired             401 nonce_required
    │   │   ├── ReplayDetected            401 replay_detected
    │   │   ├── NonceQuotaExceeded        429 nonce_quota_exceeded
    │   │   └── UnsupportedAlgorithm      401 unsupported_algorithm
    │   ├── DigestError               never raised directly: any body digest refusal
    │   │   ├── DigestInvalid             401 digest_invalid
    │   │   └── DigestMismatch            401 digest_mismatch
    │   └── BodyTooLarge              413 body_too_large
    ├── StoreError                    503: a management call met a store outage
    ├── KeyNotFound (also LookupError)
    ├── InvalidKeyOperation (also ValueError)
    │   └── KeyNotRecoverable         the key was created without recoverable=True
    ├── VaultError                    a sealed seed that cannot be opened (wrong
    │                                 KEK, unknown KEK id, tampered bytes)
    └── ConfigurationError (also ValueError): a setup that cannot work

Messages never contain a secret or a full token. ``KeyDisabled`` and
``KeyExpired`` are only raised to a caller that proved possession of the
key's secret; an unknown key and a wrong secret both raise ``InvalidToken``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Self

__all__ = [
    "AuthError",
    "BodyTooLarge",
    "ConfigurationError",
    "DigestError",
    "DigestInvalid",
    "DigestMismatch",
    "InsufficientScope",
    "InvalidKeyOperation",
    "InvalidRequest",
    "InvalidToken",
    "IpNotAllowed",
    "KeyDisabled",
    "KeyExpired",
    "KeyNotFound",
    "KeyNotRecoverable",
    "LegacyBusy",
    "LegacyDisabled",
    "MissingCredentials",
    "NonceQuotaExceeded",
    "NonceRequired",
    "ReplayDetected",
    "ScoutAuthError",
    "SignatureError",
    "SignatureExpired",
    "SignatureInvalid",
    "SignatureMissingComponent",
    "SignatureNotYetValid",
    "StoreError",
    "StoreUnavailable",
    "UnsupportedAlgorithm",
    "VaultError",
    "WrongAuthority",
]


class ScoutAuthError(Exception):
    """Base class of every scout_auth exception. Never raised directly."""


class AuthError(ScoutAuthError):
    """A request could not be authenticated or authorised.

    Never raised directly: catch it, raise a subclass.

    Attributes:
        status: The HTTP status the middlewares answer with.
        code: A stable, machine-readable reason code.
        title: A short human-readable summary (safe to show to clients).
        subject: ``(org_id, key_id, key_name)`` when the request proved it
            holds a real key (disabled, expired, missing scope, replay…),
            else ``None``. For the audit trail; never sent to the client.
    """

    status: ClassVar[int] = 401
    code: ClassVar[str] = "unauthorized"
    title: ClassVar[str] = "Unauthorized"
    subject: tuple[str, str, str] | None = None

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)

    def about(self, org_id: str, key_id: str, key_name: str) -> Self:
        """Record which real key the refused request used; returns ``self``."""
        self.subject = (org_id, key_id, key_name)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class InvalidRequest(AuthError):
    """The credentials were presented in a malformed way (RFC 6750 §3.1)."""

    status = 400
    code = "invalid_request"
    title = "Malformed credentials"


class MissingCredentials(AuthError):
    """No credentials were presented (RFC 6750 §3.1: no ``error`` attribute)."""

    status = 401
    code = "missing_credentials"
    title = "Authentication required"


class InvalidToken(AuthError):
    """The credential does not parse, names no key, or the secret is wrong."""

    status = 401
    code = "invalid_token"
    title = "Invalid credentials"


class KeyDisabled(AuthError):
    """The key exists and the secret matched, but the key is disabled."""

    status = 401
    code = "key_disabled"
    title = "API key disabled"


class KeyExpired(AuthError):
    """The key exists and the secret matched, but it expired (or was rotated out)."""

    status = 401
    code = "key_expired"
    title = "API key expired"


class InsufficientScope(AuthError):
    """The key is valid but lacks a scope the request needs.

    Attributes:
        required: The scopes the request needed.
        missing: The subset the key does not grant.
    """

    status = 403
    code = "insufficient_scope"
    title = "Insufficient scope"

    def __init__(
        self, required: Iterable[str], missing: Iterable[str], detail: str | None = None
    ) -> None:
        self.required = tuple(required)
        self.missing = tuple(missing)
        super().__init__(detail or "Missing scope: " + " ".join(self.missing))


class IpNotAllowed(AuthError):
    """The key is valid but the client address is outside its IP allowlist.

    Also raised when the client address is unknown or does not parse: an
    allowlist fails closed.
    """

    status = 403
    code = "ip_not_allowed"
    title = "Client address not allowed for this key"


class LegacyDisabled(AuthError):
    """The legacy secret matched, but legacy authentication is off for the org."""

    status = 401
    code = "legacy_disabled"
    title = "Legacy credentials disabled"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "Legacy credentials are disabled for this organization: "
            "migrate to an Org Credential (Bearer scout_sk_ token or signed requests)"
        )


class StoreError(ScoutAuthError):
    """The key store could not complete a call: unreachable, timed out, failed over.

    What a management call (:class:`~scout_auth.KeyManager`) raises on an
    outage: not an authentication failure. For a write the outcome is
    *unknown* (the store may have applied it): read the key back before
    retrying. ``except StoreError`` also catches :class:`StoreUnavailable`,
    what a verification raises.

    Attributes:
        status: 503, for an HTTP API that reports it.
        code: ``"store_unavailable"``.
        retry_after: Seconds to wait before retrying.
    """

    status: ClassVar[int] = 503
    code: ClassVar[str] = "store_unavailable"
    title: ClassVar[str] = "Key store temporarily unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        self.detail = detail or self.title
        self.retry_after = retry_after
        super().__init__(self.detail)


class StoreUnavailable(AuthError, StoreError):
    """The key store could not be reached; nothing could be verified.

    Attributes:
        retry_after: Seconds a client should wait before retrying.
    """

    status = 503
    code = "store_unavailable"
    title = "Authentication temporarily unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        # AuthError.__init__ reaches StoreError.__init__ (the MRO): set after it.
        AuthError.__init__(self, detail)
        self.retry_after = retry_after


class LegacyBusy(AuthError):
    """Too many legacy secrets are being checked at once; nothing was verified.

    argon2 is slow and memory-hard on purpose, so a verifier runs a bounded
    number of checks at once and lets a bounded number wait
    (``legacy_concurrency``, ``legacy_queue``); beyond that it refuses at
    once instead of letting a flood of wrong secrets exhaust threads and
    memory. Says nothing about the secret: a retry may succeed.

    Attributes:
        retry_after: Seconds a client should wait before retrying.
    """

    status = 503
    code = "legacy_busy"
    title = "Legacy authentication busy"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(detail or "Too many legacy credentials are being checked: retry shortly")


# --- Signed requests: RFC 9421 HTTP Message Signatures, RFC 9530 Content-Digest ---
#
# Raised by the sans-I/O core in ``_signing`` (``signature``, ``components``, ``digest``,
# ``nonce``). Details name components, labels and algorithms, never key
# material, signature bytes or nonces.


class SignatureError(AuthError):
    """Any refusal of a signed request's signature (``except SignatureError``).

    Never raised directly: every ``Signature*``, nonce, replay and
    algorithm error below is one.
    """


class DigestError(AuthError):
    """Any refusal of a signed request's body digest (RFC 9530); never raised directly."""


class SignatureInvalid(SignatureError):
    """The signature headers do not parse, break a rule, or the signature is wrong."""

    status = 401
    code = "signature_invalid"
    title = "Invalid request signature"


class SignatureMissingComponent(SignatureError):
    """The signature does not cover a component the policy requires.

    Attributes:
        component: The missing component identifier (e.g. ``"@target-uri"``).
    """

    status = 401
    code = "signature_missing_component"
    title = "Request signature does not cover a required component"

    def __init__(self, component: str, detail: str | None = None) -> None:
        self.component = component
        super().__init__(detail or f"Signature must cover {component}")


class SignatureExpired(SignatureError):
    """The signature is older than the freshness window, or past its ``expires``."""

    status = 401
    code = "signature_expired"
    title = "Request signature expired"


class SignatureNotYetValid(SignatureError):
    """The signature's ``created`` lies further in the future than the allowed skew."""

    status = 401
    code = "signature_not_yet_valid"
    title = "Request signature not yet valid"


class NonceRequired(SignatureError):
    """The policy requires a ``nonce`` signature parameter and none was given."""

    status = 401
    code = "nonce_required"
    title = "Request signature needs a nonce"


class ReplayDetected(SignatureError):
    """The ``(keyid, nonce)`` pair was already seen inside the freshness window."""

    status = 401
    code = "replay_detected"
    title = "Request replayed"


class NonceQuotaExceeded(SignatureError):
    """The signing key holds as many live nonces as the replay cache allows one key.

    Every accepted signed request leaves its nonce in the replay cache for
    the freshness window; a key that signs faster than its share lets that
    window drain is refused *alone* (RFC 6585 §4), so it cannot fill the
    cache that every other key needs (see ``docs/signing.md``). Raised only
    after the signature verified: only the key's holder can cause it.

    Attributes:
        retry_after: Seconds until the key's oldest nonce expires (at least 1).
    """

    status = 429
    code = "nonce_quota_exceeded"
    title = "Too many signed requests for this key"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(detail)


class UnsupportedAlgorithm(SignatureError):
    """The ``alg`` signature parameter names an algorithm the policy refuses."""

    status = 401
    code = "unsupported_algorithm"
    title = "Unsupported signature algorithm"


class DigestInvalid(DigestError):
    """``Content-Digest`` is malformed or names no supported algorithm."""

    status = 401
    code = "digest_invalid"
    title = "Invalid Content-Digest"


class DigestMismatch(DigestError):
    """The body does not match its ``Content-Digest``."""

    status = 401
    code = "digest_mismatch"
    title = "Content-Digest does not match the body"


class BodyTooLarge(AuthError):
    """The body exceeds the size the server accepts for signed requests."""

    status = 413
    code = "body_too_large"
    title = "Request body too large"


class WrongAuthority(SignatureInvalid):
    """A signed request was made for another host than this service's ``expected_authorities``."""

    status = 401
    code = "wrong_authority"
    title = "Signature was made for another host"


# --- end of signed-request errors ---


class KeyNotFound(ScoutAuthError, LookupError):
    """A management operation named a key (or legacy key) that does not exist."""

    def __init__(self, key_id: str) -> None:
        # A bearer token pasted where a key id belongs must not reach logs
        # through this error: messages never contain a full token.
        if isinstance(key_id, str) and "scout_sk_" in key_id:
            key_id = "scout_sk_…"
        self.key_id = key_id
        super().__init__(f"No key with id {key_id!r}")


class InvalidKeyOperation(ScoutAuthError, ValueError):
    """A management operation was given invalid arguments (empty name, bad grace...)."""


class KeyNotRecoverable(InvalidKeyOperation):
    """:meth:`~scout_auth.KeyManager.reveal_key` named a key created without
    ``recoverable=True``: its private key exists nowhere server-side, so it can
    never be shown again (rotate it to hand out a new one).

    An HTTP API answers it 409: the key exists, it just cannot do this.
    """

    def __init__(self, key_id: str) -> None:
        if isinstance(key_id, str) and "scout_sk_" in key_id:
            key_id = "scout_sk_…"
        self.key_id = key_id
        super().__init__(
            f"key {key_id!r} was created without recoverable=True: "
            "its private key was shown once and cannot be revealed again"
        )


class VaultError(ScoutAuthError):
    """A sealed seed could not be opened or made (:class:`~scout_auth.KeyVault`).

    The KEK it names is not configured, the KEK configured under that id is
    another one, a byte of the sealed seed (ciphertext, nonce, wrapped data
    key, KEK id) was changed, it was copied from another key's row (the
    AES-GCM tag covers the key and org ids), or a KMS callback failed. Not an
    :class:`AuthError`: no request is refused with it; verification never
    opens a sealed seed. Messages name the key and KEK ids only, never key
    material.
    """


class ConfigurationError(ScoutAuthError, ValueError):
    """scout_auth was set up in a way that cannot work; raised at startup where it can be found.

    For example a store that keeps its data in a shared database with no
    legacy pepper configured (see :class:`~scout_auth.LegacyPepper`). A
    store can only find some mistakes on use: the Redis store and nonce
    cache raise it from their methods when a Redis Cluster node answers
    ``MOVED`` / ``ASK`` to a client not in cluster mode (no retry can help).
    A verifier answers such a request 503 ``store_unavailable``, as for any
    store failure: it never reaches a client as this error.
    """

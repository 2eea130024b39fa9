"""The verification decision, written once.

Theory of operation
-------------------
Verifying a credential needs I/O (fetch a key record, run argon2 off the
event loop) between pure decisions. As in httpx's ``auth_flow``, each
decision is a generator: it *yields* what it needs — a :class:`FetchKey`, a
:class:`FetchLegacy` or a :class:`CheckLegacySecret` — and receives the answer
through ``send``. :class:`~scout_auth.Verifier` drives it with plain calls,
:class:`~scout_auth.AsyncVerifier` with ``await``. The generator returns a
:class:`Verified` or raises an :class:`~scout_auth.exceptions.AuthError`.

Order matters for what a caller may learn: the secret (or the signature)
is checked *before* the key's state, so only a caller who proved possession
of the secret can tell a disabled or expired key from an unknown one.

Signed requests (RFC 9421) run :func:`signature_flow`, which also yields
:class:`RememberNonce` for replay protection.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ._credentials import BearerCredential, Credential, LegacyCredential
from ._httpsig import RequestSignature, verify_ed25519
from ._nonce import nonce_key
from ._records import CredentialKind, KeyRecord, LegacyRecord, OrgContext
from ._scopes import missing_scopes
from ._tokens import public_key_from_seed
from .exceptions import (
    InsufficientScope,
    InvalidToken,
    KeyDisabled,
    KeyExpired,
    ReplayDetected,
    SignatureInvalid,
)

__all__ = [
    "CheckLegacySecret",
    "FetchKey",
    "FetchLegacy",
    "Need",
    "RememberNonce",
    "Verified",
    "check_key_state",
    "check_scopes",
    "credential_flow",
    "legacy_key_id",
    "signature_flow",
]


@dataclass(frozen=True, slots=True)
class FetchKey:
    """Need: the key record with ``key_id`` (or ``None``)."""

    key_id: str


@dataclass(frozen=True, slots=True)
class FetchLegacy:
    """Need: the org's legacy record (or ``None``)."""

    org_id: str


@dataclass(frozen=True, slots=True)
class CheckLegacySecret:
    """Need: whether ``secret`` matches the argon2id ``record`` (a bool)."""

    record: LegacyRecord
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RememberNonce:
    """Need: remember nonce ``key`` for ``ttl`` seconds; ``True`` if it was new."""

    key: str
    ttl: float


Need = FetchKey | FetchLegacy | CheckLegacySecret | RememberNonce


@dataclass(frozen=True, slots=True)
class Verified:
    """A successful verification and how long it may be trusted.

    Attributes:
        context: Who is calling.
        valid_until: POSIX time at which the credential stops being valid
            (the key's expiry), ``math.inf`` if it has none.
    """

    context: OrgContext
    valid_until: float


Flow = Generator[Need, object, Verified]


def legacy_key_id(org_id: str) -> str:
    """The pseudo key id under which an org's legacy credential is reported."""
    return f"legacy:{org_id}"


def check_key_state(record: KeyRecord, now: float) -> None:
    """Raise if a key whose secret was proven is disabled or expired."""
    if not record.enabled:
        raise KeyDisabled().about(record.org_id, record.key_id, record.name)
    if record.is_expired(datetime.fromtimestamp(now, UTC)):
        raise KeyExpired().about(record.org_id, record.key_id, record.name)


def check_scopes(context: OrgContext, required: tuple[str, ...]) -> None:
    """Raise :class:`InsufficientScope` unless ``context`` grants every scope."""
    if required:
        missing = missing_scopes(context.scopes, required)
        if missing:
            raise InsufficientScope(required, missing).about(
                context.org_id, context.key_id, context.key_name
            )


def key_context(record: KeyRecord) -> Verified:
    """The context and trust horizon of a verified key record."""
    context = OrgContext(
        org_id=record.org_id,
        key_id=record.key_id,
        key_name=record.name,
        scopes=record.scopes,
        kind=CredentialKind.ORG_CREDENTIAL,
    )
    until = math.inf if record.expires_at is None else record.expires_at.timestamp()
    return Verified(context, until)


def _bearer_flow(cred: BearerCredential, now: float) -> Flow:
    record = yield FetchKey(cred.parsed.key_id)
    if not isinstance(record, KeyRecord):
        raise InvalidToken()
    derived = public_key_from_seed(cred.parsed.seed)
    # Constant-time: the stored public key is public, but a timing oracle on
    # how many leading bytes match would still be a gift to an attacker.
    if not hmac.compare_digest(derived, record.public_key):
        raise InvalidToken()
    check_key_state(record, now)
    return key_context(record)


def _legacy_flow(cred: LegacyCredential) -> Flow:
    record = yield FetchLegacy(cred.org_id)
    if not isinstance(record, LegacyRecord):
        raise InvalidToken()
    matched = yield CheckLegacySecret(record, cred.secret)
    if matched is not True:
        raise InvalidToken()
    context = OrgContext(
        org_id=cred.org_id,
        key_id=legacy_key_id(cred.org_id),
        key_name="legacy",
        scopes=None,
        kind=CredentialKind.LEGACY,
    )
    return Verified(context, math.inf)


def credential_flow(cred: Credential, now: float) -> Flow:
    """The verification flow for a parsed credential at POSIX time ``now``."""
    if isinstance(cred, BearerCredential):
        return _bearer_flow(cred, now)
    return _legacy_flow(cred)


def signature_flow(sig: RequestSignature, now: float) -> Flow:
    """The flow for an RFC 9421 signature already parsed and policy-checked.

    The nonce is remembered only after the signature verified, so nobody can
    burn another client's nonces with forged requests (RFC 9421 §7.2.2).
    """
    record = yield FetchKey(sig.key_id)
    if not isinstance(record, KeyRecord):
        # An unknown keyid looks exactly like a bad signature: no oracle.
        raise SignatureInvalid("Signature verification failed")
    verify_ed25519(record.public_key, sig.signature, sig.base)
    check_key_state(record, now)
    if sig.nonce is not None:
        fresh = yield RememberNonce(nonce_key(sig.key_id, sig.nonce), sig.replay_ttl(now))
        if fresh is not True:
            raise ReplayDetected().about(record.org_id, record.key_id, record.name)
    return key_context(record)

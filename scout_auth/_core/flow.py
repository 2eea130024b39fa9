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

A legacy secret sent as a bearer token names no org: the flow computes its
peppered look-up digests (pure HMACs) and yields :class:`FindLegacy` for
each, so a token no record holds costs look-ups, never an argon2 run. Once
argon2 proved a secret, a record whose digest is missing or made with an
older pepper yields :class:`SetLegacyDigest` (best effort: the driver never
fails a request over it).

A key that references roles yields :class:`FetchRoles` once its secret is
proven: the effective scopes (its own plus its roles', a role that no longer
exists granting nothing) are resolved here and cached with the context, so a
role change must drop cached contexts (see ``ROLE_ACTIONS``). The client
address is checked against a key's allowlist per request by
:func:`check_access`, outside the flow: concurrent callers may share one
flow but not one address. A signature flow serves one request only, so it
runs :func:`check_access` itself, before it spends the nonce.

Signed requests differ every time, so their verified context cannot be
cached by credential; what is derived from the *key record* can. The first
flow that proves a key yields :class:`RememberContext`; the driver keeps
the :class:`KnownKey` with the cached record and answers later
:class:`FetchKey` needs with it, and the flow then skips the derivation
(roles, allowlist parsing) — but never the signature, the key's state or
the nonce. Where that answer is at hand and the nonce cache does no I/O,
a driver calls :func:`known_signature` (the flow's own steps for a known
key) and the cache itself, with no generator to drive.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .._signing.nonce import nonce_key
from .._signing.signature import RequestSignature, verify_ed25519
from ..exceptions import (
    InsufficientScope,
    InvalidToken,
    IpNotAllowed,
    KeyDisabled,
    KeyExpired,
    LegacyDisabled,
    ReplayDetected,
    SignatureInvalid,
)
from .credentials import BearerCredential, Credential, LegacyCredential, LegacyToken
from .pepper import LegacyPepper
from .records import CredentialKind, KeyRecord, LegacyRecord, OrgContext, RoleRecord
from .scopes import missing_scopes
from .tokens import public_key_from_seed

__all__ = [
    "CheckLegacySecret",
    "FetchKey",
    "FetchLegacy",
    "FetchRoles",
    "FindLegacy",
    "KnownKey",
    "Need",
    "RememberContext",
    "RememberNonce",
    "SetLegacyDigest",
    "Verified",
    "check_access",
    "check_key_state",
    "check_scopes",
    "credential_flow",
    "known_signature",
    "legacy_key_id",
    "replayed",
    "signature_flow",
]


@dataclass(frozen=True, slots=True)
class FetchKey:
    """Need: the key record with ``key_id``, or a cached :class:`KnownKey`, or ``None``."""

    key_id: str


@dataclass(frozen=True, slots=True)
class FetchLegacy:
    """Need: the org's legacy record (or ``None``)."""

    org_id: str


@dataclass(frozen=True, slots=True)
class FindLegacy:
    """Need: the legacy record holding look-up digest ``digest`` (or ``None``)."""

    digest: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SetLegacyDigest:
    """Need: give the org's record (still hashed ``secret_hash``) this digest (a bool).

    Best effort: the driver answers ``False`` rather than fail the request.
    """

    org_id: str
    secret_hash: str = field(repr=False)
    digest: bytes = field(repr=False)
    pepper_id: str


@dataclass(frozen=True, slots=True)
class FetchRoles:
    """Need: the org's roles (a list of :class:`~scout_auth.RoleRecord`)."""

    org_id: str


@dataclass(frozen=True, slots=True)
class CheckLegacySecret:
    """Need: whether ``secret`` matches the argon2id ``record`` (a bool)."""

    record: LegacyRecord
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RememberNonce:
    """Need: remember nonce ``key`` for ``ttl`` seconds; ``True`` if it was new.

    ``owner`` is the signing key's id: the replay cache bounds each key's
    live nonces, so one key cannot fill it for everyone.
    """

    key: str
    ttl: float
    owner: str | None = None


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


@dataclass(frozen=True, slots=True)
class KnownKey:
    """An answer to :class:`FetchKey`: a record with the context derived from it."""

    record: KeyRecord
    verified: Verified


@dataclass(frozen=True, slots=True)
class RememberContext:
    """Need: keep ``known`` beside its record, if that record is still cached (no answer)."""

    known: KnownKey


Need = (
    FetchKey
    | FetchLegacy
    | FindLegacy
    | FetchRoles
    | CheckLegacySecret
    | SetLegacyDigest
    | RememberNonce
    | RememberContext
)


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


def check_access(
    context: OrgContext, required: tuple[str, ...], client_ip: str | None = None
) -> None:
    """Per-request checks of a verified context: IP allowlist, then scopes.

    An allowlist fails closed: an unknown or unparsable client address is
    refused like one outside every range.
    """
    if context.allowed_ips is not None:
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            raise IpNotAllowed("Client address unknown or unreadable").about(
                context.org_id, context.key_id, context.key_name
            ) from None
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not any(address in net for net in context.allowed_ips):
            raise IpNotAllowed().about(context.org_id, context.key_id, context.key_name)
    scopes = context.scopes
    # Fast path: every required scope granted verbatim (a C-level subset test).
    if required and scopes is not None and not scopes.issuperset(required):
        missing = missing_scopes(scopes, required)
        if missing:
            raise InsufficientScope(required, missing).about(
                context.org_id, context.key_id, context.key_name
            )


def _effective_scopes(record: KeyRecord, roles: object) -> frozenset[str] | None:
    if not record.roles:
        return record.scopes
    granted = set(record.scopes or ())
    for role in roles if isinstance(roles, list) else ():
        if isinstance(role, RoleRecord) and role.name in record.roles:
            granted |= role.scopes
    return frozenset(granted)


def _require_scoped(scopes: frozenset[str] | None, require_scoped: bool) -> None:
    if require_scoped and scopes is None:
        raise InsufficientScope(
            (), (), "This service requires scoped keys: this key is unrestricted"
        )


def key_context(
    record: KeyRecord, require_scoped: bool = False
) -> Generator[Need, object, Verified]:
    """The context and trust horizon of a verified key record (roles resolved)."""
    roles = (yield FetchRoles(record.org_id)) if record.roles else None
    scopes = _effective_scopes(record, roles)
    _require_scoped(scopes, require_scoped)
    allowed = (
        None
        if record.allowed_ips is None
        else tuple(ipaddress.ip_network(n, strict=False) for n in record.allowed_ips)
    )
    context = OrgContext(
        org_id=record.org_id,
        key_id=record.key_id,
        key_name=record.name,
        scopes=scopes,
        kind=CredentialKind.ORG_CREDENTIAL,
        allowed_ips=allowed,
        expires_at=record.expires_at,
    )
    until = math.inf if record.expires_at is None else record.expires_at.timestamp()
    return Verified(context, until)


def _fetched(answer: object) -> tuple[KeyRecord | None, Verified | None]:
    # A FetchKey answer: a record, a record with its context, or nothing.
    if type(answer) is KnownKey:
        return answer.record, answer.verified
    return (answer, None) if isinstance(answer, KeyRecord) else (None, None)


def _known_state(record: KeyRecord, verified: Verified, now: float) -> Verified:
    # check_key_state() for a record whose context is known: its expiry is
    # already a timestamp there (no datetime per request).
    if not record.enabled:
        raise KeyDisabled().about(record.org_id, record.key_id, record.name)
    if now >= verified.valid_until:
        raise KeyExpired().about(record.org_id, record.key_id, record.name)
    return verified


def _derive(record: KeyRecord, now: float, require_scoped: bool) -> Flow:
    # A proven key seen for the first time: its state, then its context,
    # which the driver may keep with the record.
    check_key_state(record, now)
    verified = yield from key_context(record, require_scoped)
    yield RememberContext(KnownKey(record, verified))
    return verified


# What an unknown key's derived public key is compared against, only so that
# the comparison runs; ``record is None`` refuses whatever it says.
_NO_KEY = bytes(32)


def _bearer_flow(cred: BearerCredential, now: float, require_scoped: bool) -> Flow:
    # The public key is derived before the look-up, whether or not the key
    # exists, and compared against a stand-in for an unknown one: an unknown
    # key id and a wrong secret take the same path and the same time.
    derived = public_key_from_seed(cred.parsed.seed)
    record, known = _fetched((yield FetchKey(cred.parsed.key_id)))
    expected = _NO_KEY if record is None else record.public_key
    # Constant-time: the stored public key is public, but a timing oracle on
    # how many leading bytes match would still be a gift to an attacker.
    if not hmac.compare_digest(derived, expected) or record is None:
        raise InvalidToken()
    if known is not None:
        return _known_state(record, known, now)
    return (yield from _derive(record, now, require_scoped))


def _legacy_flow(cred: LegacyCredential, require_scoped: bool, pepper: LegacyPepper | None) -> Flow:
    record = yield FetchLegacy(cred.org_id)
    if not isinstance(record, LegacyRecord):
        raise InvalidToken()
    return (yield from _legacy_secret(record, cred.secret, require_scoped, pepper))


def _legacy_token_flow(cred: LegacyToken, require_scoped: bool, pepper: LegacyPepper) -> Flow:
    # Newest pepper first: after a rotation most records hold its digest.
    for _, digest in pepper.digests(cred.secret):
        record = yield FindLegacy(digest)
        if isinstance(record, LegacyRecord):
            # A store must return the record holding this digest; one that
            # answers with another (a lying or racing store) gets nothing.
            held = record.lookup_digest
            if held is not None and hmac.compare_digest(held, digest):
                return (yield from _legacy_secret(record, cred.secret, require_scoped, pepper))
    raise InvalidToken()


def _legacy_secret(
    record: LegacyRecord, secret: str, require_scoped: bool, pepper: LegacyPepper | None
) -> Flow:
    # The look-up digest only *finds* the record: argon2 decides, as for Basic.
    matched = yield CheckLegacySecret(record, secret)
    if matched is not True:
        raise InvalidToken()
    if pepper is not None and record.pepper_id != pepper.current_id:
        # Proven secret, digest missing or of an older pepper: the record
        # learns the current one, so Bearer finds it from now on.
        yield SetLegacyDigest(
            record.org_id, record.secret_hash, pepper.digest(secret), pepper.current_id
        )
    org_id = record.org_id
    if not record.enabled:
        raise LegacyDisabled().about(org_id, legacy_key_id(org_id), "legacy")
    _require_scoped(None, require_scoped)
    context = OrgContext(
        org_id=org_id,
        key_id=legacy_key_id(org_id),
        key_name="legacy",
        scopes=None,
        kind=CredentialKind.LEGACY,
    )
    return Verified(context, math.inf)


def credential_flow(
    cred: Credential,
    now: float,
    require_scoped: bool = False,
    pepper: LegacyPepper | None = None,
) -> Flow:
    """The verification flow for a parsed credential at POSIX time ``now``.

    ``require_scoped``: refuse an unrestricted credential (403).
    ``pepper``: the legacy pepper; without one a :class:`LegacyToken` is
    refused and no record is re-digested.
    """
    if isinstance(cred, BearerCredential):
        return _bearer_flow(cred, now, require_scoped)
    if isinstance(cred, LegacyToken):
        if pepper is None:
            raise InvalidToken()
        return _legacy_token_flow(cred, require_scoped, pepper)
    return _legacy_flow(cred, require_scoped, pepper)


def signature_flow(
    sig: RequestSignature,
    now: float,
    require_scoped: bool = False,
    required: tuple[str, ...] = (),
    client_ip: str | None = None,
) -> Flow:
    """The flow for an RFC 9421 signature already parsed and policy-checked.

    The nonce is remembered only after the signature verified, so nobody can
    burn another client's nonces with forged signatures (RFC 9421 §7.2.2; a
    copy of a genuine request with another body does spend its nonce: the
    body is checked after the headers, see docs/signing.md), and
    only once the request passed :func:`check_access` (``required`` scopes,
    ``client_ip`` against the allowlist): a request that is refused anyway
    must not spend a place in the replay cache, or refused requests could
    fill it. The nonce goes to the cache counted against the signing key.
    """
    answer = yield FetchKey(sig.key_id)
    if type(answer) is KnownKey:
        record = answer.record
        verified, once = known_signature(sig, answer, now, required, client_ip)
    else:
        if not isinstance(answer, KeyRecord):
            # An unknown keyid looks exactly like a bad signature: no oracle.
            raise SignatureInvalid("Signature verification failed")
        record = answer
        verify_ed25519(record.public_key, sig.signature, sig.base)
        # Roles are read (and require_scoped applied) before the nonce is spent: a
        # store error there must not turn the client's retry into a "replay".
        verified = yield from _derive(record, now, require_scoped)
        once = _admitted(sig, verified, required, client_ip)
    if (yield RememberNonce(once, sig.replay_ttl(now), record.key_id)) is not True:
        raise replayed(record)
    return verified


def known_signature(
    sig: RequestSignature,
    known: KnownKey,
    now: float,
    required: tuple[str, ...],
    client_ip: str | None,
) -> tuple[Verified, str]:
    """:func:`signature_flow` up to the nonce, for a key whose context is known.

    What the flow does once :class:`FetchKey` was answered with ``known``:
    the signature, the key's state, :func:`check_access`, in that order.
    Returns the verified context and the nonce key to remember (for
    ``sig.replay_ttl(now)``, counted against the key); the request is
    accepted only if that nonce is new (else :func:`replayed`). A plain
    call, so a driver holding ``known`` and a nonce cache without I/O needs
    no generator.
    """
    record = known.record
    verify_ed25519(record.public_key, sig.signature, sig.base)
    verified = _known_state(record, known.verified, now)
    return verified, _admitted(sig, verified, required, client_ip)


def _admitted(
    sig: RequestSignature, verified: Verified, required: tuple[str, ...], client_ip: str | None
) -> str:
    # The per-request checks, then the replay-cache key of this signature.
    context = verified.context
    if required or context.allowed_ips is not None:
        check_access(context, required, client_ip)
    # Without a nonce (RFC 9421 peers send none by default, nor does the
    # RFC's own B.2.6 example) the signature value itself is what may be
    # used once: Ed25519 signatures are deterministic, so a replay carries
    # the very same bytes. The same bounded per-key cache holds both kinds;
    # a NUL cannot occur in a nonce (an sf-string), so they never collide.
    once = sig.nonce if sig.nonce is not None else "\x00sig:" + sig.signature.hex()
    return nonce_key(sig.key_id, once)


def replayed(record: KeyRecord) -> ReplayDetected:
    """The refusal of a signature whose nonce (or value) was seen already."""
    return ReplayDetected().about(record.org_id, record.key_id, record.name)

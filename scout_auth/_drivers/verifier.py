"""Verifier drivers: the same decision flow, driven sync or async.

Theory of operation
-------------------
Everything that is not I/O lives in :class:`_BaseVerifier`: turning a
request or header into a credential (or a parsed signature and its flow),
the cache look-ups, answering a flow's needs that the cache can answer, the
per-request checks. The two drivers differ only where they wait — a plain
call or an ``await`` — in ``_verify`` (cache, then one single-flight look-up
per credential), ``_verify_signed``, ``_cold``, ``_drive`` and ``_perform``, as httpx's
``sync_auth_flow`` / ``async_auth_flow`` do.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypedDict, Unpack

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .._audit.events import AuditSink, denial_event
from .._core.cache import VerifiedCache
from .._core.credentials import (
    Credential,
    LegacyCredential,
    parse_basic,
    parse_bearer_or_legacy,
    split_authorization,
)
from .._core.drive import NOT_LOCAL, adrive, drive
from .._core.flow import (
    CheckLegacySecret,
    FetchKey,
    FetchLegacy,
    FetchRoles,
    FindLegacy,
    Flow,
    KnownKey,
    Need,
    RememberContext,
    RememberNonce,
    SetLegacyDigest,
    Verified,
    check_access,
    credential_flow,
    known_signature,
    legacy_key_id,
    replayed,
    signature_flow,
)
from .._core.legacy_guard import (
    DEFAULT_LEGACY_CONCURRENCY,
    DEFAULT_LEGACY_NEGATIVE_SIZE,
    DEFAULT_LEGACY_NEGATIVE_TTL,
    DEFAULT_LEGACY_QUEUE,
    LegacyGuard,
)
from .._core.pepper import LegacyPepper, missing_pepper_error, resolve_pepper, unknown_pepper_error
from .._core.records import KeyRecord, OrgContext
from .._core.store import ROLE_ACTIONS, KeyEvent, KeyStore
from .._core.usage import DEFAULT_USAGE_INTERVAL, UsageRecorder, UsageWrite
from .._signing.body import DEFAULT_MAX_BODY_SIZE, BodyGuard
from .._signing.components import HttpRequest, authority_value
from .._signing.nonce import InMemoryNonceCache, NonceCache, takes_owner
from .._signing.policy import DEFAULT_POLICY, SignaturePolicy
from .._signing.signature import RequestSignature, parse_request_signature
from ..exceptions import (
    AuthError,
    InvalidRequest,
    SignatureMissingComponent,
    StoreUnavailable,
    WrongAuthority,
)
from .audit_buffer import AuditBuffer
from .observe import Observer, observe_perform
from .singleflight import AsyncSingleFlight, SingleFlight

__all__ = ["AsyncVerifier", "VerifiedRequest", "Verifier", "VerifierOptions"]

logger = logging.getLogger("scout_auth")

DEFAULT_CACHE_TTL = 10.0
DEFAULT_CACHE_SIZE = 10_000


def _check_password(hasher: PasswordHasher, need: CheckLegacySecret) -> bool:
    try:
        return hasher.verify(need.record.secret_hash, need.secret)
    except VerificationError:
        return False
    except InvalidHashError:
        logger.error("unreadable legacy hash for org %s", need.record.org_id)
        return False


def _store_failure(exc: Exception) -> StoreUnavailable:
    # Fail closed: an unexpected store error is "cannot verify" (503), never 500.
    logger.warning("key store error: %s", type(exc).__name__, extra={"error": type(exc).__name__})
    return StoreUnavailable()


#: A bearer token still unparsed (the cache is keyed on the raw string), or
#: an org's legacy secret.
_Presented = str | LegacyCredential

#: A parsed, policy-checked signature and the time it was read.
_Signed = tuple[RequestSignature, float]


def _scopes(required: Iterable[str]) -> tuple[str, ...]:
    return required if type(required) is tuple else tuple(required)


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A signed request whose signature verified, and the guard its body must pass.

    Attributes:
        context: Who is calling.
        body: A :class:`~scout_auth.BodyGuard` bound to the ``Content-Digest``
            the signature *covers*, or to none when it covers none: then any
            body byte is refused (401 ``signature_missing_component``),
            whatever ``Content-Length`` / ``Transfer-Encoding`` said. Feed it
            every body chunk; the body is verified once ``feed(..., final=True)``
            returned.
    """

    context: OrgContext
    body: BodyGuard


def _normalized_authorities(authorities: Iterable[str] | None) -> frozenset[str] | None:
    if authorities is None:
        return None
    if isinstance(authorities, str):
        raise TypeError("expected_authorities takes a list of host[:port] values, not a string")
    found = {a.strip().lower() for a in authorities}
    if not found or "" in found:
        raise ValueError("expected_authorities needs at least one non-empty host[:port]")
    # A request's @authority drops the scheme's default port (RFC 9421 §2.2.3):
    # an entry copied from a URL with ":443" or ":80" must still match it.
    return frozenset(found | {a.rsplit(":", 1)[0] for a in found if a.endswith((":443", ":80"))})


class VerifierOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Verifier` and :class:`AsyncVerifier` (see there)."""

    cache_ttl: float
    cache_size: int
    password_hasher: PasswordHasher | None
    signature_policy: SignaturePolicy
    nonce_cache: NonceCache | None
    signature_label: str | None
    require_scoped_keys: bool
    usage_interval: float | None
    audit: AuditSink | AuditBuffer | None
    expected_authorities: Iterable[str] | None
    clock: Callable[[], float]
    legacy_concurrency: int
    legacy_queue: int
    legacy_negative_ttl: float
    legacy_negative_size: int
    legacy_pepper: LegacyPepper | str | bytes | None
    legacy_bearer: bool
    observer: Observer | None


class _BaseVerifier:
    """Configuration, cache, parsing and every decision shared by both drivers."""

    def __init__(
        self,
        store: KeyStore,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        password_hasher: PasswordHasher | None = None,
        signature_policy: SignaturePolicy = DEFAULT_POLICY,
        nonce_cache: NonceCache | None = None,
        signature_label: str | None = None,
        require_scoped_keys: bool = False,
        usage_interval: float | None = DEFAULT_USAGE_INTERVAL,
        audit: AuditSink | AuditBuffer | None = None,
        expected_authorities: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
        legacy_concurrency: int = DEFAULT_LEGACY_CONCURRENCY,
        legacy_queue: int = DEFAULT_LEGACY_QUEUE,
        legacy_negative_ttl: float = DEFAULT_LEGACY_NEGATIVE_TTL,
        legacy_negative_size: int = DEFAULT_LEGACY_NEGATIVE_SIZE,
        legacy_pepper: LegacyPepper | str | bytes | None = None,
        legacy_bearer: bool = True,
        observer: Observer | None = None,
    ) -> None:
        if cache_ttl < 0 or cache_size < 0:
            raise ValueError("cache_ttl and cache_size must be >= 0")
        if not isinstance(signature_policy, SignaturePolicy):
            raise TypeError("signature_policy must be a SignaturePolicy")
        self.store = store
        self.signature_policy = signature_policy
        self.nonce_cache: NonceCache = (
            nonce_cache if nonce_cache is not None else InMemoryNonceCache()
        )
        # A cache of the older protocol gets no owner (and gives no per-key bound).
        self._nonce_owner = takes_owner(self.nonce_cache)
        # The in-memory cache does no I/O: its ``remember`` is answered inline
        # (no coroutine, no store-call dispatch). Exactly that class: a
        # subclass may override ``aremember`` to do I/O.
        # (An observer times every nonce call as a step of its own: not inline.)
        self._local_nonces: InMemoryNonceCache | None = (
            self.nonce_cache
            if type(self.nonce_cache) is InMemoryNonceCache and observer is None
            else None
        )
        self.signature_label = signature_label
        self.expected_authorities = _normalized_authorities(expected_authorities)
        self.require_scoped_keys = bool(require_scoped_keys)
        self.usage: UsageRecorder | None = (
            None if usage_interval is None else UsageRecorder(usage_interval)
        )
        # Denials are recorded through a buffer: the request never waits on it.
        self.audit = (
            audit if audit is None or isinstance(audit, AuditBuffer) else AuditBuffer(audit)
        )
        self.cache = VerifiedCache(ttl=cache_ttl, max_entries=cache_size)
        self._hasher = password_hasher or PasswordHasher()
        # argon2 costs a thread and 64 MiB per check: bounded, and a wrong
        # secret repeated is answered without it (see _legacy_guard).
        self.legacy = LegacyGuard(
            concurrency=legacy_concurrency,
            queue=legacy_queue,
            ttl=legacy_negative_ttl,
            max_entries=legacy_negative_size,
        )
        self._clock = clock
        # Metrics and traces (observe.py): None is off, tested once per request.
        if observer is not None and not isinstance(observer, Observer):
            raise TypeError("observer must be a scout_auth Observer")
        self.observer = observer
        if observer is not None:
            observer.attach(self)
        # Found (or refused) now, at startup: never per request.
        self.legacy_pepper = resolve_pepper(store, legacy_pepper, legacy_bearer)
        if self.legacy_pepper is not None:
            self._check_peppers(self.legacy_pepper)
        elif legacy_bearer:
            raise missing_pepper_error(store)
        # A weak reference: a store may outlive the verifiers that watch it.
        ref = weakref.WeakMethod(self._on_event)

        def listener(event: KeyEvent) -> None:
            method = ref()
            if method is not None:
                method(event)

        self._unsubscribe = store.subscribe(listener)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, cached={len(self.cache)})"

    def _check_peppers(self, pepper: LegacyPepper) -> None:
        """Refuse to start over digests none of which a configured pepper made."""
        # One cheap read of the store at construction (sync on both drivers:
        # no loop may be running yet). A store that cannot answer now must
        # not stop the service from starting: it says so, and the requests it
        # cannot serve get 503 as always. Digests of a pepper dropped too
        # early are for `scout-auth legacy-pepper status`, which counts them.
        try:
            ids = self.store.legacy_pepper_ids()
        except Exception as exc:
            logger.warning(
                "could not check the legacy pepper against the store at startup (%s)",
                type(exc).__name__,
            )
            return
        if ids and not any(pepper.knows(pid) for pid in ids):
            # The pepper is wrong (or the store is not the one it was made for).
            raise unknown_pepper_error(ids)

    def _parsed(self, cred: _Presented) -> Credential:
        """The credential of a bearer token or legacy pair; a malformed one raises here.

        Before any flight or store access, as a malformed token must be refused.
        """
        if isinstance(cred, str):
            return parse_bearer_or_legacy(cred, self.legacy_pepper is not None)
        return cred

    def _on_event(self, event: KeyEvent) -> None:
        if event.key_id is not None:
            self.cache.invalidate(event.key_id)
        elif event.action == "flush" or event.action in ROLE_ACTIONS:
            self.cache.clear()
        else:
            self.cache.invalidate(legacy_key_id(event.org_id))
        if event.action == "flush":
            self.legacy.clear()
        elif event.key_id is None:
            self.legacy.forget(event.org_id)

    # -- turning what the caller has into what a driver verifies -------------

    def _credential(self, authorization: str | None) -> _Presented:
        """The credential of an ``Authorization`` value (raises for a refused header)."""
        scheme, rest = split_authorization(authorization)
        return rest if scheme == "bearer" else parse_basic(rest)

    def _signed_flow(
        self,
        request: HttpRequest,
        authorization: str | None,
        has_body: bool | None,
        signature_input: str | None = None,
        signature: str | None = None,
    ) -> _Signed:
        """Parse and policy-check a request's signature; it and the time it was read."""
        # One credential per request: a bearer token *and* a signature may name
        # different keys with different rights; picking one silently invites
        # confused-deputy bugs. Refuse both (400), documented in docs/signing.md.
        if authorization:
            raise InvalidRequest("Send either a bearer token or a request signature, not both")
        now = self._clock()
        sig = parse_request_signature(
            request,
            self.signature_policy,
            now=now,
            label=self.signature_label,
            signature_input=signature_input,
            signature=signature,
            has_body=has_body,
        )
        expected = self.expected_authorities
        if expected is not None:
            self._check_authority(request, sig, expected)
        return sig, now

    @staticmethod
    def _check_authority(
        request: HttpRequest, sig: RequestSignature, expected: frozenset[str]
    ) -> None:
        # A signature is valid wherever it is replayed within its window; only
        # a covered @authority (RFC 9421 §2.2.3, §7.2.1) ties it to this host.
        if "@authority" not in sig.components and "@target-uri" not in sig.components:
            raise SignatureMissingComponent("@authority", "Signature must cover @authority")
        if authority_value(request) not in expected:
            raise WrongAuthority()

    def _signature_flow(
        self, signed: _Signed, required: tuple[str, ...], client_ip: str | None
    ) -> tuple[Flow, float]:
        """The flow of a parsed signature: scopes and address checked before the nonce is spent."""
        sig, now = signed
        return signature_flow(sig, now, self.require_scoped_keys, required, client_ip), now

    def _known_signed(
        self, sig: RequestSignature, now: float, required: tuple[str, ...], client_ip: str | None
    ) -> OrgContext | None:
        """The signature flow without a generator, when nothing in it needs I/O.

        That is: the key's record and context are cached (a
        :class:`KnownKey`) and the nonce cache is the in-memory one. The
        same steps as the flow, from the same code (:func:`known_signature`:
        signature, key state, scopes and allowlist, then the nonce), the
        same cache look-up (an invalidated key is not there: the flow runs
        and fetches it) and the same error mapping as
        :meth:`_answer_locally`. ``None``: drive the flow.
        """
        nonces = self._local_nonces
        if nonces is None:
            return None
        known = self.cache.get_record(sig.key_id, now)
        if type(known) is not KnownKey:
            return None
        verified, once = known_signature(sig, known, now, required, client_ip)
        try:
            fresh = nonces.remember(once, sig.replay_ttl(now), known.record.key_id)
        except AuthError:
            raise
        except Exception as exc:  # as _perform answers a failing store call
            raise _store_failure(exc) from exc
        if fresh is not True:
            raise replayed(known.record)
        return self._count_use(verified.context, now, client_ip)

    def _request_flow(self, request: HttpRequest, has_body: bool | None) -> _Signed | None:
        """:meth:`_signed_flow` of a signed request; ``None`` if it carries no signature."""
        # Each field read once: the parser takes the values found here.
        signature_input = request._raw_field("signature-input")
        signature = request._raw_field("signature")
        if signature_input is None and signature is None:
            return None
        return self._signed_flow(
            request, request.field("authorization"), has_body, signature_input, signature
        )

    def _verified_request(
        self, context: OrgContext, request: HttpRequest, sig: RequestSignature, max_size: int
    ) -> VerifiedRequest:
        # RFC 9530 §6.3 / RFC 9421 §7.2.8: a digest proves the body only if the
        # signature covers it. An uncovered Content-Digest is the attacker's to
        # replace along with the body, so it is never consulted.
        digest = request.field("content-digest") if "content-digest" in sig.components else None
        return VerifiedRequest(context, BodyGuard(digest, max_size=max_size))

    # -- the cache --------------------------------------------------------------

    def _look_up(self, cred: _Presented) -> tuple[bytes, float, OrgContext | None]:
        """The credential's fingerprint, the time, and its cached context if any."""
        if isinstance(cred, str):
            fp = self.cache.bearer_fingerprint(cred)
        else:
            fp = self.cache.fingerprint("legacy", cred.org_id, cred.secret)
        now = self._clock()
        context = self.cache.get(fp, now)
        if self.observer is not None:  # observability: cache hits and misses
            self.observer.cache(context is not None)
        return fp, now, context

    def _flight_key(self, fp: bytes) -> bytes:
        # A caller that arrives after an invalidation must not share a flight
        # that may have read the store before it (a revoked key would pass):
        # flights are per cache epoch. ``fp`` is fixed-width, so this is unambiguous.
        return fp + b"%d" % self.cache.epoch

    def _cold_start(self, fp: bytes) -> tuple[float, int, OrgContext | None]:
        """A flight leader's time and epoch, read before the store; and the cache again."""
        now = self._clock()
        epoch = self.cache.epoch
        # A leader that just finished may have filled it meanwhile.
        return now, epoch, self.cache.get(fp, now)

    def _finish(self, fp: bytes, verified: Verified, now: float, epoch: int) -> OrgContext:
        self.cache.put(fp, verified.context, verified.valid_until, now, epoch)
        return verified.context

    def cached_authorization(
        self,
        authorization: str | None,
        required_scopes: Iterable[str] = (),
        client_ip: str | None = None,
    ) -> OrgContext | None:
        """The warm path of ``verify_authorization``: no store, no coroutine, no thread.

        Returns the cached context of an already verified bearer credential
        (its scopes and allowlist checked for this request), or ``None`` when
        the full verification has to run. A sync method on both verifiers:
        the adapters call it first and only then wait on
        ``verify_authorization``.

        Raises:
            AuthError: What ``verify_authorization`` raises for a header
                refused before the cache look-up, or for a cached key that
                lacks a required scope or is used from outside its allowlist.
        """
        scheme, token = split_authorization(authorization)
        if scheme != "bearer":
            return None
        now = self._clock()
        context = self.cache.get(self.cache.bearer_fingerprint(token), now)
        # Not counted here: a hit rides on the adapter's one observer call
        # (its label), a miss is counted by the verify_* call that follows.
        if context is not None:
            required = required_scopes if type(required_scopes) is tuple else tuple(required_scopes)
            self._accept(context, required, client_ip, now)
        return context

    # -- a flow's needs ---------------------------------------------------------

    def _answer_locally(self, now: float, need: Need) -> object:
        """What the cache answers for ``need`` without I/O, or ``NOT_LOCAL``."""
        # type() is: exact classes, the cheapest test on the per-request path.
        if type(need) is FetchKey:
            cached = self.cache.get_record(need.key_id, now)
            return NOT_LOCAL if cached is None else cached
        if type(need) is RememberNonce and self._local_nonces is not None:
            try:
                return self._local_nonces.remember(need.key, need.ttl, need.owner)
            except AuthError:
                raise
            except Exception as exc:  # as _perform answers a failing store call
                raise _store_failure(exc) from exc
        if type(need) is RememberContext:
            self.cache.put_known(need.known)
            return None
        if type(need) is CheckLegacySecret and self.legacy.known_wrong(
            self.legacy.fingerprint(need), now
        ):
            return False  # a wrong secret seen again: no argon2
        return NOT_LOCAL

    def _store_call(self, need: Need) -> tuple[object, str, tuple[Any, ...]]:
        """The object, sync method name (``a`` + name: async) and arguments for ``need``."""
        if isinstance(need, FetchKey):
            return self.store, "get_key", (need.key_id,)
        if isinstance(need, RememberNonce):
            if self._nonce_owner:
                return self.nonce_cache, "remember", (need.key, need.ttl, need.owner)
            return self.nonce_cache, "remember", (need.key, need.ttl)
        if isinstance(need, FetchRoles):
            return self.store, "list_roles", (need.org_id,)
        if isinstance(need, FindLegacy):
            return self.store, "find_legacy", (need.digest,)
        if isinstance(need, SetLegacyDigest):
            args = (need.org_id, need.secret_hash, need.digest, need.pepper_id)
            return self.store, "set_legacy_digest", args
        assert isinstance(need, FetchLegacy)
        return self.store, "get_legacy", (need.org_id,)

    def _stored(self, need: Need, answer: object, now: float, epoch: int) -> object:
        """Keep a fetched key record (unless an invalidation came since ``epoch``)."""
        if isinstance(answer, KeyRecord) and isinstance(need, FetchKey):
            self.cache.put_record(answer, now, epoch)
        return answer

    # -- after the flow -----------------------------------------------------------

    def _accept(
        self, context: OrgContext, required: tuple[str, ...], client_ip: str | None, now: float
    ) -> OrgContext:
        """Per-request checks of a verified context, then count the use."""
        scopes = context.scopes
        # The usual cases answered inline (this runs on every warm request):
        # no allowlist, and every required scope granted verbatim.
        if context.allowed_ips is not None or (
            required and scopes is not None and not scopes.issuperset(required)
        ):
            check_access(context, required, client_ip)
        # _count_use(), inlined: this runs on every warm request.
        usage = self.usage
        if usage is not None and usage.note(context, now, client_ip):
            self._schedule_usage_flush()
        return context

    @staticmethod
    def _digest_not_set(need: SetLegacyDigest, exc: Exception) -> bool:
        """A failed :class:`SetLegacyDigest` must not fail the request it rides on."""
        logger.warning(
            "could not store the legacy look-up digest of org %s (%s); again at its next use",
            need.org_id,
            type(exc).__name__,
        )
        return False

    def _legacy_checked(self, need: CheckLegacySecret, matched: bool, now: float) -> bool:
        """Remember an argon2 mismatch in the negative cache; returns ``matched``."""
        return self.legacy.checked(self.legacy.fingerprint(need), need.record.org_id, matched, now)

    def _count_use(self, context: OrgContext, now: float, client_ip: str | None) -> OrgContext:
        """Count the use of a context whose per-request checks already ran."""
        usage = self.usage
        if usage is not None and usage.note(context, now, client_ip):
            self._schedule_usage_flush()
        return context

    def _schedule_usage_flush(self) -> None:
        raise NotImplementedError

    def _write_usage(self) -> None:
        """Write the usage counted so far with the store's sync methods."""
        writes = self._drain_usage()
        done = 0
        try:
            for write in writes:
                getattr(self.store, write.method)(*write.args)
                done += 1
        except Exception as exc:
            self._usage_failed(writes[done:], exc)

    def _drain_usage(self) -> list[UsageWrite]:
        return [] if self.usage is None else self.usage.drain()

    def _usage_failed(self, writes: list[UsageWrite], exc: Exception) -> None:
        logger.warning("usage flush failed (%s); retrying at the next one", type(exc).__name__)
        if self.usage is not None:
            self.usage.restore(writes)

    def record_denial(
        self, exc: AuthError, *, method: str | None, path: str | None, client_ip: str | None
    ) -> None:
        """Queue an audit event for a refusal that named a real key (adapters call this).

        Does nothing without an ``audit`` sink, or when the request proved no
        key (unknown key, bad token or signature). Never blocks, never raises.
        """
        if self.audit is None or exc.subject is None:
            return
        org_id, key_id, key_name = exc.subject
        try:
            event = denial_event(
                error_code=exc.code,
                org_id=org_id,
                key_id=key_id,
                key_name=key_name,
                method=method,
                path=path,
                client_ip=client_ip,
            )
        except Exception:  # an unexpected field must not turn a 401 into a 500
            logger.exception("could not build the audit event for a denial")
            return
        self.audit.record(event)


class Verifier(_BaseVerifier):
    """Verify credentials synchronously (WSGI apps, scripts).

    Args:
        store: Any :class:`~scout_auth.stores.KeyStore`.
        cache_ttl: Seconds a verified credential is trusted without asking
            the store again (``0`` disables the cache). Changes made through
            a store in this process take effect at once regardless.
        cache_size: Most cached credentials.
        password_hasher: argon2 hasher for legacy secrets.
        signature_policy: What a signed request must cover and how fresh it
            must be (:class:`~scout_auth.SignaturePolicy`; default: the
            strict policy of docs/signing.md).
        nonce_cache: Where signed requests' nonces are remembered (default:
            an in-memory cache, per process; a fleet shares a Redis one).
        signature_label: The only RFC 9421 signature label accepted
            (default: any one signature).
        audit: Where refusals of a real key go (an
            :class:`~scout_auth.audit.AuditSink`, buffered for you, or an
            :class:`~scout_auth.audit.AuditBuffer`); ``None``: not recorded.
        expected_authorities: ``host[:port]`` values a signature must be
            made for (it must then cover ``@authority``); ``None``: any.
        require_scoped_keys: Refuse unrestricted credentials (a key with no
            scopes and no roles, and legacy secrets) with 403
            ``insufficient_scope``.
        usage_interval: Seconds between background writes of usage
            (``last_used_at``, ``use_count``, legacy usage); at most one
            write per key per interval from this verifier. ``None``: no
            usage tracking.
        clock: POSIX time source (for tests).
        legacy_concurrency: Most argon2 checks of legacy secrets running at
            once (default 2); memory stays within this many times the
            stored hashes' ``memory_cost`` (64 MiB by default).
        legacy_queue: Most argon2 checks waiting for one of those (default
            16); beyond that a legacy request is refused at once with 503
            ``legacy_busy`` and ``Retry-After``.
        legacy_negative_ttl: Seconds a wrong legacy secret is answered
            (401 ``invalid_token``) without argon2 (default 60; ``0``: off).
            Never delays a correct secret, and a change to the org's legacy
            record takes effect at once.
        legacy_negative_size: Most wrong legacy secrets remembered (default
            10 000, oldest evicted first; only keyed fingerprints are kept).
        legacy_pepper: The server-side pepper that lets a legacy secret sent
            as ``Bearer`` find its org (a :class:`~scout_auth.LegacyPepper`,
            or its text: peppers separated by commas, current first).
            Default: ``$SCOUT_AUTH_LEGACY_PEPPER``, else the store's own
            (in-memory and SQLite stores only). A shared store (PostgreSQL,
            MariaDB, Redis) with neither raises
            :class:`~scout_auth.exceptions.ConfigurationError` here, as do
            digests in the store made with a pepper not configured.
        legacy_bearer: Accept legacy secrets sent as ``Bearer`` (default).
            ``False``: legacy secrets as ``Basic org_id:secret`` only, no
            pepper needed.
        observer: Metrics and traces (default ``None``: off, costing
            nothing): an :class:`~scout_auth.observability.Observer`, e.g.
            ``OTelObserver()`` or ``PrometheusObserver()``
            (docs/operations.md).

    Every ``verify_*`` method takes ``client_ip=``: the client address, which
    a key with an IP allowlist needs (403 ``ip_not_allowed`` outside it, or
    when unknown or unparsable). The middlewares pass it.

    Example:
        >>> ctx = Verifier(store).verify_token("scout_sk_…")  # doctest: +SKIP
        >>> ctx.org_id  # doctest: +SKIP
    """

    def __init__(self, store: KeyStore, **options: Unpack[VerifierOptions]) -> None:
        super().__init__(store, **options)
        self._flight: SingleFlight[OrgContext] = SingleFlight()
        self._argon2_slots = threading.BoundedSemaphore(self.legacy.concurrency)
        if self.observer is not None:  # observability: cold steps run inside it
            vars(self)["_perform"] = observe_perform(self._perform, self.observer)

    def verify_token(
        self, token: str, *, required_scopes: Iterable[str] = (), client_ip: str | None = None
    ) -> OrgContext:
        """Verify a bare token: a ``scout_sk_`` Org Credential, or an org's legacy secret.

        Raises:
            AuthError: A subclass saying why (see :mod:`scout_auth.exceptions`).
        """
        return self._verify(token, _scopes(required_scopes), client_ip)

    def verify_legacy(
        self,
        org_id: str,
        secret: str,
        *,
        required_scopes: Iterable[str] = (),
        client_ip: str | None = None,
    ) -> OrgContext:
        """Verify an org's legacy secret (argon2 runs at most once while cached)."""
        cred = LegacyCredential(org_id, secret)
        return self._verify(cred, _scopes(required_scopes), client_ip)

    def verify_authorization(
        self,
        authorization: str | None,
        *,
        required_scopes: Iterable[str] = (),
        client_ip: str | None = None,
    ) -> OrgContext:
        """Verify an ``Authorization`` header value.

        ``Bearer`` carries an Org Credential or an org's legacy secret,
        ``Basic`` a legacy ``org_id:secret``.
        """
        return self._verify(self._credential(authorization), _scopes(required_scopes), client_ip)

    def verify_signed(
        self,
        request: HttpRequest,
        *,
        authorization: str | None = None,
        required_scopes: Iterable[str] = (),
        has_body: bool | None = None,
        client_ip: str | None = None,
    ) -> OrgContext:
        """Verify an RFC 9421 signed request (its headers; the body is the caller's).

        Args:
            request: The request as received (see :class:`~scout_auth.HttpRequest`).
            authorization: The request's credential header, if any: a request
                carrying both a credential and a signature is refused.
            required_scopes: Scopes the request needs.
            has_body: Whether the request has a body (default: from its headers).

        The caller must still check the body — against the ``Content-Digest``
        the signature *covers*, never one it does not. Prefer
        :meth:`verify_signed_request`, whose guard does exactly that.

        Raises:
            AuthError: A subclass saying why.
        """
        signed = self._signed_flow(request, authorization, has_body)
        return self._verify_signed(signed, _scopes(required_scopes), client_ip)

    def verify_signed_request(
        self,
        request: HttpRequest,
        *,
        authorization: str | None = None,
        required_scopes: Iterable[str] = (),
        client_ip: str | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> VerifiedRequest:
        """Verify a signed request's headers; return who calls and the guard for its body.

        What the middlewares use. Unlike :meth:`verify_signed`, the body
        check cannot go wrong: the returned guard checks the body against
        the ``Content-Digest`` the signature covers, and refuses any body
        when it covers none — even when no ``Content-Length`` announced one
        (HTTP/2, some ASGI servers).

        Example::

            verified = verifier.verify_signed_request(request)
            for chunk in body_chunks:
                verified.body.feed(chunk, final=False)
            verified.body.feed(b"", final=True)  # raises unless the body matched

        Raises:
            AuthError: A subclass saying why.
        """
        signed = self._signed_flow(request, authorization, None)
        context = self._verify_signed(signed, _scopes(required_scopes), client_ip)
        return self._verified_request(context, request, signed[0], max_body_size)

    def verify_request(
        self,
        request: HttpRequest,
        *,
        required_scopes: Iterable[str] = (),
        has_body: bool | None = None,
        client_ip: str | None = None,
    ) -> OrgContext:
        """Verify whatever credential ``request`` carries: bearer, legacy or signature."""
        signed = self._request_flow(request, has_body)
        if signed is None:
            cred = self._credential(request.field("authorization"))
            return self._verify(cred, _scopes(required_scopes), client_ip)
        return self._verify_signed(signed, _scopes(required_scopes), client_ip)

    def flush_usage(self) -> None:
        """Write the usage counted so far to the store now (also done by :meth:`close`)."""
        self._write_usage()

    def _schedule_usage_flush(self) -> None:
        # Off the request path: the store write happens in a short-lived thread.
        threading.Thread(target=self._write_usage, name="scout_auth-usage", daemon=True).start()

    def close(self) -> None:
        """Write pending usage and stop watching the store for changes."""
        self._write_usage()
        self._unsubscribe()

    def _verify(
        self, cred: _Presented, required: tuple[str, ...], client_ip: str | None
    ) -> OrgContext:
        fp, now, context = self._look_up(cred)
        if context is None:
            parsed = self._parsed(cred)
            context = self._flight.run(self._flight_key(fp), lambda: self._cold(parsed, fp))
        return self._accept(context, required, client_ip, now)

    def _verify_signed(
        self, signed: _Signed, required: tuple[str, ...], client_ip: str | None
    ) -> OrgContext:
        known = self._known_signed(signed[0], signed[1], required, client_ip)
        if known is not None:
            return known
        flow, now = self._signature_flow(signed, required, client_ip)
        # signature_flow ran check_access before spending the nonce.
        return self._count_use(self._drive(flow, now, self.cache.epoch).context, now, client_ip)

    def _cold(self, cred: Credential, fp: bytes) -> OrgContext:
        now, epoch, context = self._cold_start(fp)
        if context is not None:
            return context
        flow = credential_flow(cred, now, self.require_scoped_keys, self.legacy_pepper)
        return self._finish(fp, self._drive(flow, now, epoch), now, epoch)

    def _drive(self, flow: Flow, now: float, epoch: int) -> Verified:
        return drive(flow, partial(self._perform, now, epoch), partial(self._answer_locally, now))

    def _perform(self, now: float, epoch: int, need: Need) -> object:
        if isinstance(need, CheckLegacySecret):
            # Counted first: a caller beyond the queue is refused, not parked.
            with self.legacy.admitted(), self._argon2_slots:
                matched = _check_password(self._hasher, need)
            return self._legacy_checked(need, matched, now)
        target, method, args = self._store_call(need)
        try:
            answer = getattr(target, method)(*args)
        except AuthError:
            raise
        except Exception as exc:
            if type(need) is SetLegacyDigest:
                return self._digest_not_set(need, exc)
            raise _store_failure(exc) from exc
        return self._stored(need, answer, now, epoch)


class AsyncVerifier(_BaseVerifier):
    """Verify credentials from async code (ASGI apps).

    Same arguments (:class:`VerifierOptions`, documented on
    :class:`Verifier`: ``cache_ttl``, ``cache_size``, ``password_hasher``,
    ``signature_policy``, ``nonce_cache``, ``signature_label``, ``audit``,
    ``expected_authorities``, ``require_scoped_keys``, ``usage_interval``,
    ``clock``, ``legacy_concurrency``, ``legacy_queue``,
    ``legacy_negative_ttl``, ``legacy_negative_size``, ``legacy_pepper``,
    ``legacy_bearer``) and behaviour as :class:`Verifier`; the methods are
    coroutines, store calls use the store's ``a*`` methods and argon2 runs in
    a worker thread, never on the event loop, under a limiter of its own
    (``legacy_concurrency`` tokens), never anyio's default thread limiter
    that sync views run in.
    """

    def __init__(self, store: KeyStore, **options: Unpack[VerifierOptions]) -> None:
        super().__init__(store, **options)
        self._flight: AsyncSingleFlight[OrgContext] = AsyncSingleFlight()
        self._argon2_limiter = anyio.CapacityLimiter(self.legacy.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        if self.observer is not None:  # observability: cold steps run inside it
            vars(self)["_perform"] = observe_perform(self._perform, self.observer)

    async def verify_token(
        self, token: str, *, required_scopes: Iterable[str] = (), client_ip: str | None = None
    ) -> OrgContext:
        """Verify a bare token (an Org Credential or a legacy secret)."""
        return await self._verify(token, _scopes(required_scopes), client_ip)

    async def verify_legacy(
        self,
        org_id: str,
        secret: str,
        *,
        required_scopes: Iterable[str] = (),
        client_ip: str | None = None,
    ) -> OrgContext:
        """Verify an org's legacy secret."""
        cred = LegacyCredential(org_id, secret)
        return await self._verify(cred, _scopes(required_scopes), client_ip)

    async def verify_authorization(
        self,
        authorization: str | None,
        *,
        required_scopes: Iterable[str] = (),
        client_ip: str | None = None,
    ) -> OrgContext:
        """Verify an ``Authorization`` header value."""
        cred = self._credential(authorization)
        return await self._verify(cred, _scopes(required_scopes), client_ip)

    async def verify_signed(
        self,
        request: HttpRequest,
        *,
        authorization: str | None = None,
        required_scopes: Iterable[str] = (),
        has_body: bool | None = None,
        client_ip: str | None = None,
    ) -> OrgContext:
        """See :meth:`Verifier.verify_signed`."""
        signed = self._signed_flow(request, authorization, has_body)
        return await self._verify_signed(signed, _scopes(required_scopes), client_ip)

    async def verify_signed_request(
        self,
        request: HttpRequest,
        *,
        authorization: str | None = None,
        required_scopes: Iterable[str] = (),
        client_ip: str | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> VerifiedRequest:
        """See :meth:`Verifier.verify_signed_request`."""
        signed = self._signed_flow(request, authorization, None)
        context = await self._verify_signed(signed, _scopes(required_scopes), client_ip)
        return self._verified_request(context, request, signed[0], max_body_size)

    async def verify_request(
        self,
        request: HttpRequest,
        *,
        required_scopes: Iterable[str] = (),
        has_body: bool | None = None,
        client_ip: str | None = None,
    ) -> OrgContext:
        """See :meth:`Verifier.verify_request`."""
        signed = self._request_flow(request, has_body)
        if signed is None:
            cred = self._credential(request.field("authorization"))
            return await self._verify(cred, _scopes(required_scopes), client_ip)
        return await self._verify_signed(signed, _scopes(required_scopes), client_ip)

    async def aflush_usage(self) -> None:
        """See :meth:`Verifier.flush_usage`."""
        writes = self._drain_usage()
        done = 0
        try:
            for write in writes:
                await getattr(self.store, "a" + write.method)(*write.args)
                done += 1
        except Exception as exc:
            self._usage_failed(writes[done:], exc)

    def _schedule_usage_flush(self) -> None:
        # Off the request path: a task of its own on the running loop.
        try:
            task = asyncio.get_running_loop().create_task(self.aflush_usage())
        except RuntimeError:  # no asyncio loop (trio): the sync store in a thread
            threading.Thread(target=self._write_usage, daemon=True).start()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Write pending usage and stop watching the store for changes."""
        await self.aflush_usage()
        self._unsubscribe()

    async def _verify(
        self, cred: _Presented, required: tuple[str, ...], client_ip: str | None
    ) -> OrgContext:
        fp, now, context = self._look_up(cred)
        if context is None:
            parsed = self._parsed(cred)
            context = await self._flight.run(self._flight_key(fp), lambda: self._cold(parsed, fp))
        return self._accept(context, required, client_ip, now)

    async def _verify_signed(
        self, signed: _Signed, required: tuple[str, ...], client_ip: str | None
    ) -> OrgContext:
        known = self._known_signed(signed[0], signed[1], required, client_ip)
        if known is not None:
            return known
        flow, now = self._signature_flow(signed, required, client_ip)
        # signature_flow ran check_access before spending the nonce.
        verified = await self._drive(flow, now, self.cache.epoch)
        return self._count_use(verified.context, now, client_ip)

    async def _cold(self, cred: Credential, fp: bytes) -> OrgContext:
        now, epoch, context = self._cold_start(fp)
        if context is not None:
            return context
        flow = credential_flow(cred, now, self.require_scoped_keys, self.legacy_pepper)
        return self._finish(fp, await self._drive(flow, now, epoch), now, epoch)

    async def _drive(self, flow: Flow, now: float, epoch: int) -> Verified:
        return await adrive(
            flow, partial(self._perform, now, epoch), partial(self._answer_locally, now)
        )

    async def _perform(self, now: float, epoch: int, need: Need) -> object:
        if isinstance(need, CheckLegacySecret):
            with self.legacy.admitted():
                # A limiter of its own: anyio's default one is the pool that
                # Starlette's sync views (and run_in_threadpool) run in.
                matched = await anyio.to_thread.run_sync(
                    _check_password, self._hasher, need, limiter=self._argon2_limiter
                )
            return self._legacy_checked(need, matched, now)
        target, method, args = self._store_call(need)
        try:
            answer = await getattr(target, "a" + method)(*args)
        except AuthError:
            raise
        except Exception as exc:
            if type(need) is SetLegacyDigest:
                return self._digest_not_set(need, exc)
            raise _store_failure(exc) from exc
        return self._stored(need, answer, now, epoch)

"""Verifier drivers: the same decision flow, driven sync or async."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ._cache import VerifiedCache
from ._credentials import (
    BearerCredential,
    Credential,
    LegacyCredential,
    parse_basic,
    parse_bearer,
    split_authorization,
)
from ._flow import (
    CheckLegacySecret,
    FetchKey,
    FetchLegacy,
    Flow,
    Need,
    Verified,
    check_scopes,
    credential_flow,
    legacy_key_id,
)
from ._records import OrgContext
from ._singleflight import AsyncSingleFlight, SingleFlight
from .exceptions import AuthError, StoreUnavailable
from .stores._base import KeyEvent, KeyStore

__all__ = ["AsyncVerifier", "Verifier"]

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


class _BaseVerifier:
    """Configuration, cache and parsing shared by both drivers."""

    def __init__(
        self,
        store: KeyStore,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        password_hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cache_ttl < 0 or cache_size < 0:
            raise ValueError("cache_ttl and cache_size must be >= 0")
        self.store = store
        self.cache = VerifiedCache(ttl=cache_ttl, max_entries=cache_size)
        self._hasher = password_hasher or PasswordHasher()
        self._clock = clock
        # A weak reference: a store may outlive the verifiers that watch it.
        ref = weakref.WeakMethod(self._on_event)

        def listener(event: KeyEvent) -> None:
            method = ref()
            if method is not None:
                method(event)

        self._unsubscribe = store.subscribe(listener)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, cached={len(self.cache)})"

    def _on_event(self, event: KeyEvent) -> None:
        if event.key_id is not None:
            self.cache.invalidate(event.key_id)
        elif event.action == "flush":
            self.cache.clear()
        else:
            self.cache.invalidate(legacy_key_id(event.org_id))

    def _fingerprint(self, cred: Credential) -> bytes:
        if isinstance(cred, BearerCredential):
            return self._bearer_fingerprint(cred.token)
        return self.cache.fingerprint("legacy", cred.org_id, cred.secret)

    def _flight_key(self, fp: bytes) -> bytes:
        # A caller that arrives after an invalidation must not share a flight
        # that may have read the store before it (a revoked key would pass):
        # flights are per cache epoch. ``fp`` is fixed-width, so this is unambiguous.
        return fp + b"%d" % self.cache.epoch

    def _bearer_fingerprint(self, token: str) -> bytes:
        # Keyed on the raw token so a cache hit needs no parsing: only tokens
        # that parsed and verified are ever cached, and parsing is a pure
        # function of the string.
        return self.cache.bearer_fingerprint(token)

    def _cached_authorization(
        self, authorization: str | None, required: tuple[str, ...]
    ) -> OrgContext | None:
        """The warm path of ``verify_authorization``: no store, no coroutine.

        Returns the cached context of an already verified bearer credential
        (its scopes checked), or ``None`` when the full verification has to
        run. Raises what ``verify_authorization`` raises for a header refused
        before the cache look-up, or for missing scopes.
        """
        scheme, token = split_authorization(authorization)
        if scheme != "bearer":
            return None
        context = self.cache.get(self.cache.bearer_fingerprint(token), self._clock())
        if context is not None and required:
            check_scopes(context, required)
        return context

    def _finish(self, fp: bytes, verified: Verified, now: float, epoch: int) -> OrgContext:
        self.cache.put(fp, verified.context, verified.valid_until, now, epoch)
        return verified.context


def _store_failure(exc: Exception) -> StoreUnavailable:
    # Fail closed: an unexpected store error is "cannot verify" (503), never 500.
    logger.warning("key store error: %s", type(exc).__name__)
    return StoreUnavailable()


class Verifier(_BaseVerifier):
    """Verify credentials synchronously (WSGI apps, scripts).

    Args:
        store: Any :class:`~scout_auth.stores.KeyStore`.
        cache_ttl: Seconds a verified credential is trusted without asking
            the store again (``0`` disables the cache). Changes made through
            a store in this process take effect at once regardless.
        cache_size: Most cached credentials.
        password_hasher: argon2 hasher for legacy secrets.
        clock: POSIX time source (for tests).

    Example:
        >>> ctx = Verifier(store).verify_token("scout_sk_…")  # doctest: +SKIP
        >>> ctx.org_id  # doctest: +SKIP
    """

    def __init__(self, store: KeyStore, **options: Any) -> None:
        super().__init__(store, **options)
        self._flight: SingleFlight[OrgContext] = SingleFlight()

    def verify_token(self, token: str, *, required_scopes: Iterable[str] = ()) -> OrgContext:
        """Verify a bare ``scout_sk_`` token.

        Raises:
            AuthError: A subclass saying why (see :mod:`scout_auth.exceptions`).
        """
        return self._verify_bearer(token, tuple(required_scopes))

    def verify_legacy(
        self, org_id: str, secret: str, *, required_scopes: Iterable[str] = ()
    ) -> OrgContext:
        """Verify an org's legacy secret (argon2 runs at most once while cached)."""
        return self._verify(LegacyCredential(org_id, secret), tuple(required_scopes))

    def verify_authorization(
        self, authorization: str | None, *, required_scopes: Iterable[str] = ()
    ) -> OrgContext:
        """Verify an ``Authorization`` header value (``Bearer`` or legacy ``Basic``)."""
        scheme, rest = split_authorization(authorization)
        if scheme == "bearer":
            return self._verify_bearer(rest, tuple(required_scopes))
        return self._verify(parse_basic(rest), tuple(required_scopes))

    def close(self) -> None:
        """Stop watching the store for changes."""
        self._unsubscribe()

    def _verify_bearer(self, token: str, required: tuple[str, ...]) -> OrgContext:
        fp = self._bearer_fingerprint(token)
        context = self.cache.get(fp, self._clock())
        if context is None:
            cred = parse_bearer(token)  # a malformed token never reaches the store
            context = self._flight.run(self._flight_key(fp), lambda: self._cold(cred, fp))
        check_scopes(context, required)
        return context

    def _verify(self, cred: Credential, required: tuple[str, ...]) -> OrgContext:
        fp = self._fingerprint(cred)
        flight = self._flight_key(fp)
        context = self.cache.get(fp, self._clock())
        if context is None:
            context = self._flight.run(flight, lambda: self._cold(cred, fp))
        check_scopes(context, required)
        return context

    def _cold(self, cred: Credential, fp: bytes) -> OrgContext:
        now = self._clock()
        epoch = self.cache.epoch
        context = self.cache.get(fp, now)  # a leader that just finished may have filled it
        if context is not None:
            return context
        flow = credential_flow(cred, now)
        try:
            need = next(flow)
            while True:
                need = flow.send(self._perform(need))
        except StopIteration as stop:
            return self._finish(fp, stop.value, now, epoch)
        finally:
            flow.close()

    def _perform(self, need: Need) -> object:
        if isinstance(need, CheckLegacySecret):
            return _check_password(self._hasher, need)
        try:
            if isinstance(need, FetchKey):
                return self.store.get_key(need.key_id)
            assert isinstance(need, FetchLegacy)
            return self.store.get_legacy(need.org_id)
        except AuthError:
            raise
        except Exception as exc:
            raise _store_failure(exc) from exc


class AsyncVerifier(_BaseVerifier):
    """Verify credentials from async code (ASGI apps).

    Same arguments and behaviour as :class:`Verifier`; the methods are
    coroutines, store calls use the store's ``a*`` methods and argon2 runs in
    a worker thread, never on the event loop.
    """

    def __init__(self, store: KeyStore, **options: Any) -> None:
        super().__init__(store, **options)
        self._flight: AsyncSingleFlight[OrgContext] = AsyncSingleFlight()

    async def verify_token(self, token: str, *, required_scopes: Iterable[str] = ()) -> OrgContext:
        """Verify a bare ``scout_sk_`` token."""
        return await self._verify_bearer(token, tuple(required_scopes))

    async def verify_legacy(
        self, org_id: str, secret: str, *, required_scopes: Iterable[str] = ()
    ) -> OrgContext:
        """Verify an org's legacy secret."""
        return await self._verify(LegacyCredential(org_id, secret), tuple(required_scopes))

    async def verify_authorization(
        self, authorization: str | None, *, required_scopes: Iterable[str] = ()
    ) -> OrgContext:
        """Verify an ``Authorization`` header value."""
        scheme, rest = split_authorization(authorization)
        if scheme == "bearer":
            return await self._verify_bearer(rest, tuple(required_scopes))
        return await self._verify(parse_basic(rest), tuple(required_scopes))

    async def aclose(self) -> None:
        """Stop watching the store for changes."""
        self._unsubscribe()

    async def _verify_bearer(self, token: str, required: tuple[str, ...]) -> OrgContext:
        fp = self._bearer_fingerprint(token)
        context = self.cache.get(fp, self._clock())
        if context is None:
            cred = parse_bearer(token)  # a malformed token never reaches the store
            context = await self._flight.run(self._flight_key(fp), lambda: self._cold(cred, fp))
        check_scopes(context, required)
        return context

    async def _verify(self, cred: Credential, required: tuple[str, ...]) -> OrgContext:
        fp = self._fingerprint(cred)
        flight = self._flight_key(fp)
        context = self.cache.get(fp, self._clock())
        if context is None:
            context = await self._flight.run(flight, lambda: self._cold(cred, fp))
        check_scopes(context, required)
        return context

    async def _cold(self, cred: Credential, fp: bytes) -> OrgContext:
        now = self._clock()
        epoch = self.cache.epoch
        context = self.cache.get(fp, now)
        if context is not None:
            return context
        flow: Flow = credential_flow(cred, now)
        try:
            need = next(flow)
            while True:
                need = flow.send(await self._perform(need))
        except StopIteration as stop:
            return self._finish(fp, stop.value, now, epoch)
        finally:
            flow.close()

    async def _perform(self, need: Need) -> object:
        if isinstance(need, CheckLegacySecret):
            return await anyio.to_thread.run_sync(_check_password, self._hasher, need)
        try:
            if isinstance(need, FetchKey):
                return await self.store.aget_key(need.key_id)
            assert isinstance(need, FetchLegacy)
            return await self.store.aget_legacy(need.org_id)
        except AuthError:
            raise
        except Exception as exc:
            raise _store_failure(exc) from exc

"""The verifiers (``scout_auth/_drivers/verifier.py``), sync and async, driven by one set of cases.

Every test body is a coroutine; the sync :class:`~scout_auth.Verifier` is
presented through :class:`~tests._support.AsAsync`, so each case runs against
both drivers of the same decision flow.
"""

from __future__ import annotations

import gc
import math
import threading
import weakref
from datetime import timedelta
from typing import Any

import anyio
import pytest

from scout_auth import (
    AsyncVerifier,
    CredentialKind,
    InMemoryKeyStore,
    KeyManager,
    NewKey,
    OrgContext,
    Verifier,
)
from scout_auth._core.cache import VerifiedCache
from scout_auth._core.flow import KnownKey, Verified
from scout_auth._core.records import KeyRecord
from scout_auth._core.tokens import format_token, parse_token, public_key_from_seed
from scout_auth._signing.components import HttpRequest
from scout_auth._signing.signature import sign_request
from scout_auth.exceptions import (
    AuthError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeyDisabled,
    KeyExpired,
    SignatureInvalid,
    StoreUnavailable,
)
from tests._support import T0, AsAsync, Clock, SpyStore

pytestmark = pytest.mark.anyio

LONG_TTL = 3600.0


@pytest.fixture(params=["sync", "async"])
def make(request):
    """``make(store, **options)``: a verifier with awaitable methods."""

    def build(store: Any, **options: Any) -> Any:
        if request.param == "sync":
            return AsAsync(Verifier(store, **options))
        return AsyncVerifier(store, **options)

    return build


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture
def manager(store, clock) -> KeyManager:
    return KeyManager(store, clock=clock)


@pytest.fixture
def derivations(monkeypatch) -> list[bytes]:
    """Records every Ed25519 public-key derivation the verification flow does."""
    seen: list[bytes] = []

    def spy(seed: bytes) -> bytes:
        seen.append(seed)
        return public_key_from_seed(seed)

    monkeypatch.setattr("scout_auth._core.flow.public_key_from_seed", spy)
    return seen


def wrong_secret(token: str) -> str:
    parsed = parse_token(token)
    assert parsed is not None
    return format_token(parsed.key_id, bytes(32))


def unknown_key(token: str) -> str:
    parsed = parse_token(token)
    assert parsed is not None
    return format_token("z" * 20, parsed.seed)


# -- the outcome of one verification -------------------------------------------


async def test_valid_token_returns_the_keys_context(make, store, manager):
    new = manager.create_key("org_1", "billing-sync prod", scopes=["drive:read", "mail:send"])
    verifier = make(store)
    expected = OrgContext(
        org_id="org_1",
        key_id=new.key.key_id,
        key_name="billing-sync prod",
        scopes=frozenset({"drive:read", "mail:send"}),
        kind=CredentialKind.ORG_CREDENTIAL,
    )
    assert await verifier.verify_token(new.token) == expected
    assert await verifier.verify_authorization(f"Bearer {new.token}") == expected


async def test_each_key_answers_for_its_own_org(make, store, manager):
    a = manager.create_key("org_a", "billing-sync prod")
    b = manager.create_key("org_b", "reporting")
    verifier = make(store)
    assert (await verifier.verify_token(a.token)).org_id == "org_a"
    assert (await verifier.verify_token(b.token)).org_id == "org_b"
    assert (await verifier.verify_token(a.token)).key_id == a.key.key_id


async def test_disabled_key_raises_key_disabled(make, store, manager):
    new = manager.create_key("org_1", "paused partner")
    manager.disable_key(new.key.key_id)
    with pytest.raises(KeyDisabled) as info:
        await make(store).verify_token(new.token)
    assert (info.value.status, info.value.code) == (401, "key_disabled")


async def test_expired_key_raises_key_expired_from_its_expiry_instant(make, store, clock):
    manager = KeyManager(store, clock=clock)
    new = manager.create_key("org_1", "old import", expires_at=T0 + timedelta(minutes=5))
    verifier = make(store, clock=clock, cache_ttl=0)
    clock.advance(5 * 60 - 0.001)
    assert (await verifier.verify_token(new.token)).org_id == "org_1"
    clock.advance(0.001)
    with pytest.raises(KeyExpired) as info:
        await verifier.verify_token(new.token)
    assert (info.value.status, info.value.code) == (401, "key_expired")


def _fingerprint(exc: AuthError) -> tuple[object, ...]:
    return (type(exc), exc.status, exc.code, exc.detail, str(exc), repr(exc), exc.args)


async def test_wrong_secret_and_unknown_key_are_indistinguishable(make, store, manager):
    new = manager.create_key("org_1", "billing-sync prod")
    verifier = make(store)
    with pytest.raises(InvalidToken) as wrong:
        await verifier.verify_token(wrong_secret(new.token))
    with pytest.raises(InvalidToken) as unknown:
        await verifier.verify_token(unknown_key(new.token))
    with pytest.raises(InvalidToken) as garbage:
        await verifier.verify_token("scout_sk_nonsense")
    assert _fingerprint(wrong.value) == _fingerprint(unknown.value) == _fingerprint(garbage.value)
    assert wrong.value.status == 401
    assert wrong.value.code == "invalid_token"


STATE_NEEDS_THE_SECRET = [
    pytest.param("disable", id="disabled"),
    pytest.param("expire", id="expired"),
    pytest.param("delete", id="deleted"),
]


@pytest.mark.parametrize("change", STATE_NEEDS_THE_SECRET)
async def test_key_state_is_only_told_to_holders_of_the_secret(make, store, clock, change):
    """A wrong secret for a disabled/expired/deleted key says only ``invalid_token``."""
    manager = KeyManager(store, clock=clock)
    new = manager.create_key("org_1", "billing-sync prod", expires_at=T0 + timedelta(hours=1))
    if change == "disable":
        manager.disable_key(new.key.key_id)
    elif change == "expire":
        clock.advance(2 * 3600)
    else:
        manager.delete_key(new.key.key_id)
    with pytest.raises(InvalidToken):
        await make(store, clock=clock).verify_token(wrong_secret(new.token))


# -- scopes --------------------------------------------------------------------

SCOPE_CASES = [
    # granted, required, missing (None: granted)
    pytest.param(None, ["drive:write", "admin"], None, id="unrestricted-grants-anything"),
    pytest.param(frozenset(), ["drive:read"], ["drive:read"], id="empty-set-grants-nothing"),
    pytest.param(frozenset(), [], None, id="empty-set-no-requirement"),
    pytest.param({"drive:read"}, ["drive:read"], None, id="exact"),
    pytest.param({"drive:read"}, ["drive:write"], ["drive:write"], id="other-action"),
    pytest.param({"drive:read"}, ["Drive:read"], ["Drive:read"], id="case-sensitive"),
    pytest.param({"drive:*"}, ["drive:read", "drive:write"], None, id="wildcard"),
    pytest.param({"drive:*"}, ["drive:files:read"], None, id="wildcard-nested"),
    pytest.param({"drive:files:*"}, ["drive:read"], ["drive:read"], id="nested-wildcard-narrow"),
    pytest.param({"drive:*"}, ["drive"], ["drive"], id="wildcard-not-the-bare-prefix"),
    pytest.param({"drive:*"}, ["drivex:read"], ["drivex:read"], id="wildcard-not-a-string-prefix"),
    pytest.param({"drive:*"}, ["mail:send"], ["mail:send"], id="wildcard-other-resource"),
    pytest.param({"drive:*"}, ["*"], ["*"], id="wildcard-does-not-grant-star"),
    pytest.param({"drive:read"}, ["drive:*"], ["drive:*"], id="required-wildcard-not-granted"),
    pytest.param({"*"}, ["drive:read", "anything"], None, id="star-grants-everything"),
    pytest.param(
        {"drive:read"},
        ["mail:send", "drive:read", "admin"],
        ["mail:send", "admin"],
        id="missing-in-required-order",
    ),
]


@pytest.mark.parametrize(("granted", "required", "missing"), SCOPE_CASES)
async def test_required_scopes(make, store, manager, granted, required, missing):
    new = manager.create_key("org_1", "billing-sync prod", scopes=granted)
    verifier = make(store)
    for _ in range(2):  # cold, then warm: the same answer
        if missing is None:
            ctx = await verifier.verify_token(new.token, required_scopes=required)
            assert ctx.org_id == "org_1"
            continue
        with pytest.raises(InsufficientScope) as info:
            await verifier.verify_token(new.token, required_scopes=required)
        assert info.value.status == 403
        assert info.value.code == "insufficient_scope"
        assert list(info.value.missing) == missing
        assert list(info.value.required) == required


async def test_state_is_checked_before_scope(make, store, manager):
    new = manager.create_key("org_1", "billing-sync prod", scopes=[])
    manager.disable_key(new.key.key_id)
    with pytest.raises(KeyDisabled):
        await make(store).verify_token(new.token, required_scopes=["drive:read"])


# -- the cache -----------------------------------------------------------------


async def test_warm_path_does_no_store_io_and_no_ed25519(make, store, manager, derivations):
    new = manager.create_key("org_1", "billing-sync prod", scopes=["drive:read"])
    verifier = make(store, cache_ttl=LONG_TTL)
    store.calls.clear()
    first = await verifier.verify_token(new.token)
    assert store.calls == ["get_key"]
    assert len(derivations) == 1
    for _ in range(5):
        assert await verifier.verify_token(new.token) == first
        assert await verifier.verify_authorization(f"bearer {new.token}") == first
        with pytest.raises(InsufficientScope):
            await verifier.verify_token(new.token, required_scopes=["drive:write"])
    assert store.calls == ["get_key"]
    assert len(derivations) == 1


async def test_failures_are_not_cached(make, store, manager):
    new = manager.create_key("org_1", "billing-sync prod")
    verifier = make(store, cache_ttl=LONG_TTL)
    store.calls.clear()
    for _ in range(3):
        with pytest.raises(InvalidToken):
            await verifier.verify_token(wrong_secret(new.token))
    # The public key record is cached (so guessing costs no store I/O); the
    # failed verification itself never is: each attempt derives and compares.
    assert store.calls == ["get_key"]
    assert len(verifier.cache) == 0


REVOCATIONS = [
    pytest.param(lambda m, k: m.disable_key(k), KeyDisabled, id="disable"),
    pytest.param(lambda m, k: m.delete_key(k), InvalidToken, id="delete"),
    pytest.param(lambda m, k: m.rotate_key(k, grace=timedelta(0)), KeyExpired, id="rotate-grace-0"),
]


@pytest.mark.parametrize(("revoke", "error"), REVOCATIONS)
async def test_revocation_takes_effect_at_once_despite_the_cache(make, store, clock, revoke, error):
    manager = KeyManager(store, clock=clock)
    new = manager.create_key("org_1", "billing-sync prod")
    other = manager.create_key("org_1", "reporting")
    verifier = make(store, clock=clock, cache_ttl=LONG_TTL)
    await verifier.verify_token(new.token)
    await verifier.verify_token(other.token)
    assert len(verifier.cache) == 2
    revoke(manager, new.key.key_id)
    with pytest.raises(error):
        await verifier.verify_token(new.token)
    # Only the revoked key's entry went: the other key stays warm.
    store.calls.clear()
    assert (await verifier.verify_token(other.token)).key_id == other.key.key_id
    assert store.calls == []


async def test_reenabling_takes_effect_at_once(make, store, manager):
    new = manager.create_key("org_1", "billing-sync prod")
    verifier = make(store, cache_ttl=LONG_TTL)
    manager.disable_key(new.key.key_id)
    with pytest.raises(KeyDisabled):
        await verifier.verify_token(new.token)
    manager.enable_key(new.key.key_id)
    assert (await verifier.verify_token(new.token)).org_id == "org_1"


async def test_rotation_with_grace_keeps_the_old_key_until_grace_ends(make, store, clock):
    manager = KeyManager(store, clock=clock)
    old = manager.create_key("org_1", "nightly export")
    verifier = make(store, clock=clock, cache_ttl=LONG_TTL)
    await verifier.verify_token(old.token)
    new = manager.rotate_key(old.key.key_id, grace=timedelta(minutes=10))
    assert (await verifier.verify_token(old.token)).key_id == old.key.key_id
    assert (await verifier.verify_token(new.token)).key_id == new.key.key_id
    clock.advance(10 * 60)  # within the cache TTL: the grace end still wins
    with pytest.raises(KeyExpired):
        await verifier.verify_token(old.token)
    assert (await verifier.verify_token(new.token)).key_id == new.key.key_id


async def test_cache_entries_expire_after_the_ttl(make, store, manager, clock):
    new = manager.create_key("org_1", "billing-sync prod")
    verifier = make(store, clock=clock, cache_ttl=10)
    store.calls.clear()
    await verifier.verify_token(new.token)
    clock.advance(9.999)
    await verifier.verify_token(new.token)
    assert store.calls == ["get_key"]
    clock.advance(0.001)
    await verifier.verify_token(new.token)
    assert store.calls == ["get_key", "get_key"]


async def test_cache_is_bounded_oldest_evicted_first(make, store, manager):
    keys = [manager.create_key("org_1", f"integration {i}") for i in range(3)]
    verifier = make(store, cache_size=2, cache_ttl=LONG_TTL)
    for k in keys:
        await verifier.verify_token(k.token)
    assert len(verifier.cache) == 2
    store.calls.clear()
    await verifier.verify_token(keys[2].token)
    await verifier.verify_token(keys[1].token)
    assert store.calls == []
    await verifier.verify_token(keys[0].token)  # evicted: asks the store again
    assert store.calls == ["get_key"]
    assert len(verifier.cache) == 2


@pytest.mark.parametrize(
    "options",
    [pytest.param({"cache_ttl": 0}, id="ttl-0"), pytest.param({"cache_size": 0}, id="size-0")],
)
async def test_cache_can_be_disabled(make, store, manager, options):
    new = manager.create_key("org_1", "billing-sync prod")
    verifier = make(store, **options)
    store.calls.clear()
    for _ in range(3):
        await verifier.verify_token(new.token)
    assert store.calls == ["get_key"] * 3
    assert len(verifier.cache) == 0


async def test_key_expiry_is_honoured_on_the_warm_path(make, store, clock, derivations):
    manager = KeyManager(store, clock=clock)
    new = manager.create_key("org_1", "billing-sync prod", expires_at=T0 + timedelta(seconds=5))
    verifier = make(store, clock=clock, cache_ttl=LONG_TTL)
    store.calls.clear()
    await verifier.verify_token(new.token)
    clock.advance(4.999)
    await verifier.verify_token(new.token)  # still warm
    assert store.calls == ["get_key"]
    clock.advance(0.001)
    with pytest.raises(KeyExpired):
        await verifier.verify_token(new.token)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"cache_ttl": -1}, id="negative-ttl"),
        pytest.param({"cache_size": -1}, id="negative-size"),
    ],
)
def test_cache_options_are_validated(options):
    for cls in (Verifier, AsyncVerifier):
        with pytest.raises(ValueError, match=">= 0"):
            cls(InMemoryKeyStore(), **options)


# -- the store failing ----------------------------------------------------------


class FailingStore(InMemoryKeyStore):
    """Reads fail once ``error`` is set, like a database that went away."""

    error: BaseException | None = None

    def get_key(self, key_id):
        if self.error is not None:
            raise self.error
        return super().get_key(key_id)

    def get_legacy(self, org_id):
        if self.error is not None:
            raise self.error
        return super().get_legacy(org_id)


STORE_ERRORS = [
    pytest.param(ConnectionError("database unreachable"), id="connection-error"),
    pytest.param(TimeoutError("read timed out"), id="timeout"),
    pytest.param(OSError("socket closed"), id="os-error"),
    pytest.param(RuntimeError("driver bug"), id="runtime-error"),
    pytest.param(KeyError("row"), id="key-error"),
]


@pytest.mark.parametrize("error", STORE_ERRORS)
@pytest.mark.parametrize("credential", ["bearer", "legacy"])
async def test_store_errors_are_store_unavailable_never_success(make, error, credential):
    store = FailingStore()
    manager = KeyManager(store)
    token = manager.create_key("org_1", "billing-sync prod").token
    verifier = make(store)
    store.error = error
    call = (
        verifier.verify_token(token)
        if credential == "bearer"
        else verifier.verify_legacy("org_1", "old-secret")
    )
    with pytest.raises(StoreUnavailable) as info:
        await call
    assert info.value.status == 503
    assert info.value.code == "store_unavailable"
    assert info.value.retry_after >= 1
    assert info.value.__cause__ is error
    assert len(verifier.cache) == 0


# -- races ---------------------------------------------------------------------


class DisableDuringFetch(InMemoryKeyStore):
    """The first ``get_key`` after arming reads the record, then the key gets
    disabled (by a KeyManager on this very store) before the read returns."""

    armed = False

    def get_key(self, key_id):
        record = super().get_key(key_id)
        if self.armed:
            self.armed = False
            KeyManager(self).disable_key(key_id)
        return record


async def test_a_fill_racing_an_invalidation_is_not_cached(make):
    inner = DisableDuringFetch()
    store = SpyStore(inner)
    new = KeyManager(inner).create_key("org_1", "billing-sync prod")
    verifier = make(store, cache_ttl=LONG_TTL)
    inner.armed = True
    # The request began before the disable, so it may still pass...
    assert (await verifier.verify_token(new.token)).org_id == "org_1"
    # ...but its stale answer must not be cached for later requests.
    assert len(verifier.cache) == 0
    with pytest.raises(KeyDisabled):
        await verifier.verify_token(new.token)
    assert store.calls == ["get_key", "get_key"]


class SignallingCalls(dict[Any, Any]):
    """Single-flight's table of calls in progress; ``on_join`` fires when a
    caller finds a call already in flight (and is about to share its result)."""

    def __init__(self, on_join):
        super().__init__()
        self.on_join = on_join

    def get(self, key, default=None):
        found = super().get(key, default)
        if found is not None:
            self.on_join()
        return found


class HoldFirstFetch(InMemoryKeyStore):
    """The first ``get_key`` reads the record, then runs ``hook`` before returning it."""

    hook: Any = None

    def get_key(self, key_id):
        record = super().get_key(key_id)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook(key_id)
        return record


def test_a_request_after_an_invalidation_never_shares_an_older_flight_sync():
    """Thread A's fetch read the key before B's disable; thread B starts after
    ``disable_key`` returned and must not be handed A's stale success."""
    store = HoldFirstFetch()
    manager = KeyManager(store)
    new = manager.create_key("org_1", "billing-sync prod")
    verifier = Verifier(store, cache_ttl=LONG_TTL)
    disabled, joined = threading.Event(), threading.Event()
    verifier._flight._calls = SignallingCalls(joined.set)

    def hold(key_id):
        manager.disable_key(key_id)
        disabled.set()
        joined.wait(timeout=30)

    store.hook = hold
    outcome: dict[str, object] = {}

    def request(name):
        try:
            outcome[name] = verifier.verify_token(new.token)
        except AuthError as exc:
            outcome[name] = exc

    a = threading.Thread(target=request, args=("a",))
    a.start()
    assert disabled.wait(timeout=30)
    b = threading.Thread(target=request, args=("b",))
    b.start()
    b.join(timeout=30)
    joined.set()  # in case B did not join A's flight
    a.join(timeout=30)
    assert not a.is_alive()
    assert not b.is_alive()
    assert isinstance(outcome["b"], KeyDisabled), outcome
    with pytest.raises(KeyDisabled):
        verifier.verify_token(new.token)


async def test_a_request_after_an_invalidation_never_shares_an_older_flight_async():
    """The same race with tasks: B starts after ``disable_key`` returned."""
    store = InMemoryKeyStore()
    manager = KeyManager(store)
    new = manager.create_key("org_1", "billing-sync prod")
    verifier = AsyncVerifier(store, cache_ttl=LONG_TTL)
    disabled, joined = anyio.Event(), anyio.Event()
    verifier._flight._calls = SignallingCalls(joined.set)
    outcome: dict[str, object] = {}

    async def aget_key(key_id):
        record = store.get_key(key_id)
        if "held" not in outcome:
            outcome["held"] = True
            manager.disable_key(key_id)
            disabled.set()
            await joined.wait()
        return record

    store.aget_key = aget_key  # type: ignore[method-assign]

    async def request(name):
        try:
            outcome[name] = await verifier.verify_token(new.token)
        except AuthError as exc:
            outcome[name] = exc
        if name == "b":
            joined.set()  # in case B did not join A's flight

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, "a")
            await disabled.wait()
            tg.start_soon(request, "b")
    assert isinstance(outcome["b"], KeyDisabled), outcome
    with pytest.raises(KeyDisabled):
        await verifier.verify_token(new.token)


# -- lifetime ------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Verifier, AsyncVerifier])
async def test_verifier_is_garbage_collectable_while_the_store_lives(cls):
    store = InMemoryKeyStore()
    manager = KeyManager(store)
    new: NewKey = manager.create_key("org_1", "billing-sync prod")
    verifier = cls(store)
    if cls is Verifier:
        verifier.verify_token(new.token)
    else:
        await verifier.verify_token(new.token)
    ref = weakref.ref(verifier)
    del verifier
    gc.collect()
    assert ref() is None
    # The store's leftover subscription is harmless once the verifier is gone.
    manager.disable_key(new.key.key_id)
    manager.delete_key(new.key.key_id)


# -- signed requests: the key record and its context are cached ------------------


def signed(token: str, now: float, *, authorization: str | None = None) -> HttpRequest:
    """A GET signed with ``token``'s key at ``now`` (a fresh nonce every call)."""
    parsed = parse_token(token)
    assert parsed is not None
    request = HttpRequest("GET", "https", "api.example", "/files", "", [])
    sig = sign_request(request, key_id=parsed.key_id, private_seed=parsed.seed, now=now)
    headers = [("signature-input", sig["Signature-Input"]), ("signature", sig["Signature"])]
    if authorization is not None:
        headers.append(("authorization", authorization))
    return HttpRequest("GET", "https", "api.example", "/files", "", headers)


async def test_signed_requests_read_the_key_once_then_verify_every_signature(
    make, store, manager, clock
):
    new = manager.create_key("org_1", "uploader", scopes=["files:read"])
    verifier = make(store, clock=clock, cache_ttl=LONG_TTL)
    store.calls.clear()
    for _ in range(3):
        ctx = await verifier.verify_request(signed(new.token, clock.now))
        assert (ctx.key_id, ctx.scopes) == (new.key.key_id, frozenset({"files:read"}))
    assert store.calls == ["get_key"]
    # The signature is checked every time, cached key or not.
    forged = signed(wrong_secret(new.token), clock.now)
    with pytest.raises(SignatureInvalid):
        await verifier.verify_request(forged)


async def test_a_cached_signing_key_still_expires_on_time(make, store, clock):
    manager = KeyManager(store, clock=clock)
    new = manager.create_key("org_1", "uploader", expires_at=T0 + timedelta(seconds=5))
    verifier = make(store, clock=clock, cache_ttl=LONG_TTL)
    await verifier.verify_signed(signed(new.token, clock.now))
    clock.advance(4.999)
    await verifier.verify_signed(signed(new.token, clock.now))
    clock.advance(0.001)
    with pytest.raises(KeyExpired):
        await verifier.verify_signed(signed(new.token, clock.now))


async def test_a_cached_signing_key_is_refused_once_disabled(make, store, manager, clock):
    new = manager.create_key("org_1", "uploader")
    verifier = make(store, clock=clock, cache_ttl=LONG_TTL)
    await verifier.verify_signed(signed(new.token, clock.now))
    manager.disable_key(new.key.key_id)
    with pytest.raises(KeyDisabled):
        await verifier.verify_signed(signed(new.token, clock.now))


async def test_a_key_proven_by_signature_then_by_bearer_gets_the_same_context(
    make, store, manager, clock
):
    new = manager.create_key("org_1", "uploader", scopes=["files:read"])
    verifier = make(store, clock=clock, cache_ttl=LONG_TTL)
    by_signature = await verifier.verify_request(signed(new.token, clock.now))
    by_bearer = await verifier.verify_token(new.token)
    assert by_bearer == by_signature
    with pytest.raises(InvalidToken):  # the cached record does not spare the secret check
        await verifier.verify_token(wrong_secret(new.token))


async def test_verify_request_refuses_a_signature_with_a_bearer_token(make, store, manager, clock):
    new = manager.create_key("org_1", "uploader")
    verifier = make(store, clock=clock)
    request = signed(new.token, clock.now, authorization=f"Bearer {new.token}")
    with pytest.raises(InvalidRequest):
        await verifier.verify_request(request)
    plain = HttpRequest(
        "GET", "https", "api.example", "/", "", [("authorization", f"Bearer {new.token}")]
    )
    assert (await verifier.verify_request(plain)).key_id == new.key.key_id


def test_known_context_never_replaces_a_record_fetched_after_an_invalidation():
    cache = VerifiedCache(ttl=60, max_entries=10)
    old = KeyRecord("k1", "org_1", "a", b"\x01" * 32, enabled=True, created_at=T0)
    new = old.evolve(name="b")
    cache.put_record(old, 0.0, cache.epoch)
    cache.invalidate("k1")
    cache.put_record(new, 0.0, cache.epoch)
    context = OrgContext("org_1", "k1", "a", None, CredentialKind.ORG_CREDENTIAL)
    cache.put_known(KnownKey(old, Verified(context, math.inf)))
    assert cache.get_record("k1", 1.0) is new
    cache.put_known(known := KnownKey(new, Verified(context, math.inf)))
    assert cache.get_record("k1", 1.0) is known


@pytest.mark.parametrize("token", ["scout_sk_\ud800abc", "\udcff" * 79, "scout_sk_é" + "a" * 69])
async def test_tokens_that_are_not_utf8_clean_are_invalid_not_errors(make, store, token):
    verifier = make(store)
    with pytest.raises(InvalidToken):
        await verifier.verify_token(token)
    with pytest.raises(InvalidToken):
        await verifier.verify_authorization(f"Bearer {token}")

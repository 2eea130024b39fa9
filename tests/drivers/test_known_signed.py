"""The signed path without a generator, for a key whose context is cached (issue 15).

``_BaseVerifier._known_signed`` answers a signed request whose key is
cached as a ``KnownKey`` with the in-memory nonce cache, without driving
``signature_flow``. Every refusal of the flow must be its refusal too: each
case runs on a warm verifier (the fast path) and on one whose fast path is
switched off (the flow, with the same warm cache), and both must agree —
error class, code, and whether the nonce was spent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from scout_auth import AsyncVerifier, InMemoryKeyStore, InMemoryNonceCache, KeyManager, Verifier
from scout_auth._core.tokens import format_token, parse_token
from scout_auth._signing.components import HttpRequest
from scout_auth._signing.signature import sign_request
from scout_auth.exceptions import AuthError
from tests._support import T0, AsAsync, Clock
from tests.drivers.test_verifier import signed

pytestmark = pytest.mark.anyio

LONG_TTL = 3600.0


def _verifier(kind: str, store: Any, fast: bool, **options: Any) -> Any:
    inner = Verifier(store, **options) if kind == "sync" else AsyncVerifier(store, **options)
    if not fast:
        vars(inner)["_known_signed"] = lambda *args: None  # the flow, always
    return AsAsync(inner) if kind == "sync" else inner


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def forged(token: str, now: float) -> HttpRequest:
    parsed = parse_token(token)
    assert parsed is not None
    return signed(format_token(parsed.key_id, bytes(32)), now)


def tampered(token: str, now: float) -> HttpRequest:
    # A genuine signature over another path.
    good = signed(token, now)
    return HttpRequest("GET", "https", "api.example", "/other", "", good.headers)


def without_nonce(token: str, now: float) -> HttpRequest:
    parsed = parse_token(token)
    assert parsed is not None
    request = HttpRequest("GET", "https", "api.example", "/files", "", [])
    sig = sign_request(
        request, key_id=parsed.key_id, private_seed=parsed.seed, now=now, nonce=False
    )
    headers = [("signature-input", sig["Signature-Input"]), ("signature", sig["Signature"])]
    return HttpRequest("GET", "https", "api.example", "/files", "", headers)


async def _outcome(kind: str, fast: bool, case: str) -> tuple[Any, ...]:
    """Warm a verifier with one request of the key, then play ``case``; what happened."""
    clock = Clock()
    store = InMemoryKeyStore()
    manager = KeyManager(store, clock=clock)
    options: dict[str, Any] = {"scopes": ["files:read"]}
    if case == "ip":
        options["allowed_ips"] = ["10.0.0.0/8"]
    if case == "expires":
        options["expires_at"] = T0 + timedelta(seconds=30)
    new = manager.create_key("org_1", "signer", **options)
    nonces = InMemoryNonceCache(clock=clock)
    verifier = _verifier(kind, store, fast, clock=clock, cache_ttl=LONG_TTL, nonce_cache=nonces)
    inner = verifier.inner if kind == "sync" else verifier
    ip = "10.1.2.3" if case == "ip" else None
    await verifier.verify_signed(signed(new.token, clock.now), client_ip=ip)
    assert type(inner.cache.get_record(new.key.key_id, clock.now)).__name__ == "KnownKey"
    held = nonces.held(new.key.key_id)
    kwargs: dict[str, Any] = {}
    if case == "forged":
        request = forged(new.token, clock.now)
    elif case == "tampered":
        request = tampered(new.token, clock.now)
    elif case == "replay":
        request = signed(new.token, clock.now)
        await verifier.verify_signed(request)
        held = nonces.held(new.key.key_id)
    elif case == "replay-no-nonce":
        request = without_nonce(new.token, clock.now)
        await verifier.verify_signed(request)
        held = nonces.held(new.key.key_id)
    elif case == "scope":
        request = signed(new.token, clock.now)
        kwargs["required_scopes"] = ["files:write"]
    elif case == "ip":
        request = signed(new.token, clock.now)
        kwargs["client_ip"] = "203.0.113.9"
    elif case == "expires":
        clock.advance(31)
        request = signed(new.token, clock.now)
    elif case == "disabled":
        manager.disable_key(new.key.key_id)  # the store's event invalidates the cache
        request = signed(new.token, clock.now)
    elif case == "deleted":
        manager.delete_key(new.key.key_id)
        request = signed(new.token, clock.now)
    elif case == "nonce-store-fails":

        def broken(*args: Any) -> bool:
            raise RuntimeError("replay cache down")

        vars(nonces)["remember"] = broken
        request = signed(new.token, clock.now)
    else:  # "ok"
        request = signed(new.token, clock.now)
        kwargs["required_scopes"] = ["files:read"]
    try:
        context = await verifier.verify_signed(request, **kwargs)
    except AuthError as exc:
        subject = exc.subject
        named = None if subject is None else (subject[0], subject[1] == new.key.key_id, subject[2])
        result: tuple[Any, ...] = (type(exc).__name__, exc.code, exc.status, named)
    else:
        result = ("ok", context.key_id == new.key.key_id, context.scopes)
    spent = nonces.held(new.key.key_id) - held if case != "nonce-store-fails" else None
    return result, spent


CASES = [
    "ok",
    "forged",
    "tampered",
    "replay",
    "replay-no-nonce",
    "scope",
    "ip",
    "expires",
    "disabled",
    "deleted",
    "nonce-store-fails",
]
EXPECTED = {
    "ok": "ok",
    "forged": "SignatureInvalid",
    "tampered": "SignatureInvalid",
    "replay": "ReplayDetected",
    "replay-no-nonce": "ReplayDetected",
    "scope": "InsufficientScope",
    "ip": "IpNotAllowed",
    "expires": "KeyExpired",
    "disabled": "KeyDisabled",
    "deleted": "SignatureInvalid",
    "nonce-store-fails": "StoreUnavailable",
}


@pytest.mark.parametrize("case", CASES)
async def test_the_known_key_path_refuses_what_the_flow_refuses(kind, case):
    fast = await _outcome(kind, True, case)
    slow = await _outcome(kind, False, case)
    assert fast == slow
    assert fast[0][0] == EXPECTED[case]
    # A refused request spends no nonce; an accepted one spends exactly one.
    if case in ("scope", "ip", "forged", "tampered", "replay", "replay-no-nonce"):
        assert fast[1] == 0


async def test_a_known_key_is_answered_without_the_flow(kind, monkeypatch):
    clock = Clock()
    store = InMemoryKeyStore()
    new = KeyManager(store, clock=clock).create_key("org_1", "signer")
    verifier = _verifier(kind, store, True, clock=clock, cache_ttl=LONG_TTL)
    await verifier.verify_signed(signed(new.token, clock.now))  # fetches, derives, remembers

    def no_flow(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the flow ran for a known key")

    monkeypatch.setattr("scout_auth._drivers.verifier.signature_flow", no_flow)
    for _ in range(3):
        assert (await verifier.verify_signed(signed(new.token, clock.now))).key_id == new.key.key_id


async def test_an_observer_or_another_nonce_cache_keeps_the_flow(kind, monkeypatch):
    class Remote(InMemoryNonceCache):
        """Stands for a cache doing I/O: not the in-memory class itself."""

    clock = Clock()
    store = InMemoryKeyStore()
    new = KeyManager(store, clock=clock).create_key("org_1", "signer")
    verifier = _verifier(kind, store, True, clock=clock, cache_ttl=LONG_TTL, nonce_cache=Remote())
    inner = verifier.inner if kind == "sync" else verifier
    await verifier.verify_signed(signed(new.token, clock.now))
    request = signed(new.token, clock.now)
    sig, now = inner._signed_flow(request, None, None)
    assert inner._known_signed(sig, now, (), None) is None

"""One key cannot exhaust the replay cache for every org (issue 9, defect 7).

Through the verifiers (sync and async) and through every adapter: a key that
floods is refused alone with 429 ``nonce_quota_exceeded`` and ``Retry-After``
while another key's signed requests still pass; a request refused for its
scopes or its address spends no nonce; a nonce cache of the older two-argument
protocol keeps working.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.test import Client

from scout_auth import AsyncVerifier, InMemoryKeyStore, InMemoryNonceCache, KeyManager, Verifier
from scout_auth.exceptions import (
    InsufficientScope,
    IpNotAllowed,
    NonceQuotaExceeded,
    ReplayDetected,
)
from tests._support import AsAsync, Clock
from tests.adapters.test_signing_middleware import HOSTS, Req, sign
from tests.apps import flask_app, starlette_app, wsgi_app
from tests.drivers.test_verifier import signed

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sync", "async"])
def make(request):
    def build(store: Any, **options: Any) -> Any:
        if request.param == "sync":
            return AsAsync(Verifier(store, **options))
        return AsyncVerifier(store, **options)

    return build


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_flooding_key_is_refused_alone(make, clock):
    store = InMemoryKeyStore()
    manager = KeyManager(store, clock=clock)
    flooder = manager.create_key("org_a", "flooder", scopes=[])
    other = manager.create_key("org_b", "honest")
    cache = InMemoryNonceCache(max_per_key=3, clock=clock)
    verifier = make(store, clock=clock, nonce_cache=cache)
    for _ in range(3):
        await verifier.verify_signed(signed(flooder.token, clock.now))
    with pytest.raises(NonceQuotaExceeded) as info:
        await verifier.verify_signed(signed(flooder.token, clock.now))
    assert info.value.retry_after >= 1
    for _ in range(3):
        ctx = await verifier.verify_signed(signed(other.token, clock.now))
        assert ctx.org_id == "org_b"
    assert cache.held(flooder.key.key_id) == 3


# (key options, verify options that refuse, verify options that accept)
REFUSED = [
    pytest.param(
        {"scopes": []},
        {"required_scopes": ["files:write"]},
        {},
        InsufficientScope,
        id="missing-scope",
    ),
    pytest.param(
        {"scopes": ["files:read"]},
        {"required_scopes": ["files:read", "files:write"]},
        {"required_scopes": ["files:read"]},
        InsufficientScope,
        id="one-scope-missing",
    ),
    pytest.param(
        {"allowed_ips": ["10.0.0.0/8"]},
        {"client_ip": "192.0.2.1"},
        {"client_ip": "10.1.2.3"},
        IpNotAllowed,
        id="address-outside-the-allowlist",
    ),
    pytest.param(
        {"allowed_ips": ["10.0.0.0/8"]},
        {},
        {"client_ip": "10.1.2.3"},
        IpNotAllowed,
        id="address-unknown",
    ),
]


@pytest.mark.parametrize(("key_options", "refused", "accepted", "error"), REFUSED)
async def test_a_refused_request_spends_no_nonce(
    make, clock, key_options, refused, accepted, error
):
    store = InMemoryKeyStore()
    new = KeyManager(store, clock=clock).create_key("org_a", "partner", **key_options)
    cache = InMemoryNonceCache(max_per_key=1, clock=clock)
    verifier = make(store, clock=clock, nonce_cache=cache)
    for _ in range(5):  # refusals cost the key nothing of its quota
        with pytest.raises(error):
            await verifier.verify_signed(signed(new.token, clock.now), **refused)
    assert cache.held(new.key.key_id) == 0
    request = signed(new.token, clock.now)
    with pytest.raises(error):
        await verifier.verify_signed(request, **refused)
    # The very request refused before was not remembered: it is not a replay now.
    assert (await verifier.verify_signed(request, **accepted)).key_id == new.key.key_id
    with pytest.raises(ReplayDetected):
        await verifier.verify_signed(request, **accepted)


class TwoArgumentCache:
    """A nonce cache written before ``owner`` existed."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def remember(self, key: str, ttl: float) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    async def aremember(self, key: str, ttl: float) -> bool:
        return self.remember(key, ttl)


async def test_a_cache_of_the_older_protocol_still_works(make, clock):
    store = InMemoryKeyStore()
    new = KeyManager(store, clock=clock).create_key("org_a", "partner")
    verifier = make(store, clock=clock, nonce_cache=TwoArgumentCache())
    request = signed(new.token, clock.now)
    assert (await verifier.verify_signed(request)).key_id == new.key.key_id
    with pytest.raises(ReplayDetected):
        await verifier.verify_signed(request)


# -- end to end: a real app on each adapter ------------------------------------


def _send(
    adapter: str, store: InMemoryKeyStore, cache: InMemoryNonceCache, requests: Any
) -> list[Any]:
    """Send each ``(key, Req)`` signed to the adapter's app; the (status, headers, body)."""
    host = HOSTS[adapter]
    answers = []
    if adapter == "starlette":
        with TestClient(starlette_app(AsyncVerifier(store, nonce_cache=cache))) as client:
            for key, req in requests:
                r = client.request(req.method, req.path, headers=sign(key, host, req))
                answers.append((r.status_code, r.headers, r.content))
        return answers
    verifier = Verifier(store, nonce_cache=cache)
    app = flask_app(verifier) if adapter == "flask" else wsgi_app(verifier)
    wsgi = app.test_client() if adapter == "flask" else Client(app)  # type: ignore[union-attr]
    for key, req in requests:
        w = wsgi.open(req.path, method=req.method, headers=sign(key, host, req))
        answers.append((w.status_code, w.headers, w.data))
    return answers


@pytest.mark.parametrize("adapter", ["starlette", "flask", "wsgi"])
def test_a_flood_from_one_key_gets_429_while_another_key_gets_200(adapter):
    store = InMemoryKeyStore()
    manager = KeyManager(store)
    flooder = manager.create_key("org_flood", "scopeless", scopes=[])
    other = manager.create_key("org_other", "billing-sync prod")
    cache = InMemoryNonceCache(max_per_key=5)
    get = Req("GET", "/whoami", body=b"")
    answers = _send(
        adapter,
        store,
        cache,
        [(flooder, get)] * 8 + [(other, get)] * 3 + [(flooder, get)],
    )
    statuses = [status for status, _, _ in answers]
    assert statuses == [200] * 5 + [429] * 3 + [200] * 3 + [429]
    _status, headers, body = answers[5]
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (429, "nonce_quota_exceeded")
    assert headers["content-type"] == "application/problem+json"
    assert 1 <= int(headers["retry-after"]) <= 300
    assert "www-authenticate" not in headers  # a new credential would not help
    assert json.loads(answers[8][2])["org"] == "org_other"
    assert cache.held(flooder.key.key_id) == 5

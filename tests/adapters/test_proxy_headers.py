"""Which forwarding header is believed, and how many hops — in every adapter.

Each case runs through the Starlette middleware, the Flask extension and the
bare WSGI middleware from a chosen peer (as ``test_authz_table.py``), with a
key whose IP allowlist makes the believed client address visible: 200 when
it is inside the allowlist, 403 ``ip_not_allowed`` when it is not or is
unknown.
"""

from __future__ import annotations

import json

import pytest

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth.flask import ScoutAuth
from scout_auth.starlette import ScoutAuthMiddleware as StarletteMiddleware
from scout_auth.wsgi import ScoutAuthMiddleware as WSGIMiddleware
from tests._support import cheap_hasher
from tests.adapters.test_authz_table import World, answers

PROXY = "10.9.9.9"  # the proxy the app sees as its peer
OUTER = "10.9.9.8"  # a second proxy in front of it
OFFICE = "192.0.2.10"  # inside the "office" allowlist
OUTSIDE = "198.51.100.1"  # outside every allowlist


@pytest.fixture(scope="module")
def world() -> World:
    store = InMemoryKeyStore()
    m = KeyManager(store, password_hasher=cheap_hasher())
    tokens = {
        "office": m.create_key("org_a", "office importer", allowed_ips=["192.0.2.0/24"]).token,
        # The proxies' own range: what ProxyFix-style "fall back to the peer"
        # would let through when a chain is shorter than the hops configured.
        "internal": m.create_key("org_a", "internal job", allowed_ips=["10.0.0.0/8"]).token,
    }
    return World(tokens, store, m)


def fwd(hops: int = 1) -> dict[str, object]:
    return {"trusted_proxies": [PROXY], "proxy_header": "forwarded", "proxy_hops": hops}


def xff(hops: int = 1) -> dict[str, object]:
    return {"trusted_proxies": [PROXY], "proxy_header": "x-forwarded", "proxy_hops": hops}


# (key, peer, adapter options, request headers, status)
CASES = [
    pytest.param(
        "office",
        PROXY,
        fwd(),
        {"forwarded": f"for={OUTSIDE}", "x-forwarded-for": OFFICE},
        403,
        id="xff-spoof-behind-forwarded-proxy",
    ),
    pytest.param(
        "office",
        PROXY,
        fwd(),
        {"forwarded": f"for={OUTSIDE};proto=https", "x-forwarded-for": f"{OUTSIDE}, {OFFICE}"},
        403,
        id="xff-chain-spoof-behind-forwarded-proxy",
    ),
    pytest.param(
        "office", PROXY, fwd(), {"forwarded": f"for={OFFICE}"}, 200, id="forwarded-proxy-allowed"
    ),
    pytest.param(
        "office",
        PROXY,
        xff(),
        {"x-forwarded-for": OUTSIDE, "forwarded": f"for={OFFICE}"},
        403,
        id="forwarded-spoof-behind-xff-proxy",
    ),
    pytest.param(
        "office",
        PROXY,
        xff(2),
        {"x-forwarded-for": f"{OFFICE}, {OUTER}"},
        200,
        id="xff-two-hops-allowed",
    ),
    pytest.param(
        "office",
        PROXY,
        xff(2),
        {"x-forwarded-for": f"{OFFICE}, {OUTSIDE}, {OUTER}"},
        403,
        id="xff-two-hops-client-prefix-ignored",
    ),
    pytest.param(
        "office",
        PROXY,
        fwd(2),
        {"forwarded": f"for={OFFICE}, for={OUTER}"},
        200,
        id="forwarded-two-hops-allowed",
    ),
    pytest.param(
        "internal",
        PROXY,
        xff(2),
        {"x-forwarded-for": "203.0.113.5"},
        403,
        id="short-chain-is-not-the-proxys-address",
    ),
    pytest.param(
        "internal", PROXY, fwd(), {}, 403, id="trusted-proxy-without-header-is-not-the-proxy"
    ),
    pytest.param(
        "office",
        PROXY,
        fwd(),
        {"forwarded": f'a=", for={OUTSIDE};host=",b=x,for={OFFICE};c="'},
        403,
        id="quoted-host-cannot-smuggle-a-for",
    ),
    pytest.param(
        "office", OUTSIDE, fwd(), {"forwarded": f"for={OFFICE}"}, 403, id="untrusted-peer-spoof"
    ),
]


@pytest.mark.parametrize(("key", "peer", "options", "headers", "status"), CASES)
def test_every_adapter_believes_one_header_and_n_hops(world, key, peer, options, headers, status):
    headers = {"authorization": f"Bearer {world.tokens[key]}", **headers}
    results = answers(world, headers, peer, options, {})
    assert results["starlette"] == results["flask"] == results["wsgi"], results
    got, _headers, body = results["starlette"]
    assert got == status, body
    if status == 403:
        assert json.loads(body)["code"] == "ip_not_allowed"


def _app(*_args):
    raise AssertionError("never called")


BUILD = {
    "starlette": lambda store, **kw: StarletteMiddleware(_app, verifier=AsyncVerifier(store), **kw),
    "flask": lambda store, **kw: ScoutAuth(verifier=Verifier(store), **kw),
    "wsgi": lambda store, **kw: WSGIMiddleware(_app, verifier=Verifier(store), **kw),
}


@pytest.mark.parametrize("adapter", list(BUILD))
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"proxy_header": "x-forwarded-for"}, id="a-header-not-a-family"),
        pytest.param({"proxy_hops": 0}, id="zero-hops"),
        pytest.param({"proxy_hops": True}, id="bool-hops"),
    ],
)
def test_every_adapter_refuses_bad_proxy_options_at_construction(adapter, options):
    with pytest.raises(ValueError, match="proxy"):
        BUILD[adapter](InMemoryKeyStore(), trusted_proxies=[PROXY], **options)

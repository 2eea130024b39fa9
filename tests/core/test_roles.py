"""Roles, scopes and IP allowlists: the key manager's operations and the verifier's answers."""

from __future__ import annotations

import time

import pytest

from scout_auth import AsyncKeyManager, AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth._adapters.requests import TrustedProxies
from scout_auth._core.tokens import parse_token
from scout_auth._signing.components import HttpRequest
from scout_auth._signing.signature import sign_request
from scout_auth.audit import InMemoryAuditSink
from scout_auth.exceptions import (
    InsufficientScope,
    InvalidKeyOperation,
    InvalidToken,
    IpNotAllowed,
    KeyNotFound,
    StoreUnavailable,
)
from tests._support import SpyStore


@pytest.fixture
def store():
    return InMemoryKeyStore()


def test_roles_resolve_into_effective_scopes(store):
    m = KeyManager(store)
    m.put_role("org_1", "viewer", ["drive:read", "mail:*"])
    new = m.create_key("org_1", "mail digest", scopes=["calendar:read"], roles=["viewer"])
    ctx = Verifier(store).verify_token(new.token, required_scopes=["mail:send"])
    assert ctx.scopes == frozenset({"calendar:read", "drive:read", "mail:*"})


def test_roles_are_per_org(store):
    m = KeyManager(store)
    m.put_role("org_other", "viewer", ["drive:read"])
    new = m.create_key("org_1", "reporting", roles=["viewer"])
    with pytest.raises(InsufficientScope):
        Verifier(store).verify_token(new.token, required_scopes=["drive:read"])


def test_set_scopes_roles_and_ips_take_effect_at_once(store):
    m = KeyManager(store)
    verifier = Verifier(store, cache_ttl=3600)
    new = m.create_key("org_1", "reporting", scopes=["drive:read"])
    key_id = new.key.key_id
    verifier.verify_token(new.token, required_scopes=["drive:read"])
    m.set_scopes(key_id, ["mail:read"])
    with pytest.raises(InsufficientScope):
        verifier.verify_token(new.token, required_scopes=["drive:read"])
    m.put_role("org_1", "drive", ["drive:*"])
    m.set_roles(key_id, ["drive"])
    verifier.verify_token(new.token, required_scopes=["drive:write", "mail:read"])
    m.set_allowed_ips(key_id, ["10.0.0.0/8"])
    with pytest.raises(IpNotAllowed):
        verifier.verify_token(new.token, client_ip="192.0.2.1")
    verifier.verify_token(new.token, client_ip="10.1.2.3")
    m.set_allowed_ips(key_id, None)
    verifier.verify_token(new.token, client_ip=None)
    m.set_scopes(key_id, None)
    m.set_roles(key_id, [])
    assert verifier.verify_token(new.token).scopes is None  # unrestricted again


def test_a_role_change_drops_every_cached_context_and_record(store):
    spy = SpyStore(store)
    m = KeyManager(store)
    m.put_role("org_1", "editor", ["drive:write"])
    new = m.create_key("org_1", "cms sync", roles=["editor"])
    verifier = Verifier(spy, cache_ttl=3600)
    verifier.verify_token(new.token, required_scopes=["drive:write"])
    verifier.verify_token(new.token, required_scopes=["drive:write"])
    assert spy.calls.count("get_key") == 1  # warm
    m.put_role("org_1", "editor", ["drive:read"])
    with pytest.raises(InsufficientScope):
        verifier.verify_token(new.token, required_scopes=["drive:write"])


def test_require_scoped_keys(store):
    m = KeyManager(store)
    unrestricted = m.create_key("org_1", "ops console")
    scoped = m.create_key("org_1", "reporting", scopes=["drive:read"])
    verifier = Verifier(store, require_scoped_keys=True)
    with pytest.raises(InsufficientScope, match="requires scoped keys"):
        verifier.verify_token(unrestricted.token)
    verifier.verify_token(scoped.token)
    bad = unrestricted.token[:-12] + "A" * 12
    with pytest.raises(InvalidToken):  # the secret is checked first
        verifier.verify_token(bad)


@pytest.mark.parametrize(
    ("allowed", "client_ip", "ok"),
    [
        pytest.param(["10.0.0.0/8"], "10.255.0.1", True, id="v4-in"),
        pytest.param(["10.0.0.0/8"], "11.0.0.1", False, id="v4-out"),
        pytest.param(["2001:db8::/32"], "2001:db8:1::1", True, id="v6-in"),
        pytest.param(["2001:db8::/32"], "2001:db9::1", False, id="v6-out"),
        pytest.param(["192.0.2.1"], "::ffff:192.0.2.1", True, id="v4-mapped"),
        pytest.param(["192.0.2.1"], None, False, id="unknown-address"),
        pytest.param(["192.0.2.1"], "", False, id="empty-address"),
        pytest.param(["192.0.2.1"], "192.0.2.1:80", False, id="address-with-port"),
        pytest.param(["192.0.2.1"], "not-an-ip", False, id="garbage-address"),
        pytest.param(["0.0.0.0/0", "::/0"], "2001:db8::1", True, id="everything"),
    ],
)
def test_ip_allowlist_fails_closed(store, allowed, client_ip, ok):
    new = KeyManager(store).create_key("org_1", "office importer", allowed_ips=allowed)
    verifier = Verifier(store)
    if ok:
        verifier.verify_token(new.token, client_ip=client_ip)
    else:
        with pytest.raises(IpNotAllowed) as info:
            verifier.verify_token(new.token, client_ip=client_ip)
        assert info.value.status == 403
        assert info.value.code == "ip_not_allowed"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"roles": "viewer"}, "list of role names", id="roles-string"),
        pytest.param({"roles": ["has space"]}, "role name", id="role-with-space"),
        pytest.param({"allowed_ips": "10.0.0.0/8"}, "allowed_ips", id="ips-string"),
        pytest.param({"allowed_ips": ["10.0.0.0/33"]}, "not an IP", id="bad-cidr"),
        pytest.param({"allowed_ips": []}, "at least one", id="empty-allowlist"),
    ],
)
def test_create_key_validates_roles_and_ips(store, kwargs, match):
    with pytest.raises(InvalidKeyOperation, match=match):
        KeyManager(store).create_key("org_1", "billing-sync prod", **kwargs)
    assert store.list_keys("org_1") == []


def test_allowlist_is_normalised_and_rotation_keeps_everything(store):
    m = KeyManager(store)
    new = m.create_key(
        "org_1",
        "office importer",
        scopes=["drive:read"],
        roles=["viewer"],
        allowed_ips=["10.1.2.3/8", "2001:DB8::1", "10.0.0.0/8"],
    )
    assert new.key.allowed_ips == ("10.0.0.0/8", "2001:db8::1/128")
    rotated = m.rotate_key(new.key.key_id)
    assert (rotated.key.scopes, rotated.key.roles, rotated.key.allowed_ips) == (
        new.key.scopes,
        new.key.roles,
        new.key.allowed_ips,
    )


def test_role_management_and_its_audit_trail(store):
    sink = InMemoryAuditSink()
    m = KeyManager(store, audit=sink)
    role = m.put_role("org_1", "viewer", ["drive:read"], actor="ana")
    assert m.get_role("org_1", "viewer") == role
    assert m.list_roles("org_1") == [role]
    m.delete_role("org_1", "viewer", actor="ana")
    with pytest.raises(KeyNotFound):
        m.delete_role("org_1", "viewer")
    with pytest.raises(KeyNotFound):
        m.get_role("org_1", "viewer")
    with pytest.raises(InvalidKeyOperation):
        m.put_role("org_1", "viewer", "drive:read")
    actions = [(e.action, e.key_name, e.actor) for e in sink.query("org_1").events]
    assert sorted(actions) == [("role_deleted", "viewer", "ana"), ("role_updated", "viewer", "ana")]


def test_legacy_switch_needs_a_legacy_key(store):
    m = KeyManager(store)
    with pytest.raises(KeyNotFound):
        m.disable_legacy("org_1")


@pytest.mark.anyio
async def test_async_manager_and_verifier(store):
    m = AsyncKeyManager(store)
    await m.put_role("org_1", "viewer", ["drive:read"])
    new = await m.create_key("org_1", "reporting", roles=["viewer"], allowed_ips=["::1"])
    verifier = AsyncVerifier(store)
    ctx = await verifier.verify_token(new.token, required_scopes=["drive:read"], client_ip="::1")
    assert ctx.scopes == frozenset({"drive:read"})
    with pytest.raises(IpNotAllowed):
        await verifier.verify_token(new.token, client_ip="127.0.0.1")
    assert [r.name for r in await m.list_roles("org_1")] == ["viewer"]
    status = await m.legacy_status("org_1", days=7)
    assert status.exists is False


@pytest.mark.parametrize(
    ("peer", "xff", "forwarded", "expected"),
    [
        pytest.param("192.0.2.1", None, None, "192.0.2.1", id="untrusted-peer"),
        pytest.param("192.0.2.1", "203.0.113.9", None, "192.0.2.1", id="untrusted-xff-ignored"),
        pytest.param("10.9.9.9", "203.0.113.9", None, "203.0.113.9", id="trusted-xff"),
        pytest.param("10.9.9.9", "1.1.1.1, 203.0.113.9", None, "203.0.113.9", id="last-hop"),
        pytest.param("10.9.9.9", None, "for=203.0.113.9", "203.0.113.9", id="forwarded"),
        pytest.param("10.9.9.9", None, 'for="[2001:db8::1]:443"', "2001:db8::1", id="fwd-v6"),
        pytest.param("10.9.9.9", None, "for=203.0.113.9:8080", "203.0.113.9", id="fwd-port"),
        pytest.param("10.9.9.9", "2001:db8::7", None, "2001:db8::7", id="xff-bare-v6"),
        pytest.param("10.9.9.9", None, None, None, id="trusted-no-header-is-unknown"),
        pytest.param("10.9.9.9", "unknown", None, None, id="unknown-is-unknown"),
    ],
)
def test_client_ip_believes_only_trusted_proxies(peer, xff, forwarded, expected):
    # The proxy writes one header family; the other is never read (more in
    # tests/adapters/test_requests.py).
    family = "forwarded" if forwarded else "x-forwarded"
    proxies = TrustedProxies.parse(["10.0.0.0/8"], header=family)
    headers = {"x-forwarded-for": xff, "forwarded": forwarded}
    assert proxies.client_ip(peer, {k: v for k, v in headers.items() if v}) == expected


class _BrokenRoles(InMemoryKeyStore):
    fail = False
    reads = 0

    def list_roles(self, org_id):
        self.reads += 1
        if self.fail:
            raise ConnectionError("database unreachable")
        return super().list_roles(org_id)


def _signed(token: str) -> HttpRequest:
    parsed = parse_token(token)
    assert parsed is not None
    request = HttpRequest("GET", "https", "api.example", "/files", "", [])
    sig = sign_request(request, key_id=parsed.key_id, private_seed=parsed.seed, now=time.time())
    headers = [("signature-input", sig["Signature-Input"]), ("signature", sig["Signature"])]
    return HttpRequest("GET", "https", "api.example", "/files", "", headers)


def test_signed_requests_resolve_roles_and_check_the_allowlist():
    store = _BrokenRoles()
    m = KeyManager(store)
    m.put_role("org_1", "editor", ["files:write"])
    new = m.create_key("org_1", "uploader", roles=["editor"], allowed_ips=["192.0.2.0/24"])
    verifier = Verifier(store)
    ctx = verifier.verify_signed(
        _signed(new.token), required_scopes=["files:write"], client_ip="192.0.2.5"
    )
    assert ctx.scopes == frozenset({"files:write"})
    with pytest.raises(IpNotAllowed):
        verifier.verify_signed(_signed(new.token), client_ip="198.51.100.1")
    # The roles were resolved once and kept with the cached key record ...
    assert store.reads == 1
    # ... until a role changes: the next signed request resolves them again.
    m.put_role("org_1", "editor", ["files:write", "files:read"])
    ctx = verifier.verify_signed(_signed(new.token), client_ip="192.0.2.5")
    assert ctx.scopes == frozenset({"files:write", "files:read"})
    assert store.reads == 2


def test_a_store_failure_reading_roles_does_not_spend_the_nonce():
    store = _BrokenRoles()
    m = KeyManager(store)
    m.put_role("org_1", "editor", ["files:write"])
    new = m.create_key("org_1", "uploader", roles=["editor"])
    verifier = Verifier(store)
    request = _signed(new.token)
    store.fail = True
    with pytest.raises(StoreUnavailable):
        verifier.verify_signed(request)
    store.fail = False
    # The failed attempt did not spend the nonce: the client's retry goes through.
    assert verifier.verify_signed(request).scopes == frozenset({"files:write"})

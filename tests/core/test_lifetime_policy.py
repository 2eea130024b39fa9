"""Per-org lifetime policies, enforced by create, rotate and expiry changes (issue 17)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyManager, LifetimePolicy
from scout_auth.exceptions import InvalidKeyOperation

NOW = 1_800_000_000.0
AT = datetime.fromtimestamp(NOW, UTC)
DAY = timedelta(days=1)

STRICT = LifetimePolicy(max_lifetime=90 * DAY, default_expiry=30 * DAY)


def manager(policy: object = STRICT) -> KeyManager:
    policies: dict[str, Any] = {
        "org_strict": policy,
        "org_req": LifetimePolicy(require_expiry=True),
    }
    return KeyManager(
        InMemoryKeyStore(), clock=lambda: NOW, lifetime_policy=lambda org: policies.get(org)
    )


def test_policies_are_checked() -> None:
    with pytest.raises(ValueError, match="exceed"):
        LifetimePolicy(max_lifetime=DAY, default_expiry=2 * DAY)
    with pytest.raises(ValueError, match="positive"):
        LifetimePolicy(max_lifetime=timedelta(0))
    with pytest.raises(TypeError):
        KeyManager(InMemoryKeyStore(), lifetime_policy="90d")  # type: ignore[arg-type]
    assert LifetimePolicy(max_lifetime=DAY).requires_expiry
    assert not LifetimePolicy().requires_expiry


def test_create_gets_the_default_and_refuses_too_long() -> None:
    m = manager()
    assert m.create_key("org_strict", "billing-sync prod").key.expires_at == AT + 30 * DAY
    assert m.create_key("org_strict", "billing-sync", expires_at=AT + 90 * DAY).key.expires_at
    with pytest.raises(InvalidKeyOperation, match="at most 90 days"):
        m.create_key("org_strict", "billing-sync", expires_at=AT + 91 * DAY)
    with pytest.raises(InvalidKeyOperation, match="must expire"):
        m.create_key("org_req", "billing-sync")
    assert m.create_key("org_free", "billing-sync").key.expires_at is None
    assert [k.org_id for k in m.store.list_keys("org_strict")] == ["org_strict"] * 2
    assert m.store.list_keys("org_req") == []


def test_rotate_inherits_or_defaults_and_refuses() -> None:
    store = InMemoryKeyStore()
    free = KeyManager(store, clock=lambda: NOW)
    old = free.create_key("org_strict", "billing-sync prod")  # made before the policy
    long = free.create_key("org_strict", "reports", expires_at=AT + 200 * DAY)
    never = free.create_key("org_req", "nightly sync")
    strict = KeyManager(
        store,
        clock=lambda: NOW,
        lifetime_policy={"org_strict": STRICT, "org_req": LifetimePolicy(require_expiry=True)}.get,
    )
    assert strict.rotate_key(old.key.key_id).key.expires_at == AT + 30 * DAY
    with pytest.raises(InvalidKeyOperation, match="at most 90 days"):
        strict.rotate_key(long.key.key_id)
    with pytest.raises(InvalidKeyOperation, match="must expire"):
        strict.rotate_key(never.key.key_id)
    assert strict.get_key(never.key.key_id).replaced_by is None  # nothing written


def test_expiry_changes_are_held_to_the_policy() -> None:
    m = manager()
    key = m.create_key("org_strict", "billing-sync prod").key
    with pytest.raises(InvalidKeyOperation, match="must expire"):
        m.update_key(key.key_id, expires_at=None)
    with pytest.raises(InvalidKeyOperation, match="at most 90 days"):
        m.update_key(key.key_id, expires_at=AT + 100 * DAY)
    assert m.update_key(key.key_id, expires_at=AT + 60 * DAY).expires_at == AT + 60 * DAY
    assert m.update_key(key.key_id, name="renamed prod").name == "renamed prod"


def test_one_policy_for_all_and_an_async_source() -> None:
    m = KeyManager(InMemoryKeyStore(), clock=lambda: NOW, lifetime_policy=STRICT)
    assert m.create_key("any_org", "billing-sync prod").key.expires_at == AT + 30 * DAY

    async def lookup(org_id: str) -> LifetimePolicy | None:
        return STRICT

    async def run() -> None:
        am = AsyncKeyManager(InMemoryKeyStore(), clock=lambda: NOW, lifetime_policy=lookup)
        new = await am.create_key("org_1", "billing-sync prod")
        assert new.key.expires_at == AT + 30 * DAY
        with pytest.raises(InvalidKeyOperation):
            await am.create_key("org_1", "billing-sync prod", expires_at=AT + 365 * DAY)

    asyncio.run(run())

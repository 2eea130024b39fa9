"""Key managers with a vault: recoverable keys, reveal, rotation, rewrap.

Off by default: without a vault nothing changes (only public keys are
stored); a recoverable key needs a vault, a reveal is audited, and a key
created without ``recoverable=True`` can never be revealed. Runs against
:class:`~scout_auth.KeyManager` (through ``AsAsync``) and
:class:`~scout_auth.AsyncKeyManager` alike.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import pytest

from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyManager, KeyVault, Verifier
from scout_auth.audit import InMemoryAuditSink
from scout_auth.exceptions import (
    ConfigurationError,
    InvalidKeyOperation,
    KeyNotFound,
    KeyNotRecoverable,
    VaultError,
)
from tests._support import AsAsync, Clock, SpyStore, cheap_hasher
from tests.core.test_vault import KEK, OTHER_KEK, FakeKms

pytestmark = pytest.mark.anyio


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture
def sink() -> InMemoryAuditSink:
    return InMemoryAuditSink()


def make(kind: str, store: Any, sink: Any, vault: KeyVault | None) -> Any:
    options: dict[str, Any] = {
        "password_hasher": cheap_hasher(),
        "clock": Clock(),
        "audit": sink,
        "vault": vault,
    }
    if kind == "sync":
        return AsAsync(KeyManager(store, **options))
    return AsyncKeyManager(store, **options)


@pytest.fixture(params=["sync", "async"])
def kind(request) -> str:
    return str(request.param)


@pytest.fixture
def manager(kind, store, sink) -> Any:
    return make(kind, store, sink, KeyVault({"k1": KEK}))


def actions(sink: InMemoryAuditSink, org_id: str = "org_1") -> list[tuple[str, str | None]]:
    events = reversed(sink.query(org_id, limit=1000).events)
    return [(e.action, e.actor) for e in events]


async def test_a_recoverable_key_reveals_its_token_and_the_reveal_is_audited(manager, store, sink):
    new = await manager.create_key("org_1", "billing-sync prod", recoverable=True, actor="ada")
    assert new.key.recoverable
    assert store.inner.get_key(new.key.key_id) == new.key  # sealed seed and all
    store.calls.clear()
    assert await manager.reveal_key(new.key.key_id, actor="bob") == new.token
    assert store.calls == ["get_key"]  # a reveal reads; it writes nothing
    assert sorted(actions(sink)) == [("created", "ada"), ("revealed", "bob")]
    # The verifier needs no vault and sees a key like any other.
    assert Verifier(store.inner).verify_token(new.token).key_id == new.key.key_id


async def test_keys_are_not_recoverable_unless_asked(manager, store):
    new = await manager.create_key("org_1", "billing-sync prod")
    assert not new.key.recoverable
    assert store.inner.get_key(new.key.key_id).sealed_seed is None
    with pytest.raises(KeyNotRecoverable, match="shown once") as caught:
        await manager.reveal_key(new.key.key_id, actor="bob")
    assert caught.value.key_id == new.key.key_id
    assert isinstance(caught.value, InvalidKeyOperation)


async def test_without_a_vault_recoverable_is_a_configuration_error_and_writes_nothing(
    kind, store, sink
):
    manager = make(kind, store, sink, None)
    with pytest.raises(ConfigurationError, match="needs a KeyVault"):
        await manager.create_key("org_1", "billing-sync prod", recoverable=True)
    assert store.writes == []
    assert actions(sink) == []
    new = await manager.create_key("org_1", "billing-sync prod")
    with pytest.raises(ConfigurationError):
        await manager.reveal_key(new.key.key_id)
    with pytest.raises(ConfigurationError):
        await manager.rewrap_vault()
    with pytest.raises(ConfigurationError):
        await manager.rotate_key(new.key.key_id, recoverable=True)


async def test_bad_arguments_write_nothing(manager, store):
    with pytest.raises(InvalidKeyOperation):
        await manager.create_key("org_1", "billing-sync prod", recoverable="yes")
    new = await manager.create_key("org_1", "billing-sync prod")
    store.calls.clear()
    with pytest.raises(InvalidKeyOperation):
        await manager.rotate_key(new.key.key_id, recoverable=1)
    with pytest.raises(KeyNotFound):
        await manager.reveal_key("nokey")
    with pytest.raises(InvalidKeyOperation):
        await manager.reveal_key(new.key.key_id, actor="x" * 201)
    assert store.writes == []


async def test_rotation_keeps_recoverability_unless_told(manager, store):
    sealed = await manager.create_key("org_1", "billing-sync prod", recoverable=True)
    plain = await manager.create_key("org_1", "billing-sync staging")
    successor = await manager.rotate_key(sealed.key.key_id)
    assert successor.key.recoverable
    assert await manager.reveal_key(successor.key.key_id) == successor.token
    assert not (await manager.rotate_key(plain.key.key_id)).key.recoverable
    opted_in = await manager.rotate_key(plain.key.key_id, recoverable=True)
    assert await manager.reveal_key(opted_in.key.key_id) == opted_in.token
    opted_out = await manager.rotate_key(successor.key.key_id, recoverable=False)
    assert not opted_out.key.recoverable


async def test_rotating_a_recoverable_key_without_a_vault_warns(kind, store, sink, caplog):
    sealed = await make(kind, store, sink, KeyVault({"k1": KEK})).create_key(
        "org_1", "billing-sync prod", recoverable=True
    )
    with caplog.at_level(logging.WARNING, logger="scout_auth"):
        successor = await make(kind, store, sink, None).rotate_key(sealed.key.key_id)
    assert not successor.key.recoverable
    assert "its successor is not" in caplog.text


async def test_delete_removes_the_sealed_seed(manager, store):
    new = await manager.create_key("org_1", "billing-sync prod", recoverable=True)
    await manager.delete_key(new.key.key_id)
    assert store.inner.list_sealed_seeds() == []
    with pytest.raises(KeyNotFound):
        await manager.reveal_key(new.key.key_id)


async def test_a_store_dump_and_a_wrong_kek_reveal_nothing(kind, store, sink):
    new = await make(kind, store, sink, KeyVault({"k1": KEK})).create_key(
        "org_1", "billing-sync prod", recoverable=True
    )
    dump = store.inner.get_key(new.key.key_id)  # every field the store holds
    thief_store = InMemoryKeyStore()
    thief_store.add_key(dump)
    for guess in (KeyVault({"k1": OTHER_KEK}), KeyVault({"k2": KEK})):
        with pytest.raises(VaultError) as caught:
            await make(kind, thief_store, None, guess).reveal_key(new.key.key_id)
        assert new.token[-49:-6] not in str(caught.value)


async def test_a_sealed_seed_of_another_key_pair_is_refused(manager, store):
    a = await manager.create_key("org_1", "billing-sync prod", recoverable=True)
    b = await manager.create_key("org_1", "billing-sync staging")
    # b's row given a's sealed seed, re-sealed for b's ids: it opens, but it
    # is not b's private key.
    vault = KeyVault({"k1": KEK})
    seed = vault.unseal(a.key.sealed_seed, key_id=a.key.key_id, org_id="org_1")
    forged = vault.seal(seed, key_id=b.key.key_id, org_id="org_1")
    store.inner._keys[b.key.key_id] = b.key.evolve(sealed_seed=forged)
    with pytest.raises(VaultError, match="not this key's private key"):
        await manager.reveal_key(b.key.key_id)
    # And a's sealed seed moved as is onto b's row fails its tag.
    store.inner._keys[b.key.key_id] = b.key.evolve(sealed_seed=a.key.sealed_seed)
    with pytest.raises(VaultError, match="copied from another key"):
        await manager.reveal_key(b.key.key_id)


async def test_rewrap_moves_every_data_key_to_the_current_kek(kind, store, sink):
    old = make(kind, store, sink, KeyVault({"k1": KEK}))
    keys = [
        await old.create_key(f"org_{i}", "billing-sync prod", recoverable=True) for i in range(3)
    ]
    await old.create_key("org_1", "billing-sync staging")  # not recoverable: not counted
    assert await old.vault_status() == {"k1": 3}
    both = make(kind, store, sink, KeyVault({"k2": OTHER_KEK, "k1": KEK}))
    report = await both.rewrap_vault()
    assert (report.rewrapped, report.current, report.gone, report.failed) == (3, 0, 0, ())
    assert await both.vault_status() == {"k2": 3}
    again = await both.rewrap_vault()
    assert (again.rewrapped, again.current) == (0, 3)
    new_only = make(kind, store, sink, KeyVault({"k2": OTHER_KEK}))
    for key in keys:
        assert await new_only.reveal_key(key.key.key_id) == key.token


async def test_rewrap_names_keys_that_do_not_open_and_goes_on(kind, store, sink, caplog):
    a = await make(kind, store, sink, KeyVault({"k1": KEK})).create_key(
        "org_1", "billing-sync prod", recoverable=True
    )
    b = await make(kind, store, sink, KeyVault({"k0": KEK})).create_key(
        "org_1", "billing-sync staging", recoverable=True
    )
    broken = dataclasses.replace(b.key.sealed_seed, wrapped_key=bytes(60))
    store.inner._keys[b.key.key_id] = b.key.evolve(sealed_seed=broken)
    with caplog.at_level(logging.WARNING, logger="scout_auth"):
        report = await make(
            kind, store, sink, KeyVault({"k2": OTHER_KEK, "k1": KEK, "k0": KEK})
        ).rewrap_vault()
    assert (report.rewrapped, report.failed) == (1, (b.key.key_id,))
    assert store.inner.get_key(a.key.key_id).sealed_seed.kek_id == "k2"
    assert store.inner.get_key(b.key.key_id).sealed_seed == broken  # left as it was
    assert b.key.key_id in caplog.text


async def test_the_async_manager_runs_kms_callbacks_in_a_worker_thread(store, sink):
    kms = FakeKms()
    vault = KeyVault.from_callbacks(kms.wrap, kms.unwrap, current_kek_id="kms/1")
    manager = AsyncKeyManager(store, clock=Clock(), audit=sink, vault=vault)
    new = await manager.create_key("org_1", "billing-sync prod", recoverable=True)
    assert await manager.reveal_key(new.key.key_id) == new.token
    assert len(kms.threads) == 2
    assert threading.get_ident() not in kms.threads


async def test_a_local_vault_needs_no_thread(store, sink):
    assert not KeyVault({"k1": KEK}).blocking


def test_the_manager_checks_its_vault_and_hides_it_in_repr():
    with pytest.raises(TypeError):
        KeyManager(InMemoryKeyStore(), vault="k1:...")  # type: ignore[arg-type]
    manager = KeyManager(InMemoryKeyStore(), vault=KeyVault({"k1": KEK}))
    assert "vault=KeyVault(current='k1'" in repr(manager)
    assert KEK.hex() not in repr(manager)
    assert "vault" not in repr(KeyManager(InMemoryKeyStore()))

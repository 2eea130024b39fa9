"""The recoverable-key contract: a sealed seed lives and dies with its key, on every store.

Mixed into :class:`~scout_auth.testing.StoreContract`, so it runs unchanged
against memory, SQLite, PostgreSQL, MariaDB, Redis and Redis Cluster with the
same ``store`` fixture. Tests use unique org, key and KEK ids (a shared
database is fine: other tests' sealed seeds are never opened, their KEK ids
are unknown here).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .. import AsyncKeyManager, KeyManager, KeyRecord, KeyVault, SealedSeed, generate_key_id
from ..exceptions import KeyNotRecoverable, VaultError
from ..stores import KeyUpdate

__all__ = ["VaultContract"]

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


def _kek_id() -> str:
    return f"kek-{uuid.uuid4().hex[:12]}"


def _vault(*kek_ids: str) -> KeyVault:
    return KeyVault({k: secrets.token_bytes(32) for k in kek_ids})


def _sealed(kek_id: str | None = None) -> SealedSeed:
    # Every byte value, NUL included: the store must keep bytes, not text.
    return SealedSeed(
        ciphertext=bytes(range(48)),
        nonce=bytes(range(200, 212)),
        wrapped_key=bytes(range(256))[::-1],
        kek_id=kek_id or _kek_id(),
    )


def _record(org_id: str, key_id: str | None = None, **over: object) -> KeyRecord:
    fields: dict[str, object] = {
        "key_id": key_id or generate_key_id(),
        "org_id": org_id,
        "name": "billing-sync prod",
        "public_key": b"\x03" * 32,
        "enabled": True,
        "created_at": T0,
    }
    fields.update(over)
    return KeyRecord(**fields)  # type: ignore[arg-type]


def _ours(store: Any, key_ids: set[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    after: str | None = None
    while True:
        page = store.list_sealed_seeds(after, 500)
        pairs.update((k, kek) for k, kek in page if k in key_ids)
        if len(page) < 500:
            return pairs
        after = page[-1][0]


class VaultContract:
    """Sealed seeds: round trip, delete, rotate, replace, the rewrap listing, a manager's vault."""

    # -- the store alone ----------------------------------------------------
    def test_a_sealed_seed_round_trips_byte_for_byte(self, store: Any) -> None:
        r = _record(_org(), sealed_seed=_sealed())
        store.add_key(r)
        got = store.get_key(r.key_id)
        assert got == r
        assert got.sealed_seed == r.sealed_seed
        assert got.recoverable
        assert store.list_keys(r.org_id) == [r]

    def test_a_key_without_one_reads_none(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        got = store.get_key(r.key_id)
        assert got.sealed_seed is None
        assert not got.recoverable
        assert _ours(store, {r.key_id}) == {}

    def test_delete_removes_the_sealed_seed(self, store: Any) -> None:
        r = _record(_org(), sealed_seed=_sealed())
        store.add_key(r)
        assert store.delete_key(r.key_id) == r
        assert store.get_key(r.key_id) is None
        assert _ours(store, {r.key_id}) == {}
        # A new key under the same id starts with none of the old one's.
        store.add_key(_record(r.org_id, r.key_id))
        assert store.get_key(r.key_id).sealed_seed is None

    def test_rotate_writes_the_successors_sealed_seed_and_keeps_the_old_ones(
        self, store: Any
    ) -> None:
        o = _org()
        old = _record(o, sealed_seed=_sealed())
        new = _record(o, sealed_seed=_sealed())
        store.add_key(old)
        updated = store.rotate_key(old.key_id, new, T0 + timedelta(hours=1))
        assert updated.sealed_seed == old.sealed_seed
        assert store.get_key(new.key_id) == new
        assert old.sealed_seed is not None
        assert new.sealed_seed is not None
        assert _ours(store, {old.key_id, new.key_id}) == {
            old.key_id: old.sealed_seed.kek_id,
            new.key_id: new.sealed_seed.kek_id,
        }

    def test_update_replaces_it_and_other_updates_keep_it(self, store: Any) -> None:
        r = _record(_org(), sealed_seed=_sealed())
        store.add_key(r)
        renamed = store.update_key(r.key_id, KeyUpdate(name="renamed", enabled=False))
        assert renamed.sealed_seed == r.sealed_seed
        other = _sealed()
        replaced = store.update_key(r.key_id, KeyUpdate(sealed_seed=other))
        assert replaced == r.evolve(name="renamed", enabled=False, sealed_seed=other)
        assert store.get_key(r.key_id) == replaced
        assert store.update_key(generate_key_id(), KeyUpdate(sealed_seed=other)) is None

    def test_the_listing_pages_through_every_sealed_key_once(self, store: Any) -> None:
        o, kek = _org(), _kek_id()
        # One random prefix: these ids sort together after it in any collation.
        prefix = "v" + uuid.uuid4().hex[:12]
        sealed = {f"{prefix}{i}" for i in range(5)}
        for key_id in sorted(sealed):
            store.add_key(_record(o, key_id, sealed_seed=_sealed(kek)))
        store.add_key(_record(o, f"{prefix}9"))  # not recoverable: never listed
        seen: list[str] = []
        after = prefix
        while True:
            page = store.list_sealed_seeds(after, 2)
            assert len(page) <= 2
            ours = [(k, kek_id) for k, kek_id in page if k.startswith(prefix)]
            assert all(kek_id == kek for _, kek_id in ours)
            seen += [k for k, _ in ours]
            if len(page) < 2 or len(ours) < len(page):
                break
            after = page[-1][0]
        assert sorted(seen) == sorted(sealed)
        assert len(seen) == len(set(seen))
        assert store.list_sealed_seeds(after, 0) == []

    @pytest.mark.anyio
    async def test_async_twins(self, store: Any) -> None:
        r = _record(_org(), sealed_seed=_sealed())
        await store.aadd_key(r)
        assert await store.aget_key(r.key_id) == r
        other = _sealed()
        assert (
            await store.aupdate_key(r.key_id, KeyUpdate(sealed_seed=other))
        ).sealed_seed == other
        page = await store.alist_sealed_seeds(None, 100_000)
        assert (r.key_id, other.kek_id) in page
        assert (await store.adelete_key(r.key_id)).sealed_seed == other

    # -- through a manager with a vault --------------------------------------
    def test_reveal_rotate_and_delete_through_a_manager(self, store: Any) -> None:
        manager = KeyManager(store, legacy_bearer=False, vault=_vault(_kek_id()))
        o = _org()
        new = manager.create_key(o, "billing-sync prod", recoverable=True)
        assert store.get_key(new.key.key_id) == new.key
        assert manager.reveal_key(new.key.key_id, actor="ada") == new.token
        plain = manager.create_key(o, "billing-sync staging")
        with pytest.raises(KeyNotRecoverable):
            manager.reveal_key(plain.key.key_id)
        rotated = manager.rotate_key(new.key.key_id)
        assert rotated.key.recoverable
        assert manager.reveal_key(rotated.key.key_id) == rotated.token
        assert manager.reveal_key(new.key.key_id) == new.token  # in its grace period
        assert not manager.rotate_key(plain.key.key_id).key.recoverable
        manager.delete_key(rotated.key.key_id)
        assert _ours(store, {rotated.key.key_id}) == {}

    def test_a_wrong_kek_opens_nothing_the_store_holds(self, store: Any) -> None:
        kek = _kek_id()
        new = KeyManager(store, legacy_bearer=False, vault=_vault(kek)).create_key(
            _org(), "billing-sync prod", recoverable=True
        )
        # Everything stored, read back, and another KEK under the same id.
        thief = KeyManager(store, legacy_bearer=False, vault=_vault(kek))
        with pytest.raises(VaultError) as caught:
            thief.reveal_key(new.key.key_id)
        assert new.token[-49:-6] not in str(caught.value)

    def test_kek_rotation_rewrap_then_the_old_kek_removed(self, store: Any) -> None:
        old_id, new_id = _kek_id(), _kek_id()
        old_kek, new_kek = secrets.token_bytes(32), secrets.token_bytes(32)
        before = KeyManager(store, legacy_bearer=False, vault=KeyVault({old_id: old_kek}))
        keys = [before.create_key(_org(), "billing-sync prod", recoverable=True) for _ in range(3)]
        both = KeyVault({new_id: new_kek, old_id: old_kek})
        during = KeyManager(store, legacy_bearer=False, vault=both)
        report = during.rewrap_vault()
        assert report.rewrapped >= 3
        ids = {k.key.key_id for k in keys}
        assert set(_ours(store, ids).values()) == {new_id}
        again = during.rewrap_vault()  # idempotent: ours are current now
        assert not ids & set(again.failed)
        assert again.current >= 3
        after = KeyManager(store, legacy_bearer=False, vault=KeyVault({new_id: new_kek}))
        for k in keys:
            assert after.reveal_key(k.key.key_id) == k.token
        assert after.vault_status().get(new_id, 0) >= 3

    @pytest.mark.anyio
    async def test_the_async_manager_reveals_and_rewraps(self, store: Any) -> None:
        kek = _kek_id()
        manager = AsyncKeyManager(store, legacy_bearer=False, vault=_vault(kek))
        new = await manager.create_key(_org(), "billing-sync prod", recoverable=True)
        assert await manager.reveal_key(new.key.key_id, actor="ada") == new.token
        assert (await manager.vault_status()).get(kek) == 1
        rotated = await manager.rotate_key(new.key.key_id)
        assert await manager.reveal_key(rotated.key.key_id) == rotated.token

"""The key-description and scope-catalogue contract, run by every store suite.

Mixed into :class:`~scout_auth.testing.StoreContract`, so it runs unchanged
against memory, SQLite, PostgreSQL, MariaDB, Redis and Redis Cluster with the
same ``store`` fixture. Tests use unique org and key ids (a shared database
is fine).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .. import (
    AsyncKeyManager,
    KeyEvent,
    KeyManager,
    KeyRecord,
    ScopeInfo,
    generate_key_id,
)
from ..stores import KeyUpdate

__all__ = ["CatalogueContract"]

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
# Line breaks, a tab, quotes, non-ASCII, a character outside the BMP.
_TEXT = 'Syncs invoices nightly.\n\tOwner: "billing" — ünï ✓ \U0001f511'


def _org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


def _record(org_id: str, **over: object) -> KeyRecord:
    fields: dict[str, object] = {
        "key_id": generate_key_id(),
        "org_id": org_id,
        "name": "billing-sync prod",
        "public_key": b"\x02" * 32,
        "enabled": True,
        "created_at": T0,
    }
    fields.update(over)
    return KeyRecord(**fields)  # type: ignore[arg-type]


class CatalogueContract:
    """Key descriptions and creators, multi-field updates, the scope catalogue."""

    # -- key fields -------------------------------------------------------
    def test_description_and_created_by_round_trip(self, store: Any) -> None:
        r = _record(_org(), description=_TEXT, created_by="ada@example.com")
        store.add_key(r)
        assert store.get_key(r.key_id) == r
        assert store.list_keys(r.org_id) == [r]

    def test_defaults_are_no_description_and_no_creator(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        got = store.get_key(r.key_id)
        assert (got.description, got.created_by) == ("", None)

    def test_an_empty_creator_is_not_none(self, store: Any) -> None:
        r = _record(_org(), created_by="")
        store.add_key(r)
        assert store.get_key(r.key_id).created_by == ""

    def test_update_description_and_expiry_with_other_fields_at_once(self, store: Any) -> None:
        r = _record(_org(), scopes=frozenset({"a:b"}), created_by="ada")
        store.add_key(r)
        until = T0 + timedelta(days=30)
        new = store.update_key(
            r.key_id,
            KeyUpdate(
                name="renamed",
                description=_TEXT,
                expires_at=until,
                enabled=False,
                scopes=frozenset({"c:d"}),
            ),
        )
        want = r.evolve(
            name="renamed",
            description=_TEXT,
            expires_at=until,
            enabled=False,
            scopes=frozenset({"c:d"}),
        )
        assert new == want
        assert store.get_key(r.key_id) == want

    def test_update_expiry_set_move_and_clear(self, store: Any) -> None:
        r = _record(_org(), description="kept")
        store.add_key(r)
        until = T0 + timedelta(hours=5)
        assert store.update_key(r.key_id, KeyUpdate(expires_at=until)) == r.evolve(expires_at=until)
        later = until + timedelta(microseconds=1)
        assert store.update_key(r.key_id, KeyUpdate(expires_at=later)).expires_at == later
        cleared = store.update_key(r.key_id, KeyUpdate(expires_at=None))
        assert cleared == r
        assert store.get_key(r.key_id) == r

    def test_update_description_clear_and_keep(self, store: Any) -> None:
        r = _record(_org(), description="old", expires_at=T0 + timedelta(days=1))
        store.add_key(r)
        assert store.update_key(r.key_id, KeyUpdate(name="n")).description == "old"
        assert store.update_key(r.key_id, KeyUpdate(description="")).description == ""
        assert store.get_key(r.key_id) == r.evolve(name="n", description="")

    def test_rotation_keeps_the_old_description(self, store: Any) -> None:
        o = _org()
        old = _record(o, description="what it is", created_by="ada")
        store.add_key(old)
        new = _record(o, description="what it is", created_by="bob")
        until = T0 + timedelta(hours=1)
        updated = store.rotate_key(old.key_id, new, until)
        assert updated == old.evolve(expires_at=until, replaced_by=new.key_id)
        assert store.get_key(new.key_id) == new

    # -- the catalogue ----------------------------------------------------
    def test_catalogue_put_replace_list_delete(self, store: Any) -> None:
        o = _org()
        assert store.list_scope_infos(o) == []
        store.put_scope_info(ScopeInfo(o, "drive:write", "Write files"))
        store.put_scope_info(ScopeInfo(o, "billing:read", _TEXT))
        store.put_scope_info(ScopeInfo(o, "drive:read", "Read files"))
        assert [i.name for i in store.list_scope_infos(o)] == [
            "billing:read",
            "drive:read",
            "drive:write",
        ]
        assert store.list_scope_infos(o)[0] == ScopeInfo(o, "billing:read", _TEXT)
        store.put_scope_info(ScopeInfo(o, "drive:read", "Read any file"))
        assert ScopeInfo(o, "drive:read", "Read any file") in store.list_scope_infos(o)
        assert len(store.list_scope_infos(o)) == 3
        assert store.delete_scope_info(o, "drive:read") is True
        assert store.delete_scope_info(o, "drive:read") is False
        assert store.delete_scope_info(o, "never:there") is False
        assert [i.name for i in store.list_scope_infos(o)] == ["billing:read", "drive:write"]

    def test_catalogue_orders_names_by_code_point(self, store: Any) -> None:
        o = _org()
        for name in ("b", "B", "a:z", "a", "A:b", "~x", "!x"):
            store.put_scope_info(ScopeInfo(o, name, ""))
        assert [i.name for i in store.list_scope_infos(o)] == sorted(
            ["b", "B", "a:z", "a", "A:b", "~x", "!x"]
        )

    def test_catalogue_is_per_org_and_exact(self, store: Any) -> None:
        o, other = _org(), _org()
        store.put_scope_info(ScopeInfo(o, "drive:read", "mine"))
        store.put_scope_info(ScopeInfo(other, "drive:read", "theirs"))
        store.put_scope_info(ScopeInfo(o.upper(), "drive:read", "case"))
        assert store.list_scope_infos(o) == [ScopeInfo(o, "drive:read", "mine")]
        assert store.delete_scope_info(o, "DRIVE:READ") is False
        assert store.delete_scope_info(o, "drive:read") is True
        assert store.list_scope_infos(other) == [ScopeInfo(other, "drive:read", "theirs")]
        assert store.list_scope_infos(o.upper()) == [ScopeInfo(o.upper(), "drive:read", "case")]

    def test_catalogue_changes_publish_no_event(self, store: Any) -> None:
        o = _org()
        seen: list[KeyEvent] = []
        unsubscribe = store.subscribe(lambda e: seen.append(e) if e.org_id == o else None)
        try:
            store.put_scope_info(ScopeInfo(o, "drive:read", "Read files"))
            store.delete_scope_info(o, "drive:read")
        finally:
            unsubscribe()
        assert seen == []

    @pytest.mark.anyio
    async def test_async_twins_behave_like_sync(self, store: Any) -> None:
        o = _org()
        r = _record(o, description="d", created_by="ada")
        await store.aadd_key(r)
        assert await store.aget_key(r.key_id) == r
        until = T0 + timedelta(days=2)
        new = await store.aupdate_key(r.key_id, KeyUpdate(description="e", expires_at=until))
        assert new == r.evolve(description="e", expires_at=until)
        assert (await store.aupdate_key(r.key_id, KeyUpdate(expires_at=None))).expires_at is None
        await store.aput_scope_info(ScopeInfo(o, "z", "last"))
        await store.aput_scope_info(ScopeInfo(o, "a", "first"))
        assert await store.alist_scope_infos(o) == [
            ScopeInfo(o, "a", "first"),
            ScopeInfo(o, "z", "last"),
        ]
        assert store.list_scope_infos(o) == await store.alist_scope_infos(o)
        assert await store.adelete_scope_info(o, "a") is True
        assert await store.adelete_scope_info(o, "a") is False
        assert store.list_scope_infos(o) == [ScopeInfo(o, "z", "last")]

    # -- through the key managers -------------------------------------------
    def test_manager_update_creator_and_rotation(self, store: Any) -> None:
        manager = KeyManager(store, legacy_bearer=False)
        o = _org()
        new = manager.create_key(o, "billing-sync prod", description=_TEXT, actor="ada")
        assert store.get_key(new.key.key_id) == new.key
        assert (new.key.description, new.key.created_by) == (_TEXT, "ada")
        until = datetime.now(UTC) + timedelta(days=9)
        updated = manager.update_key(
            new.key.key_id, description="new text", expires_at=until, roles=["ops"], actor="bob"
        )
        assert store.get_key(new.key.key_id) == updated
        assert (updated.description, updated.expires_at, updated.roles) == (
            "new text",
            until,
            frozenset({"ops"}),
        )
        assert updated.created_by == "ada"
        rotated = manager.rotate_key(new.key.key_id, actor="carol")
        assert (rotated.key.description, rotated.key.created_by) == ("new text", "carol")
        assert store.get_key(rotated.key.key_id) == rotated.key
        manager.publish_scope(o, "drive:read", "Read files", actor="ada")
        assert manager.list_scope_catalogue(o) == [ScopeInfo(o, "drive:read", "Read files")]
        manager.unpublish_scope(o, "drive:read", actor="ada")
        assert manager.list_scope_catalogue(o) == []

    @pytest.mark.anyio
    async def test_async_manager_update_creator_and_catalogue(self, store: Any) -> None:
        manager = AsyncKeyManager(store, legacy_bearer=False)
        o = _org()
        new = await manager.create_key(o, "billing-sync prod", description="d", actor="ada")
        assert new.key.created_by == "ada"
        updated = await manager.update_key(new.key.key_id, description="e", enabled=False)
        assert await store.aget_key(new.key.key_id) == updated
        assert (updated.description, updated.enabled) == ("e", False)
        await manager.publish_scope(o, "drive:read", "Read files")
        assert await manager.list_scope_catalogue(o) == [ScopeInfo(o, "drive:read", "Read files")]
        await manager.unpublish_scope(o, "drive:read")
        assert await manager.list_scope_catalogue(o) == []

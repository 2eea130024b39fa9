"""The roles, scopes, usage and legacy-switch contract, run by every store suite.

Mixed into :class:`~scout_auth.testing.StoreContract`, so it runs unchanged
against memory, SQLite, PostgreSQL, MariaDB and Redis with the same ``store``
fixture. Tests use unique org and key ids (a shared database is fine).
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .. import (
    AsyncKeyManager,
    KeyEvent,
    KeyManager,
    KeyRecord,
    LegacyRecord,
    LegacyStatus,
    RoleRecord,
    generate_key_id,
)
from ..stores import KEEP, KeyUpdate

__all__ = ["RolesUsageContract"]

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


def _record(org_id: str, **over: object) -> KeyRecord:
    fields: dict[str, object] = {
        "key_id": generate_key_id(),
        "org_id": org_id,
        "name": "billing-sync prod",
        "public_key": b"\x01" * 32,
        "enabled": True,
        "created_at": T0,
    }
    fields.update(over)
    return KeyRecord(**fields)  # type: ignore[arg-type]


def _events(store: Any, org_id: str) -> list[KeyEvent]:
    """Events about ``org_id`` (a shared server may carry other tests' events too)."""
    seen: list[KeyEvent] = []
    store.subscribe(lambda e: seen.append(e) if e.org_id == org_id else None)
    return seen


def _org_with_usage(store: Any) -> tuple[str, KeyRecord]:
    """An org with one key used twice and a legacy secret used on three UTC days."""
    o, day = _org(), timedelta(days=1)
    r = _record(o)
    store.add_key(r)
    store.record_usage(r.key_id, 2, T0)
    store.put_legacy(LegacyRecord(o, "$argon2id$hash", T0))
    store.record_legacy_usage(o, 5, T0 - 40 * day)  # outside the default 30 days
    store.record_legacy_usage(o, 3, T0 - day)
    store.record_legacy_usage(o, 4, T0)
    return o, r


class RolesUsageContract:
    """Scopes, roles, IP allowlists, usage counters and the legacy switch."""

    # -- key fields -------------------------------------------------------
    def test_roles_and_allowed_ips_round_trip(self, store: Any) -> None:
        r = _record(
            _org(),
            scopes=frozenset({"drive:read"}),
            roles=frozenset({"reader", "billing-admin"}),
            allowed_ips=("10.0.0.0/8", "2001:db8::/32"),
        )
        store.add_key(r)
        got = store.get_key(r.key_id)
        assert got == r
        assert got.use_count == 0
        assert got.last_used_at is None

    def test_defaults_are_no_roles_anywhere(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        got = store.get_key(r.key_id)
        assert (got.roles, got.allowed_ips, got.scopes) == (frozenset(), None, None)

    def test_update_scopes_roles_ips_and_keep(self, store: Any) -> None:
        r = _record(_org(), scopes=frozenset({"a:b"}), allowed_ips=("10.0.0.1/32",))
        store.add_key(r)
        new = store.update_key(r.key_id, KeyUpdate(roles=frozenset({"ops"})))
        assert (new.scopes, new.roles, new.allowed_ips) == (
            frozenset({"a:b"}),
            frozenset({"ops"}),
            ("10.0.0.1/32",),
        )
        new = store.update_key(
            r.key_id, KeyUpdate(scopes=None, allowed_ips=None, roles=frozenset())
        )
        assert (new.scopes, new.roles, new.allowed_ips) == (None, frozenset(), None)
        new = store.update_key(r.key_id, KeyUpdate(scopes=frozenset(), allowed_ips=("::1/128",)))
        assert new.scopes == frozenset()
        assert new.allowed_ips == ("::1/128",)
        assert store.get_key(r.key_id) == new
        assert KeyUpdate().scopes is KEEP

    # -- roles ------------------------------------------------------------
    def test_roles_put_get_list_delete(self, store: Any) -> None:
        o = _org()
        assert store.list_roles(o) == []
        assert store.get_role(o, "reader") is None
        store.put_role(RoleRecord(o, "writer", frozenset({"drive:write"})))
        store.put_role(RoleRecord(o, "reader", frozenset({"drive:read", "mail:*"})))
        store.put_role(RoleRecord(_org(), "reader", frozenset({"other:*"})))
        assert store.get_role(o, "reader") == RoleRecord(
            o, "reader", frozenset({"drive:read", "mail:*"})
        )
        assert [r.name for r in store.list_roles(o)] == ["reader", "writer"]
        store.put_role(RoleRecord(o, "reader", frozenset()))  # replace
        assert store.get_role(o, "reader").scopes == frozenset()
        assert store.delete_role(o, "reader") is True
        assert store.delete_role(o, "reader") is False
        assert [r.name for r in store.list_roles(o)] == ["writer"]

    def test_role_names_are_exact(self, store: Any) -> None:
        o = _org()
        store.put_role(RoleRecord(o, "Reader", frozenset({"x:y"})))
        assert store.get_role(o, "reader") is None
        assert store.get_role(o, "Reader ") is None

    def test_role_changes_publish_org_events(self, store: Any) -> None:
        o = _org()
        seen = _events(store, o)
        store.put_role(RoleRecord(o, "reader", frozenset({"x:y"})))
        store.delete_role(o, "reader")
        store.delete_role(o, "reader")  # nothing deleted: no event
        assert [(e.action, e.org_id, e.key_id) for e in seen] == [
            ("role_updated", o, None),
            ("role_deleted", o, None),
        ]

    # -- usage ------------------------------------------------------------
    def test_record_usage_adds_and_keeps_the_latest(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        seen = _events(store, r.org_id)
        store.record_usage(r.key_id, 3, T0 + timedelta(minutes=5))
        store.record_usage(r.key_id, 2, T0 + timedelta(minutes=1))  # an older flush arriving late
        got = store.get_key(r.key_id)
        assert got.use_count == 5
        assert got.last_used_at == T0 + timedelta(minutes=5)
        assert store.list_keys(r.org_id)[0].use_count == 5
        assert seen == []  # usage is not a credential change: caches stay warm
        store.record_usage(generate_key_id(), 1, T0)  # unknown key: ignored

    def test_record_usage_keeps_the_address_of_the_latest_use(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        assert store.get_key(r.key_id).last_used_address is None  # no use yet
        store.record_usage(r.key_id, 1, T0 + timedelta(minutes=5), "192.0.2.7")
        store.record_usage(r.key_id, 1, T0 + timedelta(minutes=1), "198.51.100.1")  # late, older
        got = store.get_key(r.key_id)
        assert (got.last_used_at, got.last_used_address) == (T0 + timedelta(minutes=5), "192.0.2.7")
        assert store.list_keys(r.org_id)[0].last_used_address == "192.0.2.7"
        store.record_usage(r.key_id, 1, T0 + timedelta(minutes=5), "198.51.100.2")  # same time
        assert store.get_key(r.key_id).last_used_address == "198.51.100.2"
        store.record_usage(r.key_id, 1, T0 + timedelta(minutes=6))  # latest use: no address
        got = store.get_key(r.key_id)
        assert (got.use_count, got.last_used_address) == (4, None)

    @pytest.mark.parametrize(
        ("address", "stored"),
        [
            pytest.param("203.0.113.9", "203.0.113.9", id="ipv4"),
            pytest.param("2001:DB8:0:0::1", "2001:db8::1", id="ipv6-normalised"),
            pytest.param("::ffff:192.0.2.7", "192.0.2.7", id="ipv4-mapped-as-ipv4"),
            pytest.param("fe80::1%eth0", "fe80::1", id="ipv6-zone-dropped"),
            pytest.param("testclient", None, id="not-an-address"),
            pytest.param("", None, id="empty"),
            pytest.param("1" * 10_000, None, id="over-long"),
            pytest.param("192.0.2.7\x00evil", None, id="control-characters"),
            pytest.param(None, None, id="unknown"),
        ],
    )
    def test_record_usage_stores_addresses_normalised_or_not_at_all(
        self, store: Any, address: str | None, stored: str | None
    ) -> None:
        r = _record(_org())
        store.add_key(r)
        store.record_usage(r.key_id, 1, T0, address)
        got = store.get_key(r.key_id)
        assert (got.use_count, got.last_used_address) == (1, stored)

    def test_last_used_address_survives_updates_and_rotation(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        store.record_usage(r.key_id, 1, T0, "2001:db8::7")
        assert store.update_key(r.key_id, KeyUpdate(name="renamed")).last_used_address == (
            "2001:db8::7"
        )
        new = _record(r.org_id, created_at=T0 + timedelta(minutes=1))
        old = store.rotate_key(r.key_id, new, T0 + timedelta(days=1))
        assert old.last_used_address == "2001:db8::7"
        assert store.get_key(new.key_id).last_used_address is None

    def test_record_usage_survives_other_updates(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        store.record_usage(r.key_id, 4, T0)
        assert store.update_key(r.key_id, KeyUpdate(name="renamed")).use_count == 4

    def test_concurrent_usage_flushes_merge_exactly(self, store: Any) -> None:
        r = _record(_org())
        store.add_key(r)
        latest = T0 + timedelta(seconds=79)

        def flush(i: int) -> None:
            for j in range(10):
                store.record_usage(r.key_id, 1, T0 + timedelta(seconds=i * 10 + j))

        threads = [threading.Thread(target=flush, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = store.get_key(r.key_id)
        assert (got.use_count, got.last_used_at) == (80, latest)

    def test_any_order_of_flushes_sums_uses_and_keeps_the_latest(self, store: Any) -> None:
        # @given on an inner function: this mixin runs in several test classes.
        @settings(max_examples=15, deadline=None)
        @given(
            flushes=st.lists(
                st.tuples(st.integers(1, 1000), st.integers(0, 10**6)), min_size=1, max_size=6
            )
        )
        def check(flushes: list[tuple[int, int]]) -> None:
            r = _record(_org())
            store.add_key(r)
            for i, (uses, offset) in enumerate(flushes):
                store.record_usage(r.key_id, uses, T0 + timedelta(seconds=offset), f"10.0.0.{i}")
                store.record_legacy_usage(r.org_id, uses, T0 + timedelta(seconds=offset))
            got = store.get_key(r.key_id)
            newest = max(o for _, o in flushes)
            latest = T0 + timedelta(seconds=newest)
            # The address of the latest use (of equal times, the last written).
            last = max(i for i, (_, o) in enumerate(flushes) if o == newest)
            assert got.use_count == sum(u for u, _ in flushes)
            assert got.last_used_at == latest
            assert got.last_used_address == f"10.0.0.{last}"
            assert store.legacy_usage(r.org_id, T0) == (latest, sum(u for u, _ in flushes))

        check()

    def test_legacy_usage_daily_buckets(self, store: Any) -> None:
        o = _org()
        assert store.legacy_usage(o, T0) == (None, 0)
        day = timedelta(days=1)
        store.record_legacy_usage(o, 5, T0 - 10 * day)
        store.record_legacy_usage(o, 2, T0 - day)
        store.record_legacy_usage(o, 1, T0 - day + timedelta(hours=1))
        store.record_legacy_usage(o, 4, T0)
        store.record_legacy_usage(_org(), 100, T0)
        last, count = store.legacy_usage(o, T0 - day)
        assert (last, count) == (T0, 7)
        assert store.legacy_usage(o, T0 - 30 * day) == (T0, 12)
        assert store.legacy_usage(o, T0 + day) == (T0, 0)
        store.record_legacy_usage(o, 1, T0 - 20 * day)  # late, older: last stays
        assert store.legacy_usage(o, T0 - 30 * day) == (T0, 13)

    # -- usage through the managers' list_keys -----------------------------
    def test_list_keys_shows_key_and_legacy_usage(self, store: Any) -> None:
        o, r = _org_with_usage(store)
        manager = KeyManager(store, clock=T0.timestamp)
        listed = manager.list_keys(o)
        assert listed == [r.evolve(use_count=2, last_used_at=T0)]
        assert listed.legacy == LegacyStatus(o, True, True, last_used_at=T0, requests=7, days=30)
        assert manager.list_keys(o, legacy_days=60).legacy.requests == 12

    def test_list_keys_without_a_legacy_secret(self, store: Any) -> None:
        o, r = _org(), _record(_org())
        store.add_key(r)
        manager = KeyManager(store, clock=T0.timestamp)
        assert manager.list_keys(o) == []
        assert manager.list_keys(o).legacy == LegacyStatus(o, False, True, None, 0, 30)
        assert manager.list_keys(r.org_id).legacy.exists is False
        used, _ = _org_with_usage(store)
        store.delete_legacy(used)
        gone = manager.list_keys(used).legacy
        assert (gone.exists, gone.last_used_at, gone.requests) == (False, T0, 7)  # usage is kept

    @pytest.mark.anyio
    async def test_async_list_keys_shows_key_and_legacy_usage(self, store: Any) -> None:
        o, r = _org_with_usage(store)
        manager = AsyncKeyManager(store, clock=T0.timestamp)
        listed = await manager.list_keys(o, legacy_days=2)
        assert listed == [r.evolve(use_count=2, last_used_at=T0)]
        assert listed.legacy == LegacyStatus(o, True, True, last_used_at=T0, requests=7, days=2)
        assert (await manager.list_keys(_org())).legacy.exists is False

    # -- legacy switch ----------------------------------------------------
    def test_legacy_switch(self, store: Any) -> None:
        o = _org()
        assert store.set_legacy_enabled(o, False) is None
        store.put_legacy(LegacyRecord(o, "$argon2id$hash", T0))
        assert store.get_legacy(o).enabled is True
        seen = _events(store, o)
        off = store.set_legacy_enabled(o, False)
        assert off == LegacyRecord(o, "$argon2id$hash", T0, enabled=False)
        assert store.get_legacy(o).enabled is False
        assert store.set_legacy_enabled(o, False).enabled is False  # idempotent
        assert (seen[0].action, seen[0].key_id) == ("legacy_updated", None)
        store.put_legacy(LegacyRecord(o, "$argon2id$other", T0 + timedelta(days=1)))
        assert store.get_legacy(o).enabled is False  # a new hash keeps the switch
        assert store.set_legacy_enabled(o, True).enabled is True

    # -- async twins ------------------------------------------------------
    @pytest.mark.anyio
    async def test_async_twins(self, store: Any) -> None:
        o = _org()
        r = _record(o, roles=frozenset({"reader"}))
        await store.aadd_key(r)
        await store.aput_role(RoleRecord(o, "reader", frozenset({"a:b"})))
        assert await store.aget_role(o, "reader") == RoleRecord(o, "reader", frozenset({"a:b"}))
        assert [x.name for x in await store.alist_roles(o)] == ["reader"]
        await store.arecord_usage(r.key_id, 2, T0)
        assert (await store.aget_key(r.key_id)).use_count == 2
        await store.arecord_legacy_usage(o, 3, T0)
        assert await store.alegacy_usage(o, T0) == (T0, 3)
        assert await store.aset_legacy_enabled(o, False) is None
        assert await store.adelete_role(o, "reader") is True

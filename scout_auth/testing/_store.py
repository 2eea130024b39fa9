"""The store contract: one suite, run unchanged against every adapter.

A test module for an adapter subclasses :class:`StoreContract` and provides a
``store`` fixture (a fresh or shared store; tests use unique org and key ids,
so a shared database is fine) and a ``legacy_dump`` fixture (see
:class:`~scout_auth.testing.LegacyDigestContract`). Async tests run through
anyio's pytest plugin. docs/writing-a-store.md walks through it.

The random-sequence comparison (:class:`ReferenceMachine`) runs the store
beside :class:`~scout_auth.InMemoryKeyStore`, the reference semantics, and
checks after every step that both hold the same keys and legacy records.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from .. import InMemoryKeyStore, KeyEvent, KeyRecord, KeyUpdate, LegacyRecord, generate_key_id
from ..stores import KEEP
from ._audit import AuditContract
from ._catalogue import CatalogueContract
from ._legacy_digest import LegacyDigestContract
from ._roles_usage import RolesUsageContract
from ._vault import VaultContract

__all__ = [
    "T0",
    "KeysContract",
    "ReferenceContract",
    "ReferenceMachine",
    "StoreContract",
    "org",
    "record",
]

#: The instant the contract's records are created at (microseconds included).
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def org() -> str:
    """A fresh org id: unique per call, so tests sharing a database never meet."""
    return f"org_{uuid.uuid4().hex[:12]}"


def record(org_id: str, **over: object) -> KeyRecord:
    """A key record of ``org_id`` with test defaults; ``over`` replaces any field."""
    fields: dict[str, object] = {
        "key_id": generate_key_id(),
        "org_id": org_id,
        "name": "billing-sync prod",
        "public_key": secrets.token_bytes(32),
        "enabled": True,
        "created_at": T0,
        "expires_at": None,
        "scopes": None,
    }
    fields.update(over)
    return KeyRecord(**fields)  # type: ignore[arg-type]


class KeysContract:
    """Keys, legacy records, events and the async twins: what every KeyStore does.

    Subclasses provide ``store``.
    """

    # -- keys -------------------------------------------------------------
    def test_add_then_get_round_trips_every_field(self, store: Any) -> None:
        o = org()
        r = record(
            o,
            name="ünïcode ✓ name",
            expires_at=T0 + timedelta(days=3),
            scopes=frozenset({"drive:read", "drive:*"}),
        )
        store.add_key(r)
        got = store.get_key(r.key_id)
        assert got == r
        assert got.created_at.tzinfo is not None
        assert got.created_at.utcoffset() == timedelta(0)

    def test_scopes_none_and_empty_are_different(self, store: Any) -> None:
        o = org()
        unrestricted, nothing = record(o, scopes=None), record(o, scopes=frozenset())
        store.add_key(unrestricted)
        store.add_key(nothing)
        assert store.get_key(unrestricted.key_id).scopes is None
        assert store.get_key(nothing.key_id).scopes == frozenset()

    def test_get_unknown_is_none(self, store: Any) -> None:
        assert store.get_key(generate_key_id()) is None

    def test_duplicate_key_id_is_refused_and_first_kept(self, store: Any) -> None:
        o = org()
        r = record(o)
        store.add_key(r)
        with pytest.raises(ValueError, match="duplicate"):
            store.add_key(record(o, key_id=r.key_id, name="other"))
        assert store.get_key(r.key_id) == r

    def test_list_keys_is_per_org_and_oldest_first(self, store: Any) -> None:
        o, other = org(), org()
        late = record(o, created_at=T0 + timedelta(seconds=5))
        early = record(o, created_at=T0)
        store.add_key(late)
        store.add_key(early)
        store.add_key(record(other))
        assert [k.key_id for k in store.list_keys(o)] == [early.key_id, late.key_id]
        assert store.list_keys(org()) == []

    def test_update_name_and_enabled(self, store: Any) -> None:
        r = record(org())
        store.add_key(r)
        renamed = store.update_key(r.key_id, KeyUpdate(name="renamed"))
        assert renamed == r.evolve(name="renamed")
        disabled = store.update_key(r.key_id, KeyUpdate(enabled=False))
        assert disabled == r.evolve(name="renamed", enabled=False)
        assert store.get_key(r.key_id) == disabled
        assert store.update_key(r.key_id, KeyUpdate(enabled=True)).enabled is True

    def test_update_unknown_is_none_and_writes_nothing(self, store: Any) -> None:
        kid = generate_key_id()
        assert store.update_key(kid, KeyUpdate(name="x")) is None
        assert store.get_key(kid) is None

    def test_rotate_sets_grace_expiry_and_successor(self, store: Any) -> None:
        o = org()
        old = record(o)
        store.add_key(old)
        new = record(o, name=old.name)
        until = T0 + timedelta(hours=1)
        updated = store.rotate_key(old.key_id, new, until)
        assert updated == old.evolve(expires_at=until, replaced_by=new.key_id)
        assert store.get_key(old.key_id) == updated
        assert store.get_key(new.key_id) == new

    def test_rotate_never_extends_an_earlier_expiry(self, store: Any) -> None:
        o = org()
        old = record(o, expires_at=T0 + timedelta(minutes=5))
        store.add_key(old)
        updated = store.rotate_key(old.key_id, record(o), T0 + timedelta(days=1))
        assert updated.expires_at == T0 + timedelta(minutes=5)

    def test_rotate_unknown_writes_nothing(self, store: Any) -> None:
        new = record(org())
        assert store.rotate_key(generate_key_id(), new, T0) is None
        assert store.get_key(new.key_id) is None

    def test_delete_is_permanent(self, store: Any) -> None:
        r = record(org())
        store.add_key(r)
        assert store.delete_key(r.key_id) == r
        assert store.get_key(r.key_id) is None
        assert store.delete_key(r.key_id) is None
        assert store.list_keys(r.org_id) == []

    # -- legacy -----------------------------------------------------------
    def test_legacy_put_get_replace_delete(self, store: Any) -> None:
        o = org()
        assert store.get_legacy(o) is None
        first = LegacyRecord(o, "$argon2id$v=19$m=65536,t=3,p=4$first", T0)
        store.put_legacy(first)
        assert store.get_legacy(o) == first
        second = LegacyRecord(o, "$argon2id$v=19$m=65536,t=3,p=4$second", T0 + timedelta(1))
        store.put_legacy(second)
        assert store.get_legacy(o) == second
        assert store.delete_legacy(o) is True
        assert store.get_legacy(o) is None
        assert store.delete_legacy(o) is False

    # -- events -----------------------------------------------------------
    def test_every_write_publishes_an_event(self, store: Any) -> None:
        events: list[KeyEvent] = []
        unsubscribe = store.subscribe(events.append)
        try:
            o = org()
            r = record(o)
            store.add_key(r)
            store.update_key(r.key_id, KeyUpdate(enabled=False))
            new = record(o)
            store.rotate_key(r.key_id, new, T0)
            store.delete_key(r.key_id)
            store.put_legacy(LegacyRecord(o, "$argon2id$x", T0))
            store.delete_legacy(o)
        finally:
            unsubscribe()
        mine = [(e.action, e.key_id) for e in events if e.org_id == o]
        for expected in [
            ("created", r.key_id),
            ("updated", r.key_id),
            ("rotated", r.key_id),
            ("created", new.key_id),
            ("deleted", r.key_id),
            ("legacy_imported", None),
            ("legacy_deleted", None),
        ]:
            assert expected in mine
        store.add_key(record(o))
        assert len([e for e in events if e.org_id == o]) == len(mine)  # unsubscribed

    # -- async twins ------------------------------------------------------
    @pytest.mark.anyio
    async def test_async_twins_behave_like_sync(self, store: Any) -> None:
        o = org()
        r = record(o, scopes=frozenset({"a"}))
        await store.aadd_key(r)
        assert await store.aget_key(r.key_id) == r
        assert [k.key_id for k in await store.alist_keys(o)] == [r.key_id]
        assert (await store.aupdate_key(r.key_id, KeyUpdate(name="n"))).name == "n"
        new = record(o)
        old = await store.arotate_key(r.key_id, new, T0)
        assert old.replaced_by == new.key_id
        assert (await store.adelete_key(r.key_id)).key_id == r.key_id
        assert await store.aget_key(r.key_id) is None
        assert await store.aupdate_key(r.key_id, KeyUpdate(name="n")) is None
        assert await store.arotate_key(r.key_id, record(o), T0) is None
        assert await store.adelete_key(r.key_id) is None
        leg = LegacyRecord(o, "$argon2id$h", T0)
        await store.aput_legacy(leg)
        assert await store.aget_legacy(o) == leg
        assert await store.adelete_legacy(o) is True
        assert await store.adelete_legacy(o) is False
        # what async wrote, sync reads
        assert store.get_key(new.key_id) == new


class ReferenceMachine(RuleBasedStateMachine):
    """Random operation sequences: the store under test must match the reference.

    A hypothesis state machine: each rule applies one write (add, update,
    rotate, delete, put or delete a legacy record) to :attr:`store` and to an
    :class:`~scout_auth.InMemoryKeyStore`, compares their answers, and the
    invariant compares what both hold. Subclass it with ``store`` set (as
    :class:`ReferenceContract` does) and run it with
    ``hypothesis.stateful.run_state_machine_as_test``.
    """

    store: Any = None  # set on a subclass, see ReferenceContract

    def __init__(self) -> None:
        super().__init__()
        self.ref = InMemoryKeyStore()
        run = uuid.uuid4().hex[:8]
        self.orgs = [f"org_{run}_{i}" for i in range(3)]
        self.key_ids: list[str] = []

    keys = Bundle("keys")

    @rule(target=keys, org_index=st.integers(0, 2), scoped=st.booleans(), days=st.integers(0, 3))
    def add(self, org_index: int, scoped: bool, days: int) -> str:
        r = record(
            self.orgs[org_index],
            scopes=frozenset({"drive:read"}) if scoped else None,
            expires_at=T0 + timedelta(days=days) if days else None,
            created_at=T0 + timedelta(seconds=len(self.key_ids)),
        )
        self.store.add_key(r)
        self.ref.add_key(r)
        self.key_ids.append(r.key_id)
        return r.key_id

    @rule(
        key_id=keys,
        name=st.sampled_from([None, "renamed", "ünï"]),
        enabled=st.sampled_from([None, True, False]),
        description=st.sampled_from([None, "", "syncs\ninvoices"]),
        expires_at=st.sampled_from([KEEP, None, T0 + timedelta(days=2)]),
    )
    def update(
        self,
        key_id: str,
        name: str | None,
        enabled: bool | None,
        description: str | None,
        expires_at: Any,
    ) -> None:
        u = KeyUpdate(name=name, enabled=enabled, description=description, expires_at=expires_at)
        assert self.store.update_key(key_id, u) == self.ref.update_key(key_id, u)

    @rule(target=keys, key_id=keys, hours=st.integers(0, 100))
    def rotate(self, key_id: str, hours: int) -> str:
        old = self.ref.get_key(key_id)
        new = record(
            old.org_id if old else self.orgs[0],
            created_at=T0 + timedelta(seconds=len(self.key_ids)),
        )
        until = T0 + timedelta(hours=hours)
        assert self.store.rotate_key(key_id, new, until) == self.ref.rotate_key(key_id, new, until)
        self.key_ids.append(new.key_id)
        return new.key_id

    @rule(key_id=keys)
    def delete(self, key_id: str) -> None:
        assert self.store.delete_key(key_id) == self.ref.delete_key(key_id)

    @rule(org_index=st.integers(0, 2), tag=st.integers(0, 9))
    def put_legacy(self, org_index: int, tag: int) -> None:
        leg = LegacyRecord(self.orgs[org_index], f"$argon2id$hash{tag}", T0)
        self.store.put_legacy(leg)
        self.ref.put_legacy(leg)

    @rule(org_index=st.integers(0, 2))
    def delete_legacy(self, org_index: int) -> None:
        o = self.orgs[org_index]
        assert self.store.delete_legacy(o) == self.ref.delete_legacy(o)

    @invariant()
    def same_state(self) -> None:
        for o in self.orgs:
            assert self.store.list_keys(o) == self.ref.list_keys(o)
            assert self.store.get_legacy(o) == self.ref.get_legacy(o)
        for kid in self.key_ids[-3:]:
            assert self.store.get_key(kid) == self.ref.get_key(kid)


class ReferenceContract:
    """Mixed into StoreContract: the random-sequence comparison (:class:`ReferenceMachine`)."""

    #: Random sequences per run (of up to 15 steps each); raise it for a soak.
    max_examples = 30

    def test_behaves_like_the_in_memory_reference(self, store: Any) -> None:
        machine = type("Machine", (ReferenceMachine,), {"store": store})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.max_examples,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )


class StoreContract(
    KeysContract,
    ReferenceContract,
    AuditContract,
    RolesUsageContract,
    LegacyDigestContract,
    CatalogueContract,
    VaultContract,
):
    """The whole contract: behaviour tests, the random-sequence comparison, the audit
    sink, roles / scopes / usage / the legacy switch, the legacy look-up digests,
    key descriptions and the scope catalogue, and recoverable keys' sealed seeds.

    Subclasses provide the ``store`` and ``legacy_dump`` fixtures.
    """

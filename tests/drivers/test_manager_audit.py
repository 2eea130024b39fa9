"""Key managers and the audit trail: one event per successful change, none for a failed one.

Runs against :class:`~scout_auth.KeyManager` (through ``AsAsync``) and
:class:`~scout_auth.AsyncKeyManager` alike.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyManager
from scout_auth.audit import AuditBuffer, InMemoryAuditSink
from scout_auth.exceptions import InvalidKeyOperation, KeyNotFound
from tests._support import T0, AsAsync, Clock, cheap_hasher

pytestmark = pytest.mark.anyio


class TickingClock(Clock):
    """Every reading is one second after the previous one (events never tie)."""

    def __call__(self) -> float:
        self.now += 1
        return self.now - 1


@pytest.fixture(params=["sync", "async"])
def make(request):
    def build(store: Any, **options: Any) -> Any:
        options.setdefault("password_hasher", cheap_hasher())
        options.setdefault("clock", TickingClock())
        if request.param == "sync":
            return AsAsync(KeyManager(store, **options))
        return AsyncKeyManager(store, **options)

    return build


@pytest.fixture
def store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def sink(store):
    return store.audit_sink()


@pytest.fixture
def manager(make, store, sink):
    return make(store, audit=sink)


def trail(sink: InMemoryAuditSink, org_id: str = "org_1") -> list[Any]:
    return list(sink.query(org_id, limit=1000).events)


async def test_every_lifecycle_change_emits_exactly_one_event_with_its_actor(manager, sink):
    new = await manager.create_key("org_1", "billing-sync prod", actor="alice")
    kid = new.key.key_id
    steps = [
        ("renamed", lambda: manager.rename_key(kid, "billing-sync staging", actor="bob")),
        ("disabled", lambda: manager.disable_key(kid, actor="bob")),
        ("enabled", lambda: manager.enable_key(kid, actor="carol")),
        ("rotated", lambda: manager.rotate_key(kid, grace=timedelta(0), actor="dave")),
        ("deleted", lambda: manager.delete_key(kid, actor="erin")),
        ("legacy_imported", lambda: manager.import_legacy_key("org_1", "old-s3cret", actor="ops")),
        ("legacy_deleted", lambda: manager.delete_legacy_key("org_1", actor="ops")),
    ]
    (created,) = trail(sink)
    assert (created.action, created.actor, created.key_id, created.key_name, created.at) == (
        "created",
        "alice",
        kid,
        "billing-sync prod",
        T0,
    )
    for action, step in steps:
        before = len(sink)
        result = await step()
        assert len(sink) == before + 1, action
        newest = trail(sink)[0]
        assert newest.action == action
        assert newest.org_id == "org_1"
        if action == "rotated":
            assert newest.key_id == kid
            assert newest.replaced_by == result.key.key_id
        if action.startswith("legacy"):
            assert newest.key_id is None
    assert [e.actor for e in trail(sink)] == [
        "ops",
        "ops",
        "erin",
        "dave",
        "carol",
        "bob",
        "bob",
        "alice",
    ]
    for event in trail(sink):
        assert new.token not in repr(event)
        assert "old-s3cret" not in repr(event)
        assert event.reason is None
        assert event.path is None


async def test_reads_emit_nothing(manager, sink):
    new = await manager.create_key("org_1", "billing-sync prod")
    await manager.get_key(new.key.key_id)
    await manager.list_keys("org_1")
    await manager.import_legacy_key("org_1", "old-s3cret")
    await manager.get_legacy_key("org_1")
    assert [e.action for e in trail(sink)] == ["legacy_imported", "created"]
    assert all(e.actor is None for e in trail(sink))  # actor is optional


UNKNOWN = "a" * 20
FAILING = [
    pytest.param("rename_key", (UNKNOWN, "reporting"), KeyNotFound, id="rename-unknown"),
    pytest.param("enable_key", (UNKNOWN,), KeyNotFound, id="enable-unknown"),
    pytest.param("disable_key", (UNKNOWN,), KeyNotFound, id="disable-unknown"),
    pytest.param("delete_key", (UNKNOWN,), KeyNotFound, id="delete-unknown"),
    pytest.param("rotate_key", (UNKNOWN,), KeyNotFound, id="rotate-unknown"),
    pytest.param("delete_legacy_key", ("org_none",), KeyNotFound, id="delete-legacy-unknown"),
    pytest.param("create_key", ("org_1", ""), InvalidKeyOperation, id="create-bad-name"),
    pytest.param("rename_key", ("KEY", ""), InvalidKeyOperation, id="rename-bad-name"),
    pytest.param("import_legacy_key", ("org_1", ""), InvalidKeyOperation, id="legacy-no-secret"),
]


@pytest.mark.parametrize(("method", "args", "error"), FAILING)
async def test_a_failed_operation_emits_nothing(manager, sink, method, args, error):
    new = await manager.create_key("org_1", "billing-sync prod")
    args = tuple(new.key.key_id if a == "KEY" else a for a in args)
    before = trail(sink)
    with pytest.raises(error):
        await getattr(manager, method)(*args, actor="mallory")
    assert trail(sink) == before
    assert all(e.actor != "mallory" for e in trail(sink))


@pytest.mark.parametrize(
    "actor",
    [pytest.param(42, id="not-a-string"), pytest.param("a" * 201, id="too-long")],
)
async def test_a_bad_actor_is_refused_before_anything_is_written(manager, store, sink, actor):
    new = await manager.create_key("org_1", "billing-sync prod")
    with pytest.raises(InvalidKeyOperation, match="actor"):
        await manager.disable_key(new.key.key_id, actor=actor)
    with pytest.raises(InvalidKeyOperation, match="actor"):
        await manager.create_key("org_1", "nightly export", actor=actor)
    assert store.get_key(new.key.key_id).enabled is True
    assert len(store.list_keys("org_1")) == 1
    assert len(sink) == 1


async def test_without_audit_nothing_is_recorded(make, store):
    manager = make(store)
    await manager.create_key("org_1", "billing-sync prod", actor="alice")
    assert len(store.audit_sink()) == 0


async def test_through_a_buffer_events_arrive_after_a_flush(make, store, sink):
    buffer = AuditBuffer(sink, flush_interval=60)
    try:
        manager = make(store, audit=buffer)
        await manager.create_key("org_1", "billing-sync prod", actor="alice")
        await manager.create_key("org_1", "nightly export", actor="alice")
        assert buffer.flush(timeout=5)
    finally:
        buffer.close()
    assert [e.action for e in trail(sink)] == ["created", "created"]


async def test_a_failing_sink_is_logged_and_never_fails_the_change(make, store, caplog):
    class Down(InMemoryAuditSink):
        def write(self, events):
            raise ConnectionError("audit database down")

        async def awrite(self, events):
            raise ConnectionError("audit database down")

    manager = make(store, audit=Down())
    with caplog.at_level(logging.ERROR, logger="scout_auth.audit"):
        new = await manager.create_key("org_1", "billing-sync prod", actor="alice")
    assert new.token.startswith("scout_sk_")  # the token is not lost to an audit failure
    assert store.get_key(new.key.key_id) == new.key
    (record,) = [r for r in caplog.records if r.name == "scout_auth.audit"]
    assert '"action":"created"' in record.getMessage()  # the event survives in the log
    assert new.token not in record.getMessage()


def test_repr_names_the_audit_sink():
    store = InMemoryKeyStore()
    assert "InMemoryAuditSink" in repr(KeyManager(store, audit=store.audit_sink()))

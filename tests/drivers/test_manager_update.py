"""Key managers: multi-field updates, descriptions, creators and the scope catalogue.

``update_key`` checks every field before it reads, writes once, and records
one audit event per field that changed; a rejected call writes and records
nothing. Runs against :class:`~scout_auth.KeyManager` (through ``AsAsync``)
and :class:`~scout_auth.AsyncKeyManager` alike.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from typing import Any

import pytest

from scout_auth import (
    AsyncKeyManager,
    InMemoryKeyStore,
    KeyManager,
    ScopeInfo,
    WeakKeyNameWarning,
)
from scout_auth.audit import AuditAction, InMemoryAuditSink
from scout_auth.exceptions import InvalidKeyOperation, KeyNotFound
from scout_auth.stores import KEEP
from tests._support import T0, AsAsync, Clock, SpyStore, cheap_hasher

pytestmark = pytest.mark.anyio

LATER = T0 + timedelta(days=30)


class TickingClock(Clock):
    """Every reading is one millisecond after the previous one (events never tie)."""

    def __call__(self) -> float:
        self.now += 0.001
        return self.now - 0.001


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture
def sink() -> InMemoryAuditSink:
    return InMemoryAuditSink()


@pytest.fixture(params=["sync", "async"])
def manager(request, store, sink) -> Any:
    options: dict[str, Any] = {
        "password_hasher": cheap_hasher(),
        "clock": TickingClock(),
        "audit": sink,
    }
    if request.param == "sync":
        return AsAsync(KeyManager(store, **options))
    return AsyncKeyManager(store, **options)


def actions(sink: InMemoryAuditSink, org_id: str = "org_1") -> list[str]:
    """The org's audit actions after the keys' creation, oldest first."""
    events = reversed(sink.query(org_id, limit=1000).events)
    return [e.action for e in events if e.action != "created"]


async def _key(manager: Any, store: SpyStore, sink: InMemoryAuditSink, **options: Any) -> Any:
    new = await manager.create_key("org_1", "billing-sync prod", actor="ada", **options)
    store.calls.clear()
    return new.key


# -- update_key ------------------------------------------------------------------


async def test_update_key_writes_once_and_audits_each_changed_field(manager, store, sink):
    key = await _key(manager, store, sink, scopes=["drive:read"])
    updated = await manager.update_key(
        key.key_id,
        name="billing-sync staging",
        description="Nightly invoices.\nOwner: billing",
        scopes=["drive:read", "drive:write"],
        roles=["ops"],
        allowed_ips=["10.0.0.1"],
        expires_at=LATER,
        enabled=False,
        actor="bob",
    )
    assert store.writes == ["update_key"]
    assert updated == key.evolve(
        name="billing-sync staging",
        description="Nightly invoices.\nOwner: billing",
        scopes=frozenset({"drive:read", "drive:write"}),
        roles=frozenset({"ops"}),
        allowed_ips=("10.0.0.1/32",),
        expires_at=LATER,
        enabled=False,
    )
    assert await manager.get_key(key.key_id) == updated
    # One event per change, all at the update's instant (so in no particular order).
    assert sorted(actions(sink)) == [
        "allowed_ips_changed",
        "description_changed",
        "disabled",
        "expiry_changed",
        "renamed",
        "roles_changed",
        "scopes_changed",
    ]
    events = [e for e in sink.query("org_1").events if e.action != "created"]
    assert {(e.actor, e.key_id, e.key_name) for e in events} == {
        ("bob", key.key_id, "billing-sync staging")
    }


async def test_update_key_audits_only_what_changed(manager, store, sink):
    key = await _key(manager, store, sink, scopes=["drive:read"], description="same")
    await manager.update_key(
        key.key_id, name=key.name, description="same", scopes=["drive:read"], enabled=False
    )
    assert actions(sink) == ["disabled"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"name": "billing-sync prod"}, id="same-name"),
        pytest.param({"description": ""}, id="same-description"),
        pytest.param({"enabled": True}, id="already-enabled"),
        pytest.param({"scopes": None, "allowed_ips": None, "expires_at": None}, id="same-nones"),
        pytest.param({"roles": []}, id="no-roles-already"),
    ],
)
async def test_an_update_that_changes_nothing_writes_and_audits_nothing(
    manager, store, sink, change
):
    key = await _key(manager, store, sink)
    assert await manager.update_key(key.key_id, **change, actor="bob") == key
    assert store.writes == []
    assert actions(sink) == []


async def test_expiry_set_and_cleared(manager, store, sink):
    key = await _key(manager, store, sink)
    assert (await manager.set_expiry(key.key_id, LATER, actor="bob")).expires_at == LATER
    assert (await manager.update_key(key.key_id, expires_at=None)).expires_at is None
    assert (await manager.update_key(key.key_id, expires_at=KEEP, name="x-sync")).expires_at is None
    assert actions(sink) == ["expiry_changed", "expiry_changed", "renamed"]


BAD_UPDATES = [
    pytest.param({"name": ""}, id="empty-name"),
    pytest.param({"name": "a\nb"}, id="name-newline"),
    pytest.param({"name": 7}, id="name-not-str"),
    pytest.param({"description": "x" * 1001}, id="description-too-long"),
    pytest.param({"description": "a\x00b"}, id="description-nul"),
    pytest.param({"description": "\x1b[31mred"}, id="description-escape"),
    pytest.param({"description": "a\rb"}, id="description-cr"),
    pytest.param({"description": "a\x85b"}, id="description-c1-control"),
    pytest.param({"description": "a\x7fb"}, id="description-del"),
    pytest.param({"description": "\ud800"}, id="description-lone-surrogate"),
    pytest.param({"description": b"bytes"}, id="description-bytes"),
    pytest.param({"scopes": "drive:read"}, id="scopes-one-string"),
    pytest.param({"scopes": ["drive read"]}, id="scope-with-space"),
    pytest.param({"roles": ["bad role"]}, id="role-with-space"),
    pytest.param({"roles": "ops"}, id="roles-one-string"),
    pytest.param({"allowed_ips": ["not-an-ip"]}, id="bad-ip"),
    pytest.param({"allowed_ips": []}, id="no-ranges"),
    pytest.param({"expires_at": datetime(2030, 1, 1)}, id="naive-expiry"),
    pytest.param({"expires_at": T0 - timedelta(seconds=1)}, id="past-expiry"),
    pytest.param({"expires_at": T0}, id="expiry-now"),
    pytest.param({"expires_at": "2030-01-01T00:00:00Z"}, id="expiry-string"),
    pytest.param({"enabled": "yes"}, id="enabled-not-bool"),
    pytest.param({"enabled": 0}, id="enabled-int"),
    pytest.param({"actor": "x" * 201}, id="actor-too-long"),
    pytest.param({"name": "fine name", "description": "\x00"}, id="one-good-one-bad"),
]


@pytest.mark.parametrize("change", BAD_UPDATES)
async def test_a_bad_field_writes_and_audits_nothing(manager, store, sink, change):
    key = await _key(manager, store, sink)
    with pytest.raises(InvalidKeyOperation):
        await manager.update_key(key.key_id, **change)
    assert store.calls == []  # refused before the key is even read
    assert actions(sink) == []
    assert await manager.get_key(key.key_id) == key


async def test_update_of_an_unknown_key_is_key_not_found(manager, store, sink):
    with pytest.raises(KeyNotFound):
        await manager.update_key("k_nope", name="billing-sync prod")
    assert store.writes == []
    assert actions(sink) == []


async def test_a_rotated_keys_expiry_is_its_grace(manager, store, sink):
    key = await _key(manager, store, sink)
    await manager.rotate_key(key.key_id, grace=timedelta(hours=1))
    old = await manager.get_key(key.key_id)
    store.calls.clear()
    for expires_at in (LATER, None):
        with pytest.raises(InvalidKeyOperation, match="grace period"):
            await manager.update_key(key.key_id, expires_at=expires_at, name="other-sync")
    assert store.writes == []
    assert await manager.get_key(key.key_id) == old
    # Its own grace as the "new" expiry changes nothing; other fields still change.
    assert await manager.set_expiry(key.key_id, old.expires_at) == old
    assert (await manager.set_description(key.key_id, "retiring")).description == "retiring"


async def test_descriptions_take_line_breaks_tabs_and_1000_characters(manager, store, sink):
    key = await _key(manager, store, sink)
    text = ("Line one.\n\tIndented — ünï ✓ \U0001f511 " * 40)[:1000]
    assert (await manager.set_description(key.key_id, text, actor="bob")).description == text
    assert actions(sink) == ["description_changed"]
    with pytest.raises(InvalidKeyOperation):
        await manager.set_description(key.key_id, None)


def test_a_weak_name_in_update_key_warns_at_the_callers_line():
    manager = KeyManager(InMemoryKeyStore())
    key = manager.create_key("org_1", "billing-sync prod").key
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager.update_key(key.key_id, name="key1")
    (warning,) = caught
    assert issubclass(warning.category, WeakKeyNameWarning)
    assert warning.filename == __file__


# -- create and rotate -------------------------------------------------------------


async def test_create_key_stores_description_and_its_creator(manager, store):
    new = await manager.create_key(
        "org_1", "billing-sync prod", description="Nightly.\n\tInvoices", actor="ada"
    )
    assert (new.key.description, new.key.created_by) == ("Nightly.\n\tInvoices", "ada")
    assert store.inner.get_key(new.key.key_id) == new.key
    anonymous = await manager.create_key("org_1", "billing-sync staging")
    assert (anonymous.key.description, anonymous.key.created_by) == ("", None)


@pytest.mark.parametrize(
    "description",
    [
        pytest.param("x" * 1001, id="too-long"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\x1bb", id="escape"),
        pytest.param(None, id="none"),
        pytest.param(["list"], id="list"),
    ],
)
async def test_create_key_refuses_a_bad_description_and_writes_nothing(
    manager, store, sink, description
):
    with pytest.raises(InvalidKeyOperation):
        await manager.create_key("org_1", "billing-sync prod", description=description)
    assert store.writes == []
    assert actions(sink) == []


async def test_rotation_copies_the_description_and_names_its_actor_as_creator(manager, store):
    old = (
        await manager.create_key(
            "org_1", "billing-sync prod", description="what it is", scopes=["a:b"], actor="ada"
        )
    ).key
    new = await manager.rotate_key(old.key_id, actor="carol")
    assert (new.key.description, new.key.created_by) == ("what it is", "carol")
    assert (new.key.name, new.key.scopes) == (old.name, old.scopes)
    assert (await manager.get_key(old.key_id)).created_by == "ada"


# -- the scope catalogue -------------------------------------------------------------


async def test_publish_replace_list_unpublish(manager, store, sink):
    assert await manager.list_scope_catalogue("org_1") == []
    info = await manager.publish_scope("org_1", "drive:write", "Write files", actor="ada")
    assert info == ScopeInfo("org_1", "drive:write", "Write files")
    await manager.publish_scope("org_1", "billing:read", "Read\n\tinvoices", actor="ada")
    await manager.publish_scope("org_1", "drive:write", "Write any file", actor="bob")
    assert await manager.list_scope_catalogue("org_1") == [
        ScopeInfo("org_1", "billing:read", "Read\n\tinvoices"),
        ScopeInfo("org_1", "drive:write", "Write any file"),
    ]
    await manager.unpublish_scope("org_1", "drive:write", actor="carol")
    with pytest.raises(KeyNotFound):
        await manager.unpublish_scope("org_1", "drive:write", actor="carol")
    assert await manager.list_scope_catalogue("org_1") == [
        ScopeInfo("org_1", "billing:read", "Read\n\tinvoices")
    ]
    events = list(reversed(sink.query("org_1").events))
    assert [(e.action, e.key_name, e.key_id, e.actor) for e in events] == [
        (AuditAction.SCOPE_PUBLISHED, "drive:write", None, "ada"),
        (AuditAction.SCOPE_PUBLISHED, "billing:read", None, "ada"),
        (AuditAction.SCOPE_PUBLISHED, "drive:write", None, "bob"),
        (AuditAction.SCOPE_UNPUBLISHED, "drive:write", None, "carol"),
    ]


async def test_the_catalogue_changes_no_key(manager, store):
    key = (await manager.create_key("org_1", "billing-sync prod", scopes=["drive:read"])).key
    await manager.publish_scope("org_1", "drive:read", "Read files")
    await manager.unpublish_scope("org_1", "drive:read")
    assert await manager.get_key(key.key_id) == key


@pytest.mark.parametrize(
    ("org_id", "name", "description"),
    [
        pytest.param("org_1", "drive:*", "All of drive", id="wildcard"),
        pytest.param("org_1", "*", "Everything", id="star"),
        pytest.param("org_1", "drive read", "spaces", id="space"),
        pytest.param("org_1", 'drive"read', "quote", id="quote"),
        pytest.param("org_1", "", "empty", id="empty-name"),
        pytest.param("org_1", "x" * 201, "too long", id="name-too-long"),
        pytest.param("org_1", ["drive:read"], "list", id="name-list"),
        pytest.param("org_1", "drive:read", "x" * 501, id="description-too-long"),
        pytest.param("org_1", "drive:read", "a\x00b", id="description-nul"),
        pytest.param("org_1", "drive:read", None, id="description-none"),
        pytest.param("", "drive:read", "Read", id="empty-org"),
        pytest.param("org\n1", "drive:read", "Read", id="org-newline"),
    ],
)
async def test_publish_refuses_bad_values_and_writes_nothing(
    manager, store, sink, org_id, name, description
):
    with pytest.raises(InvalidKeyOperation):
        await manager.publish_scope(org_id, name, description)
    assert store.inner._scope_infos == {}
    assert sink.query("org_1").events == ()


async def test_publish_takes_500_characters_and_a_200_character_scope(manager, store):
    name, text = "s" * 200, "d" * 500
    assert await manager.publish_scope("org_1", name, text) == ScopeInfo("org_1", name, text)

"""Key managers (``_drivers/manager.py`` over ``_core/lifecycle.py``), sync and async.

Most cases run against both :class:`~scout_auth.KeyManager` (through
:class:`~tests._support.AsAsync`) and :class:`~scout_auth.AsyncKeyManager`.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from datetime import datetime, timedelta
from typing import Any

import pytest

from scout_auth import (
    DEFAULT_ROTATION_GRACE,
    AsyncKeyManager,
    InMemoryKeyStore,
    KeyManager,
    KeyRecord,
    NewKey,
    Verifier,
    WeakKeyNameWarning,
)
from scout_auth._core.tokens import parse_token, public_key_from_seed
from scout_auth.exceptions import InvalidKeyOperation, KeyExpired, KeyNotFound
from tests._support import T0, AsAsync, Clock, SpyStore, cheap_hasher

pytestmark = pytest.mark.anyio


class TickingClock(Clock):
    """Every reading is one second after the previous one."""

    def __call__(self) -> float:
        self.now += 1
        return self.now - 1


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture(params=["sync", "async"])
def make(request):
    """``make(store, clock=...)``: a key manager with awaitable methods."""

    def build(store: Any, **options: Any) -> Any:
        options.setdefault("password_hasher", cheap_hasher())
        if request.param == "sync":
            return AsAsync(KeyManager(store, **options))
        return AsyncKeyManager(store, **options)

    return build


@pytest.fixture
def manager(make, store, clock):
    return make(store, clock=clock)


def snapshot(store: SpyStore) -> tuple[dict[str, Any], dict[str, Any]]:
    return dict(store.inner._keys), dict(store.inner._legacy)


# -- create, list, get -----------------------------------------------------------


async def test_create_key_returns_the_token_once_and_stores_the_public_half(manager, store):
    new = await manager.create_key(
        "org_1",
        "billing-sync prod",
        scopes=["drive:read", "drive:read", "mail:send"],
        expires_at=T0 + timedelta(days=90),
    )
    assert isinstance(new, NewKey)
    parsed = parse_token(new.token)
    assert parsed is not None
    key = new.key
    assert parsed.key_id == key.key_id
    assert public_key_from_seed(parsed.seed) == key.public_key
    assert key.org_id == "org_1"
    assert key.name == "billing-sync prod"
    assert key.enabled is True
    assert key.created_at == T0
    assert key.expires_at == T0 + timedelta(days=90)
    assert key.scopes == frozenset({"drive:read", "mail:send"})
    assert key.replaced_by is None
    assert store.inner.get_key(key.key_id) == key
    # The stored record has no place for the secret: only the token shows it.
    assert {f.name for f in dataclasses.fields(KeyRecord)}.isdisjoint({"token", "seed", "secret"})
    assert not hasattr(await manager.get_key(key.key_id), "token")


async def test_unrestricted_by_default_and_empty_scopes_kept_empty(manager):
    assert (await manager.create_key("org_1", "ops console")).key.scopes is None
    assert (await manager.create_key("org_1", "no access", scopes=[])).key.scopes == frozenset()


async def test_every_key_gets_a_fresh_id_and_seed(manager):
    keys = [await manager.create_key("org_1", f"integration {i}") for i in range(5)]
    assert len({k.key.key_id for k in keys}) == 5
    assert len({k.token for k in keys}) == 5
    assert len({k.key.public_key for k in keys}) == 5


async def test_list_keys_oldest_first_per_org(make, store):
    manager = make(store, clock=TickingClock())
    a1 = await manager.create_key("org_a", "billing-sync prod")
    b1 = await manager.create_key("org_b", "reporting")
    a2 = await manager.create_key("org_a", "nightly export")
    a3 = await manager.create_key("org_a", "crm bridge")
    assert await manager.list_keys("org_a") == [a1.key, a2.key, a3.key]
    assert await manager.list_keys("org_b") == [b1.key]
    assert await manager.list_keys("org_none") == []


async def test_get_rename_enable_disable_delete(manager, store):
    new = await manager.create_key("org_1", "billing-sync prod")
    key_id = new.key.key_id
    assert await manager.get_key(key_id) == new.key

    renamed = await manager.rename_key(key_id, "  billing-sync staging  ")
    assert renamed == new.key.evolve(name="billing-sync staging")
    assert await manager.get_key(key_id) == renamed

    disabled = await manager.disable_key(key_id)
    assert disabled.enabled is False
    assert (await manager.get_key(key_id)).enabled is False
    assert (await manager.disable_key(key_id)).enabled is False  # idempotent
    assert (await manager.enable_key(key_id)).enabled is True
    assert await manager.get_key(key_id) == renamed

    deleted = await manager.delete_key(key_id)
    assert deleted == renamed
    with pytest.raises(KeyNotFound):
        await manager.get_key(key_id)
    assert await manager.list_keys("org_1") == []


# -- unknown ids --------------------------------------------------------------

UNKNOWN = "a" * 20
UNKNOWN_ID_OPERATIONS = [
    pytest.param("get_key", (UNKNOWN,), {}, UNKNOWN, id="get"),
    pytest.param("rename_key", (UNKNOWN, "reporting"), {}, UNKNOWN, id="rename"),
    pytest.param("enable_key", (UNKNOWN,), {}, UNKNOWN, id="enable"),
    pytest.param("disable_key", (UNKNOWN,), {}, UNKNOWN, id="disable"),
    pytest.param("delete_key", (UNKNOWN,), {}, UNKNOWN, id="delete"),
    pytest.param("rotate_key", (UNKNOWN,), {}, UNKNOWN, id="rotate"),
    pytest.param("rotate_key", (UNKNOWN,), {"grace": timedelta(0)}, UNKNOWN, id="rotate-grace-0"),
    pytest.param("get_key", ("",), {}, "", id="get-empty-id"),
    pytest.param("get_legacy_key", ("org_none",), {}, "legacy:org_none", id="get-legacy"),
    pytest.param("delete_legacy_key", ("org_none",), {}, "legacy:org_none", id="delete-legacy"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "reported"), UNKNOWN_ID_OPERATIONS)
async def test_unknown_ids_raise_key_not_found_and_write_nothing(
    manager, store, method, args, kwargs, reported
):
    await manager.create_key("org_1", "billing-sync prod")
    await manager.import_legacy_key("org_1", "old-secret")
    before = snapshot(store)
    store.calls.clear()
    with pytest.raises(KeyNotFound) as info:
        await getattr(manager, method)(*args, **kwargs)
    assert isinstance(info.value, LookupError)
    assert info.value.key_id == reported
    assert snapshot(store) == before
    # At most the one conditional write that found nothing; never an insert.
    assert not {"add_key", "rotate_key", "put_legacy"} & set(store.calls)


# -- invalid arguments -------------------------------------------------------------

NAIVE = datetime(2030, 1, 1)  # naive on purpose: the point of the test
BAD_CREATE = [
    pytest.param({"name": ""}, id="empty-name"),
    pytest.param({"name": "   "}, id="blank-name"),
    pytest.param({"name": "x" * 201}, id="name-too-long"),
    pytest.param({"name": "billing\nsync"}, id="name-newline"),
    pytest.param({"name": "billing\tsync"}, id="name-tab"),
    pytest.param({"name": "billing\x00sync"}, id="name-nul"),
    pytest.param({"name": "billing\x1bsync"}, id="name-escape"),
    pytest.param({"name": "billing\x7fsync"}, id="name-del"),
    pytest.param({"name": None}, id="name-none"),
    pytest.param({"name": 42}, id="name-int"),
    pytest.param({"org_id": ""}, id="empty-org"),
    pytest.param({"org_id": "o" * 201}, id="org-too-long"),
    pytest.param({"org_id": None}, id="org-none"),
    pytest.param({"scopes": "drive:read"}, id="scopes-one-string"),
    pytest.param({"scopes": [""]}, id="scope-empty"),
    pytest.param({"scopes": ["drive read"]}, id="scope-with-space"),
    pytest.param({"scopes": ["drive:read\n"]}, id="scope-with-newline"),
    pytest.param({"scopes": [42]}, id="scope-not-a-string"),
    pytest.param({"expires_at": NAIVE}, id="naive-expiry"),
]


@pytest.mark.parametrize("override", BAD_CREATE)
async def test_create_key_rejects_bad_arguments_and_writes_nothing(manager, store, override):
    args: dict[str, Any] = {"org_id": "org_1", "name": "billing-sync prod"}
    args.update(override)
    store.calls.clear()
    with pytest.raises(InvalidKeyOperation) as info:
        await manager.create_key(args.pop("org_id"), args.pop("name"), **args)
    assert isinstance(info.value, ValueError)
    assert store.calls == []
    assert snapshot(store) == ({}, {})


def test_a_name_of_exactly_200_characters_is_accepted():
    new = KeyManager(InMemoryKeyStore()).create_key("o" * 200, "n" * 200)
    assert new.key.name == "n" * 200


BAD_OTHER = [
    pytest.param("rename_key", ("KEY", ""), {}, id="rename-empty"),
    pytest.param("rename_key", ("KEY", "x" * 201), {}, id="rename-too-long"),
    pytest.param("rename_key", ("KEY", "line\nbreak"), {}, id="rename-control-char"),
    pytest.param("rename_key", (UNKNOWN, ""), {}, id="rename-unknown-and-empty"),
    pytest.param("rotate_key", ("KEY",), {"grace": timedelta(seconds=-1)}, id="negative-grace"),
    pytest.param("rotate_key", ("KEY",), {"grace": 3600}, id="grace-not-timedelta"),
    pytest.param("rotate_key", (UNKNOWN,), {"grace": timedelta(days=-1)}, id="negative-unknown"),
    pytest.param("import_legacy_key", ("org_1", ""), {}, id="legacy-empty-secret"),
    pytest.param("import_legacy_key", ("", "s3cret"), {}, id="legacy-empty-org"),
    pytest.param("import_legacy_key", ("org_1", None), {}, id="legacy-secret-none"),
    pytest.param("list_keys", ("org_1",), {"legacy_days": 0}, id="list-legacy-days-0"),
    pytest.param("list_keys", ("org_1",), {"legacy_days": True}, id="list-legacy-days-bool"),
]


@pytest.mark.parametrize(("method", "args", "kwargs"), BAD_OTHER)
async def test_other_operations_reject_bad_arguments_and_write_nothing(
    manager, store, method, args, kwargs
):
    new = await manager.create_key("org_1", "billing-sync prod")
    args = tuple(new.key.key_id if a == "KEY" else a for a in args)
    before = snapshot(store)
    store.calls.clear()
    with pytest.raises(InvalidKeyOperation):
        await getattr(manager, method)(*args, **kwargs)
    assert store.calls == []  # validated before touching the store
    assert snapshot(store) == before


# -- weak names warn, at the caller ---------------------------------------------------

WEAK = ["key1", "test", "Test 2", "default", "KEY", "tmp", "my key", "API key", "secret_3"]
GOOD = ["billing-sync prod", "test-runner CI", "keycloak bridge", "default route sync"]


def _line_of(marker: str) -> int:
    source, start = inspect.getsourcelines(inspect.currentframe().f_back)  # type: ignore[union-attr,arg-type]
    return start + next(i for i, line in enumerate(source) if marker in line)


@pytest.mark.parametrize("name", WEAK)
def test_weak_names_warn_at_the_callers_line_sync(name):
    manager = KeyManager(InMemoryKeyStore())
    with pytest.warns(WeakKeyNameWarning, match="billing-sync prod") as record:
        new = manager.create_key("org_1", name)  # create-here
    assert new.key.name == name  # a warning, not a refusal
    with pytest.warns(WeakKeyNameWarning) as renamed:
        manager.rename_key(new.key.key_id, name)  # rename-here
    for warning, marker in ((record[0], "create-here"), (renamed[0], "rename-here")):
        assert warning.filename == __file__
        assert warning.lineno == _line_of(marker)


@pytest.mark.parametrize("name", WEAK)
async def test_weak_names_warn_at_the_callers_line_async(name):
    manager = AsyncKeyManager(InMemoryKeyStore())
    with pytest.warns(WeakKeyNameWarning) as record:
        new = await manager.create_key("org_1", name)  # acreate-here
    with pytest.warns(WeakKeyNameWarning) as renamed:
        await manager.rename_key(new.key.key_id, name)  # arename-here
    for warning, marker in ((record[0], "acreate-here"), (renamed[0], "arename-here")):
        assert warning.filename == __file__
        assert warning.lineno == _line_of(marker)


@pytest.mark.parametrize("name", GOOD)
async def test_descriptive_names_do_not_warn(manager, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = await manager.create_key("org_1", name)
        await manager.rename_key(new.key.key_id, name)


# -- rotation ---------------------------------------------------------------------


async def test_rotate_creates_a_successor_with_the_same_name_scopes_and_expiry(manager, store):
    old = await manager.create_key(
        "org_1", "nightly export", scopes=["drive:*"], expires_at=T0 + timedelta(days=30)
    )
    new = await manager.rotate_key(old.key.key_id, grace=timedelta(hours=1))
    assert new.key.key_id != old.key.key_id
    assert new.token != old.token
    assert (new.key.org_id, new.key.name, new.key.scopes, new.key.expires_at) == (
        "org_1",
        "nightly export",
        frozenset({"drive:*"}),
        T0 + timedelta(days=30),
    )
    assert new.key.enabled is True
    old_now = await manager.get_key(old.key.key_id)
    assert old_now.replaced_by == new.key.key_id
    assert old_now.expires_at == T0 + timedelta(hours=1)
    assert await manager.get_key(new.key.key_id) == new.key
    assert {k.key_id for k in await manager.list_keys("org_1")} == {
        old.key.key_id,
        new.key.key_id,
    }


async def test_rotated_key_works_during_grace_then_expires(make, store, clock):
    manager = make(store, clock=clock)
    verifier = Verifier(store, clock=clock)
    old = await manager.create_key("org_1", "nightly export")
    new = await manager.rotate_key(old.key.key_id, grace=timedelta(minutes=30))
    clock.advance(30 * 60 - 0.001)
    assert verifier.verify_token(old.token).key_id == old.key.key_id
    clock.advance(0.001)
    with pytest.raises(KeyExpired):
        verifier.verify_token(old.token)
    assert verifier.verify_token(new.token).key_id == new.key.key_id


async def test_rotate_with_grace_zero_ends_the_old_key_at_once(make, store, clock):
    manager = make(store, clock=clock)
    verifier = Verifier(store, clock=clock)
    old = await manager.create_key("org_1", "compromised laptop")
    verifier.verify_token(old.token)
    new = await manager.rotate_key(old.key.key_id, grace=timedelta(0))
    with pytest.raises(KeyExpired):
        verifier.verify_token(old.token)
    assert verifier.verify_token(new.token).org_id == "org_1"


async def test_default_grace_is_24_hours(manager):
    assert timedelta(hours=24) == DEFAULT_ROTATION_GRACE
    old = await manager.create_key("org_1", "nightly export")
    await manager.rotate_key(old.key.key_id)
    assert (await manager.get_key(old.key.key_id)).expires_at == T0 + DEFAULT_ROTATION_GRACE


@pytest.mark.parametrize(
    ("own_expiry", "grace", "expected"),
    [
        pytest.param(timedelta(hours=1), timedelta(days=1), timedelta(hours=1), id="expiry-first"),
        pytest.param(timedelta(days=2), timedelta(hours=1), timedelta(hours=1), id="grace-first"),
        pytest.param(timedelta(hours=1), timedelta(hours=1), timedelta(hours=1), id="same"),
    ],
)
async def test_grace_never_extends_the_old_keys_own_expiry(manager, own_expiry, grace, expected):
    old = await manager.create_key("org_1", "nightly export", expires_at=T0 + own_expiry)
    await manager.rotate_key(old.key.key_id, grace=grace)
    assert (await manager.get_key(old.key.key_id)).expires_at == T0 + expected


async def test_rotating_twice_never_extends_the_first_grace(manager):
    old = await manager.create_key("org_1", "nightly export")
    await manager.rotate_key(old.key.key_id, grace=timedelta(hours=1))
    await manager.rotate_key(old.key.key_id, grace=timedelta(days=7))
    assert (await manager.get_key(old.key.key_id)).expires_at == T0 + timedelta(hours=1)


class DeletedDuringRotation(InMemoryKeyStore):
    """The key is deleted (by someone else) right after the manager read it."""

    armed = False

    def get_key(self, key_id):
        record = super().get_key(key_id)
        if self.armed:
            self.armed = False
            self.delete_key(key_id)
        return record


async def test_rotate_of_a_key_deleted_concurrently_writes_no_successor(make):
    inner = DeletedDuringRotation()
    store = SpyStore(inner)
    manager = make(store)
    old = await manager.create_key("org_1", "nightly export")
    inner.armed = True
    with pytest.raises(KeyNotFound) as info:
        await manager.rotate_key(old.key.key_id, grace=timedelta(hours=1))
    assert info.value.key_id == old.key.key_id
    assert inner._keys == {}
    assert await manager.list_keys("org_1") == []


# -- legacy keys --------------------------------------------------------------------


async def test_legacy_key_lifecycle(manager, store):
    first = await manager.import_legacy_key("org_1", "first-secret")
    assert await manager.get_legacy_key("org_1") == first
    second = await manager.import_legacy_key("org_1", "second-secret")  # replaces
    assert await manager.get_legacy_key("org_1") == second
    assert second.secret_hash != first.secret_hash
    assert await manager.delete_legacy_key("org_1") is None
    with pytest.raises(KeyNotFound):
        await manager.get_legacy_key("org_1")
    with pytest.raises(KeyNotFound):
        await manager.delete_legacy_key("org_1")


@pytest.mark.anyio
@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_a_store_outage_is_a_store_error_not_an_authentication_failure(driver):
    from scout_auth import AsyncKeyManager
    from scout_auth.exceptions import AuthError, StoreError, StoreUnavailable

    class Down(InMemoryKeyStore):
        def add_key(self, record):
            raise StoreUnavailable("Key store unreachable", retry_after=2)

        async def aadd_key(self, record):
            self.add_key(record)

    store = Down()
    manager = AsAsync(KeyManager(store)) if driver == "sync" else AsyncKeyManager(store)
    with pytest.raises(StoreError) as raised:
        await manager.create_key("org_1", "outage")
    error = raised.value
    assert not isinstance(error, AuthError)
    assert (error.status, error.code, error.retry_after) == (503, "store_unavailable", 2)
    assert isinstance(error.__cause__, StoreUnavailable)

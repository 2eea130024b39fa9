"""The sweep of directory entries that interrupted writes left behind (docs/redis-store.md)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from scout_auth import LegacyRecord
from scout_auth.stores.redis import RedisKeyStore
from scout_auth.testing._store import T0, org, record

pytestmark = pytest.mark.redis

#: The default min_idle; entries are aged with RESTORE ... IDLETIME, no waiting.
IDLE = 3600


def _age(raw: redis.Redis, name: str, seconds: int = 2 * IDLE) -> None:
    """Make ``name`` look untouched for ``seconds`` (its value unchanged)."""
    dump = raw.dump(name)
    assert dump is not None
    raw.restore(name, 0, dump, replace=True, idletime=seconds)


@pytest.fixture
def store(redis_url, redis_prefix) -> Iterator[RedisKeyStore]:
    # A prefix of its own: the sweep walks only this test's keys.
    prefix = f"{redis_prefix}:sweep{uuid.uuid4().hex[:6]}"
    s = RedisKeyStore.from_url(redis_url, prefix=prefix, listen=False)
    yield s
    s.close()


@pytest.fixture
def raw(redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


def _drive(store: RedisKeyStore, op, until: Callable[[object], bool]):
    """Perform ``op``'s needs until the next one matches ``until``; return (op, that need)."""
    need = next(op)
    while not until(need):
        need = op.send(store.connection.perform(need))
    return need


def _finish(store: RedisKeyStore, op, need):
    try:
        while True:
            need = op.send(store.connection.perform(need))
    except StopIteration as stop:
        return stop.value


def _script(name: str) -> Callable[[object], bool]:
    return lambda need: getattr(getattr(need, "script", None), "name", None) == name


@pytest.mark.anyio
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_the_sweep_removes_old_orphans_only(store, raw, is_async):
    layout = store.layout
    o = org()
    live = record(o)
    store.add_key(live)
    orphan_id = record(o).key_id
    raw.set(layout.directory(orphan_id), o)  # a create interrupted after its claim
    raw.set(layout.audit_directory(live.key_id), o)  # not a directory entry: outlives keys
    digest, stale = secrets.token_bytes(32), secrets.token_bytes(32)
    store.put_legacy(LegacyRecord(o, "$argon2id$h", T0, lookup_digest=digest, pepper_id="p1"))
    raw.set(layout.legacy_directory(stale), o)  # the org holds another digest
    for name in (
        layout.directory(live.key_id),
        layout.directory(orphan_id),
        layout.audit_directory(live.key_id),
        layout.legacy_directory(digest),
        layout.legacy_directory(stale),
    ):
        _age(raw, name)  # all old: only the backing tells them apart
    fresh_id = record(o).key_id
    raw.set(layout.directory(fresh_id), o)  # a write in flight: claimed, record coming

    if is_async:
        removed = await store.asweep_directories(min_idle=IDLE)
    else:
        removed = store.sweep_directories(min_idle=IDLE)

    assert removed == 2
    assert raw.get(layout.directory(orphan_id)) is None
    assert raw.get(layout.legacy_directory(stale)) is None
    assert store.get_key(live.key_id) == live
    assert store.find_legacy(digest) is not None
    assert raw.get(layout.directory(fresh_id)) == o.encode()
    assert raw.get(layout.audit_directory(live.key_id)) == o.encode()
    raw.delete(layout.directory(fresh_id), layout.audit_directory(live.key_id))
    await store.aclose()


def test_a_negative_idle_time_is_refused(store):
    with pytest.raises(ValueError, match="min_idle"):
        store.sweep_directories(min_idle=-1)


def test_a_sweep_that_races_a_create_puts_the_entry_back(store, raw):
    # The sweeper's half: the orphan's key is created between the sweep's
    # look at it and its delete; the sweep reads the record again and restores it.
    o = org()
    r = record(o)
    raw.set(store.layout.directory(r.key_id), o)
    _age(raw, store.layout.directory(r.key_id))
    op = store._sweep.sweep(IDLE)
    need = _drive(store, op, _script("release_directory"))
    store.add_key(r)  # takes the orphan over, writes the record
    assert _finish(store, op, need) == 0
    assert store.get_key(r.key_id) == r


@pytest.mark.parametrize("method", ["add_key", "rotate_key"])
def test_a_create_that_races_a_sweep_puts_its_entry_back(store, raw, method):
    # The writer's half: a sweep removes the entry after the record is written.
    o = org()
    new = record(o)
    if method == "add_key":
        op = store._ops.add_key(new)
    else:
        old = record(o)
        store.add_key(old)
        op = store._ops.rotate_key(old.key_id, new, T0)
    need = _drive(store, op, lambda n: type(n).__name__ == "Notify")
    raw.delete(store.layout.directory(new.key_id))  # the sweep's delete, just then
    _finish(store, op, need)
    assert store.get_key(new.key_id) == new

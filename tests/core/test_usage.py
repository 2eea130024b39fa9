"""Usage tracking: counted in memory, written at most once per interval, merged by the store."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from scout_auth import AsyncVerifier, InMemoryKeyStore, KeyManager, Verifier
from scout_auth._core.usage import UsageRecorder, UsageWrite, normalise_address
from scout_auth.exceptions import InvalidKeyOperation
from tests._support import Clock, cheap_hasher


class CountingStore(InMemoryKeyStore):
    """Counts usage writes; can be told to fail them."""

    def __init__(self) -> None:
        super().__init__()
        self.usage_writes: list[tuple[str, int]] = []
        self.fail = False

    def record_usage(self, key_id, uses, last_used_at, address=None):
        if self.fail:
            raise ConnectionError("database unreachable")
        self.usage_writes.append((key_id, uses))
        super().record_usage(key_id, uses, last_used_at, address)


def setup(**options):
    store = CountingStore()
    clock = Clock()
    manager = KeyManager(store, password_hasher=cheap_hasher(), clock=clock)
    verifier = Verifier(store, clock=clock, password_hasher=cheap_hasher(), **options)
    return store, clock, manager, verifier


def test_uses_are_counted_in_memory_and_flushed_as_one_write():
    store, clock, manager, verifier = setup()
    new = manager.create_key("org_1", "billing-sync prod")
    for _ in range(5):
        verifier.verify_token(new.token)
        clock.advance(1)
    assert store.usage_writes == []  # nothing written on the request path
    assert manager.list_keys("org_1")[0].use_count == 0
    verifier.flush_usage()
    assert store.usage_writes == [(new.key.key_id, 5)]
    [listed] = manager.list_keys("org_1")
    assert listed.use_count == 5
    assert listed.last_used_at == datetime.fromtimestamp(clock.now - 1, UTC)
    verifier.flush_usage()  # nothing new: no write
    assert len(store.usage_writes) == 1


def test_refused_requests_are_not_counted():
    store, _clock, manager, verifier = setup()
    new = manager.create_key("org_1", "reporting", scopes=["drive:read"])
    with pytest.raises(Exception, match="scope"):
        verifier.verify_token(new.token, required_scopes=["drive:write"])
    verifier.flush_usage()
    assert store.usage_writes == []


def test_at_most_one_flush_per_interval_from_the_request_path():
    store, clock, manager, verifier = setup(usage_interval=60)
    new = manager.create_key("org_1", "billing-sync prod")
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def spy_start(self):
        started.append(self)
        real_start(self)

    threading.Thread.start = spy_start  # type: ignore[method-assign]
    try:
        for _ in range(30):  # 30 requests over 58 s: no flush due yet
            verifier.verify_token(new.token)
            clock.advance(2)
        assert [t for t in started if t.name == "scout_auth-usage"] == []
        clock.advance(10)
        verifier.verify_token(new.token)  # due: one background flush
        verifier.verify_token(new.token)  # not due again for 60 s
    finally:
        threading.Thread.start = real_start  # type: ignore[method-assign]
    flushes = [t for t in started if t.name == "scout_auth-usage"]
    assert len(flushes) == 1
    flushes[0].join(5)
    assert store.usage_writes[0] == (new.key.key_id, 31)


def test_a_failed_flush_keeps_the_counts_for_the_next():
    store, _clock, manager, verifier = setup()
    new = manager.create_key("org_1", "billing-sync prod")
    verifier.verify_token(new.token)
    store.fail = True
    verifier.flush_usage()  # logged, not raised
    verifier.verify_token(new.token)
    store.fail = False
    verifier.flush_usage()
    assert store.usage_writes == [(new.key.key_id, 2)]


def test_instances_merge_by_atomic_increment():
    store, _clock, manager, _ = setup()
    new = manager.create_key("org_1", "billing-sync prod")
    early, late = Clock(), Clock()
    late.advance(30)
    a = Verifier(store, clock=late)
    b = Verifier(store, clock=early)
    for _ in range(3):
        a.verify_token(new.token)
    for _ in range(4):
        b.verify_token(new.token)
    a.flush_usage()
    b.flush_usage()  # older last use, flushed later: max() keeps the later one
    key = manager.get_key(new.key.key_id)
    assert key.use_count == 7
    assert key.last_used_at == datetime.fromtimestamp(late.now, UTC)


def test_close_flushes_and_none_disables():
    store, _clock, manager, verifier = setup()
    new = manager.create_key("org_1", "billing-sync prod")
    verifier.verify_token(new.token)
    verifier.close()
    assert store.usage_writes == [(new.key.key_id, 1)]
    quiet = Verifier(store, usage_interval=None)
    quiet.verify_token(new.token)
    quiet.close()
    assert len(store.usage_writes) == 1
    with pytest.raises(ValueError, match="usage_interval"):
        Verifier(store, usage_interval=0)


@pytest.mark.anyio
async def test_async_verifier_flushes_in_a_task():
    store = CountingStore()
    clock = Clock()
    new = KeyManager(store).create_key("org_1", "billing-sync prod")
    verifier = AsyncVerifier(store, clock=clock, usage_interval=10)
    await verifier.verify_token(new.token)
    clock.advance(11)
    await verifier.verify_token(new.token)  # due: a task is scheduled, not awaited
    assert store.usage_writes == []
    for task in list(verifier._tasks):
        await task
    assert store.usage_writes == [(new.key.key_id, 2)]
    await verifier.aclose()


def test_legacy_status_counts_recent_days():
    store, clock, manager, verifier = setup()
    status = manager.legacy_status("org_1")
    assert (status.exists, status.enabled, status.last_used_at, status.requests) == (
        False,
        True,
        None,
        0,
    )
    manager.import_legacy_key("org_1", "old-secret")
    store.record_legacy_usage(
        "org_1", 50, datetime.fromtimestamp(clock.now, UTC) - timedelta(days=40)
    )
    for _ in range(3):
        verifier.verify_legacy("org_1", "old-secret")
    verifier.flush_usage()
    status = manager.legacy_status("org_1", days=30)
    assert status.exists
    assert status.enabled
    assert status.requests == 3
    assert status.days == 30
    assert status.last_used_at == datetime.fromtimestamp(clock.now, UTC)
    assert manager.legacy_status("org_1", days=60).requests == 53
    manager.disable_legacy("org_1")
    assert manager.legacy_status("org_1").enabled is False
    with pytest.raises(InvalidKeyOperation):
        manager.legacy_status("org_1", days=0)


def test_recorder_restores_failed_writes_merged_with_newer_ones():
    recorder = UsageRecorder(60)
    from scout_auth import CredentialKind, OrgContext

    ctx = OrgContext("org_1", "k1", "name", None, CredentialKind.ORG_CREDENTIAL)
    assert recorder.note(ctx, 100.0) is False
    writes = recorder.drain()
    recorder.note(ctx, 50.0)
    recorder.restore(writes)
    [write] = recorder.drain()
    assert (write.method, write.uses, write.last_used_at.timestamp()) == ("record_usage", 2, 100.0)


def test_concurrent_notes_lose_nothing():
    from scout_auth import CredentialKind, OrgContext

    recorder = UsageRecorder(3600)
    contexts = [
        OrgContext("org_1", f"k{i}", "name", None, CredentialKind.ORG_CREDENTIAL) for i in range(3)
    ]
    drained: list[UsageWrite] = []

    def hammer(ctx) -> None:
        for i in range(20_000):
            recorder.note(ctx, 1000.0 + i)
            if i % 5000 == 0:
                drained.extend(recorder.drain())  # flushes racing the notes

    threads = [threading.Thread(target=hammer, args=(c,)) for c in contexts for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drained.extend(recorder.drain())
    totals: dict[str, int] = {}
    for write in drained:
        totals[write.ident] = totals.get(write.ident, 0) + write.uses
    assert totals == {"k0": 40_000, "k1": 40_000, "k2": 40_000}


# -- the client address of the latest use ------------------------------------
@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        pytest.param("192.0.2.7", "192.0.2.7", id="ipv4"),
        pytest.param(" 192.0.2.7 ", "192.0.2.7", id="spaces"),
        pytest.param("2001:DB8:0000::0001", "2001:db8::1", id="ipv6-compressed-lower"),
        pytest.param("::ffff:192.0.2.7", "192.0.2.7", id="ipv4-mapped"),
        pytest.param("fe80::1%eth0", "fe80::1", id="zone-dropped"),
        pytest.param("[2001:db8::1]", None, id="brackets-are-not-an-address"),
        pytest.param("192.0.2.7:8080", None, id="with-a-port"),
        pytest.param("testclient", None, id="a-name"),
        pytest.param("/run/app.sock", None, id="unix-socket"),
        pytest.param("9" * 100_000, None, id="over-long-not-parsed"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
    ],
)
def test_addresses_are_normalised_or_dropped(raw, stored):
    assert normalise_address(raw) == stored


def test_a_flush_writes_the_address_of_the_latest_use():
    _store, clock, manager, verifier = setup()
    new = manager.create_key("org_1", "billing-sync prod")
    verifier.verify_token(new.token, client_ip="192.0.2.1")
    clock.advance(1)
    verifier.verify_token(new.token, client_ip="::ffff:198.51.100.7")  # cached: still noted
    assert manager.get_key(new.key.key_id).last_used_address is None  # not on the request path
    verifier.flush_usage()
    key = manager.get_key(new.key.key_id)
    assert (key.use_count, key.last_used_address) == (2, "198.51.100.7")
    clock.advance(1)
    verifier.verify_token(new.token)  # no address known (a direct call)
    verifier.flush_usage()
    assert manager.get_key(new.key.key_id).last_used_address is None


def test_a_signed_request_records_its_address():
    from tests.core.test_roles import _signed

    store, _clock, manager, _ = setup()
    new = manager.create_key("org_1", "uploader")
    verifier = Verifier(store)
    verifier.verify_signed(_signed(new.token), client_ip="2001:db8::42")
    verifier.flush_usage()
    assert manager.get_key(new.key.key_id).last_used_address == "2001:db8::42"


def test_a_failed_flush_keeps_the_latest_address_too():
    store, clock, manager, verifier = setup()
    new = manager.create_key("org_1", "billing-sync prod")
    verifier.verify_token(new.token, client_ip="192.0.2.1")
    store.fail = True
    verifier.flush_usage()
    clock.advance(1)
    verifier.verify_token(new.token, client_ip="192.0.2.2")
    store.fail = False
    verifier.flush_usage()
    key = manager.get_key(new.key.key_id)
    assert (key.use_count, key.last_used_address) == (2, "192.0.2.2")


def test_restored_writes_keep_the_newer_address():
    from scout_auth import CredentialKind, OrgContext

    recorder = UsageRecorder(60)
    ctx = OrgContext("org_1", "k1", "name", None, CredentialKind.ORG_CREDENTIAL)
    recorder.note(ctx, 100.0, "192.0.2.1")
    writes = recorder.drain()
    recorder.note(ctx, 50.0, "192.0.2.2")  # older than the failed write
    recorder.restore(writes)
    [write] = recorder.drain()
    assert write.args[3] == "192.0.2.1"
    legacy = OrgContext("org_1", "legacy:org_1", "legacy", None, CredentialKind.LEGACY)
    recorder.note(legacy, 100.0, "192.0.2.1")
    [write] = recorder.drain()
    assert len(write.args) == 3  # legacy usage is per org: no address


@pytest.mark.anyio
async def test_async_verifier_records_the_address():
    store = CountingStore()
    new = KeyManager(store).create_key("org_1", "billing-sync prod")
    verifier = AsyncVerifier(store)
    await verifier.verify_token(new.token, client_ip="2001:DB8::1")
    await verifier.aflush_usage()
    got = store.get_key(new.key.key_id)
    assert got is not None
    assert got.last_used_address == "2001:db8::1"
    await verifier.aclose()

"""Legacy per-org secrets: argon2id at rest, HTTP Basic on the wire, one argon2 run per burst."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from scout_auth import (
    AsyncKeyManager,
    AsyncVerifier,
    CredentialKind,
    InMemoryKeyStore,
    KeyManager,
    LegacyRecord,
    OrgContext,
    Verifier,
)
from scout_auth.exceptions import InvalidToken
from tests._support import T0, AsAsync, SpyHasher, SpyStore, cheap_hasher
from tests._support import basic_authorization as basic

SECRET = "old-system-secret-Zq8#"
N = 20


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture
def manager(store) -> KeyManager:
    return KeyManager(store, password_hasher=cheap_hasher())


LEGACY_CONTEXT = OrgContext(
    org_id="org_legacy",
    key_id="legacy:org_legacy",
    key_name="legacy",
    scopes=None,
    kind=CredentialKind.LEGACY,
)


# -- at rest -------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.anyio
async def test_import_stores_only_an_argon2id_hash(driver):
    store = InMemoryKeyStore()
    manager: Any = (
        AsAsync(KeyManager(store, password_hasher=cheap_hasher()))
        if driver == "sync"
        else AsyncKeyManager(store, password_hasher=cheap_hasher())
    )
    record = await manager.import_legacy_key("org_legacy", SECRET)
    assert isinstance(record, LegacyRecord)
    assert record.org_id == "org_legacy"
    assert record.secret_hash.startswith("$argon2id$")
    assert SECRET not in record.secret_hash
    assert await manager.get_legacy_key("org_legacy") == record
    assert store.get_legacy("org_legacy") == record
    for text in (repr(record), str(record), repr(store), str(store)):
        assert SECRET not in text
        assert record.secret_hash not in text


def test_two_imports_of_one_secret_are_salted_differently(manager):
    first = manager.import_legacy_key("org_a", SECRET).secret_hash
    second = manager.import_legacy_key("org_b", SECRET).secret_hash
    assert first != second


def test_hashing_happens_off_the_event_loop_for_the_async_manager():
    hasher = SpyHasher()

    async def main() -> int:
        await AsyncKeyManager(InMemoryKeyStore(), password_hasher=hasher).import_legacy_key(
            "org_legacy", SECRET
        )
        return threading.get_ident()

    loop_thread = anyio.run(main)
    assert len(hasher.hash_threads) == 1
    assert hasher.hash_threads[0] != loop_thread


# -- on the wire ---------------------------------------------------------------


@pytest.mark.anyio
async def test_basic_auth_and_verify_legacy_return_the_legacy_context(make, store, manager):
    manager.import_legacy_key("org_legacy", SECRET)
    verifier = make(store)
    assert await verifier.verify_authorization(basic("org_legacy", SECRET)) == LEGACY_CONTEXT
    assert await verifier.verify_legacy("org_legacy", SECRET) == LEGACY_CONTEXT


@pytest.mark.anyio
async def test_legacy_credentials_are_unrestricted(make, store, manager):
    manager.import_legacy_key("org_legacy", SECRET)
    ctx = await make(store).verify_legacy(
        "org_legacy", SECRET, required_scopes=["drive:write", "admin"]
    )
    assert ctx.scopes is None


REJECTED = [
    pytest.param("org_legacy", "wrong", id="wrong-secret"),
    pytest.param("org_legacy", SECRET + " ", id="secret-plus-space"),
    pytest.param("org_legacy", SECRET.upper(), id="secret-case"),
    pytest.param("org_legacy", SECRET[:-1], id="secret-prefix"),
    pytest.param("org_other", SECRET, id="right-secret-other-org"),
    pytest.param("nobody", SECRET, id="unknown-org"),
    pytest.param("ORG_LEGACY", SECRET, id="org-id-case"),
]


@pytest.mark.parametrize(("org_id", "secret"), REJECTED)
@pytest.mark.anyio
async def test_wrong_legacy_credentials_are_invalid_token(make, store, manager, org_id, secret):
    manager.import_legacy_key("org_legacy", SECRET)
    manager.import_legacy_key("org_other", "another-secret")
    verifier = make(store)
    with pytest.raises(InvalidToken) as via_header:
        await verifier.verify_authorization(basic(org_id, secret))
    with pytest.raises(InvalidToken) as direct:
        await verifier.verify_legacy(org_id, secret)
    assert via_header.value.detail == direct.value.detail == InvalidToken().detail


@pytest.mark.anyio
async def test_an_unreadable_stored_hash_fails_closed(make, store, caplog):
    store.put_legacy(LegacyRecord("org_legacy", "not-an-argon2-hash", created_at=T0))
    with pytest.raises(InvalidToken):
        await make(store).verify_legacy("org_legacy", SECRET)
    assert "unreadable legacy hash for org org_legacy" in caplog.text


# -- single-flight: one argon2 run for a burst of first requests ----------------


def _gate_until(event: threading.Event):
    def gate() -> None:
        # Hold the first argon2 run until every caller has queued behind it
        # (a deadlock guard only: the assertions below do not depend on time).
        assert event.wait(timeout=30), "not every caller arrived"

    return gate


def _count_arrivals(monkeypatch, verifier, everyone_in: threading.Event) -> None:
    lock = threading.Lock()
    arrived = 0
    run = verifier._flight.run

    def counting_run(key, fn):
        nonlocal arrived
        with lock:
            arrived += 1
            if arrived == N:
                everyone_in.set()
        return run(key, fn)

    monkeypatch.setattr(verifier._flight, "run", counting_run)


def test_concurrent_first_requests_run_argon2_once_threads(store, manager, monkeypatch):
    manager.import_legacy_key("org_legacy", SECRET)
    store.calls.clear()  # the import's own reads and writes
    everyone_in = threading.Event()
    hasher = SpyHasher(gate=_gate_until(everyone_in))
    verifier = Verifier(store, password_hasher=hasher)
    _count_arrivals(monkeypatch, verifier, everyone_in)
    start = threading.Barrier(N)
    results: list[object] = []

    def request() -> None:
        start.wait(timeout=30)
        try:
            results.append(verifier.verify_authorization(basic("org_legacy", SECRET)))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=request) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [LEGACY_CONTEXT] * N
    assert len(hasher.verify_threads) == 1
    assert store.calls.count("get_legacy") == 1
    for _ in range(5):  # later requests hit the cache
        assert verifier.verify_legacy("org_legacy", SECRET) == LEGACY_CONTEXT
    assert len(hasher.verify_threads) == 1
    assert store.calls.count("get_legacy") == 1


@pytest.mark.anyio
async def test_concurrent_first_requests_run_argon2_once_tasks(store, manager, monkeypatch):
    manager.import_legacy_key("org_legacy", SECRET)
    store.calls.clear()  # the import's own reads and writes
    everyone_in = threading.Event()
    hasher = SpyHasher(gate=_gate_until(everyone_in))
    verifier = AsyncVerifier(store, password_hasher=hasher)
    _count_arrivals(monkeypatch, verifier, everyone_in)
    loop_thread = threading.get_ident()
    results: list[object] = []

    async def request() -> None:
        results.append(await verifier.verify_authorization(basic("org_legacy", SECRET)))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(N):
                tg.start_soon(request)
    assert results == [LEGACY_CONTEXT] * N
    assert len(hasher.verify_threads) == 1
    assert store.calls.count("get_legacy") == 1
    for _ in range(5):
        assert await verifier.verify_legacy("org_legacy", SECRET) == LEGACY_CONTEXT
    assert len(hasher.verify_threads) == 1
    # argon2 is slow and blocking: never on the event loop's thread.
    assert loop_thread not in hasher.verify_threads


@pytest.mark.anyio
async def test_wrong_secrets_never_run_argon2_on_the_event_loop(store, manager):
    manager.import_legacy_key("org_legacy", SECRET)
    hasher = SpyHasher()
    verifier = AsyncVerifier(store, password_hasher=hasher)
    for i in range(3):  # distinct: a repeated wrong secret is not checked again
        with pytest.raises(InvalidToken):
            await verifier.verify_legacy("org_legacy", f"wrong-{i}")
    assert len(hasher.verify_threads) == 3
    assert threading.get_ident() not in hasher.verify_threads


# -- changes take effect at once -------------------------------------------------


@pytest.mark.anyio
async def test_deleting_the_legacy_key_takes_effect_at_once(make, store, manager):
    manager.import_legacy_key("org_legacy", SECRET)
    verifier = make(store, cache_ttl=3600)
    await verifier.verify_legacy("org_legacy", SECRET)
    manager.delete_legacy_key("org_legacy")
    with pytest.raises(InvalidToken):
        await verifier.verify_legacy("org_legacy", SECRET)


@pytest.mark.anyio
async def test_replacing_the_legacy_key_takes_effect_at_once(make, store, manager):
    manager.import_legacy_key("org_legacy", SECRET)
    verifier = make(store, cache_ttl=3600)
    await verifier.verify_authorization(basic("org_legacy", SECRET))
    manager.import_legacy_key("org_legacy", "the-new-secret")
    with pytest.raises(InvalidToken):
        await verifier.verify_authorization(basic("org_legacy", SECRET))
    assert await verifier.verify_legacy("org_legacy", "the-new-secret") == LEGACY_CONTEXT


@pytest.mark.anyio
async def test_legacy_changes_leave_other_orgs_warm(make, store, manager):
    manager.import_legacy_key("org_legacy", SECRET)
    manager.import_legacy_key("org_other", "another-secret")
    verifier = make(store, cache_ttl=3600)
    await verifier.verify_legacy("org_legacy", SECRET)
    await verifier.verify_legacy("org_other", "another-secret")
    manager.delete_legacy_key("org_legacy")
    store.calls.clear()
    await verifier.verify_legacy("org_other", "another-secret")
    assert store.calls == []

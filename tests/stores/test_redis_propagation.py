"""Revocation propagation: a change made anywhere reaches every verifier, and a cache
fill that raced with a revocation never brings the revoked key back.

The in-process tests pin the ordering (events are delivered only after the
write is visible; a racing fill is discarded). The fleet tests run real
service processes and a separate admin process; their bounds are generous
on purpose — the latency distribution lives in ``benchmarks/revocation.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio.to_thread
import pytest

from scout_auth import AsyncVerifier, KeyEvent, KeyManager, KeyUpdate, Verifier
from scout_auth.exceptions import KeyDisabled
from scout_auth.stores.redis import RedisKeyStore
from tests.fleet import Fleet, revoke_and_time
from tests.stores.contract import org
from tests.stores.propagation import (
    SlowReads,
    accepts,
    hammer_round,
    release_on_revocation,
    wait_until,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def writer(redis_url, redis_prefix) -> Iterator[RedisKeyStore]:
    """Another process's store, as far as the reader can tell (no shared memory)."""
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix, listen=False)
    yield store
    store.close()


@pytest.fixture
def reader(redis_url, redis_prefix) -> Iterator[RedisKeyStore]:
    store = RedisKeyStore.from_url(redis_url, prefix=redis_prefix)
    assert store.wait_listening(5)
    yield store
    store.close()


def test_a_remote_disable_drops_a_warm_cache_entry(writer, reader):
    new = KeyManager(writer).create_key(org(), "billing sync")
    verifier = Verifier(reader, cache_ttl=60)
    assert wait_until(lambda: accepts(verifier, new.token))
    KeyManager(writer).disable_key(new.key.key_id)
    assert wait_until(lambda: not accepts(verifier, new.token))


def test_remote_events_arrive_only_after_the_write_is_visible(writer, reader):
    o = org()
    manager = KeyManager(writer)
    keys = [manager.create_key(o, f"sync job {i}").key.key_id for i in range(30)]
    seen: dict[str, bool] = {}
    done = threading.Event()

    def on_event(event: KeyEvent) -> None:  # on the listener thread
        if event.action == "updated" and event.key_id in keys:
            record = reader.get_key(event.key_id)
            seen[event.key_id] = record is not None and not record.enabled
            if len(seen) == len(keys):
                done.set()

    reader.subscribe(on_event)
    for key_id in keys:
        writer.update_key(key_id, KeyUpdate(enabled=False))
    assert done.wait(10)
    assert all(seen.values())  # every reader saw the disable it was told about


def test_a_fill_racing_a_remote_revocation_is_discarded(writer, reader):
    new = KeyManager(writer).create_key(org(), "billing sync")
    slow = SlowReads(reader)
    verifier = Verifier(slow, cache_ttl=60)
    release_on_revocation(slow, new.key.key_id)
    in_flight = threading.Thread(target=verifier.verify_token, args=(new.token,))
    in_flight.start()
    assert slow.read_done.wait(5)  # it read "enabled"...
    KeyManager(writer).disable_key(new.key.key_id)  # ...then the key was disabled elsewhere
    in_flight.join(10)
    assert len(verifier.cache) == 0  # the stale fill was not cached
    slow.read_done.clear()
    with pytest.raises(KeyDisabled):
        verifier.verify_token(new.token)


@pytest.mark.anyio
async def test_an_async_fill_racing_a_remote_revocation_is_discarded(writer, reader):
    new = KeyManager(writer).create_key(org(), "billing sync")
    slow = SlowReads(reader)
    verifier = AsyncVerifier(slow, cache_ttl=60)
    release_on_revocation(slow, new.key.key_id)
    async with anyio.create_task_group() as tg:
        tg.start_soon(verifier.verify_token, new.token)
        await anyio.to_thread.run_sync(slow.read_done.wait, 5)
        await anyio.to_thread.run_sync(KeyManager(writer).disable_key, new.key.key_id)
    assert len(verifier.cache) == 0
    with pytest.raises(KeyDisabled):
        await verifier.verify_token(new.token)
    await reader.aclose()


def test_hammering_fills_around_remote_revocations_never_resurrects_a_key(writer, reader):
    """Threads verify non-stop while another process renames the key (each rename
    invalidates, forcing refills) and then disables it. Once every call that was
    in flight when the disable arrived has finished, every call must fail.

    A smoke test: the window it probes is narrow. The two tests above pin the
    same ordering deterministically.
    """
    manager = KeyManager(writer)
    verifier = Verifier(reader, cache_ttl=60)
    for _ in range(8):
        hammer_round(manager, reader, verifier)


# -- real processes --------------------------------------------------------------
@pytest.mark.parametrize(
    ("listen", "cache_ttl", "bound"),
    [
        # Far below the 60 s TTL: only the change feed can explain it.
        pytest.param(True, 60.0, 10.0, id="change-feed"),
        # The feed is off: the TTL must still bound it (plus generous slack).
        pytest.param(False, 2.0, 2.0 + 3.0, id="ttl-fallback"),
    ],
)
def test_a_change_by_another_process_reaches_every_instance(
    redis_url, redis_prefix, listen, cache_ttl, bound
):
    with Fleet(redis_url, redis_prefix, instances=2, cache_ttl=cache_ttl, listen=listen) as fleet:
        trials = []
        for action in ("disable", "delete"):
            if listen:
                for _ in range(3):
                    trials += revoke_and_time(fleet, action, timeout=bound + 5)
            else:  # each trial waits out the TTL: run three at once
                trials += revoke_and_time(fleet, action, keys=3, timeout=bound + 5)
    assert len(trials) == 6
    for trial in trials:
        assert len(trial.latencies) == 2
        assert all(latency <= bound for latency in trial.latencies), trial

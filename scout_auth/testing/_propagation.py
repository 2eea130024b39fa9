"""Revocation propagation: one suite, run unchanged against every store with a change feed.

A *reader* store has a change feed; a *writer* store (another process, as
far as the reader can tell) changes keys. A test module for a store
subclasses :class:`PropagationContract` and provides two fixtures:
``writer`` (a store that does not listen to the feed, or shares nothing
with the reader but the back end) and ``reader`` (already listening).

The tests pin the ordering (events are delivered only after the write is
visible; a racing fill is discarded). The helpers stall a verifier's
look-up between its read and its cache fill, and hammer a verifier while
the writer renames and then disables a key. Bounds are generous on purpose
(shared, loaded CI machines). scout_auth's own suites add trials with real
service processes (``tests/stores/fleet_contract.py``); the latency
distribution lives in ``benchmarks/revocation.py``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest

from .. import AsyncVerifier, KeyEvent, KeyManager, KeyRecord, KeyStore, KeyUpdate, Verifier
from ..exceptions import InsufficientScope, KeyDisabled, LegacyDisabled
from ._store import org
from ._support import cheap_hasher

__all__ = ["PropagationContract", "accepts", "hammer_round", "wait_until"]


def wait_until(predicate: Callable[[], object], timeout: float = 15.0) -> bool:
    """Poll ``predicate`` until true; the bound is generous (shared, loaded CI machines)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def accepts(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify_token(token)
    except KeyDisabled:
        return False
    return True


class SlowReads:
    """A store whose look-up reads, then stalls until the revocation was delivered."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.read_done = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def get_key(self, key_id: str) -> KeyRecord | None:
        record = self.store.get_key(key_id)
        self.read_done.set()
        self.release.wait(10)
        return record

    async def aget_key(self, key_id: str) -> KeyRecord | None:
        record = await self.store.aget_key(key_id)
        self.read_done.set()
        await anyio.to_thread.run_sync(self.release.wait, 10)
        return record


def release_on_revocation(slow: SlowReads, key_id: str) -> None:
    # Subscribed after the verifier, so it runs after the verifier invalidated.
    def on_event(event: KeyEvent) -> None:
        if event.key_id == key_id and event.action == "updated":
            slow.release.set()

    slow.store.subscribe(on_event)


def hammer_round(manager: KeyManager, reader: Any, verifier: Verifier) -> None:
    """Verify from 3 threads while ``manager`` renames the key 15 times, then disables it.

    Once every call that was in flight when the disable arrived has finished,
    every call must fail.
    """
    new = manager.create_key(org(), "billing sync")
    key_id, renames = new.key.key_id, 15
    updates = 0
    revoked = threading.Event()
    revoked_at = math.inf

    def on_event(event: KeyEvent) -> None:
        nonlocal updates, revoked_at
        if event.key_id == key_id and event.action == "updated":
            updates += 1
            if updates == renames + 1:  # the feed keeps order: this one is the disable
                revoked_at = time.perf_counter()
                revoked.set()

    unsubscribe = reader.subscribe(on_event)
    calls: list[list[tuple[float, float, bool]]] = [[] for _ in range(3)]
    stop = threading.Event()

    def hammer(mine: list[tuple[float, float, bool]]) -> None:
        while not stop.is_set():
            start = time.perf_counter()
            ok = accepts(verifier, new.token)
            mine.append((start, time.perf_counter(), ok))

    def settled() -> float | None:
        """When the last call in flight at the revocation ended, once every thread is past it."""
        if not all(any(start > revoked_at for start, _, _ in list(mine)) for mine in calls):
            return None
        return max(end for mine in calls for start, end, _ in list(mine) if start <= revoked_at)

    def started_after(when: float) -> list[bool]:
        return [ok for mine in calls for start, _, ok in list(mine) if start > when]

    threads = [threading.Thread(target=hammer, args=(mine,)) for mine in calls]
    for t in threads:
        t.start()
    for i in range(renames):  # each rename invalidates: refills race with what follows
        manager.rename_key(key_id, f"billing sync {i}")
    manager.disable_key(key_id)
    assert revoked.wait(10)
    # No fixed sleep: on a loaded machine an in-flight call can outlast any
    # pause. Hammer on until every thread is past the revocation and five
    # calls have started after the last in-flight one ended.
    assert wait_until(lambda: settled() is not None), "a thread never got past the revocation"
    settled_at = settled()
    assert settled_at is not None
    assert wait_until(lambda: len(started_after(settled_at)) >= 5), (
        "no call started after the revocation settled"
    )
    stop.set()
    for t in threads:
        t.join()
    unsubscribe()
    after = started_after(settled_at)
    assert not any(after), "a revoked key was accepted again"


class PropagationContract:
    """A change made through ``writer`` reaches ``reader``'s verifiers, never too early or late.

    Subclasses provide the ``writer`` and ``reader`` fixtures.
    """

    #: Rounds of :func:`hammer_round` (each renames a key 15 times, then disables it).
    hammer_rounds = 2

    def test_a_remote_disable_drops_a_warm_cache_entry(self, writer: Any, reader: Any) -> None:
        new = KeyManager(writer).create_key(org(), "billing sync")
        verifier = Verifier(reader, cache_ttl=60)
        assert wait_until(lambda: accepts(verifier, new.token))
        KeyManager(writer).disable_key(new.key.key_id)
        assert wait_until(lambda: not accepts(verifier, new.token))

    def test_a_remote_role_change_reaches_a_warm_cache(self, writer: Any, reader: Any) -> None:
        o = org()
        manager = KeyManager(writer)
        manager.put_role(o, "editor", ["drive:write"])
        new = manager.create_key(o, "cms sync", roles=["editor"])
        verifier = Verifier(reader, cache_ttl=3600)

        def writes() -> bool:
            try:
                verifier.verify_token(new.token, required_scopes=["drive:write"])
            except InsufficientScope:
                return False
            return True

        assert wait_until(writes)
        manager.put_role(o, "editor", ["drive:read"])
        assert wait_until(lambda: not writes())

    def test_a_remote_legacy_switch_reaches_a_warm_cache(self, writer: Any, reader: Any) -> None:
        o = org()
        manager = KeyManager(writer, password_hasher=cheap_hasher())
        manager.import_legacy_key(o, "old-secret")
        verifier = Verifier(reader, cache_ttl=3600, password_hasher=cheap_hasher())

        def accepted() -> bool:
            try:
                verifier.verify_legacy(o, "old-secret")
            except LegacyDisabled:
                return False
            return True

        assert wait_until(accepted)
        manager.disable_legacy(o)
        assert wait_until(lambda: not accepted())

    def test_remote_events_arrive_only_after_the_write_is_visible(
        self, writer: Any, reader: Any
    ) -> None:
        manager = KeyManager(writer)
        keys = [manager.create_key(org(), f"sync job {i}").key.key_id for i in range(30)]
        seen: dict[str, bool] = {}
        done = threading.Event()

        def on_event(event: KeyEvent) -> None:  # on the feed's thread
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

    # -- racing fills ------------------------------------------------------------
    def test_a_fill_racing_a_remote_revocation_is_discarded(self, writer: Any, reader: Any) -> None:
        new = KeyManager(writer).create_key(org(), "billing sync")
        slow = SlowReads(reader)
        verifier = Verifier(slow, cache_ttl=60)
        release_on_revocation(slow, new.key.key_id)
        in_flight = threading.Thread(target=verifier.verify_token, args=(new.token,))
        in_flight.start()
        assert slow.read_done.wait(5)  # it read "enabled"...
        KeyManager(writer).disable_key(new.key.key_id)  # ...then another process disabled it
        in_flight.join(10)
        assert len(verifier.cache) == 0  # the stale fill was not cached
        with pytest.raises(KeyDisabled):
            verifier.verify_token(new.token)

    @pytest.mark.anyio
    async def test_an_async_fill_racing_a_remote_revocation_is_discarded(
        self, writer: Any, reader: Any
    ) -> None:
        manager = KeyManager(writer)
        new = await anyio.to_thread.run_sync(manager.create_key, org(), "billing sync")
        slow = SlowReads(reader)
        verifier = AsyncVerifier(slow, cache_ttl=60)
        release_on_revocation(slow, new.key.key_id)
        async with anyio.create_task_group() as tg:
            tg.start_soon(verifier.verify_token, new.token)
            await anyio.to_thread.run_sync(slow.read_done.wait, 5)
            await anyio.to_thread.run_sync(manager.disable_key, new.key.key_id)
        assert len(verifier.cache) == 0
        with pytest.raises(KeyDisabled):
            await verifier.verify_token(new.token)
        await reader.aclose()

    def test_hammering_fills_around_remote_revocations_never_resurrects_a_key(
        self, writer: Any, reader: Any
    ) -> None:
        """Threads verify non-stop while another process renames the key (each rename
        invalidates, forcing refills) and then disables it. Once every call that was
        in flight when the disable arrived has finished, every call must fail.

        A smoke test: the window it probes is narrow. The two tests above pin the
        same ordering deterministically.
        """
        manager = KeyManager(writer)
        verifier = Verifier(reader, cache_ttl=60)
        for _ in range(self.hammer_rounds):
            hammer_round(manager, reader, verifier)
        assert accepts(verifier, manager.create_key(org(), "still works").token)

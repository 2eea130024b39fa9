"""Revocation-propagation helpers shared by the Redis and PostgreSQL suites.

A *reader* store has a change feed; a *writer* store (another process, as
far as the reader can tell) changes keys. The helpers stall a verifier's
look-up between its read and its cache fill, and hammer a verifier while
the writer renames and then disables a key.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import anyio.to_thread

from scout_auth import KeyEvent, KeyManager, Verifier
from scout_auth.exceptions import KeyDisabled
from tests.stores.contract import org


def wait_until(predicate, timeout: float = 15.0) -> bool:
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

    def __init__(self, store: Any) -> None:
        self.store = store
        self.read_done = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def get_key(self, key_id: str):
        record = self.store.get_key(key_id)
        self.read_done.set()
        self.release.wait(10)
        return record

    async def aget_key(self, key_id: str):
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

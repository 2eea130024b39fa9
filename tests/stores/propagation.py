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
    calls: list[tuple[float, float, bool]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            ok = accepts(verifier, new.token)
            calls.append((start, time.perf_counter(), ok))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(renames):  # each rename invalidates: refills race with what follows
        manager.rename_key(key_id, f"billing sync {i}")
    manager.disable_key(key_id)
    assert revoked.wait(10)
    time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    unsubscribe()
    settled = max(end for start, end, _ in calls if start <= revoked_at)
    after = [ok for start, _, ok in calls if start > settled]
    assert after, "no call started after the revocation settled"
    assert not any(after), "a revoked key was accepted again"

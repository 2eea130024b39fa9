"""Concurrent lifecycle operations from many clients leave a consistent store.

Several stores (separate engines and pools: separate "clients") run a shuffled
plan of rotate / rename / disable / enable / delete against a few keys at once,
from threads (sync API) and from tasks (async API). Afterwards:

* a rotation that returned the old key inserted its successor; one that
  returned ``None`` inserted nothing (no successor for a key deleted meanwhile);
* the old key's expiry is the minimum of every successful rotation's grace end
  (no rotation, rename or disable overwrote another's write: no lost update);
* at most one delete succeeded, and then the key is gone for good (no key both
  deleted and enabled), and the deleted record reflects every rotation that
  succeeded (they all had to commit before the delete);
* every record a write returned shows that write's own change (it was read in
  the write's transaction).

A read-then-write ``rotate_key`` (SELECT, compute the expiry in Python,
UPDATE) fails this test on all three back ends, from threads and from tasks.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest

from scout_auth import KeyRecord
from scout_auth.stores import KeyUpdate
from scout_auth.stores.sql import SQLKeyStore
from scout_auth.testing._store import T0, org, record

CLIENTS = 4
WORKERS = 16
KEYS = 4
OPS_PER_KEY = {"rotate": 16, "rename": 8, "disable": 4, "enable": 4, "delete": 2}


@dataclass(frozen=True)
class Step:
    key: KeyRecord
    kind: str
    new: KeyRecord | None = None
    grace: datetime | None = None
    name: str | None = None

    def call(self, store: Any, prefix: str = "") -> Any:
        if self.kind == "rotate":
            return getattr(store, prefix + "rotate_key")(self.key.key_id, self.new, self.grace)
        if self.kind == "delete":
            return getattr(store, prefix + "delete_key")(self.key.key_id)
        update = {
            "rename": KeyUpdate(name=self.name),
            "disable": KeyUpdate(enabled=False),
            "enable": KeyUpdate(enabled=True),
        }[self.kind]
        return getattr(store, prefix + "update_key")(self.key.key_id, update)


def make_plan(seed: int) -> tuple[list[KeyRecord], list[Step]]:
    rng = random.Random(seed)
    keys = [record(org(), name="original") for _ in range(KEYS)]
    steps: list[Step] = []
    for key in keys:
        for kind, count in OPS_PER_KEY.items():
            for i in range(count):
                steps.append(
                    Step(
                        key,
                        kind,
                        new=record(key.org_id, name="successor") if kind == "rotate" else None,
                        grace=T0 + timedelta(minutes=rng.randrange(1, 10_000)),
                        name=f"name-{i}-{rng.randrange(10**6)}",
                    )
                )
    rng.shuffle(steps)
    return keys, steps


def check(store: SQLKeyStore, keys: list[KeyRecord], steps: list[Step], results: list[Any]):
    for key in keys:
        mine = [(s, r) for s, r in zip(steps, results, strict=True) if s.key is key]
        rotated = [(s, r) for s, r in mine if s.kind == "rotate"]
        done = [s for s, r in rotated if r is not None]
        for step, result in rotated:
            if result is None:
                assert store.get_key(step.new.key_id) is None  # type: ignore[union-attr]
                continue
            assert result.key_id == key.key_id
            assert result.replaced_by == step.new.key_id  # type: ignore[union-attr]
            assert result.expires_at <= step.grace
            assert store.get_key(step.new.key_id) == step.new  # type: ignore[union-attr]
        for step, result in mine:
            if result is None or step.kind in ("rotate", "delete"):
                continue
            assert result.key_id == key.key_id
            if step.kind == "rename":
                assert result.name == step.name
            else:
                assert result.enabled is (step.kind == "enable")

        expected_expiry = min((s.grace for s in done), default=None)  # type: ignore[type-var]
        successors = {s.new.key_id for s in done}  # type: ignore[union-attr]
        names = {s.name for s, r in mine if s.kind == "rename" and r is not None} | {"original"}
        deleted = [r for s, r in mine if s.kind == "delete" and r is not None]
        assert len(deleted) <= 1
        final = store.get_key(key.key_id)
        if deleted:
            assert final is None
            state = deleted[0]
        else:
            assert final is not None
            state = final
        assert state.expires_at == expected_expiry
        assert state.replaced_by in successors | ({None} if not done else set())
        assert state.name in names
        listed = {k.key_id for k in store.list_keys(key.org_id)}
        assert listed == successors | ({key.key_id} if not deleted else set())


def _stores(url: str) -> list[SQLKeyStore]:
    return [SQLKeyStore(url, statement_timeout=30) for _ in range(CLIENTS)]


def test_concurrent_lifecycle_from_threads(sql_url):
    keys, steps = make_plan(seed=1)
    stores = _stores(sql_url)
    for key in keys:
        stores[0].add_key(key)
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(step.call, stores[i % CLIENTS]) for i, step in enumerate(steps)]
        results = [f.result() for f in futures]
    check(stores[0], keys, steps, results)
    for store in stores:
        store.close()


@pytest.mark.anyio
async def test_concurrent_lifecycle_from_tasks(sql_url):
    keys, steps = make_plan(seed=2)
    stores = _stores(sql_url)
    for key in keys:
        await stores[0].aadd_key(key)
    results: list[Any] = [None] * len(steps)
    limiter = anyio.CapacityLimiter(WORKERS)

    async def run(i: int, step: Step) -> None:
        async with limiter:
            results[i] = await step.call(stores[i % CLIENTS], prefix="a")

    async with anyio.create_task_group() as tg:
        for i, step in enumerate(steps):
            tg.start_soon(run, i, step)
    check(stores[0], keys, steps, results)
    for store in stores:
        await store.aclose()

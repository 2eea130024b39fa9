"""Cold look-ups on the Redis store (one server and a Redis Cluster) beside their floor.

"Cold" means the verifier's cache does not have the credential: the
request pays the store look-up and, for a full verification, the Ed25519
public-key check. The *floor* is one raw ``HGETALL`` of a random existing
key record, sent with the same client the store uses (sync redis-py, and
the async one): what a look-up costs if it knew where the record is and did
nothing else. A look-up is one round trip: the ``get_key`` script reads the
directory and the record, on one server, and on a cluster for key ids
minted into their org's slot (every key the store creates). On a cluster,
``get_key (old random id)`` reads keys whose ids were random (as before
the store minted them): their record is in another slot, usually on
another node, so two round trips.

The store is O(1) in the number of keys, so the 1M/1k ratio should be ~1.
Every key set is loaded first, each under a prefix of its own, then
measured *interleaved*: every round takes one sample of every (target,
size, measurement) triple in a shuffled order, so a busy machine slows all
alike and the ratios do not follow its drift (as ``sql_lookup.py`` does).
Ratios are only compared within one run; the load average is printed.

Keys are loaded fast with pipelining in exactly the layout the store
writes (same codec); a sample of real keys is created through
``KeyManager`` so full verifications have tokens. Everything is deleted
afterwards.

    python -m benchmarks.redis_lookup [--url redis://127.0.0.1:6379/15]
        [--cluster-url redis+cluster://127.0.0.1:7101/] [--quick]
        [--sizes 1000 1000000] [--cluster-size 10000] [--samples 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import redis

from benchmarks._stats import header, percentile, row
from scout_auth import AsyncVerifier, KeyManager, KeyRecord, Verifier, generate_key_id
from scout_auth.stores.redis import RedisKeyStore, key_fields

REAL_KEYS = 1000
SAMPLES = 5000
KEYS_PER_ORG = 10


# Writes keys in exactly the store's layout, server-side, a batch per call:
# ARGV prefix, first index, count, keys per org, then a template record's
# HSET pairs (key_id / org_id values are replaced per key). Key names follow
# Layout (the synthetic ids and orgs contain nothing that needs escaping).
_BULK_LOAD = """
local prefix, per_org = ARGV[1], tonumber(ARGV[4])
local first, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local created
for i = 1, #fields, 2 do if fields[i] == 'created_at' then created = fields[i + 1] end end
for n = first, first + count - 1 do
  local kid = string.format('bulk%016d', n)
  local org = 'org_bulk_' .. math.floor(n / per_org)
  for i = 1, #fields, 2 do
    if fields[i] == 'key_id' then fields[i + 1] = kid end
    if fields[i] == 'org_id' then fields[i + 1] = org end
  end
  redis.call('SET', prefix .. ':{k:' .. kid .. '}', org)
  redis.call('HSET', prefix .. ':{o:' .. org .. '}:key:' .. kid, unpack(fields))
  redis.call('ZADD', prefix .. ':{o:' .. org .. '}:keys', 0, created .. ' ' .. kid)
end
return count
"""
BATCH = 20_000  # keeps each call short (~0.1 s) on a shared server


OLD_IDS = 1000  # on a cluster: keys with random ids, not in their org's slot


def load(client: redis.Redis, store: RedisKeyStore, count: int) -> list[str]:
    """Write ``count`` synthetic keys in the store's layout; return their ids.

    On one server a script per batch; on a cluster (whose keys are in many
    slots) pipelined commands, which the cluster client splits by node, with
    ids minted as the store mints them, but the last :data:`OLD_IDS` random.
    """
    template = KeyRecord(
        key_id="x",
        org_id="x",
        name="bulk",
        public_key=os.urandom(32),
        enabled=True,
        created_at=datetime.now(UTC),
    )
    if not isinstance(client, redis.RedisCluster):
        ids = [f"bulk{n:016d}" for n in range(count)]
        loader = client.register_script(_BULK_LOAD)
        for first in range(0, count, BATCH):
            n = min(BATCH, count - first)
            loader(args=[store.layout.prefix, first, n, KEYS_PER_ORG, *key_fields(template)])
        return ids
    layout = store.layout
    ids = [
        store.new_key_id(bulk_org(n)) if n < count - OLD_IDS else generate_key_id()
        for n in range(count)
    ]
    for first in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for n in range(first, min(first + 1000, count)):
            kid, org = ids[n], bulk_org(n)
            rec = KeyRecord(
                key_id=kid,
                org_id=org,
                name="bulk",
                public_key=template.public_key,
                enabled=True,
                created_at=template.created_at,
            )
            pipe.set(layout.directory(kid), org)
            pipe.hset(layout.key(org, kid), mapping=dict(_pairs(key_fields(rec))))
            pipe.zadd(layout.index(org), {f"{rec.created_at.isoformat()} {kid}": 0})
        pipe.execute()
    return ids


def bulk_org(n: int) -> str:
    """The org of synthetic key ``n`` (as ``_BULK_LOAD`` names it)."""
    return f"org_bulk_{n // KEYS_PER_ORG}"


def _pairs(flat: list[str]) -> zip[tuple[str, str]]:
    return zip(flat[::2], flat[1::2], strict=True)


def cleanup(client: redis.Redis, prefix: str) -> None:
    names = []
    for name in client.scan_iter(match=f"{prefix}:*", count=10_000):
        names.append(name)
        if len(names) >= 1_000:
            if isinstance(client, redis.RedisCluster):  # names of many slots
                pipe = client.pipeline(transaction=False)
                for n in names:
                    pipe.unlink(n)
                pipe.execute()
            else:
                client.unlink(*names)
            names = []
    for n in names:
        client.unlink(n)


Sync = Callable[[], object]
Async = Callable[[], Awaitable[object]]
Measure = tuple[str, Sync | None, Async | None]


def prepare(
    client: redis.Redis, url: str, size: int
) -> tuple[RedisKeyStore, list[Measure], AsyncVerifier]:
    """A store holding ``size`` keys, and what to time on it (one sample per call)."""
    prefix = f"scout_bench_{uuid.uuid4().hex[:8]}"
    store = RedisKeyStore.from_url(url, prefix=prefix, listen=False)
    cluster = isinstance(client, redis.RedisCluster)
    mem_before = 0 if cluster else client.info("memory")["used_memory"]
    started = time.perf_counter()
    real = [
        KeyManager(store).create_key(f"org_real_{i % 50}", "bench sync")
        for i in range(min(REAL_KEYS, size))
    ]
    bulk = load(client, store, size - len(real))
    loaded = time.perf_counter() - started
    memory = ""
    if not cluster:
        per_key = (client.info("memory")["used_memory"] - mem_before) / size
        memory = f"  (~{per_key:.0f} B of Redis memory each)"
    kind = "cluster" if cluster else "one server"
    print(f"{kind:>10} {size:>9,} keys loaded in {loaded:5.1f} s{memory}")
    every = [n.key.key_id for n in real] + bulk
    orgs = [n.key.org_id for n in real] + [bulk_org(i) for i in range(len(bulk))]
    names = [store.layout.key(o, k) for o, k in zip(orgs, every, strict=True)]
    old = bulk[-OLD_IDS:] if cluster else []
    ids = every[: len(every) - len(old)]
    tokens = [n.token for n in real]
    rng = random.Random(size)
    # Every verification is cold; org tokens only, so no legacy pepper is needed.
    verifier = Verifier(store, cache_ttl=0, legacy_bearer=False)
    averifier = AsyncVerifier(store, cache_ttl=0, legacy_bearer=False)
    for n in real[:50]:  # warm up connections and script caches
        verifier.verify_token(n.token)
    sync = store.connection.sync

    async def floor_async() -> object:
        return await store.connection.async_client().hgetall(rng.choice(names))

    return (
        store,
        [
            ("floor: one HGETALL", lambda: sync.hgetall(rng.choice(names)), floor_async),
            (
                "get_key (existing)",
                lambda: store.get_key(rng.choice(ids)),
                lambda: store.aget_key(rng.choice(ids)),
            ),
            *(
                [
                    (
                        "get_key (old random id)",
                        lambda: store.get_key(rng.choice(old)),
                        lambda: store.aget_key(rng.choice(old)),
                    )
                ]
                if old
                else []
            ),
            (
                "get_key (unknown id)",
                lambda: store.get_key(generate_key_id()),
                lambda: store.aget_key(generate_key_id()),
            ),
            (
                "verify_token (cold, Ed25519)",
                lambda: verifier.verify_token(rng.choice(tokens)),
                lambda: averifier.verify_token(rng.choice(tokens)),
            ),
        ],
        averifier,
    )


Plan = tuple[str, str, int, str]  # target, sync/async, size, label


def measure(
    plans: dict[tuple[str, int], list[Measure]], samples: int, loop: asyncio.AbstractEventLoop
) -> dict[Plan, list[float]]:
    """``samples`` rounds; each times every (target, size, measurement, mode) once, shuffled.

    An async sample is timed inside its coroutine, so the event loop's own
    start-up per sample is not in it (nor in the floor's).
    """
    timings: dict[Plan, list[float]] = {}
    order: list[tuple[Plan, Sync | None, Async | None]] = []
    for (target, size), plan in plans.items():
        for label, fn, afn in plan:
            if fn is not None:
                order.append(((target, "sync", size, label), fn, None))
            if afn is not None:
                order.append(((target, "async", size, label), None, afn))
    for key, _, _ in order:
        timings[key] = []

    async def timed(afn: Async) -> float:
        start = time.perf_counter()
        await afn()
        return time.perf_counter() - start

    for _ in range(50):  # warm up the async clients (one per loop) and script caches
        for _, _, afn in order:
            if afn is not None:
                loop.run_until_complete(timed(afn))
    rng = random.Random(42)
    for _ in range(samples):
        rng.shuffle(order)
        for key, fn, afn in order:
            if fn is not None:
                start = time.perf_counter()
                fn()
                timings[key].append(time.perf_counter() - start)
            else:
                assert afn is not None
                timings[key].append(loop.run_until_complete(timed(afn)))
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description="cold look-ups on the Redis store")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--cluster-url",
        default="redis+cluster://127.0.0.1:7101/",
        help="a Redis Cluster to measure too; '' for none",
    )
    parser.add_argument("--quick", action="store_true", help="1k and 100k keys")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--cluster-size", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args()
    sizes = args.sizes or [1_000, 100_000 if args.quick else 1_000_000]
    started = time.monotonic()
    targets: list[tuple[str, str, Any, list[int]]] = [
        ("one server", args.url, redis.Redis.from_url(args.url), sizes)
    ]
    if args.cluster_url:
        plain = args.cluster_url.replace("redis+cluster://", "redis://", 1)
        cluster_client = redis.RedisCluster.from_url(plain.split(",")[0])
        targets.append(("cluster", args.cluster_url, cluster_client, [args.cluster_size]))
    stores: list[tuple[redis.Redis, RedisKeyStore]] = []
    loop = asyncio.new_event_loop()
    load_before = os.getloadavg()
    try:
        plans: dict[tuple[str, int], list[Measure]] = {}
        for target, url, client, target_sizes in targets:
            for size in target_sizes:
                store, plan, _ = prepare(client, url, size)
                stores.append((client, store))
                plans[(target, size)] = plan
        load_start = os.getloadavg()
        results = measure(plans, args.samples, loop)
        load_end = os.getloadavg()
    finally:
        for client, store in stores:
            store.close()
            cleanup(client, store.layout.prefix)
        for _, _, client, _ in targets:
            client.close()
        loop.close()
    print(
        f"\ncold look-ups, {args.samples} samples each, interleaved, loopback; "
        f"load average (1, 5, 15 min) at start {_load(load_start)}, at end {_load(load_end)}"
        f" (before loading {_load(load_before)})"
    )
    print(header("µs", width=62))
    for (target, mode, size, label), values in results.items():
        print(row(f"{target:<10} {mode:<5} {size:>9,}  {label}", values, unit=1e6, width=62))
    print("\nratios to the floor (one raw HGETALL, same client, same run), p50 / p99")
    for (target, mode, size, label), values in results.items():
        if label.startswith("floor"):
            continue
        floor = results[(target, mode, size, "floor: one HGETALL")]
        p50 = percentile(values, 50) / percentile(floor, 50)
        p99 = percentile(values, 99) / percentile(floor, 99)
        print(f"{target:<10} {mode:<5} {size:>9,}  {label:<30} x{p50:.2f} / x{p99:.2f}")
    small, large = min(sizes), max(sizes)
    if small != large:
        print()
        for (target, mode, size, label), values in results.items():
            if target != "one server" or size != small:
                continue
            big = results[(target, mode, large, label)]
            p50 = percentile(big, 50) / percentile(values, 50)
            p99 = percentile(big, 99) / percentile(values, 99)
            print(f"{large:,}/{small:,} {mode:<5} {label:<30} p50 x{p50:.2f}  p99 x{p99:.2f}")
    print(f"runtime {time.monotonic() - started:.0f} s")
    return 0


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())

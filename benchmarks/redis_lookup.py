"""Cold look-ups on the Redis store with 1k and 1M keys.

"Cold" means the verifier's cache does not have the credential: the
request pays the store look-up (directory GET + record HGETALL, two round
trips) and, for a full verification, the Ed25519 public-key check. The
store is O(1) in the number of keys, so the 1M/1k ratio should be ~1.

Both key sets are loaded first, each under a prefix of its own in the same
database, then measured *interleaved*: every round takes one sample of
every (size, measurement) pair in a shuffled order, so a busy machine slows
both sizes alike and the ratio does not follow its drift (as
``sql_lookup.py`` does). Ratios are only compared within one run.

Keys are loaded fast with pipelining in exactly the layout the store
writes (same codec); a sample of real keys is created through
``KeyManager`` so full verifications have tokens. Everything is deleted
afterwards.

    python -m benchmarks.redis_lookup [--url redis://127.0.0.1:6379/15] [--quick]
        [--sizes 1000 1000000] [--samples 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from benchmarks._stats import header, percentile, row
from scout_auth import KeyManager, KeyRecord, Verifier, generate_key_id
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


def load(client: redis.Redis, store: RedisKeyStore, count: int) -> list[str]:
    """Write ``count`` synthetic keys in the store's layout; return their ids."""
    template = KeyRecord(
        key_id="x",
        org_id="x",
        name="bulk",
        public_key=os.urandom(32),
        enabled=True,
        created_at=datetime.now(UTC),
    )
    loader = client.register_script(_BULK_LOAD)
    for first in range(0, count, BATCH):
        n = min(BATCH, count - first)
        loader(args=[store.layout.prefix, first, n, KEYS_PER_ORG, *key_fields(template)])
    return [f"bulk{n:016d}" for n in range(count)]


def cleanup(client: redis.Redis, prefix: str) -> None:
    names = []
    for name in client.scan_iter(match=f"{prefix}:*", count=10_000):
        names.append(name)
        if len(names) >= 10_000:
            client.unlink(*names)
            names = []
    if names:
        client.unlink(*names)


Measure = tuple[str, Callable[[], object]]


def prepare(client: redis.Redis, url: str, size: int) -> tuple[RedisKeyStore, list[Measure]]:
    """A store holding ``size`` keys, and what to time on it (one sample per call)."""
    prefix = f"scout_bench_{uuid.uuid4().hex[:8]}"
    store = RedisKeyStore.from_url(url, prefix=prefix, listen=False)
    mem_before = client.info("memory")["used_memory"]
    started = time.perf_counter()
    real = [
        KeyManager(store).create_key(f"org_real_{i % 50}", "bench sync")
        for i in range(min(REAL_KEYS, size))
    ]
    bulk = load(client, store, size - len(real))
    loaded = time.perf_counter() - started
    per_key = (client.info("memory")["used_memory"] - mem_before) / size
    print(f"{size:>9,} keys loaded in {loaded:5.1f} s  (~{per_key:.0f} B of Redis memory each)")
    ids = [n.key.key_id for n in real] + bulk
    tokens = [n.token for n in real]
    rng = random.Random(size)
    # Every verification is cold; org tokens only, so no legacy pepper is needed.
    verifier = Verifier(store, cache_ttl=0, legacy_bearer=False)
    for n in real[:50]:  # warm up connections and script caches
        verifier.verify_token(n.token)
    return store, [
        ("get_key (existing)", lambda: store.get_key(rng.choice(ids))),
        ("get_key (unknown id)", lambda: store.get_key(generate_key_id())),
        ("verify_token (cold, Ed25519)", lambda: verifier.verify_token(rng.choice(tokens))),
    ]


def measure(plans: dict[int, list[Measure]], samples: int) -> dict[int, dict[str, list[float]]]:
    """``samples`` rounds; each times every (size, measurement) once, in a shuffled order."""
    timings: dict[int, dict[str, list[float]]] = {
        size: {label: [] for label, _ in plan} for size, plan in plans.items()
    }
    order = [(size, label, fn) for size, plan in plans.items() for label, fn in plan]
    rng = random.Random(42)
    for _ in range(samples):
        rng.shuffle(order)
        for size, label, fn in order:
            start = time.perf_counter()
            fn()
            timings[size][label].append(time.perf_counter() - start)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description="cold look-ups on the Redis store")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--quick", action="store_true", help="1k and 100k keys")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args()
    sizes = args.sizes or [1_000, 100_000 if args.quick else 1_000_000]
    started = time.monotonic()
    client = redis.Redis.from_url(args.url)
    stores: list[RedisKeyStore] = []
    try:
        plans = {}
        for size in sizes:
            store, plan = prepare(client, args.url, size)
            stores.append(store)
            plans[size] = plan
        results = measure(plans, args.samples)
    finally:
        for store in stores:
            store.close()
            cleanup(client, store.layout.prefix)
        client.close()
    print(f"\ncold look-ups, {args.samples} samples each, interleaved, sync client on loopback")
    print(header("µs", width=44))
    for size, series in results.items():
        for label, values in series.items():
            print(row(f"{size:>9,} keys  {label}", values, unit=1e6, width=44))
    small, large = min(sizes), max(sizes)
    if small != large:
        print()
        for label in results[small]:
            p50 = percentile(results[large][label], 50) / percentile(results[small][label], 50)
            p99 = percentile(results[large][label], 99) / percentile(results[small][label], 99)
            print(f"{large:,}/{small:,} ratio  {label:<30} p50 x{p50:.2f}  p99 x{p99:.2f}")
    print(f"runtime {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

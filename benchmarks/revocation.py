"""How fast does a revocation reach every instance of a service?

Starts real processes on 127.0.0.1: two instances of the example Starlette
API (uvicorn, ``AsyncVerifier``, a ``RedisKeyStore`` or, with ``--store
postgres``, a ``SQLKeyStore`` on PostgreSQL) and an admin process with a
``KeyManager`` on its own store. Per trial it creates a key, warms
both instances' caches with it, polls both instances non-stop, disables
(or deletes) the key through the admin, and records per instance the time
from sending the command to the first 401.

Two modes:

* ``change feed`` — listeners on, ``cache_ttl=60``: the feed (Redis pub/sub,
  PostgreSQL ``LISTEN``/``NOTIFY``) does the work. Target: p99 <= 250 ms.
* ``feed cut`` — instances run with the listener disabled (``--no-listen``)
  and ``cache_ttl=2``: only the TTL ends the cached entry. Target: every
  latency <= TTL (plus polling slack). Trials run in batches (each waits
  out the TTL).

    python -m benchmarks.revocation [--store redis] [--url redis://127.0.0.1:6379/15] [--trials 100]
    python -m benchmarks.revocation --store postgres [--url postgresql+psycopg://...]

Redis keys live under a scratch prefix, PostgreSQL tables in a scratch
schema (with a channel of the same name); both are removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import Iterator

from benchmarks._stats import header, percentile, row
from tests.fleet import Fleet, Trial, revoke_and_time

TARGET_FEED_P99 = 0.250
DEFAULT_URLS = {
    "redis": "redis://127.0.0.1:6379/15",
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
}


def _run_mode(
    url: str, namespace: str, *, listen: bool, ttl: float, trials: int, batch: int
) -> dict[str, list[Trial]]:
    results: dict[str, list[Trial]] = {}
    with Fleet(url, namespace, instances=2, cache_ttl=ttl, listen=listen) as fleet:
        for action in ("disable", "delete"):
            done: list[Trial] = []
            while len(done) < trials:
                keys = min(batch, trials - len(done))
                done += revoke_and_time(
                    fleet, action, keys=keys, org=f"org_bench_{action}", timeout=ttl + 30
                )
            results[action] = done
    return results


def _report(title: str, results: dict[str, list[Trial]]) -> list[float]:
    print(f"\n== {title}")
    print(header("ms"))
    everything: list[float] = []
    for action, trials in results.items():
        samples = [lat for t in trials for lat in t.latencies]
        everything += samples
        print(row(f"{action} (both instances)", samples))
        for i in range(len(trials[0].latencies)):
            print(row(f"  {action}, instance {i + 1}", [t.latencies[i] for t in trials]))
    print(row("all", everything))
    return everything


@contextlib.contextmanager
def _redis_scratch(url: str, name: str) -> Iterator[tuple[str, str]]:
    """``(url, prefix)``; the prefix's keys are deleted afterwards."""
    import redis

    try:
        yield url, name
    finally:
        client = redis.Redis.from_url(url)
        names = list(client.scan_iter(match=f"{name}:*", count=1000))
        for start in range(0, len(names), 1000):
            client.unlink(*names[start : start + 1000])
        client.close()


@contextlib.contextmanager
def _postgres_scratch(url: str, name: str) -> Iterator[tuple[str, str]]:
    """``(url in a migrated scratch schema, channel)``; the schema is dropped afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from scout_auth.stores.sql import upgrade

    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
        scoped_url = scoped.render_as_string(hide_password=False)
        upgrade(scoped_url)
        yield scoped_url, f"{name}_events"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description="revocation latency across a fleet")
    parser.add_argument("--store", choices=sorted(DEFAULT_URLS), default="redis")
    parser.add_argument("--url", help="default: the local test server of --store")
    parser.add_argument("--trials", type=int, default=100, help="per action and mode")
    parser.add_argument("--cut-ttl", type=float, default=2.0)
    parser.add_argument("--cut-batch", type=int, default=25)
    args = parser.parse_args()
    url = args.url or DEFAULT_URLS[args.store]
    scratch = _redis_scratch if args.store == "redis" else _postgres_scratch
    started = time.monotonic()
    with scratch(url, f"scout_bench_{uuid.uuid4().hex[:8]}") as (store_url, namespace):
        feed = _run_mode(store_url, namespace, listen=True, ttl=60.0, trials=args.trials, batch=1)
        cut = _run_mode(
            store_url,
            namespace,
            listen=False,
            ttl=args.cut_ttl,
            trials=args.trials,
            batch=args.cut_batch,
        )
    channel = "Redis pub/sub" if args.store == "redis" else "PostgreSQL LISTEN/NOTIFY"
    print(
        f"revocation latency ({args.store}): 2 instances, {args.trials} trials per action and "
        "mode (one sample per instance per trial), from sending the change to the first 401"
    )
    feed_all = _report(f"change feed ({channel}, cache_ttl=60 s)", feed)
    cut_all = _report(f"feed cut (listener off, cache_ttl={args.cut_ttl:g} s)", cut)
    feed_p99 = percentile(feed_all, 99)
    print(
        f"\nchange feed p99 {feed_p99 * 1e3:.1f} ms  (target <= {TARGET_FEED_P99 * 1e3:.0f} ms: "
        f"{'met' if feed_p99 <= TARGET_FEED_P99 else 'MISSED'})"
    )
    print(
        f"feed cut max {max(cut_all):.3f} s  (bound: TTL {args.cut_ttl:g} s + polling slack: "
        f"{'met' if max(cut_all) <= args.cut_ttl + 0.25 else 'MISSED'})"
    )
    print(f"runtime {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

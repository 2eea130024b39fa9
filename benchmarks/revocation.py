"""How fast does a revocation reach every instance of a service?

Starts real processes on 127.0.0.1: two instances of the example Starlette
API (uvicorn, ``RedisKeyStore``, ``AsyncVerifier``) and an admin process
with a ``KeyManager`` on its own store. Per trial it creates a key, warms
both instances' caches with it, polls both instances non-stop, disables
(or deletes) the key through the admin, and records per instance the time
from sending the command to the first 401.

Two modes:

* ``change feed`` — listeners on, ``cache_ttl=60``: the feed does the work.
  Target: p99 <= 250 ms.
* ``feed cut`` — instances run with the listener disabled (``--no-listen``)
  and ``cache_ttl=2``: only the TTL ends the cached entry. Target: every
  latency <= TTL (plus polling slack). Trials run in batches (each waits
  out the TTL).

    python -m benchmarks.revocation [--url redis://127.0.0.1:6379/15] [--trials 100]
"""

from __future__ import annotations

import argparse
import time
import uuid

import redis

from benchmarks._stats import header, percentile, row
from tests.fleet import Fleet, Trial, revoke_and_time

TARGET_FEED_P99 = 0.250


def _run_mode(
    url: str, prefix: str, *, listen: bool, ttl: float, trials: int, batch: int
) -> dict[str, list[Trial]]:
    results: dict[str, list[Trial]] = {}
    with Fleet(url, prefix, instances=2, cache_ttl=ttl, listen=listen) as fleet:
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


def _cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(names), 1000):
        client.unlink(*names[start : start + 1000])
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="revocation latency across a fleet")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--trials", type=int, default=100, help="per action and mode")
    parser.add_argument("--cut-ttl", type=float, default=2.0)
    parser.add_argument("--cut-batch", type=int, default=25)
    args = parser.parse_args()
    prefix = f"scout_bench_{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        feed = _run_mode(args.url, prefix, listen=True, ttl=60.0, trials=args.trials, batch=1)
        cut = _run_mode(
            args.url,
            prefix,
            listen=False,
            ttl=args.cut_ttl,
            trials=args.trials,
            batch=args.cut_batch,
        )
    finally:
        _cleanup(args.url, prefix)
    print(
        f"revocation latency: 2 instances, {args.trials} trials per action and mode "
        "(one sample per instance per trial), from sending the change to the first 401"
    )
    feed_all = _report("change feed (listener on, cache_ttl=60 s)", feed)
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

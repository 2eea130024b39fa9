"""Memory per entry: a verifier's credential cache with 100,000 credentials, a full nonce cache.

Run::

    python -m benchmarks.memory                    # 100,000 credentials, nonce cache at 100,000
    python -m benchmarks.memory --credentials 10000 --nonces 50000
    python -m benchmarks.memory --json

What is filled:

* **credentials**: a :class:`~scout_auth.Verifier` (``cache_size`` = the
  count) holds one verified bearer credential per key: the keyed
  fingerprint, the :class:`~scout_auth.OrgContext` (org id, key id, key
  name, a 3-scope frozenset, as a store row decodes them: new string
  objects per key) and the cache's own index (``_entries``, ``_by_key``).
  Filled through ``VerifiedCache.put``, the call a cold verification ends
  with; the Ed25519 and store work before it is not what is measured.
  ``shared scopes`` repeats it with the scope sets shared between keys
  (what the SQL store's memoized decode gives: an org's keys share a few
  scope sets).
* **signed keys**: the same count of key records cached for signed
  requests (``put_record``: the record with its public key).
* **nonces**: an :class:`~scout_auth.signing.InMemoryNonceCache` filled to
  its ``max_entries`` with 32-character nonces spread over 1,000 signing
  keys (``max_per_key`` large enough for all), as ``remember`` stores them.

Each fill is measured twice: ``tracemalloc`` (bytes Python allocated and
still holds after the fill, divided by the entries) and the process's RSS
growth (``/proc/self/statm``; includes allocator slack, so higher). Target:
under 1 KiB per cached credential. Reports; always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scout_auth import InMemoryKeyStore, KeyRecord, OrgContext, Verifier
from scout_auth._core.records import CredentialKind
from scout_auth.signing import InMemoryNonceCache

TARGET = 1024
NOW = 1_700_000_000.0
SCOPE_SETS = (
    ("drive:read", "mail:read", "calendar:read"),
    ("files:write", "users:read", "drive:read"),
    ("mail:read", "mail:send", "users:read"),
)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(fill: Callable[[], object], count: int) -> dict[str, float]:
    """Bytes per entry that ``fill`` leaves behind (its result kept alive).

    Two passes: RSS without tracemalloc (whose own bookkeeping would count),
    then tracemalloc alone.
    """
    gc.collect()
    rss0 = _rss()
    kept = fill()
    gc.collect()
    rss = (_rss() - rss0) / count
    del kept
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = fill()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return {"tracemalloc": (after - before) / count, "rss": rss}


def _context(i: int, scopes: frozenset[str]) -> OrgContext:
    # New string objects per key, as a decoded store row gives them.
    return OrgContext(
        org_id="".join(["org_", f"{i // 100:06d}"]),
        key_id="".join(["kid_", f"{i:020x}"]),
        key_name="".join(["key ", str(i)]),
        scopes=scopes,
        kind=CredentialKind.ORG_CREDENTIAL,
    )


def fill_credentials(count: int, shared: bool) -> Callable[[], object]:
    def fill() -> object:
        verifier = Verifier(InMemoryKeyStore(), cache_size=count, cache_ttl=3600.0)
        cache = verifier.cache
        shared_sets = [frozenset(s) for s in SCOPE_SETS]
        for i in range(count):
            scopes = (
                shared_sets[i % 3] if shared else frozenset(list(SCOPE_SETS[i % 3]))  # a new set
            )
            token = f"scout_sk_kid_{i:020x}_{i:032x}"
            cache.put(cache.bearer_fingerprint(token), _context(i, scopes), NOW + 1e6, NOW, 0)
        assert len(cache) == count
        return verifier

    return fill


def fill_records(count: int) -> Callable[[], object]:
    def fill() -> object:
        verifier = Verifier(InMemoryKeyStore(), cache_size=count, cache_ttl=3600.0)
        created = datetime.now(UTC)
        for i in range(count):
            record = KeyRecord(
                key_id=f"kid_{i:020x}",
                org_id=f"org_{i // 100:06d}",
                name=f"key {i}",
                public_key=i.to_bytes(32, "big"),
                enabled=True,
                created_at=created,
                scopes=frozenset(SCOPE_SETS[i % 3]),
            )
            verifier.cache.put_record(record, NOW, 0)
        return verifier

    return fill


def fill_nonces(count: int) -> Callable[[], object]:
    def fill() -> object:
        cache = InMemoryNonceCache(max_entries=count, max_per_key=count, clock=lambda: NOW)
        for i in range(count):
            owner = f"kid_{i % 1000:020x}"
            assert cache.remember(f"{owner}\x00{i:032x}", 300.0, owner)
        return cache

    return fill


def measure(credentials: int, nonces: int) -> dict[str, Any]:
    results = {
        "credentials": _measure(fill_credentials(credentials, shared=False), credentials),
        "credentials, shared scopes": _measure(
            fill_credentials(credentials, shared=True), credentials
        ),
        "signed keys (records)": _measure(fill_records(credentials), credentials),
        "nonces": _measure(fill_nonces(nonces), nonces),
    }
    return {
        "credentials": credentials,
        "nonces": nonces,
        "bytes_per_entry": results,
        "target": TARGET,
        "result": "PASS" if results["credentials"]["tracemalloc"] < TARGET else "MISS",
        "loadavg": os.getloadavg(),
        "python": sys.version.split()[0],
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"memory per entry ({result['credentials']:,} credentials, "
        f"{result['nonces']:,} nonces, Python {result['python']}; "
        f"load average {' '.join(f'{x:.2f}' for x in result['loadavg'])})",
        "",
        f"  {'what':<28}{'tracemalloc B':>15}{'RSS B':>10}",
    ]
    for name, r in result["bytes_per_entry"].items():
        lines.append(f"  {name:<28}{r['tracemalloc']:>15.0f}{r['rss']:>10.0f}")
    lines.append(f"\n  target: < {result['target']} B per cached credential  {result['result']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", type=int, default=100_000)
    parser.add_argument("--nonces", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.credentials, args.nonces)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

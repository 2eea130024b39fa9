"""Cold look-up latency of the SQL key store: against the driver's floor, and with 1k and 1M keys.

**Floors** (issue 15). On one scratch database per back end (``--floor-keys``
keys, 200 of them real keys with tokens), one run times, interleaved (each
round takes one sample of every variant, in a shuffled order):

* the raw driver's round trip: the same ``SELECT`` of every column ``WHERE
  key_id = ?`` on scout_auth's own table, in autocommit, prepared where the
  driver can (psycopg ``prepare=True``; PyMySQL, sqlite3 as they come), and
  its async twin (async psycopg, asyncmy, aiosqlite);
* ``store.get_key`` / ``await store.aget_key`` for a random existing id;
* the raw round trip plus one raw Ed25519 public-key derivation from a
  seed (the floor of a cold bearer verification: it derives the token's
  public key and compares it, it verifies no signature), beside a cold
  ``Verifier.verify_token`` / ``AsyncVerifier.verify_token``
  (``cache_ttl=0``: every call reads the store; ``usage_interval=None``: no
  usage writes in between), whose ratio is printed to that floor and, second,
  to the round trip alone;

and prints p50/p99, each ratio to its floor (target <= 1.3) and the load
average.

**Sizes.**
A verifier whose cache misses asks the store for one key by id
(``store.get_key``). That query must cost the same whether the table holds a
thousand keys or a million: it is one primary-key look-up. This benchmark
fills two scratch databases per back end, one with 1k keys and one with 1M,
then times ``get_key(random existing id)`` on both *interleaved* (small,
large, small, large...), so a busy machine slows both alike, and prints
p50/p99 and the ratio 1M/1k per database (target <= 1.3: flat). Ratios are
only ever compared within one run, on one machine.

Usage::

    python -m benchmarks.sql_lookup                  # SQLite and PostgreSQL, floors, 1k and 1M
    python -m benchmarks.sql_lookup --quick          # floors, 1k and 100k
    python -m benchmarks.sql_lookup --databases sqlite,postgres,mariadb
    python -m benchmarks.sql_lookup --floors-only --databases sqlite,postgres,mariadb

PostgreSQL runs in scratch schemas (``scout_bench_*``) and MariaDB in scratch
databases, dropped afterwards; SQLite in temporary files.
Server URLs come from ``SCOUT_TEST_POSTGRES_URL`` / ``SCOUT_TEST_MARIADB_URL``
(defaults as in the test suite).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import asyncmy
import psycopg
import pymysql  # type: ignore[import-untyped]
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from scout_auth import AsyncVerifier, KeyManager, Verifier
from scout_auth.stores.sql import KEYS, SQLKeyStore, create_all

POSTGRES_URL = os.environ.get(
    "SCOUT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("SCOUT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
CHUNK = 50_000
NOW = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def key_ids(count: int) -> list[str]:
    """Random ids shaped like real ones (100 bits, lower-case base32)."""
    raw = os.urandom(15 * count)
    return [base64.b32encode(raw[i : i + 15]).decode().lower()[:20] for i in range(0, len(raw), 15)]


def rows(ids: list[str]) -> Iterator[tuple[object, ...]]:
    for n, key_id in enumerate(ids):
        yield (key_id, f"org_{n % 5000}", "billing-sync prod", os.urandom(32), True, NOW)


# -- one scratch database per back end -------------------------------------------------
@contextmanager
def scratch(kind: str, label: str) -> Iterator[str]:
    name = f"scout_bench_{label}"
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / name}.db"
        return
    base = POSTGRES_URL if kind == "postgres" else MARIADB_URL
    admin = sa.create_engine(base, poolclass=NullPool)
    create, drop = (
        (f"CREATE SCHEMA {name}", f"DROP SCHEMA IF EXISTS {name} CASCADE")
        if kind == "postgres"
        else (f"CREATE DATABASE {name}", f"DROP DATABASE IF EXISTS {name}")
    )
    with admin.begin() as conn:
        conn.exec_driver_sql(drop)
        conn.exec_driver_sql(create)
    try:
        if kind == "postgres":
            url = make_url(base).update_query_dict({"options": f"-csearch_path={name}"})
        else:
            url = make_url(base).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(drop)
        admin.dispose()


def bulk_insert(engine: sa.Engine, ids: list[str]) -> None:
    """Insert rows fast: COPY on PostgreSQL, executemany elsewhere."""
    columns = ("key_id", "org_id", "name", "public_key", "enabled", "created_at")
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                sql = f"COPY scout_auth_keys ({', '.join(columns)}) FROM STDIN"
                with cur.copy(sql) as copy:
                    for row in rows(ids):
                        copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    else:
        batch: list[dict[str, object]] = []
        with engine.begin() as conn:
            for row in rows(ids):
                batch.append(dict(zip(columns, row, strict=True)))
                if len(batch) == CHUNK:
                    conn.execute(sa.insert(KEYS), batch)
                    batch = []
            if batch:
                conn.execute(sa.insert(KEYS), batch)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "ANALYZE" if engine.dialect.name != "mysql" else "ANALYZE TABLE scout_auth_keys"
        )


def fill(url: str, size: int) -> list[str]:
    """Create the schema and ``size`` keys (with a loader engine: no statement timeout)."""
    create_all(url)
    loader = sa.create_engine(url, poolclass=NullPool)
    started = time.perf_counter()
    ids = key_ids(size)
    bulk_insert(loader, ids)
    loader.dispose()
    print(f"    filled {size:>9,} keys in {time.perf_counter() - started:5.1f} s", flush=True)
    return ids


def measure(
    stores: list[SQLKeyStore], ids: list[list[str]], lookups: int
) -> list[tuple[float, float]]:
    """p50 and p99 of ``get_key(random existing id)`` per store, in µs, interleaved."""
    rng = random.Random(42)
    for store, some in zip(stores, ids, strict=True):
        for key_id in rng.sample(some, min(200, len(some))):  # warm the pool
            assert store.get_key(key_id) is not None
    timings: list[list[float]] = [[] for _ in stores]
    order = list(range(len(stores)))
    for _ in range(lookups):
        rng.shuffle(order)
        for i in order:
            key_id = ids[i][rng.randrange(len(ids[i]))]
            start = time.perf_counter_ns()
            found = stores[i].get_key(key_id)
            timings[i].append((time.perf_counter_ns() - start) / 1000)
            assert found is not None
    return [(statistics.median(t), statistics.quantiles(t, n=100)[98]) for t in timings]


def run(kind: str, sizes: list[int], lookups: int) -> list[tuple[float, float]]:
    print(f"  {kind}", flush=True)
    with scratch(kind, "small") as small_url, scratch(kind, "large") as large_url:
        urls = [small_url, large_url]
        ids = [fill(url, size) for url, size in zip(urls, sizes, strict=True)]
        stores = [SQLKeyStore(url) for url in urls]
        results = measure(stores, ids, lookups)
        for store in stores:
            store.close()
    for size, (p50, p99) in zip(sizes, results, strict=True):
        print(f"    {size:>9,} keys  p50 {p50:8.1f} µs  p99 {p99:8.1f} µs", flush=True)
    return results


# -- floors: the raw driver beside the store and a cold verifier ---------------------
REAL_KEYS = 200
SELECT_COLUMNS = ", ".join(column.name for column in KEYS.c)
# Our own schema's column names; the id is always a bound parameter.
_SELECT = f"SELECT {SELECT_COLUMNS} FROM scout_auth_keys WHERE key_id = "  # noqa: S608
FORMAT_QUERY, QMARK_QUERY = _SELECT + "%s", _SELECT + "?"


def _pg_kwargs(url: URL) -> dict[str, Any]:
    options = url.query.get("options")
    return {
        "host": url.host,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password or "",
        "dbname": url.database,
        "options": options if isinstance(options, str) else "",
        "autocommit": True,
    }


def _my_kwargs(url: URL) -> dict[str, Any]:
    return {
        "host": url.host,
        "port": url.port or 3306,
        "user": url.username,
        "password": url.password or "",
        "database": url.database,
        "autocommit": True,
    }


Sync = Callable[[str], object]
Async = Callable[[str], Awaitable[object]]


def raw_sync(kind: str, url: URL) -> tuple[Sync, Callable[[], None]]:
    """One raw driver round trip: ``(look up one id, close)``."""
    if kind == "postgres":
        pg = psycopg.connect(**_pg_kwargs(url))
        query = FORMAT_QUERY

        def pg_get(key_id: str) -> object:
            with pg.cursor() as cur:
                return cur.execute(query, (key_id,), prepare=True).fetchone()

        return pg_get, pg.close
    if kind == "mariadb":
        my = pymysql.connect(**_my_kwargs(url))
        query = FORMAT_QUERY

        def my_get(key_id: str) -> object:
            with my.cursor() as cur:
                cur.execute(query, (key_id,))
                return cur.fetchone()

        return my_get, my.close
    lite = sqlite3.connect(str(url.database), isolation_level=None, check_same_thread=False)
    query = QMARK_QUERY

    def lite_get(key_id: str) -> object:
        return lite.execute(query, (key_id,)).fetchone()

    return lite_get, lite.close


async def raw_async(kind: str, url: URL) -> tuple[Async, Callable[[], Awaitable[None]]]:
    """:func:`raw_sync` with the async driver."""
    if kind == "postgres":
        pg = await psycopg.AsyncConnection.connect(**_pg_kwargs(url))
        query = FORMAT_QUERY

        async def pg_get(key_id: str) -> object:
            async with pg.cursor() as cur:
                await cur.execute(query, (key_id,), prepare=True)
                return await cur.fetchone()

        return pg_get, pg.close
    if kind == "mariadb":
        my = await asyncmy.connect(**_my_kwargs(url))
        query = FORMAT_QUERY

        async def my_get(key_id: str) -> object:
            async with my.cursor() as cur:
                await cur.execute(query, (key_id,))
                return await cur.fetchone()

        async def my_close() -> None:
            my.close()

        return my_get, my_close
    lite = await aiosqlite.connect(str(url.database), isolation_level=None)
    query = QMARK_QUERY

    async def lite_get(key_id: str) -> object:
        async with lite.execute(query, (key_id,)) as cur:
            return await cur.fetchone()

    return lite_get, lite.close


def _seed() -> bytes:
    return os.urandom(32)


def _derive_floor(get: Sync) -> Sync:
    """The raw round trip, then one raw Ed25519 public-key derivation from a seed.

    What a cold bearer verification does besides the look-up: it derives the
    public key from the token's seed (one scalar multiplication) and compares
    it with the stored one; it verifies no signature.
    """
    seed = _seed()

    def floor(key_id: str) -> object:
        get(key_id)
        return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()

    return floor


def _async_derive_floor(get: Async) -> Async:
    seed = _seed()

    async def floor(key_id: str) -> object:
        await get(key_id)
        return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()

    return floor


#: (label, the labels of its floors: the first is the fair one)
FLOOR_ROWS: list[tuple[str, tuple[str, ...]]] = [
    ("raw driver SELECT (sync)", ()),
    ("store.get_key", ("raw driver SELECT (sync)",)),
    ("raw SELECT + Ed25519 derive (sync)", ()),
    (
        "Verifier.verify_token (cold)",
        ("raw SELECT + Ed25519 derive (sync)", "raw driver SELECT (sync)"),
    ),
    ("raw driver SELECT (async)", ()),
    ("await store.aget_key", ("raw driver SELECT (async)",)),
    ("raw SELECT + Ed25519 derive (async)", ()),
    (
        "AsyncVerifier.verify_token (cold)",
        ("raw SELECT + Ed25519 derive (async)", "raw driver SELECT (async)"),
    ),
]


async def measure_floors(kind: str, url_text: str, size: int, samples: int) -> dict[str, Any]:
    """Fill one scratch database and time every variant of :data:`FLOOR_ROWS`, interleaved."""
    ids = fill(url_text, size)
    store = SQLKeyStore(url_text, listen=False)
    manager = KeyManager(store)
    issued = [manager.create_key(f"org_real_{i % 50}", "bench sync") for i in range(REAL_KEYS)]
    tokens = {n.key.key_id: n.token for n in issued}
    real_ids = list(tokens)
    verifier = Verifier(store, cache_ttl=0, legacy_bearer=False, usage_interval=None)
    averifier = AsyncVerifier(store, cache_ttl=0, legacy_bearer=False, usage_interval=None)
    url = make_url(url_text)
    get, close = raw_sync(kind, url)
    aget, aclose = await raw_async(kind, url)
    sync_variants: dict[str, tuple[Sync, list[str]]] = {
        "raw driver SELECT (sync)": (get, ids),
        "store.get_key": (store.get_key, ids),
        "raw SELECT + Ed25519 derive (sync)": (_derive_floor(get), real_ids),
        "Verifier.verify_token (cold)": (lambda i: verifier.verify_token(tokens[i]), real_ids),
    }
    async_variants: dict[str, tuple[Async, list[str]]] = {
        "raw driver SELECT (async)": (aget, ids),
        "await store.aget_key": (store.aget_key, ids),
        "raw SELECT + Ed25519 derive (async)": (_async_derive_floor(aget), real_ids),
        "AsyncVerifier.verify_token (cold)": (
            lambda i: averifier.verify_token(tokens[i]),
            real_ids,
        ),
    }
    rng = random.Random(7)
    for _ in range(200):  # warm up: pools filled, statements prepared, caches of code
        for fn, some in sync_variants.values():
            assert fn(rng.choice(some)) is not None
        for afn, some in async_variants.values():
            assert await afn(rng.choice(some)) is not None
    timings: dict[str, list[float]] = {label: [] for label, _ in FLOOR_ROWS}
    order = [label for label, _ in FLOOR_ROWS]
    loads = [os.getloadavg()[0]]
    for n in range(samples):
        rng.shuffle(order)
        for label in order:
            if label in sync_variants:
                fn, some = sync_variants[label]
                key_id = rng.choice(some)
                start = time.perf_counter_ns()
                found = fn(key_id)
            else:
                afn, some = async_variants[label]
                key_id = rng.choice(some)
                start = time.perf_counter_ns()
                found = await afn(key_id)
            timings[label].append((time.perf_counter_ns() - start) / 1000)
            assert found is not None
        if n % 1000 == 999:
            loads.append(os.getloadavg()[0])
    close()
    await aclose()
    await store.aclose()
    return {"timings": timings, "loads": loads}


def floors(kind: str, size: int, samples: int) -> dict[str, tuple[float, float]]:
    """Print the floor table for ``kind``; ``{label: (p50, p99)}`` in µs."""
    print(f"  {kind}: floors ({size:,} keys, {samples} samples per variant)", flush=True)
    with scratch(kind, "floor") as url:
        result = asyncio.run(measure_floors(kind, url, size, samples))
    stats = {
        label: (statistics.median(t), statistics.quantiles(t, n=100)[98])
        for label, t in result["timings"].items()
    }
    loads = result["loads"]
    for label, floor_labels in FLOOR_ROWS:
        p50, p99 = stats[label]
        line = f"    {label:36} p50 {p50:8.1f} µs  p99 {p99:8.1f} µs"
        for n, floor in enumerate(floor_labels):
            f50, f99 = stats[floor]
            name = "ratio" if n == 0 else "vs round trip alone"
            line += f"   {name} p50 {p50 / f50:4.2f}  p99 {p99 / f99:4.2f}"
        print(line, flush=True)
    print(f"    load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}", flush=True)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 100k keys")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--floor-keys", type=int, default=10_000)
    parser.add_argument("--floors-only", action="store_true", help="no 1k/1M comparison")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for kind in args.databases.split(","):
        floors(kind, args.floor_keys, args.lookups)
    if args.floors_only:
        return
    sizes = [1_000, 100_000 if args.quick else 1_000_000]
    print(f"get_key(random existing id), {args.lookups} look-ups per size, interleaved")
    summary = []
    for kind in args.databases.split(","):
        (s50, s99), (l50, l99) = run(kind, sizes, args.lookups)
        summary.append((kind, sizes[1] // sizes[0], l50 / s50, l99 / s99))
    print("\nratio large/small (target <= 1.3)")
    for kind, factor, r50, r99 in summary:
        print(f"  {kind:9} {factor}x keys: p50 ratio {r50:.2f}, p99 ratio {r99:.2f}")


if __name__ == "__main__":
    main()

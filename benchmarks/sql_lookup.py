"""Cold look-up latency of the SQL key store, with 1k and 1M keys stored.

A verifier whose cache misses asks the store for one key by id
(``store.get_key``). That query must cost the same whether the table holds a
thousand keys or a million: it is one primary-key look-up. This benchmark
fills two scratch databases per back end, one with 1k keys and one with 1M,
then times ``get_key(random existing id)`` on both *interleaved* (small,
large, small, large...), so a busy machine slows both alike, and prints
p50/p99 and the ratio 1M/1k per database (target <= 1.3: flat). Ratios are
only ever compared within one run, on one machine.

Usage::

    python -m benchmarks.sql_lookup                  # SQLite and PostgreSQL, 1k and 1M
    python -m benchmarks.sql_lookup --quick          # 1k and 100k
    python -m benchmarks.sql_lookup --databases sqlite,postgres,mariadb

PostgreSQL runs in scratch schemas (``scout_bench_*``) and MariaDB in scratch
databases, dropped afterwards; SQLite in temporary files.
Server URLs come from ``SCOUT_TEST_POSTGRES_URL`` / ``SCOUT_TEST_MARIADB_URL``
(defaults as in the test suite).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 100k keys")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--lookups", type=int, default=5000)
    args = parser.parse_args()
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

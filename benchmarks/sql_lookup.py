"""Cold look-up latency of the SQL key store, with 1k and 1M keys stored.

A verifier whose cache misses asks the store for one key by id
(``store.get_key``). That query must cost the same whether the table holds a
thousand keys or a million: it is one primary-key look-up. This benchmark
fills the table to 1k keys, times ``get_key(random existing id)``, grows the
same table to 1M keys, times again, and prints p50/p99 and the ratio 1M/1k
per database (target <= 1.3: flat). Ratios are only ever compared within one
run, on one machine.

Usage::

    python -m benchmarks.sql_lookup                  # SQLite and PostgreSQL, 1k and 1M
    python -m benchmarks.sql_lookup --quick          # 1k and 100k
    python -m benchmarks.sql_lookup --databases sqlite,postgres,mariadb

PostgreSQL runs in a scratch schema (``scout_bench``) and MariaDB in a scratch
database of the same name, both dropped afterwards; SQLite in a temporary file.
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
SCRATCH = "scout_bench"
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
def scratch(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    base = POSTGRES_URL if kind == "postgres" else MARIADB_URL
    admin = sa.create_engine(base, poolclass=NullPool)
    create, drop = (
        (f"CREATE SCHEMA {SCRATCH}", f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
        if kind == "postgres"
        else (f"CREATE DATABASE {SCRATCH}", f"DROP DATABASE IF EXISTS {SCRATCH}")
    )
    with admin.begin() as conn:
        conn.exec_driver_sql(drop)
        conn.exec_driver_sql(create)
    try:
        if kind == "postgres":
            url = make_url(base).update_query_dict({"options": f"-csearch_path={SCRATCH}"})
        else:
            url = make_url(base).set(database=SCRATCH)
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


def measure(store: SQLKeyStore, ids: list[str], lookups: int) -> tuple[float, float]:
    """p50 and p99 of ``get_key(random existing id)``, in microseconds."""
    rng = random.Random(42)
    for key_id in rng.sample(ids, min(200, len(ids))):  # warm the pool, not the rows
        assert store.get_key(key_id) is not None
    timings: list[float] = []
    for _ in range(lookups):
        key_id = ids[rng.randrange(len(ids))]
        start = time.perf_counter_ns()
        found = store.get_key(key_id)
        timings.append((time.perf_counter_ns() - start) / 1000)
        assert found is not None
    quantiles = statistics.quantiles(timings, n=100)
    return statistics.median(timings), quantiles[98]


def run(kind: str, sizes: list[int], lookups: int) -> list[tuple[int, float, float]]:
    results = []
    with scratch(kind) as url:
        create_all(url)
        store = SQLKeyStore(url)
        ids: list[str] = []
        for size in sizes:
            started = time.perf_counter()
            more = key_ids(size - len(ids))
            bulk_insert(store.engine, more)
            ids += more
            filled = time.perf_counter() - started
            p50, p99 = measure(store, ids, lookups)
            print(
                f"  {kind:9} {size:>9,} keys  p50 {p50:8.1f} µs  p99 {p99:8.1f} µs"
                f"  (filled in {filled:5.1f} s)",
                flush=True,
            )
            results.append((size, p50, p99))
        store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 100k keys")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--lookups", type=int, default=5000)
    args = parser.parse_args()
    sizes = [1_000, 100_000 if args.quick else 1_000_000]
    print(f"get_key(random existing id), {args.lookups} look-ups per size")
    summary = []
    for kind in args.databases.split(","):
        (small, s50, s99), (large, l50, l99) = run(kind, sizes, args.lookups)
        summary.append((kind, large // small, l50 / s50, l99 / s99))
    print("\nratio large/small (target <= 1.3)")
    for kind, factor, r50, r99 in summary:
        print(f"  {kind:9} {factor}x keys: p50 ratio {r50:.2f}, p99 ratio {r99:.2f}")


if __name__ == "__main__":
    main()

"""The management API's key list with 1,000 keys in an org, against the driver floor.

The list endpoint (``GET {mount}/api/orgs/{org}/keys?limit=50``) reads all
of the org's keys with one store call (``list_keys``: one indexed
``SELECT ... WHERE org_id = ? ORDER BY created_at, key_id``), reads the
org's legacy status (two more primary-key reads) and pages in Python. This
benchmark fills an org with 1,000 keys (``--sizes`` for others: 100,
10,000), nine other orgs with as many (so the index has work to do), and
times, on SQLite (a file in a temporary directory) and PostgreSQL (the
shared server; skipped with a one-line reason if unreachable):

=================  ==========================================================
``dbapi``          The same ``SELECT``, compiled once, on a raw DB-API cursor
                   of a held connection: ``cursor.execute`` + ``fetchall``
                   (sync driver). No type processing: below any floor a
                   store can reach; shown for reference.
``core`` (floor)   SQLAlchemy Core on the store's own sync engine:
                   ``with engine.connect() as conn: conn.execute(stmt).all()``
                   (pool checkout, the rows with their column types
                   converted, the implicit rollback on return).
``acore`` (floor)  The same on the store's async engine (``aiosqlite``,
                   ``psycopg`` async).
``store``          ``SQLKeyStore.list_keys`` / ``alist_keys``: one transaction,
                   the rows as ``KeyRecord`` s.
``manager``        ``KeyManager.list_keys`` / ``AsyncKeyManager.list_keys``:
                   adds the legacy status (``get_legacy`` + ``legacy_usage``).
``api first``      The whole ASGI call: a Starlette app with ``ManagementApp``
                   mounted, called in-process with a prebuilt scope (no
                   socket, no test client), ``?limit=50``; async ``authorize``.
``api middle``     The same for the page in the middle of the list (by cursor).
``page``           ``GET {mount}/orgs/{org}`` (HTML), if the templates exist.
=================  ==========================================================

Sync rows are divided by ``core``, async rows by ``acore``: each by the bare
round trip of the same statement on the same engine and driver. Every
variant is checked before timing (row count, status 200, 50 items and the
total). Rounds are interleaved (each takes one sample of every variant, in
a shuffled order), so the machine's drift slows them all alike; the figures
are the median and p95 over rounds, wall clock. ``--profile`` then runs the
first-page API call under ``cProfile`` and prints where its time goes.

Usage::

    python -m benchmarks.manage_list                    # SQLite and PostgreSQL, 1,000 keys
    python -m benchmarks.manage_list --sizes 100,1000,10000
    python -m benchmarks.manage_list --databases sqlite --profile
    python -m benchmarks.manage_list --json

PostgreSQL runs in a scratch schema (dropped afterwards); its URL comes from
``SCOUT_TEST_POSTGRES_URL`` (default as in the test suite). The script
reports; it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from benchmarks._stats import percentile
from benchmarks.sql_lookup import POSTGRES_URL, scratch
from scout_auth import AsyncKeyManager, KeyManager, KeyRecord, LegacyRecord
from scout_auth.manage import ManagementApp, Principal
from scout_auth.stores._sql.ops import key_values  # the rows exactly as the store writes them
from scout_auth.stores.sql import KEYS, SQLKeyStore, create_all

ORG = "org_bench"
OTHER_ORGS = 9
MOUNT = "/settings/api-keys"
NOW = datetime.now(UTC).replace(microsecond=0)
FAKE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$YmVuY2htYXJrc2FsdA$" + "A" * 43  # not a real secret
SCOPES = ("drive:read", "drive:write", "billing:read", "reports:read", "users:read")
ASYNC_FLOOR, SYNC_FLOOR = "acore", "core"


@dataclass
class Variant:
    """One timed operation: ``call`` is sync, or returns an awaitable."""

    name: str
    call: Callable[[], Any]
    floor: str | None  # the variant this one is divided by (None: it is a floor)
    is_async: bool = False
    samples: list[float] = field(default_factory=list)


# -- the data -----------------------------------------------------------------------
def key_records(org_id: str, count: int, seed: int) -> list[KeyRecord]:
    """``count`` keys shaped like a real org's: mixed statuses, scopes, roles, usage."""
    rng = random.Random(seed)
    start = NOW - timedelta(days=400)
    records = []
    for n in range(count):
        created = start + timedelta(seconds=n * 30 + rng.randrange(30))
        kind = rng.random()
        expires = None
        if kind < 0.05:
            expires = NOW - timedelta(days=rng.randrange(1, 30))  # expired
        elif kind < 0.10:
            expires = NOW + timedelta(days=rng.randrange(1, 7))  # expires soon
        elif kind < 0.60:
            expires = NOW + timedelta(days=rng.randrange(30, 365))
        used = rng.random() < 0.7
        records.append(
            KeyRecord(
                key_id=f"{seed:02d}{n:06d}" + os.urandom(6).hex(),
                org_id=org_id,
                name=f"{rng.choice(['billing', 'etl', 'ci', 'reports', 'sync'])}-{n} prod",
                public_key=os.urandom(32),
                enabled=rng.random() > 0.05,
                created_at=created,
                expires_at=expires,
                scopes=frozenset(rng.sample(SCOPES, rng.randrange(1, 4))),
                replaced_by=None if rng.random() > 0.03 else "successor" + os.urandom(4).hex(),
                roles=frozenset(["reader"]) if rng.random() < 0.2 else frozenset(),
                allowed_ips=("10.0.0.0/8",) if rng.random() < 0.1 else None,
                last_used_at=NOW - timedelta(minutes=rng.randrange(10_000)) if used else None,
                use_count=rng.randrange(100_000) if used else 0,
                description="Nightly export of invoices to the ledger." if n % 3 == 0 else "",
                created_by="alice@example.com",
            )
        )
    return records


def fill(url: str, size: int, *, quiet: bool = False) -> SQLKeyStore:
    """The schema, ``size`` keys in :data:`ORG` and as many in each other org, a legacy secret."""
    create_all(url)
    loader = sa.create_engine(url, poolclass=NullPool)
    started = time.perf_counter()
    with loader.begin() as conn:
        for org in range(OTHER_ORGS + 1):
            org_id = ORG if org == 0 else f"org_other_{org}"
            rows = [key_values(r) for r in key_records(org_id, size, org)]
            for i in range(0, len(rows), 5000):
                conn.execute(sa.insert(KEYS), rows[i : i + 5000])
    with loader.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    loader.dispose()
    store = SQLKeyStore(url, listen=False)
    store.put_legacy(
        LegacyRecord(org_id=ORG, secret_hash=FAKE_HASH, created_at=NOW - timedelta(days=900))
    )
    for day in range(0, 30, 3):
        store.record_legacy_usage(ORG, 17, NOW - timedelta(days=day))
    total = (OTHER_ORGS + 1) * size
    if not quiet:
        took = time.perf_counter() - started
        print(f"    filled {total:,} keys ({size:,} in {ORG}) in {took:.1f} s")
    return store


# -- the ASGI calls -----------------------------------------------------------------
async def authorize(request: Request) -> Principal:
    return Principal("alice@example.com", admin_orgs=frozenset([ORG]))


def asgi_call(
    app: Any, path: str, query: dict[str, str]
) -> Callable[[], Awaitable[tuple[int, bytes]]]:
    """A coroutine function calling ``app`` once (prebuilt scope, copied per call)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(query).encode(),
        "headers": [(b"host", b"testserver"), (b"accept", b"application/json")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call() -> tuple[int, bytes]:
        status = 0
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        await app(dict(scope), receive, send)
        return status, b"".join(chunks)

    return call


def has_template(name: str) -> bool:
    return resources.files("scout_auth.manage").joinpath("templates", name).is_file()


# -- one database, one size ---------------------------------------------------------
async def variants_for(store: SQLKeyStore, size: int) -> tuple[list[Variant], list[str]]:
    """The variants, each checked once (raises if one answers wrong); and notes."""
    notes: list[str] = []
    stmt = sa.select(KEYS).where(KEYS.c.org_id == ORG).order_by(KEYS.c.created_at, KEYS.c.key_id)
    engine = store.database.engine
    aengine = store.database.async_engine
    assert aengine is not None
    compiled = stmt.compile(dialect=engine.dialect)
    if engine.dialect.paramstyle == "qmark":
        sql_params: Any = tuple(compiled.params[k] for k in compiled.positiontup or ())
    else:
        sql_params = compiled.params
    sql = str(compiled)
    raw = engine.raw_connection()  # held for the whole run: the DB-API floor has no checkout

    def dbapi() -> int:
        cursor = raw.cursor()
        cursor.execute(sql, sql_params)
        found = len(cursor.fetchall())
        cursor.close()
        raw.rollback()
        return found

    def core() -> int:
        with engine.connect() as conn:
            return len(conn.execute(stmt).all())

    async def acore() -> int:
        async with aengine.connect() as conn:
            return len((await conn.execute(stmt)).all())

    manager = KeyManager(store)
    amanager = AsyncKeyManager(store)
    app = Starlette(routes=[Mount(MOUNT, app=ManagementApp(amanager, authorize=authorize))])
    keys_path = f"{MOUNT}/api/orgs/{ORG}/keys"
    first = asgi_call(app, keys_path, {"limit": "50"})

    # The middle page's cursor, by walking the pages as a client would.
    query = {"limit": "50"}
    skipped = 0
    for _ in range(size // 50 // 2):
        _, body = await asgi_call(app, keys_path, query)()
        query = {"limit": "50", "cursor": json.loads(body)["next_cursor"]}
        skipped += 50
    middle = asgi_call(app, keys_path, query)
    expected_items = {"api first page": min(50, size), "api middle page": min(50, size - skipped)}

    variants = [
        Variant("dbapi", dbapi, SYNC_FLOOR),
        Variant("core", core, None),
        Variant("store.list_keys", lambda: store.list_keys(ORG), SYNC_FLOOR),
        Variant("KeyManager.list_keys", lambda: manager.list_keys(ORG), SYNC_FLOOR),
        Variant("acore", acore, None, is_async=True),
        Variant("store.alist_keys", lambda: store.alist_keys(ORG), ASYNC_FLOOR, is_async=True),
        Variant(
            "AsyncKeyManager.list_keys", lambda: amanager.list_keys(ORG), ASYNC_FLOOR, is_async=True
        ),
        Variant("api first page", first, ASYNC_FLOOR, is_async=True),
        Variant("api middle page", middle, ASYNC_FLOOR, is_async=True),
    ]
    if has_template("keys.html"):
        page = asgi_call(app, f"{MOUNT}/orgs/{ORG}", {})
        variants.append(Variant("page /orgs/{org}", page, ASYNC_FLOOR, is_async=True))
    else:
        notes.append("page /orgs/{org} skipped: scout_auth/manage/templates/keys.html is missing")

    # Check every variant once: a benchmark of a wrong answer measures nothing.
    for v in variants:
        result = await v.call() if v.is_async else v.call()
        if v.name.startswith(("api", "page")):
            status, body = result
            if status != 200:
                raise RuntimeError(f"{v.name}: status {status}: {body[:200]!r}")
            if v.name.startswith("api"):
                doc = json.loads(body)
                if len(doc["items"]) != expected_items[v.name] or doc["total"] != size:
                    raise RuntimeError(f"{v.name}: {len(doc['items'])} items, total {doc['total']}")
                if not doc["legacy"]["exists"]:
                    raise RuntimeError(f"{v.name}: no legacy status")
        else:
            found = result if isinstance(result, int) else len(result)
            if found != size:
                raise RuntimeError(f"{v.name}: {found} keys, expected {size}")
    return variants, notes


async def measure(variants: list[Variant], rounds: int) -> None:
    rng = random.Random(7)
    order = list(range(len(variants)))
    for v in variants:  # warm: pools, caches, jinja2's compiled template
        for _ in range(3):
            await v.call() if v.is_async else v.call()
    for _ in range(rounds):
        rng.shuffle(order)
        gc.collect()  # a collection lands in no particular variant's sample
        for i in order:
            v = variants[i]
            if v.is_async:
                start = time.perf_counter()
                await v.call()
            else:
                start = time.perf_counter()
                v.call()
            v.samples.append(time.perf_counter() - start)


async def profile(call: Callable[[], Awaitable[Any]], calls: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        await call()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    # By own time only: cProfile counts every resumption of a coroutine as a
    # call, so cumulative figures of async frames add up to more than the run.
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


def summary(variants: list[Variant]) -> dict[str, dict[str, Any]]:
    medians = {v.name: statistics.median(v.samples) for v in variants}
    result = {}
    for v in variants:
        floor = v.floor or v.name
        result[v.name] = {
            "median_ms": medians[v.name] * 1e3,
            "p95_ms": percentile(v.samples, 95) * 1e3,
            "floor": floor,
            "ratio": medians[v.name] / medians[floor],
            "samples": len(v.samples),
        }
    return result


def print_table(ops: dict[str, dict[str, Any]]) -> None:
    print(f"    {'':28} {'median ms':>10} {'p95 ms':>9} {'x floor':>8}")
    for name, op in ops.items():
        floor = "(floor)" if op["floor"] == name else f"/ {op['floor']}"
        print(
            f"    {name:28} {op['median_ms']:10.3f} {op['p95_ms']:9.3f} {op['ratio']:7.2f}x {floor}"
        )


def reachable(kind: str) -> str | None:
    """``None``, or why the database cannot be used (one line)."""
    if kind == "sqlite":
        return None
    try:
        engine = sa.create_engine(
            POSTGRES_URL, poolclass=NullPool, connect_args={"connect_timeout": 3}
        )
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # any failure: report and go on
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return None


async def run_one(
    kind: str, size: int, rounds: int, want_profile: bool, quiet: bool
) -> dict[str, Any]:
    with scratch(kind, "manage") as url:
        store = fill(url, size, quiet=quiet)
        try:
            variants, notes = await variants_for(store, size)
            started = time.perf_counter()
            await measure(variants, rounds)
            ops = summary(variants)
            result: dict[str, Any] = {"ops": ops, "notes": notes, "rounds": rounds}
            if not quiet:
                print(f"    {rounds} rounds in {time.perf_counter() - started:.1f} s")
                print_table(ops)
                for note in notes:
                    print(f"    note: {note}")
            if want_profile:
                first = next(v for v in variants if v.name == "api first page")
                text = await profile(first.call, 50)
                result["profile"] = text
                if not quiet:
                    print(f"\n    cProfile, 50 x api first page ({kind}, {size:,} keys):")
                    print(text)
            return result
        finally:
            store.close()
            await store.aclose()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict[str, Any] = {
        "date": NOW.isoformat(),
        "python": sys.version.split()[0],
        "databases": {},
        "skipped": {},
    }
    for kind in args.databases.split(","):
        why = reachable(kind)
        if why is not None:
            report["skipped"][kind] = why
            if not args.json:
                print(f"  {kind}: skipped ({why})")
            continue
        report["databases"][kind] = {}
        for size in sizes:
            rounds = args.rounds or max(15, min(200, 100_000 // size))
            if not args.json:
                print(f"  {kind}, {size:,} keys in the org", flush=True)
            report["databases"][kind][str(size)] = await run_one(
                kind, size, rounds, args.profile, args.json
            )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000", help="keys in the org, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=0, help="default: by size (100 at 1,000)")
    parser.add_argument("--profile", action="store_true", help="cProfile the first-page API call")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    args = parser.parse_args()
    if not args.json:
        print(
            "key list of one org: median / p95 over interleaved rounds; "
            "sync rows / core, async rows / acore"
        )
    try:
        report = asyncio.run(main_async(args))
    except Exception as exc:  # a benchmark reports, it never fails a build
        print(f"manage_list: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The SQL store: the shared contract on SQLite, PostgreSQL and MariaDB, plus
what only a SQL store has (URLs and engines, exact ids, one indexed query per
look-up, no secret at rest).

Faults live in ``test_faults.py``, concurrency in ``test_concurrency.py``,
migrations in ``test_migrations.py``.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from scout_auth import KeyEvent, KeyManager, LegacyRecord
from scout_auth._core.tokens import parse_token
from scout_auth.stores import KeyUpdate
from scout_auth.stores._sql import ops as ops
from scout_auth.stores._sql.engines import async_url, connect_args, read_timeout_for, sync_url
from scout_auth.stores._sql.schema import METADATA
from scout_auth.stores.sql import SQLKeyStore
from scout_auth.testing import StoreContract
from scout_auth.testing._store import T0, org, record
from tests.stores.conftest import PER_TEST_LOOP


def _store(url: str):
    store = SQLKeyStore(url, async_engine_options=PER_TEST_LOOP)
    yield store
    store.close()


def _legacy_row(store: SQLKeyStore) -> Callable[[str], list[object]]:
    """The raw column values of an org's ``scout_auth_legacy_keys`` row (a plain SELECT)."""

    def dump(org_id: str) -> list[object]:
        with store.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT * FROM scout_auth_legacy_keys WHERE org_id = :org_id"),
                {"org_id": org_id},
            ).first()
        if row is None:
            return []
        return [bytes(v) if isinstance(v, memoryview) else v for v in row]

    return dump


class _SQLContract(StoreContract):
    @pytest.fixture
    def legacy_dump(self, store):
        return _legacy_row(store)


class TestSQLite(_SQLContract):
    @pytest.fixture
    def store(self, sqlite_url):
        yield from _store(sqlite_url)


@pytest.mark.postgres
class TestPostgres(_SQLContract):
    @pytest.fixture
    def store(self, postgres_url):
        yield from _store(postgres_url)


@pytest.mark.mariadb
class TestMariaDB(_SQLContract):
    @pytest.fixture
    def store(self, mariadb_url):
        yield from _store(mariadb_url)


@pytest.fixture
def store(sql_url):
    yield from _store(sql_url)


# -- URLs and engines ---------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "sync", "asynchronous"),
    [
        pytest.param("sqlite:///k.db", "sqlite:///k.db", "sqlite+aiosqlite:///k.db", id="sqlite"),
        pytest.param(
            "sqlite+aiosqlite:///k.db",
            "sqlite+pysqlite:///k.db",
            "sqlite+aiosqlite:///k.db",
            id="aiosqlite",
        ),
        pytest.param(
            "postgresql+psycopg://u@h/d",
            "postgresql+psycopg://u@h/d",
            "postgresql+psycopg://u@h/d",
            id="psycopg-both-ways",
        ),
        pytest.param(
            "postgresql://u@h/d",
            "postgresql://u@h/d",
            "postgresql+psycopg://u@h/d",
            id="postgres-default-driver",
        ),
        pytest.param(
            "mysql+pymysql://u@h/d",
            "mysql+pymysql://u@h/d",
            "mysql+asyncmy://u@h/d",
            id="pymysql",
        ),
        pytest.param(
            "mariadb+aiomysql://u@h/d",
            "mariadb+pymysql://u@h/d",
            "mariadb+aiomysql://u@h/d",
            id="aiomysql-kept",
        ),
        pytest.param(
            "mariadb://u@h/d",
            "mariadb://u@h/d",
            "mariadb+asyncmy://u@h/d",
            id="mariadb-default",
        ),
        pytest.param("oracle+oracledb://u@h/d", "oracle+oracledb://u@h/d", None, id="no-twin"),
    ],
)
def test_sync_and_async_urls_are_derived(given, sync, asynchronous):
    assert sync_url(given) == make_url(sync)
    derived = async_url(given)
    assert (derived and str(derived)) == asynchronous


#: libpq: TCP keepalives, and unacknowledged data for the read timeout ends a connection.
LIBPQ_TCP = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 2500,
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql+psycopg://h/d",
            {"connect_timeout": 3, "options": "-c statement_timeout=1500", **LIBPQ_TCP},
            id="postgres",
        ),
        pytest.param(
            "postgresql+psycopg://h/d?options=-csearch_path%3Dkeys",
            {
                "connect_timeout": 3,
                "options": "-csearch_path=keys -c statement_timeout=1500",
                **LIBPQ_TCP,
            },
            id="postgres-keeps-url-options",
        ),
        pytest.param(
            "postgresql+psycopg://h/d?keepalives_idle=60&tcp_user_timeout=9000",
            {
                "connect_timeout": 3,
                "options": "-c statement_timeout=1500",
                **{
                    k: v
                    for k, v in LIBPQ_TCP.items()
                    if k not in ("keepalives_idle", "tcp_user_timeout")
                },
            },
            id="postgres-url-tcp-settings-win",
        ),
        pytest.param(
            "postgresql+asyncpg://h/d",
            {"connect_timeout": 3, "options": "-c statement_timeout=1500"},
            id="postgres-not-libpq",
        ),
        pytest.param(
            "mysql+pymysql://h/d",
            {
                "connect_timeout": 3,
                "init_command": "SET SESSION innodb_lock_wait_timeout = 2",
                "read_timeout": 2.5,
                "write_timeout": 2.5,
            },
            id="pymysql",
        ),
        pytest.param(
            "mysql+mysqldb://h/d",
            {
                "connect_timeout": 3,
                "init_command": "SET SESSION innodb_lock_wait_timeout = 2",
                "read_timeout": 3,
                "write_timeout": 3,
            },
            id="mysqldb-whole-seconds",
        ),
        pytest.param(
            "mysql+asyncmy://h/d",
            {
                "connect_timeout": 3,
                "init_command": "SET SESSION innodb_lock_wait_timeout = 2",
                "read_timeout": 2.5,
            },
            id="asyncmy",
        ),
        pytest.param("sqlite:///k.db", {"timeout": 1.5}, id="sqlite-lock-wait"),
    ],
)
def test_timeouts_become_connect_arguments(url, expected):
    parsed = make_url(url)
    args = connect_args(parsed, is_async=False, connect_timeout=2.5, statement_timeout=1.5)
    assert args == expected  # the read timeout defaults to statement_timeout + 1 s


@pytest.mark.parametrize(
    ("statement_timeout", "read_timeout", "expected"),
    [(1.5, None, 2.5), (1.5, 0.7, 0.7), (None, None, 30.0), (None, 4, 4)],
)
def test_the_read_timeout_is_given_or_one_second_above_the_statement_timeout(
    statement_timeout, read_timeout, expected
):
    assert read_timeout_for(statement_timeout, read_timeout) == expected
    for url in ("mysql+pymysql://h/d", "mysql+asyncmy://h/d"):  # even without a statement limit
        args = connect_args(
            make_url(url),
            is_async=False,
            connect_timeout=1,
            statement_timeout=statement_timeout,
            read_timeout=read_timeout,
        )
        assert args["read_timeout"] == expected
    args = connect_args(
        make_url("postgresql+psycopg://h/d"),
        is_async=True,
        connect_timeout=1,
        statement_timeout=statement_timeout,
        read_timeout=read_timeout,
    )
    assert args["tcp_user_timeout"] == round(expected * 1000)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        pytest.param((), {}, id="nothing"),
        pytest.param(("sqlite:///k.db",), {"engine": sa.create_engine("sqlite://")}, id="both"),
        pytest.param(("sqlite://",), {}, id="memory-sqlite"),
        pytest.param(("sqlite:///:memory:",), {}, id="memory-sqlite-explicit"),
        pytest.param(("sqlite:///k.db",), {"connect_timeout": 0}, id="zero-connect-timeout"),
        pytest.param(("sqlite:///k.db",), {"statement_timeout": -1}, id="negative-timeout"),
        pytest.param(("sqlite:///k.db",), {"read_timeout": 0}, id="zero-read-timeout"),
        pytest.param(("sqlite:///k.db",), {"ping_interval": 0}, id="zero-ping-interval"),
        pytest.param(("sqlite:///k.db",), {"channel": "Scout_Events"}, id="channel-upper-case"),
        pytest.param(("sqlite:///k.db",), {"channel": "scout-events"}, id="channel-not-identifier"),
        pytest.param(("sqlite:///k.db",), {"channel": "x; UNLISTEN *"}, id="channel-injection"),
        pytest.param(("sqlite:///k.db",), {"channel": "9events"}, id="channel-leading-digit"),
        pytest.param(("sqlite:///k.db",), {"channel": "e" * 64}, id="channel-over-63-chars"),
        pytest.param(("sqlite:///k.db",), {"channel": ""}, id="channel-empty"),
    ],
)
def test_bad_configuration_is_refused_at_construction(args, kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        SQLKeyStore(*args, **kwargs)


def test_repr_masks_the_password():
    assert "s3cret" not in repr(SQLKeyStore("postgresql+psycopg://u:s3cret@h/d"))


def test_shared_sync_engine_serves_async_calls_and_is_not_disposed(sqlite_url):
    engine = sa.create_engine(sqlite_url)
    store = SQLKeyStore(engine=engine)
    r = record(org())
    store.add_key(r)
    assert store.async_engine is None
    assert anyio_run(store.aget_key, r.key_id) == r  # through a worker thread
    anyio_run(store.aclose)
    assert engine.pool.checkedin() >= 1  # type: ignore[attr-defined] # pool left alone
    engine.dispose()


def test_shared_async_engine_only(sqlite_url):
    async def scenario():
        engine = create_async_engine(sync_to_async(sqlite_url), poolclass=NullPool)
        store = SQLKeyStore(async_engine=engine)
        r = record(org())
        await store.aadd_key(r)
        assert await store.aget_key(r.key_id) == r
        await store.aclose()
        await engine.dispose()
        return store

    store = anyio_run(scenario)
    with pytest.raises(RuntimeError, match="engine="):
        store.get_key("x")


def sync_to_async(url: str) -> str:
    return str(async_url(url))


def anyio_run(func: Any, *args: Any) -> Any:
    import anyio

    return anyio.run(func, *args)


# -- values and ids -------------------------------------------------------------
def test_datetimes_are_stored_as_utc_with_microseconds(store):
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 6, 1, 12, 0, 0, 999999, tzinfo=plus_two)
    r = record(org(), created_at=local, expires_at=local + timedelta(microseconds=1))
    store.add_key(r)
    got = store.get_key(r.key_id)
    assert got.created_at == local
    assert got.created_at.tzinfo == UTC
    assert got.created_at.microsecond == 999999
    assert got.expires_at - got.created_at == timedelta(microseconds=1)


def test_naive_datetimes_are_refused(store):
    with pytest.raises(ValueError, match="timezone-aware"):
        store.add_key(record(org(), created_at=datetime(2026, 1, 1)))


@pytest.mark.parametrize(
    "lookalike",
    [
        pytest.param(lambda o: o.upper(), id="other-case"),
        pytest.param(lambda o: o + " ", id="trailing-space"),
        pytest.param(lambda o: " " + o, id="leading-space"),
        pytest.param(lambda o: o[:-1], id="prefix"),
    ],
)
def test_ids_match_exactly(store, lookalike):
    o = org()
    r = record(o, key_id=record(o).key_id)
    store.add_key(r)
    store.put_legacy(LegacyRecord(o, "$argon2id$real", T0))
    other_org, other_key = lookalike(o), lookalike(r.key_id)
    assert store.get_key(other_key) is None
    assert store.list_keys(other_org) == []
    assert store.get_legacy(other_org) is None
    assert store.update_key(other_key, KeyUpdate(enabled=False)) is None
    # A look-alike org is another org: importing its secret must not replace o's.
    store.put_legacy(LegacyRecord(other_org, "$argon2id$lookalike", T0))
    assert store.get_legacy(o).secret_hash == "$argon2id$real"
    assert store.get_key(r.key_id) == r


def test_a_failed_write_publishes_nothing(store):
    events: list[KeyEvent] = []
    store.subscribe(events.append)
    r = record(org())
    store.add_key(r)
    with pytest.raises(ValueError, match="duplicate key id"):
        store.rotate_key(r.key_id, record(r.org_id, key_id=r.key_id), T0)
    # (On PostgreSQL the change feed may add a "flush" and other stores' events.)
    assert [e.action for e in events if e.org_id == r.org_id] == ["created"]
    assert store.get_key(r.key_id) == r  # the rotation's UPDATE was rolled back


# -- one indexed query per look-up ----------------------------------------------
def _explain(conn, stmt) -> str:
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # tiny tables: ask for the plan
        return " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))
    rows = conn.exec_driver_sql("EXPLAIN " + sql).mappings().all()
    return " ".join(f"key={row['key']} type={row['type']}" for row in rows)


@pytest.mark.parametrize(
    ("method", "index"),
    [
        pytest.param("get_key", ("pk", "primary", "autoindex"), id="get_key-by-primary-key"),
        pytest.param("list_keys", ("ix_scout_auth_keys_org_id",), id="list_keys-by-org-index"),
        pytest.param("get_legacy", ("pk", "primary", "autoindex"), id="get_legacy-by-primary-key"),
        pytest.param(
            "find_legacy", ("ix_scout_auth_legacy_keys_lookup_digest",), id="find_legacy-by-digest"
        ),
    ],
)
def test_each_lookup_is_one_indexed_query(store, method, index):
    r = record(org())
    store.add_key(r)
    digest = secrets.token_hex(16).encode()  # 32 bytes _explain can render as a literal
    store.put_legacy(LegacyRecord(r.org_id, "$argon2id$h", T0, lookup_digest=digest, pepper_id="p"))
    arg = {"get_key": r.key_id, "find_legacy": digest}.get(method, r.org_id)
    with store.engine.begin() as conn:
        stmt = next(getattr(ops, method)(arg, conn.dialect))
        plan = _explain(conn, stmt).lower()
    assert any(name in plan for name in index), plan
    assert "seq scan" not in plan, plan
    assert "type=all" not in plan, plan
    assert " scan " not in f" {plan} ".replace("index scan", "").replace("only scan", ""), plan

    statements: list[str] = []
    reads = store.database.read_engine  # reads have an autocommit engine of their own
    sa.event.listen(reads, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert getattr(store, method)(arg)
    assert len(statements) == 1, statements


# -- no secret at rest ------------------------------------------------------------
def _dump(engine) -> list[object]:
    cells: list[object] = []
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        assert {t.name for t in METADATA.sorted_tables} <= set(names)
        for name in names:
            if name.startswith("scout_auth"):
                for row in conn.execute(sa.text(f"SELECT * FROM {name}")):  # noqa: S608
                    cells.extend(row)
    return cells


def test_no_secret_at_rest(store):
    manager = KeyManager(store, audit=store.audit_sink())  # the audit table is dumped too
    o = org()
    tokens = [
        manager.create_key(o, "billing-sync prod").token,
        manager.create_key(o, "nightly export", scopes=["drive:read"]).token,
    ]
    first = parse_token(tokens[0])
    assert first is not None
    tokens.append(manager.rotate_key(first.key_id).token)
    legacy_secret = "legacy-Secret-Value-0123456789"
    manager.import_legacy_key(o, legacy_secret)

    forbidden: list[bytes] = [legacy_secret.encode()]
    for token in tokens:
        parsed = parse_token(token)
        assert parsed is not None
        seed_text = token[len("scout_sk_") + 21 : -6]
        forbidden += [
            token.encode(),
            parsed.seed,
            seed_text.encode(),
            parsed.seed.hex().encode(),
            base64.b64encode(parsed.seed),
        ]
    haystack = b"\n".join(
        bytes(cell) if isinstance(cell, bytes | memoryview) else str(cell).encode()
        for cell in _dump(store.engine)
    )
    assert o.encode() in haystack  # the dump does see this test's rows
    assert b"legacy_imported" in haystack  # ... and its audit events
    for secret in forbidden:
        assert bytes(secret) not in haystack
    assert store.get_legacy(o).secret_hash.startswith("$argon2id$")


# -- audit sink ---------------------------------------------------------------------
def test_audit_sink_on_engines_of_its_own(sqlite_url):
    from scout_auth.audit import AuditEvent, AuditSink
    from scout_auth.stores.sql import SQLAuditSink

    engine = sa.create_engine(sqlite_url)
    sink = SQLAuditSink(engine)
    assert isinstance(sink, AuditSink)
    event = AuditEvent("created", org(), key_id="k" * 20)
    sink.write([event])
    assert sink.query(event.org_id).events == (event,)
    assert anyio_run(lambda: sink.aquery(key_id="k" * 20, limit=1)).events[0].key_id == "k" * 20
    engine.dispose()
    with pytest.raises(TypeError):
        SQLAuditSink("sqlite:///k.db")  # type: ignore[arg-type]


def test_a_store_and_an_audit_sink_share_one_database(sqlite_url):
    from scout_auth.audit import AuditEvent
    from scout_auth.stores.sql import Database, SQLAuditSink

    database = Database(sqlite_url, statement_timeout=2)
    store, sink = SQLKeyStore(database), SQLAuditSink(database)
    assert store.database is sink.database is store.audit_sink().database is database
    assert store.engine is database.engine  # one pool
    r = record(org())
    store.add_key(r)
    event = AuditEvent("created", r.org_id, key_id=r.key_id)
    sink.write([event])
    assert store.get_key(r.key_id) == r
    assert store.audit_sink().query(r.org_id).events == (event,)
    assert SQLAuditSink(store).database is database
    with pytest.raises(ValueError, match="Database"):
        SQLKeyStore(database, statement_timeout=1)  # the database's, not the store's
    store.close()


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param({}, id="unfiltered"),
        pytest.param({"since": T0, "until": T0 + timedelta(days=3650)}, id="time-range"),
        pytest.param({"actions": frozenset({"denied", "created"})}, id="actions"),
        pytest.param({"actor": "alice", "since": T0}, id="actor"),
    ],
)
@pytest.mark.parametrize(
    ("column", "index"),
    [
        pytest.param("org_id", "ix_scout_auth_audit_events_org_id", id="per-org"),
        pytest.param("key_id", "ix_scout_auth_audit_events_key_id", id="per-key"),
    ],
)
def test_each_audit_page_is_one_indexed_query(store, column, index, filters):
    from scout_auth._audit.query import AuditQuery
    from scout_auth.audit import AuditEvent
    from scout_auth.stores._sql import audit_ops as audit_ops

    o, k = org(), "k" * 20
    sink = store.audit_sink()
    sink.write([AuditEvent("created", o, key_id=k) for _ in range(3)])
    # Other orgs' rows: on a nearly empty table MariaDB rightly prefers a full scan.
    sink.write([AuditEvent("denied", org(), key_id=k[:19], reason="x") for _ in range(200)])
    first = sink.query(o, limit=1)
    org_id, key_id = (o, None) if column == "org_id" else (None, k)
    with store.engine.begin() as conn:
        query = AuditQuery(org_id, key_id, 2, first.next, **filters)
        stmt = next(audit_ops.query_events(query, conn.dialect))
        plan = _explain(conn, stmt).lower()
    assert index in plan or "key=" + index in plan, plan
    assert "seq scan" not in plan, plan
    assert "type=all" not in plan, plan


# -- legacy look-up digests: what only SQL has --------------------------------------
def _lose_the_race(monkeypatch: pytest.MonkeyPatch, times: int = 1) -> list[bytes]:
    """The first digest check(s) miss the holder: as if another org committed
    the digest between the check and the write."""
    real = ops._digest_holder
    calls: list[bytes] = []

    def holder(lookup_digest: bytes):
        calls.append(lookup_digest)
        if len(calls) <= times:
            yield from real(lookup_digest)  # the statement still runs
            return None
        return (yield from real(lookup_digest))

    monkeypatch.setattr(ops, "_digest_holder", holder)
    return calls


def _digest_row(store: SQLKeyStore, org_id: str) -> tuple[object, object]:
    values = _legacy_row(store)(org_id)
    names = [c["name"] for c in sa.inspect(store.engine).get_columns("scout_auth_legacy_keys")]
    row = dict(zip(names, values, strict=True))
    return row["lookup_digest"], row["pepper_id"]


def test_set_digest_that_loses_a_race_answers_false_and_writes_nothing(store, monkeypatch):
    a, b, d = org(), org(), secrets.token_bytes(32)
    store.put_legacy(LegacyRecord(a, "$argon2id$a", T0, lookup_digest=d, pepper_id="p1"))
    store.put_legacy(LegacyRecord(b, "$argon2id$b", T0))
    checks = _lose_the_race(monkeypatch)
    # The UPDATE hits the unique index (PostgreSQL aborts the transaction);
    # the store runs the operation again and its check answers.
    assert store.set_legacy_digest(b, "$argon2id$b", d, "p1") is False
    assert len(checks) == 2  # the operation did run twice
    assert _digest_row(store, b) == (None, None)
    assert store.find_legacy(d).org_id == a


def test_set_digest_that_loses_every_rerun_still_answers_false(store, monkeypatch):
    a, b, d = org(), org(), secrets.token_bytes(32)
    store.put_legacy(LegacyRecord(a, "$argon2id$a", T0, lookup_digest=d, pepper_id="p1"))
    store.put_legacy(LegacyRecord(b, "$argon2id$b", T0))
    checks = _lose_the_race(monkeypatch, times=99)
    assert store.set_legacy_digest(b, "$argon2id$b", d, "p1") is False  # no exception
    assert anyio_run(store.aset_legacy_digest, b, "$argon2id$b", d, "p1") is False
    assert len(checks) == 6  # three attempts each
    assert _digest_row(store, b) == (None, None)
    anyio_run(store.aclose)


def test_put_legacy_that_loses_a_race_stores_the_record_without_a_digest(store, monkeypatch):
    a, b, d = org(), org(), secrets.token_bytes(32)
    store.put_legacy(LegacyRecord(a, "$argon2id$a", T0, lookup_digest=d, pepper_id="p1"))
    store.put_legacy(LegacyRecord(b, "$argon2id$old", T0))
    store.set_legacy_enabled(b, False)
    events: list[KeyEvent] = []
    store.subscribe(events.append)
    checks = _lose_the_race(monkeypatch)
    store.put_legacy(LegacyRecord(b, "$argon2id$new", T0, lookup_digest=d, pepper_id="p1"))
    assert len(checks) == 2
    got = store.get_legacy(b)
    assert got == LegacyRecord(b, "$argon2id$new", T0, enabled=False)  # the switch survives
    assert store.get_legacy(a).secret_hash == "$argon2id$a"  # a's row untouched
    assert store.find_legacy(d).org_id == a
    assert [e.action for e in events if e.org_id == b] == ["legacy_imported"]  # once


def test_async_set_digest_that_loses_a_race_answers_false(store, monkeypatch):
    a, b, d = org(), org(), secrets.token_bytes(32)
    store.put_legacy(LegacyRecord(a, "$argon2id$a", T0, lookup_digest=d, pepper_id="p1"))
    store.put_legacy(LegacyRecord(b, "$argon2id$b", T0))
    checks = _lose_the_race(monkeypatch)
    assert anyio_run(store.aset_legacy_digest, b, "$argon2id$b", d, "p1") is False
    assert len(checks) == 2
    assert _digest_row(store, b) == (None, None)
    anyio_run(store.aclose)


def test_orgs_racing_for_one_digest_leave_exactly_one_holder(sql_url):
    from concurrent.futures import ThreadPoolExecutor

    stores = [SQLKeyStore(sql_url) for _ in range(4)]
    orgs, d = [org() for _ in range(8)], secrets.token_bytes(32)
    for o in orgs:
        stores[0].put_legacy(LegacyRecord(o, f"$argon2id${o}", T0))

    def claim(i: int) -> None:
        o, store = orgs[i % len(orgs)], stores[i % len(stores)]
        if i % 3 == 0:  # a re-import carrying the digest races the look-up writes
            store.put_legacy(LegacyRecord(o, f"$argon2id${o}", T0, lookup_digest=d, pepper_id="p"))
        else:
            store.set_legacy_digest(o, f"$argon2id${o}", d, "p")

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(claim, range(48)))  # no exception escapes
        records = [stores[0].get_legacy(o) for o in orgs]
        assert [r.secret_hash if r else None for r in records] == [f"$argon2id${o}" for o in orgs]
        holders = [r.org_id for r in records if r is not None and r.lookup_digest is not None]
        assert len(holders) == 1
        found = stores[0].find_legacy(d)
        assert found is not None
        assert found.org_id == holders[0]
    finally:
        for store in stores:
            store.close()


def test_sqlite_pepper_file_is_made_once_0600_and_shared(tmp_path):
    from scout_auth.stores.sql import create_all

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    create_all(url)
    first, second = SQLKeyStore(url), SQLKeyStore(url)
    pepper = first.embedded_legacy_pepper()
    path = tmp_path / "keys.db.legacy-pepper"
    assert pepper is not None
    assert len(pepper) == 32
    assert path.read_bytes() == pepper
    assert path.stat().st_mode & 0o777 == 0o600
    assert second.embedded_legacy_pepper() == pepper  # another store object, one file
    assert first.embedded_legacy_pepper() == pepper
    assert pepper not in (tmp_path / "keys.db").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.db", "keys.db.legacy-pepper"]


def test_sqlite_pepper_is_made_once_by_racing_processes(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = (
        "import sys; from scout_auth.stores.sql import SQLKeyStore; "
        "sys.stdout.write(SQLKeyStore(sys.argv[1]).embedded_legacy_pepper().hex())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE)  # noqa: S603
        for _ in range(6)
    ]
    peppers = {p.communicate(timeout=60)[0] for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert peppers == {(tmp_path / "race.db.legacy-pepper").read_bytes().hex().encode()}


def test_a_short_sqlite_pepper_file_is_refused(tmp_path):
    from scout_auth.exceptions import ConfigurationError

    path = tmp_path / "keys.db.legacy-pepper"
    path.write_bytes(b"XYZZY")
    store = SQLKeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    with pytest.raises(ConfigurationError, match="5 bytes, fewer than 32") as raised:
        store.embedded_legacy_pepper()
    assert "XYZZY" not in str(raised.value)  # never the content
    assert path.read_bytes() == b"XYZZY"  # left for the operator


def test_in_memory_sqlite_pepper_is_per_store_object():
    from sqlalchemy.pool import StaticPool

    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    one, two = SQLKeyStore(engine=engine), SQLKeyStore(engine=engine)
    pepper = one.embedded_legacy_pepper()
    assert pepper is not None
    assert len(pepper) == 32
    assert one.embedded_legacy_pepper() == pepper
    assert two.embedded_legacy_pepper() != pepper
    engine.dispose()


def test_sqlite_uri_filenames_find_their_pepper_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    memory = SQLKeyStore("sqlite:///file:scratch?mode=memory&cache=shared&uri=true")
    assert len(memory.embedded_legacy_pepper() or b"") == 32
    on_disk = SQLKeyStore(f"sqlite:///file:{tmp_path / 'uri.db'}?uri=true")
    assert on_disk.embedded_legacy_pepper() == (tmp_path / "uri.db.legacy-pepper").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uri.db.legacy-pepper"]


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_server_databases_have_no_embedded_pepper(request, server):
    url = request.getfixturevalue(f"{server}_url")
    store = SQLKeyStore(url, listen=False)
    assert store.embedded_legacy_pepper() is None  # $SCOUT_AUTH_LEGACY_PEPPER, or no digests
    store.close()

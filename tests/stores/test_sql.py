"""The SQL store: the shared contract on SQLite, PostgreSQL and MariaDB, plus
what only a SQL store has (URLs and engines, exact ids, one indexed query per
look-up, no secret at rest).

Faults live in ``test_sql_faults.py``, concurrency in
``test_sql_concurrency.py``, migrations in ``test_sql_migrations.py``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from scout_auth import KeyEvent, KeyManager, LegacyRecord
from scout_auth._tokens import parse_token
from scout_auth.stores import KeyUpdate
from scout_auth.stores import _sql_ops as ops
from scout_auth.stores._sql_engines import async_url, connect_args, sync_url
from scout_auth.stores._sql_schema import METADATA
from scout_auth.stores.sql import SQLKeyStore
from tests.stores.conftest import PER_TEST_LOOP
from tests.stores.contract import T0, StoreContract, org, record


def _store(url: str):
    store = SQLKeyStore(url, async_engine_options=PER_TEST_LOOP)
    yield store
    store.close()


class TestSQLite(StoreContract):
    @pytest.fixture
    def store(self, sqlite_url):
        yield from _store(sqlite_url)


@pytest.mark.postgres
class TestPostgres(StoreContract):
    @pytest.fixture
    def store(self, postgres_url):
        yield from _store(postgres_url)


@pytest.mark.mariadb
class TestMariaDB(StoreContract):
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


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql+psycopg://h/d",
            {"connect_timeout": 3, "options": "-c statement_timeout=1500"},
            id="postgres",
        ),
        pytest.param(
            "postgresql+psycopg://h/d?options=-csearch_path%3Dkeys",
            {"connect_timeout": 3, "options": "-csearch_path=keys -c statement_timeout=1500"},
            id="postgres-keeps-url-options",
        ),
        pytest.param(
            "mysql+pymysql://h/d",
            {
                "connect_timeout": 3,
                "init_command": "SET SESSION innodb_lock_wait_timeout = 2",
                "read_timeout": 2,
                "write_timeout": 2,
            },
            id="pymysql",
        ),
        pytest.param(
            "mysql+asyncmy://h/d",
            {
                "connect_timeout": 3,
                "init_command": "SET SESSION innodb_lock_wait_timeout = 2",
                "read_timeout": 2,
            },
            id="asyncmy",
        ),
        pytest.param("sqlite:///k.db", {"timeout": 1.5}, id="sqlite-lock-wait"),
    ],
)
def test_timeouts_become_connect_arguments(url, expected):
    parsed = make_url(url)
    args = connect_args(parsed, is_async=False, connect_timeout=2.5, statement_timeout=1.5)
    assert args == expected


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        pytest.param((), {}, id="nothing"),
        pytest.param(("sqlite:///k.db",), {"engine": sa.create_engine("sqlite://")}, id="both"),
        pytest.param(("sqlite://",), {}, id="memory-sqlite"),
        pytest.param(("sqlite:///:memory:",), {}, id="memory-sqlite-explicit"),
        pytest.param(("sqlite:///k.db",), {"connect_timeout": 0}, id="zero-connect-timeout"),
        pytest.param(("sqlite:///k.db",), {"statement_timeout": -1}, id="negative-timeout"),
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
    ],
)
def test_each_lookup_is_one_indexed_query(store, method, index):
    r = record(org())
    store.add_key(r)
    store.put_legacy(LegacyRecord(r.org_id, "$argon2id$h", T0))
    arg = r.key_id if method == "get_key" else r.org_id
    with store.engine.begin() as conn:
        stmt = next(getattr(ops, method)(arg, conn.dialect))
        plan = _explain(conn, stmt).lower()
    assert any(name in plan for name in index), plan
    assert "seq scan" not in plan, plan
    assert "type=all" not in plan, plan
    assert " scan " not in f" {plan} ".replace("index scan", "").replace("only scan", ""), plan

    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
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


@pytest.mark.parametrize(
    ("column", "index"),
    [
        pytest.param("org_id", "ix_scout_auth_audit_events_org_id", id="per-org"),
        pytest.param("key_id", "ix_scout_auth_audit_events_key_id", id="per-key"),
    ],
)
def test_each_audit_page_is_one_indexed_query(store, column, index):
    from scout_auth._audit_query import AuditQuery
    from scout_auth.audit import AuditEvent
    from scout_auth.stores import _sql_audit_ops as audit_ops

    o, k = org(), "k" * 20
    sink = store.audit_sink()
    sink.write([AuditEvent("created", o, key_id=k) for _ in range(3)])
    first = sink.query(o, limit=1)
    org_id, key_id = (o, None) if column == "org_id" else (None, k)
    with store.engine.begin() as conn:
        query = AuditQuery(org_id, key_id, 2, first.next)
        stmt = next(audit_ops.query_events(query, conn.dialect))
        plan = _explain(conn, stmt).lower()
    assert index in plan or "key=" + index in plan, plan
    assert "seq scan" not in plan, plan
    assert "type=all" not in plan, plan

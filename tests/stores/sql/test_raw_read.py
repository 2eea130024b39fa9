"""The raw read (``scout_auth.stores._sql.raw``): ``get_key`` / ``aget_key`` past Core.

It must read every column exactly as the Core path does (NULLs and edge
values included), and a connection that failed under it must never go back
to the pool.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest

from scout_auth import SealedSeed
from scout_auth.exceptions import StoreUnavailable
from scout_auth.stores._sql import ops as ops
from scout_auth.stores._sql import raw as raw
from scout_auth.stores.sql import SQLKeyStore
from scout_auth.testing._store import T0, org, record
from tests.stores.conftest import PER_TEST_LOOP

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(sql_url: str) -> Any:
    store = SQLKeyStore(sql_url, async_engine_options=PER_TEST_LOOP, listen=False)
    yield store
    store.close()


def _edge_records(org_id: str) -> list[Any]:
    plus_two = timezone(timedelta(hours=2))
    return [
        record(org_id),  # every optional column NULL
        record(
            org_id,
            name="ключ 🔑 'quoted' \\ %s ?",
            enabled=False,
            scopes=frozenset(),  # "[]": no scope at all, not NULL
            created_at=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            expires_at=datetime(2100, 1, 1, 0, 0, 0, 1, tzinfo=plus_two),
            replaced_by="z" * 64,
            roles=frozenset({"admin", "reader"}),
            allowed_ips=("10.0.0.0/8", "::1"),
            use_count=2**62,
            last_used_at=T0 + timedelta(microseconds=1),
            description="x" * 5000,
            created_by="someone@example.org",
            sealed_seed=SealedSeed(
                ciphertext=secrets.token_bytes(48),
                nonce=b"\x00" * 12,
                wrapped_key=secrets.token_bytes(40),
                kek_id="kek-1",
            ),
            public_key=b"\x00" * 32,
        ),
        record(org_id, scopes=frozenset({"a", "b:c"}), public_key=b"\xff" * 32),
    ]


def _core_get(store: SQLKeyStore, key_id: str) -> Any:
    return store._read(partial(ops.get_key, key_id))


async def test_the_raw_read_equals_the_core_read_for_every_column(store: SQLKeyStore) -> None:
    assert store.database.raw_reads
    assert store.database.async_raw_reads
    records = _edge_records(org())
    for made in records:
        store.add_key(made)
    for made in records:
        core = _core_get(store, made.key_id)
        assert core == made
        got, agot = store.get_key(made.key_id), await store.aget_key(made.key_id)
        assert got == core
        assert agot == core
        for field in type(core).__dataclass_fields__:
            assert getattr(got, field) == getattr(core, field), field
            assert type(getattr(got, field)) is type(getattr(core, field)), field
            assert getattr(agot, field) == getattr(core, field), field
        # The raw tuples, column by column, as Core's Row has them.
        row = store.database.fetch_one(ops.KEY_BY_ID, made.key_id)
        arow = await store.database.afetch_one(ops.KEY_BY_ID, made.key_id)
        with store.database.read_engine.connect() as conn:
            core_row = conn.execute(ops.KEY_BY_ID, {"value": made.key_id}).one()
        assert row is not None
        assert arow is not None
        assert [bytes(v) if isinstance(v, memoryview) else v for v in row] == [
            bytes(v) if isinstance(v, memoryview) else v for v in core_row
        ]
        assert [bytes(v) if isinstance(v, memoryview) else v for v in arow] == [
            bytes(v) if isinstance(v, memoryview) else v for v in core_row
        ]


async def test_ids_are_compared_exactly_on_the_raw_read(store: SQLKeyStore) -> None:
    made = record(org(), key_id="abcdefghijklmnopqrst")
    store.add_key(made)
    for other in ("ABCDEFGHIJKLMNOPQRST", "abcdefghijklmnopqrst ", "abcdefghijklmnopqrs", ""):
        assert store.get_key(other) is None
        assert await store.aget_key(other) is None
    assert store.get_key(made.key_id) == made


def _failing_once(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[Any]:
    """Make the next raw round trip fail with ``error``; returns the connections it ran on.

    A disconnect closes the connection first, as a server that went away would.
    """
    seen: list[Any] = []
    real = raw.RawRead.run

    def run(self: raw.RawRead, dbapi_connection: Any, value: object) -> Any:
        seen.append(dbapi_connection)
        if len(seen) == 1:
            if not isinstance(error, RuntimeError):
                dbapi_connection.close()
            raise error
        return real(self, dbapi_connection, value)

    monkeypatch.setattr(raw.RawRead, "run", run)
    return seen


def _disconnect_error(store: SQLKeyStore) -> Any:
    dbapi: Any = store.database.read_engine.dialect.loaded_dbapi
    backend = store.database.backend
    if backend == "sqlite":
        return dbapi.ProgrammingError("Cannot operate on a closed database.")
    if backend == "postgresql":
        return dbapi.OperationalError("consuming input failed: server closed the connection")
    return dbapi.OperationalError(2013, "Lost connection to MySQL server during query")


def test_a_connection_lost_under_the_raw_read_is_discarded_and_the_read_rerun(
    store: SQLKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = record(org())
    store.add_key(made)
    assert store.get_key(made.key_id) == made  # a pooled connection to lose
    seen = _failing_once(monkeypatch, _disconnect_error(store))
    assert store.get_key(made.key_id) == made  # rerun on a fresh connection
    assert len(seen) == 2
    assert seen[0] is not seen[1]
    pool: Any = store.database.read_engine.pool
    assert pool.checkedout() == 0
    monkeypatch.undo()
    assert store.get_key(made.key_id) == made


def test_a_connection_that_failed_otherwise_is_never_pooled_again(
    store: SQLKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = record(org())
    store.add_key(made)
    assert store.get_key(made.key_id) == made
    seen = _failing_once(monkeypatch, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        store.get_key(made.key_id)  # not ours to translate, not retried
    assert store.get_key(made.key_id) == made
    assert len(seen) == 2
    assert seen[0] is not seen[1]


def test_an_unreachable_database_is_store_unavailable_on_the_raw_read(
    store: SQLKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = record(org())
    store.add_key(made)
    error = _disconnect_error(store)
    seen: list[Any] = []

    def run(self: raw.RawRead, dbapi_connection: Any, value: object) -> Any:
        seen.append(dbapi_connection)
        dbapi_connection.close()
        raise error

    monkeypatch.setattr(raw.RawRead, "run", run)
    with pytest.raises(StoreUnavailable) as caught:
        store.get_key(made.key_id)
    assert "Lost" not in str(caught.value)
    assert "closed" not in str(caught.value)
    assert len(seen) == 3  # ATTEMPTS, each on a fresh connection
    assert len({id(conn) for conn in seen}) == 3
    pool: Any = store.database.read_engine.pool
    assert pool.checkedout() == 0


async def test_an_async_connection_lost_under_the_raw_read_is_discarded(
    store: SQLKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = record(org())
    store.add_key(made)
    assert await store.aget_key(made.key_id) == made
    engine = store.async_engine
    assert engine is not None
    dbapi = engine.dialect.loaded_dbapi
    backend = store.database.backend
    if backend == "mysql":
        error: BaseException = dbapi.OperationalError(2013, "Lost connection")
    else:
        error = dbapi.OperationalError("Cannot operate on a closed database.")
    if not engine.dialect.is_disconnect(error, None, None):  # type: ignore[arg-type]
        error = RuntimeError("boom")
    seen = _failing_once(monkeypatch, error)
    if isinstance(error, RuntimeError):
        with pytest.raises(RuntimeError):
            await store.aget_key(made.key_id)
    assert await store.aget_key(made.key_id) == made
    assert len(seen) == 2
    assert seen[0] is not seen[1]


def test_engines_passed_in_keep_the_core_path(sqlite_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(sqlite_url)
    store = SQLKeyStore(engine=engine, listen=False)
    store.create_all()
    made = record(org())
    store.add_key(made)
    assert not store.database.raw_reads
    assert not store.database.async_raw_reads
    assert store.get_key(made.key_id) == made
    engine.dispose()


def test_a_statement_listener_keeps_the_core_path(store: SQLKeyStore) -> None:
    import sqlalchemy as sa

    made = record(org())
    store.add_key(made)
    assert store.database.raw_reads
    statements: list[str] = []

    def listen(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(store.database.read_engine, "before_cursor_execute", listen)
    assert not store.database.raw_reads
    assert store.get_key(made.key_id) == made
    assert len(statements) == 1
    sa.event.remove(store.database.read_engine, "before_cursor_execute", listen)
    assert store.database.raw_reads


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def translated(request: pytest.FixtureRequest) -> Any:
    """``(url, schema)``: this session's namespace, and a second migrated namespace
    ``schema`` that a store on ``url`` reaches only through ``schema_translate_map``."""
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from tests.stores.conftest import SERVERS

    url = request.getfixturevalue(f"{request.param}_url")
    schema = f"scout_xlat_{uuid.uuid4().hex[:10]}"
    kind = "SCHEMA" if request.param == "postgres" else "DATABASE"
    admin = sa.create_engine(SERVERS[request.param][1], poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE {kind} {schema}")
    parsed = make_url(url)
    if request.param == "postgres":
        there = parsed.update_query_dict({"options": f"-csearch_path={schema}"})
    else:
        there = parsed.set(database=schema)
    try:
        SQLKeyStore(there.render_as_string(hide_password=False), listen=False).create_all()
        yield url, schema
    finally:
        with admin.begin() as conn:
            cascade = " CASCADE" if kind == "SCHEMA" else ""
            conn.exec_driver_sql(f"DROP {kind} IF EXISTS {schema}{cascade}")
        admin.dispose()


async def test_a_revoked_key_is_read_from_the_schema_the_engine_options_name(
    translated: tuple[str, str],
) -> None:
    # A service that puts the key tables in a schema of their own through
    # engine_options (schema_translate_map) must read revocations there: the
    # raw read compiles the plain statement, which names the default schema,
    # where an old copy of the tables (a previous deployment's) may still say
    # "enabled".
    from scout_auth import KeyUpdate

    url, schema = translated
    options = {"execution_options": {"schema_translate_map": {None: schema}}}
    stale = SQLKeyStore(url, listen=False)
    store = SQLKeyStore(
        url,
        listen=False,
        engine_options=options,
        async_engine_options={**options, **PER_TEST_LOOP},
    )
    try:
        made = record(org())
        stale.add_key(made)  # the default schema's old copy
        store.add_key(made)
        store.update_key(made.key_id, KeyUpdate(enabled=False))
        got, agot = store.get_key(made.key_id), await store.aget_key(made.key_id)
        assert got is not None
        assert agot is not None
        assert not got.enabled
        assert not agot.enabled
        fresh = record(org())
        store.add_key(fresh)  # only in the translated schema
        assert store.get_key(fresh.key_id) == fresh
        assert await store.aget_key(fresh.key_id) == fresh
    finally:
        stale.close()
        await store.aclose()


@pytest.mark.parametrize(
    ("event", "on_dialect", "fires"),
    [
        # A per-Connection hook (a service's SET search_path / SET ROLE): the
        # raw read would run without it, in another schema or role.
        pytest.param("engine_connect", False, True, id="engine_connect"),
        pytest.param("before_execute", False, True, id="before_execute"),
        pytest.param("after_execute", False, True, id="after_execute"),
        # A hook that runs the statement itself (it may rewrite or route it).
        pytest.param("do_execute", True, True, id="do_execute"),
        # A hook that classifies errors (a custom disconnect is retried).
        pytest.param("handle_error", True, False, id="handle_error"),
    ],
)
def test_a_core_hook_on_the_read_engine_keeps_the_core_path(
    store: SQLKeyStore, event: str, on_dialect: bool, fires: bool
) -> None:
    import sqlalchemy as sa

    made = record(org())
    store.add_key(made)
    assert store.database.raw_reads
    calls: list[object] = []

    def listen(*args: Any) -> None:
        calls.append(args)

    engine = store.database.read_engine
    target: Any = engine.dialect if on_dialect else engine
    sa.event.listen(target, event, listen)
    try:
        assert not store.database.raw_reads
        assert store.get_key(made.key_id) == made
        assert bool(calls) is fires
    finally:
        sa.event.remove(target, event, listen)
    assert store.database.raw_reads


@pytest.mark.parametrize(
    ("event", "on_dialect"),
    [
        pytest.param("before_cursor_execute", False, id="every-engine-before_cursor_execute"),
        pytest.param("engine_connect", False, id="every-engine-engine_connect"),
        pytest.param("do_execute", True, id="every-dialect-do_execute"),
    ],
)
def test_a_hook_on_every_engine_keeps_the_core_path(
    store: SQLKeyStore, event: str, on_dialect: bool
) -> None:
    # A listener on the class (every Engine, every Dialect) sets SQLAlchemy's
    # flag on the class, not on our engine: observed() must see it too.
    import sqlalchemy as sa
    from sqlalchemy.engine import Dialect, Engine

    made = record(org())
    store.add_key(made)
    assert store.database.raw_reads
    target: Any = Dialect if on_dialect else Engine

    def listen(*args: Any) -> None:
        return None

    sa.event.listen(target, event, listen)
    try:
        assert not store.database.raw_reads
        assert store.get_key(made.key_id) == made
    finally:
        sa.event.remove(target, event, listen)
    assert store.database.raw_reads
    assert store.get_key(made.key_id) == made

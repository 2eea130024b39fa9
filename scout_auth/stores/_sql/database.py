"""One SQL database as the key store and the audit sink use it: engines, timeouts, transactions.

Theory of operation
-------------------
A :class:`Database` owns the sync engine and its async twin (made lazily
from one URL, or the engines a service passes in), the timeouts
(:mod:`.engines`), the client-side read deadline on PostgreSQL
(:mod:`.watchdog`) and the loop that runs one operation of :mod:`.ops`:
:meth:`Database.run` / :meth:`Database.arun`, each run an
:class:`~.attempt.Attempt` that says whether a failure may be retried and
when a write's outcome became unknown (every statement answered, the
``COMMIT`` under way).

A write runs in one transaction. A read is one statement (every read of
:mod:`.ops` is) and runs in autocommit on a read engine of its own
(:mod:`.engines`, :func:`~.engines.read_options`): one round trip, where a
transaction would add a ``BEGIN`` and a ``ROLLBACK`` around the ``SELECT``
(issue 15). The statement still sees only committed rows, and the newest
ones: a key disabled a moment ago is read as disabled. The verifier's
look-up of a key by id goes further and skips Core on that read engine's
pool (:meth:`Database.fetch_one`, :mod:`.raw`): Core's client-side work was
most of its cost.

The key store adds what is its own on top: the ``NOTIFY`` of a write's
events and their delivery to its subscribers (:mod:`.store`). The audit
sink runs its operations on the same object, so one ``Database`` (one pool)
serves both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final, TypeVar

import anyio.to_thread
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, Pool
from sqlalchemy.sql import Select
from sqlalchemy.util import greenlet_spawn

from .attempt import ATTEMPTS, Attempt, translate
from .engines import (
    async_url,
    autocommit_reads,
    connect_args,
    is_memory_sqlite,
    merged_options,
    read_options,
    read_timeout_for,
    sync_url,
)
from .ops import MakeOp, Outcome
from .raw import RawRead, compile_read, fetch, observed
from .watchdog import NO_WATCH, WATCHDOG, Watch

__all__ = ["CONNECT_TIMEOUT", "STATEMENT_TIMEOUT", "Database"]

T = TypeVar("T")

#: Default seconds to wait for a connection.
CONNECT_TIMEOUT: Final = 5.0
#: Default seconds a statement or lock wait may take.
STATEMENT_TIMEOUT: Final = 5.0


class Database:
    """A SQL database: its engines, timeouts, and one transaction per operation.

    Build it from one URL (the sync engine and its async twin are created
    lazily, on first use) or from the engines a service already has, so it
    shares their connection pools. A :class:`~scout_auth.stores.sql.SQLKeyStore`
    makes one from the same arguments; build one yourself to share it (one
    pool, one set of timeouts) between a store and an
    :class:`~scout_auth.stores.sql.SQLAuditSink`.

    Args:
        url: A SQLAlchemy URL with a sync or async driver, e.g.
            ``sqlite:///keys.db``, ``postgresql+psycopg://…``,
            ``mysql+pymysql://…``. The async twin is derived (``aiosqlite``,
            ``psycopg``, ``asyncmy``).
        engine: An existing sync :class:`~sqlalchemy.engine.Engine`. Alone, the
            async calls run the sync ones in a worker thread.
        async_engine: An existing :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.
            Alone, the sync calls raise ``RuntimeError``.
        connect_timeout: Seconds to wait for a connection (engines built from
            ``url`` only; PostgreSQL rounds up to at least 2).
        statement_timeout: Seconds a statement or lock wait may take, or
            ``None`` for the server default (engines built from ``url`` only).
        read_timeout: Seconds the client waits for any one answer of the
            database before it gives the connection up (client side: a
            silent connection, which ``statement_timeout`` on the server
            cannot see). Default ``statement_timeout + 1`` (6 s; 30 s with
            ``statement_timeout=None``), for engines built from ``url``; on
            PostgreSQL engines passed in only if given (on a MySQL/MariaDB
            engine set the driver's own ``read_timeout`` in its
            ``connect_args`` instead). A silent database is then a
            ``StoreUnavailable`` within about this long (see
            ``docs/sql-store.md``, "Failure modes and guarantees").
        engine_options: Extra :func:`~sqlalchemy.create_engine` arguments.
        async_engine_options: Extra
            :func:`~sqlalchemy.ext.asyncio.create_async_engine` arguments.

    Raises:
        ValueError: Neither or both of ``url`` and engines, a bad timeout,
            ``read_timeout`` with a MySQL/MariaDB engine passed in, or an
            in-memory SQLite URL (each connection would see its own empty
            database; use a file or :class:`~scout_auth.InMemoryKeyStore`).

    Example:
        >>> database = Database("postgresql+psycopg://app@db/app")  # doctest: +SKIP
        >>> store, audit = SQLKeyStore(database), SQLAuditSink(database)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        engine: Engine | None = None,
        async_engine: AsyncEngine | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        statement_timeout: float | None = STATEMENT_TIMEOUT,
        read_timeout: float | None = None,
        engine_options: Mapping[str, Any] | None = None,
        async_engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (url is None) == (engine is None and async_engine is None):
            raise ValueError("pass either url or engine= / async_engine=")
        if (
            connect_timeout <= 0
            or (statement_timeout is not None and statement_timeout <= 0)
            or (read_timeout is not None and read_timeout <= 0)
        ):
            raise ValueError("timeouts must be positive")
        self._engine = engine
        self._async_engine = async_engine
        self._sync_url: URL | None = None
        self._async_url: URL | None = None
        if url is not None:
            self._sync_url = sync_url(url)
            self._async_url = async_url(url)
            if is_memory_sqlite(self._sync_url):
                raise ValueError("in-memory SQLite is per connection: use a file path")
        if url is None and read_timeout is not None and self.backend in ("mysql", "mariadb"):
            # A given engine's driver arguments cannot be changed from here.
            raise ValueError("read_timeout with engine=: set the driver's own in its connect_args")
        self._timeouts: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "statement_timeout": statement_timeout,
            "read_timeout": read_timeout,
        }
        # The deadline enforced here on PostgreSQL connections (libpq has no
        # read timeout; the MySQL drivers and SQLite time their reads
        # themselves): on the engines built here, and on engines passed in
        # only when asked to.
        self._read_deadline = (
            read_timeout_for(statement_timeout, read_timeout)
            if self.backend == "postgresql" and (url is not None or read_timeout is not None)
            else None
        )
        self._engine_options = dict(engine_options or {})
        self._async_engine_options = dict(async_engine_options or {})
        self._lock = threading.Lock()
        self._read_engine: Engine | None = None
        self._async_read_engine: AsyncEngine | None = None
        self._feed_engine: Engine | None = None
        self._feed_pool: Pool | None = None
        self._raw_reads: dict[tuple[Select[Any], bool], RawRead] = {}

    def __repr__(self) -> str:
        return f"Database(url={str(self.url)!r})"  # str(URL) masks the password

    @property
    def url(self) -> URL:
        """The database's URL (the sync one; ``str()`` of it masks the password)."""
        if self._sync_url is not None:
            return self._sync_url
        given = self._engine or self._async_engine
        assert given is not None  # the constructor checked
        return given.url

    @property
    def backend(self) -> str:
        """The dialect's name: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        return self.url.get_backend_name()

    @property
    def engine(self) -> Engine:
        """The sync engine (created on first use when built from a URL)."""
        if self._engine is not None:
            return self._engine
        with self._lock:
            if self._engine is None:
                if self._sync_url is None:
                    raise RuntimeError("this SQLKeyStore has only an async engine: pass engine=")
                options = merged_options(
                    self._sync_url, False, self._timeouts, self._engine_options
                )
                self._engine = create_engine(self._sync_url, **options)
            return self._engine

    @property
    def async_engine(self) -> AsyncEngine | None:
        """The async engine, or ``None`` if async calls go through a worker thread."""
        if self._async_engine is not None:
            return self._async_engine
        with self._lock:
            if self._async_engine is None and self._async_url is not None:
                options = merged_options(
                    self._async_url, True, self._timeouts, self._async_engine_options
                )
                self._async_engine = create_async_engine(self._async_url, **options)
            return self._async_engine

    # -- the read engines: autocommit -------------------------------------
    @property
    def read_engine(self) -> Engine:
        """The sync engine reads run on (autocommit; the sync engine itself if it cannot be)."""
        return self._reader()[0]

    def _reader(self) -> tuple[Engine, bool]:
        """The engine reads run on, and whether it is in autocommit."""
        if self._read_engine is None:
            engine = self.engine
            with self._lock:
                if self._read_engine is None:
                    if self._sync_url is not None:  # a pool of its own, in autocommit
                        options = merged_options(
                            self._sync_url, False, self._timeouts, self._engine_options
                        )
                        made = create_engine(self._sync_url, **read_options(options))
                        self._read_engine = autocommit_reads(made)
                    elif engine.dialect.driver == "psycopg":
                        # An engine passed in: its pool, in autocommit per
                        # connection (client side on psycopg, no round trip).
                        self._read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
                    else:  # switching would cost round trips: reads keep a transaction
                        self._read_engine = engine
        return self._read_engine, self._read_engine is not self._engine

    def _async_reader(self, engine: AsyncEngine) -> tuple[AsyncEngine, bool]:
        """:meth:`_reader` for the async ``engine``."""
        if self._async_read_engine is None:
            with self._lock:
                if self._async_read_engine is None:
                    if self._async_url is not None:
                        options = merged_options(
                            self._async_url, True, self._timeouts, self._async_engine_options
                        )
                        made = create_async_engine(self._async_url, **read_options(options))
                        autocommit_reads(made.sync_engine)
                        self._async_read_engine = made
                    elif engine.dialect.driver == "psycopg_async":
                        self._async_read_engine = engine.execution_options(
                            isolation_level="AUTOCOMMIT"
                        )
                    else:
                        self._async_read_engine = engine
        return self._async_read_engine, self._async_read_engine is not engine

    # -- one operation: a transaction, or one autocommit read ---------------
    def _watch(self, raw: Any) -> Watch:
        """The read deadline for one operation on ``raw`` (a pooled DBAPI connection)."""
        if self._read_deadline is None:
            return NO_WATCH
        return WATCHDOG.watch(raw.driver_connection, self._read_deadline)

    def run(
        self,
        make: MakeOp[T],
        *,
        write: bool,
        rerun_on_conflict: bool = False,
        unsure: Callable[[Outcome[Any]], None] | None = None,
    ) -> Outcome[T]:
        """Run ``make``'s operation in one transaction; its outcome once committed.

        A read runs in autocommit (one statement, one round trip) where the
        engine allows it, else in a transaction rolled back at the end. A
        failure that may be retried
        (see :meth:`Attempt.may_retry`) runs the operation again, at most
        :data:`ATTEMPTS` times in all; driver errors are translated
        (:func:`translate`).

        Args:
            make: The operation, for this database's dialect.
            write: Commit (``False``: roll back, never retry a deadlock).
            rerun_on_conflict: The operation looks up what could conflict
                before it writes, so a unique violation means another
                transaction committed the same value in between: run it again
                (the violation rolled the transaction back whole), and its
                look-up sees that value.
            unsure: Called with the outcome of a write that failed once every
                statement was answered: its ``COMMIT`` may have been carried
                out and only the reply lost.
        """
        engine, autocommit = (self.engine, False) if write else self._reader()
        for attempt in range(1, ATTEMPTS + 1):
            run: Attempt[T] = Attempt()
            try:
                if autocommit:
                    with engine.connect() as conn, run.watched(self._watch(conn.connection)):
                        outcome = run.drive(make(conn.dialect), conn.execute)
                    break
                # The watch spans every round trip, the COMMIT or ROLLBACK
                # included, and ends before the connection goes back to the pool.
                with (
                    engine.connect() as conn,
                    run.watched(self._watch(conn.connection)),
                    conn.begin() as transaction,
                ):
                    outcome = run.drive(make(conn.dialect), conn.execute)
                    if not write:
                        transaction.rollback()
                break
            except Exception as exc:
                self._failed(run, exc, attempt, write, rerun_on_conflict, unsure)
        return outcome

    async def arun(
        self,
        make: MakeOp[T],
        *,
        write: bool,
        rerun_on_conflict: bool = False,
        unsure: Callable[[Outcome[Any]], None] | None = None,
    ) -> Outcome[T]:
        """Async :meth:`run` (in a worker thread on the sync engine's pool if no async engine)."""
        engine = self.async_engine
        if engine is None:  # only a sync engine: share its pool from a worker thread
            run_sync = partial(
                self.run, make, write=write, rerun_on_conflict=rerun_on_conflict, unsure=unsure
            )
            return await anyio.to_thread.run_sync(run_sync)
        engine, autocommit = (engine, False) if write else self._async_reader(engine)
        for attempt in range(1, ATTEMPTS + 1):
            run: Attempt[T] = Attempt()
            try:
                async with engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    with run.watched(self._watch(raw)):
                        if autocommit:
                            outcome = await run.adrive(make(conn.dialect), conn.execute)
                            break
                        async with conn.begin() as transaction:
                            outcome = await run.adrive(make(conn.dialect), conn.execute)
                            if not write:
                                await transaction.rollback()
                break
            except Exception as exc:
                self._failed(run, exc, attempt, write, rerun_on_conflict, unsure)
        return outcome

    @staticmethod
    def _failed(
        run: Attempt[T],
        exc: Exception,
        attempt: int,
        write: bool,
        rerun_on_conflict: bool,
        unsure: Callable[[Outcome[Any]], None] | None,
    ) -> None:
        """Return to try again, or raise what the caller gets for ``exc``."""
        if write and unsure is not None and run.outcome is not None:
            unsure(run.outcome)
        if attempt < ATTEMPTS and (
            run.may_retry(exc, write=write)
            or (rerun_on_conflict and isinstance(exc, sa_exc.IntegrityError))
        ):
            return
        mapped = translate(exc)
        if mapped is None:
            raise exc
        raise mapped from exc

    # -- the raw read: one row, past Core (the verifier's look-up, :mod:`.raw`) --
    @property
    def raw_reads(self) -> bool:
        """Whether :meth:`fetch_one` can run: the sync read engine is ours, in autocommit.

        Not while someone listens to the read engine's statements or hooks
        into Core's execution (``before_cursor_execute`` /
        ``after_cursor_execute``: a tracer, a test counting queries;
        ``engine_connect``, ``before_execute`` / ``after_execute``,
        ``do_execute``, ``handle_error``): they see every statement, on the
        Core path.
        Nor on a read engine with execution options (``engine_options``):
        Core applies them, ``schema_translate_map`` included, and the raw
        read cannot.
        """
        return self._sync_url is not None and not observed(self.read_engine)

    @property
    def async_raw_reads(self) -> bool:
        """Whether :meth:`afetch_one` can run: an async read engine of ours, in autocommit."""
        if self._async_url is None:  # then the async engines are made here
            return False
        engine = self.async_engine
        assert engine is not None
        return not observed(self._async_reader(engine)[0].sync_engine)

    def _raw_read(self, statement: Select[Any], dialect: Any, is_async: bool) -> RawRead:
        read = self._raw_reads.get((statement, is_async))
        if read is None:  # compiled once per statement and engine; a race compiles twice
            read = self._raw_reads[statement, is_async] = compile_read(statement, dialect)
        return read

    def fetch_one(self, statement: Select[Any], value: object) -> tuple[Any, ...] | None:
        """The row ``statement`` (one bound parameter, ``value``) selects, past Core.

        Only where :attr:`raw_reads`: on the read engine's pool in autocommit,
        one round trip. Retries and errors as :meth:`run` (:mod:`.raw`).
        """
        engine = self.read_engine
        read = self._raw_read(statement, engine.dialect, False)
        for attempt in range(1, ATTEMPTS + 1):
            run: Attempt[Any] = Attempt()
            try:
                return fetch(engine.pool, engine.dialect, read, value, self._watch, run)
            except Exception as exc:
                self._failed(run, exc, attempt, False, False, None)
        raise AssertionError("unreachable")  # pragma: no cover - _failed raised

    async def afetch_one(self, statement: Select[Any], value: object) -> tuple[Any, ...] | None:
        """Async :meth:`fetch_one` (only where :attr:`async_raw_reads`)."""
        given = self.async_engine
        assert given is not None
        engine = self._async_reader(given)[0].sync_engine
        read = self._raw_read(statement, engine.dialect, True)
        for attempt in range(1, ATTEMPTS + 1):
            run: Attempt[Any] = Attempt()
            try:
                return await greenlet_spawn(
                    fetch, engine.pool, engine.dialect, read, value, self._watch, run
                )
            except Exception as exc:
                self._failed(run, exc, attempt, False, False, None)
        raise AssertionError("unreachable")  # pragma: no cover - _failed raised

    # -- the change feed's connections (PostgreSQL) ------------------------
    def feed_connection(self) -> Any:
        """A new DBAPI connection in autocommit mode, out of no pool, for ``LISTEN``.

        Never one of the pool's: a pooled connection may have gone silent
        with the one the feed just lost, and ``LISTEN`` would wait on it for
        good. It comes from a pool of its own that is a copy of the sync
        engine's (its connect arguments, pool events and creator apply) and
        never keeps a connection: each one is detached at once. An engine on
        another driver, or an async engine alone, lends its URL to a psycopg
        engine of the feed's own.
        """
        raw = self._pool_for_feed().connect()
        conn: Any = raw.driver_connection
        raw.detach()
        try:
            conn.rollback()  # a new connection: no transaction, no round trip
            conn.autocommit = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _pool_for_feed(self) -> Pool:
        if self._feed_pool is None:  # only the feed thread gets here
            has_sync = self._engine is not None or self._sync_url is not None
            engine = self.engine if has_sync else None
            if engine is None or engine.dialect.driver != "psycopg":
                engine = self._engine_for_feed()
                self._feed_pool = engine.pool  # NullPool: every connection new
            else:
                self._feed_pool = engine.pool.recreate()
        return self._feed_pool

    def _engine_for_feed(self) -> Engine:
        with self._lock:
            if self._feed_engine is None:
                url = self.url.set(drivername="postgresql+psycopg")
                args = connect_args(url, is_async=False, **self._timeouts)
                self._feed_engine = create_engine(url, poolclass=NullPool, connect_args=args)
            return self._feed_engine

    def close(self) -> None:
        """Close the pooled connections of the sync engines made here.

        Engines passed in are left alone (their owner disposes them). Call
        :meth:`aclose` from async code to release the async pool too. The
        database stays usable: a later call connects again.
        """
        if self._feed_engine is not None:
            self._feed_engine.dispose()
        if self._read_engine is not None and self._sync_url is not None:
            self._read_engine.dispose()
        if self._engine is not None and self._sync_url is not None:
            self._engine.dispose()

    async def aclose(self) -> None:
        """:meth:`close`, and close the async pool made here too."""
        if self._async_engine is not None and self._async_url is not None:
            await self._async_engine.dispose()
        if self._async_read_engine is not None and self._async_url is not None:
            await self._async_read_engine.dispose()
        self.close()

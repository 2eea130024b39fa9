"""The verifier's hot read without SQLAlchemy Core: one statement on a raw pooled connection.

Why Core is bypassed here
-------------------------
The rule is to prefer the library. For the one read a cold verification
makes (a key by its id, ``get_key`` / ``aget_key``), ``benchmarks/sql_lookup.py``
showed the library cannot meet the target of issue 15 (p50 and p99 within
1.3x of one raw driver round trip): with reads already in autocommit on a
pool of their own and the statement a cached lambda, Core's client-side work
alone (connection checkout and return through ``Connection``, ``execute``'s
compile-cache look-up and context, result processing) kept ``get_key`` at
2.9x (MariaDB) to 3.3x (PostgreSQL) and 9.6x (SQLite, a 19 µs floor) the
round trip. So this look-up, and only it, skips Core's ``Connection``; every
other operation keeps :meth:`~.database.Database.run`, and so does this one
on engines passed in (their transaction settings are the service's) and
while listeners watch the read engine's statements or hook into Core's
execution (:func:`observed`: a tracer or a query counter keeps seeing every
statement, an ``engine_connect`` hook that sets the schema or role keeps
running, a ``handle_error`` hook keeps classifying errors), and on a read
engine with execution options (``engine_options={"execution_options": …}``):
Core applies them to every statement and the raw read could not, so a
``schema_translate_map`` would send the look-up to the default schema's
table, a revocation in the service's schema unseen.

Theory of operation
-------------------
It still runs on SQLAlchemy's *pool* and *dialect*, so nothing of what they
guarantee is lost: the connection comes out of the read engine's pool (its
connect arguments, timeouts, ``isolation_level=AUTOCOMMIT`` and pool events
apply), the SQL is the Core statement compiled once per dialect
(:func:`compile_read`), the values go through the column types' own result
processors (so a row reads exactly as Core reads it; :func:`~.ops.key_record`
maps it, the same function the Core path uses), and a failure is wrapped into
the exception Core would raise (:func:`fetch`), with the connection discarded,
so :class:`~.attempt.Attempt` and :func:`~.attempt.translate` decide retries
and the ``StoreUnavailable`` exactly as for Core. On psycopg (sync) the
statement is prepared on each connection at its first use (``prepare=True``);
async psycopg prepares it at its fifth (psycopg's ``prepare_threshold``);
PyMySQL and asyncmy send the plain parametrised query; sqlite3 and aiosqlite
keep it in the connection's statement cache.

The async twin runs the same function in one greenlet (SQLAlchemy's
``greenlet_spawn``) on the pool's adapted connections, as Core's asyncio
extension itself does: written once, driven twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.pool import Pool
from sqlalchemy.sql import Select

from .attempt import Attempt
from .watchdog import Watch

__all__ = ["RawRead", "compile_read", "fetch", "observed"]

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class RawRead:
    """A one-row ``SELECT`` by one bound value (named ``value``), compiled for one dialect."""

    sql: str
    #: Whether the DBAPI takes positional parameters (else a ``{"value": …}`` mapping).
    positional: bool
    #: ``(position, processor)`` of the columns whose type processes the
    #: driver's value (the others are read as they come).
    processors: tuple[tuple[int, Processor], ...]
    #: Pass ``prepare=True`` to ``execute`` (sync psycopg).
    prepare: bool

    def run(self, dbapi_connection: Any, value: object) -> tuple[Any, ...] | None:
        """One round trip on ``dbapi_connection``: the processed row, or ``None``."""
        params: object = (value,) if self.positional else {"value": value}
        cursor = dbapi_connection.cursor()
        try:
            if self.prepare:
                cursor.execute(self.sql, params, prepare=True)
            else:
                cursor.execute(self.sql, params)
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            return None
        values = list(row)
        for position, process in self.processors:
            values[position] = process(values[position])
        return tuple(values)


def observed(engine: Engine) -> bool:
    """Whether the read must keep Core's path on ``engine``.

    So it does while anything listens to the engine's or its dialect's
    events (``engine_connect`` setting a ``search_path`` or role,
    ``before_execute`` / ``after_execute``, ``before_cursor_execute`` /
    ``after_cursor_execute`` of a tracer or a query counter, ``do_execute``
    rewriting or routing the statement, ``handle_error`` classifying a
    disconnect: hooks the raw read would skip), and on an engine with
    execution options (Core applies them to each statement;
    ``schema_translate_map`` changes the very table read).
    """
    if engine._execution_options:
        return True
    # SQLAlchemy's own flags, set by the first listener of any ConnectionEvents
    # (on the engine or on every Engine) or DialectEvents hook and never
    # cleared: with neither set nothing listens (the usual case, three
    # attribute reads). Once one is, the hooks are read one by one (a removed
    # listener gives the raw read back); that costs ~9k instructions per
    # look-up, each collection's __bool__ being Python.
    if not (engine._has_events or engine.dialect._has_events):
        return False
    dispatch, dialect = engine.dispatch, engine.dialect.dispatch
    return bool(
        dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
        or dispatch.engine_connect
        or dispatch.before_execute
        or dispatch.after_execute
        or dialect.do_execute
        or dialect.handle_error
    )


def compile_read(statement: Select[Any], dialect: Dialect) -> RawRead:
    """``statement`` (one bound parameter, ``value``) as SQL text for ``dialect``."""
    compiled = statement.compile(dialect=dialect)
    processors = tuple(
        (position, process)
        for position, column in enumerate(statement.selected_columns)
        if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
        is not None
    )
    return RawRead(
        sql=str(compiled),
        positional=compiled.positional,
        processors=processors,
        prepare=dialect.driver == "psycopg" and not dialect.is_async,
    )


def _wrapped(exc: Exception, read: RawRead, dialect: Dialect, invalidated: bool) -> Exception:
    """The SQLAlchemy exception Core would raise for the DBAPI error ``exc``."""
    if not isinstance(exc, dialect.loaded_dbapi.Error):
        return exc  # a pool timeout, a socket timeout, ours: as they are
    return sa_exc.DBAPIError.instance(
        read.sql,
        None,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=invalidated,
        dialect=dialect,
    )


def _raise(exc: Exception, read: RawRead, dialect: Dialect, invalidated: bool) -> NoReturn:
    wrapped = _wrapped(exc, read, dialect, invalidated)
    if wrapped is exc:
        raise exc
    raise wrapped from exc


def fetch(
    pool: Pool,
    dialect: Dialect,
    read: RawRead,
    value: object,
    watch: Callable[[Any], Watch],
    run: Attempt[Any],
) -> tuple[Any, ...] | None:
    """Run ``read`` once on a connection of ``pool``, under ``watch(connection)``.

    Any failure discards the connection: a disconnect invalidates it and
    every pooled connection opened before it (Core's own rule: the server
    went away for them too); any other error, a cancellation included,
    invalidates this one (its protocol state is unknown, a new one is cheap).
    DBAPI errors come out as Core's, ``connection_invalidated`` set on a
    disconnect, so a dead pooled connection is retried and a timeout is not.
    """
    try:
        conn = pool.connect()
    except Exception as exc:  # could not connect: as Core's "no connection" path
        dbapi = dialect.loaded_dbapi
        lost = isinstance(exc, dbapi.Error) and dialect.is_disconnect(exc, None, None)
        _raise(exc, read, dialect, lost)
    try:
        with run.watched(watch(conn)):
            return read.run(conn.dbapi_connection, value)
    except BaseException as exc:
        lost = isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
            exc, conn.dbapi_connection, None
        )
        if lost:
            pool._invalidate(conn, exc)
        else:
            conn.invalidate(exc if isinstance(exc, Exception) else None)
        if isinstance(exc, Exception):
            _raise(exc, read, dialect, lost)
        raise
    finally:
        conn.close()

"""Engines for a :class:`~.database.Database`: URLs, and timeouts as driver arguments.

A database built from one URL needs a sync and an async engine; the async
URL is derived from the sync one (and back) by swapping the driver for its
twin. For MySQL/MariaDB the async twin is asyncmy: aiomysql 0.3 cannot send
binary parameters with PyMySQL 1.2 (aiomysql URLs are still accepted).
Timeouts become driver connect arguments (and, on PostgreSQL, a deadline
the database enforces itself: :mod:`.watchdog`), so a dead, stuck or silent
server fails a call within bounded time.

Reads get an engine of their own in autocommit (:func:`read_options`,
:func:`autocommit_reads`): each look-up is its one ``SELECT``, no ``BEGIN``
before it and no ``ROLLBACK`` after it (issue 15). psycopg prepares a
statement it has run ``prepare_threshold`` times (5) on a connection, so a
look-up is a prepared statement from then on; SQLAlchemy's compiled cache
spares the compiling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL, Engine, make_url

__all__ = [
    "async_url",
    "autocommit_reads",
    "connect_args",
    "is_memory_sqlite",
    "merged_options",
    "read_options",
    "read_timeout_for",
    "sync_url",
]

# sync driver -> async twin; a bare dialect name means its default driver.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "mysql": "mysql+asyncmy",
    "mysql+pymysql": "mysql+asyncmy",
    "mysql+mysqldb": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
    "mariadb+pymysql": "mariadb+asyncmy",
    "mariadb+mysqldb": "mariadb+asyncmy",
}
_SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
    "mariadb+aiomysql": "mariadb+pymysql",
    "mariadb+asyncmy": "mariadb+pymysql",
}


def _swap(url: URL, table: dict[str, str]) -> URL | None:
    name = url.drivername
    if name in table:
        return url.set(drivername=table[name])
    return None


def sync_url(url: str | URL) -> URL:
    """The sync URL for ``url`` (itself if it already names a sync driver)."""
    parsed = make_url(url)
    return _swap(parsed, _SYNC_DRIVERS) or parsed


def async_url(url: str | URL) -> URL | None:
    """The async twin of ``url``, or ``None`` if no async driver is known for it."""
    parsed = make_url(url)
    if parsed.drivername in _SYNC_DRIVERS or parsed.drivername == "postgresql+psycopg_async":
        return parsed
    return _swap(parsed, _ASYNC_DRIVERS)


def is_memory_sqlite(url: URL) -> bool:
    """Whether ``url`` is a per-connection in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


#: TCP keepalives on PostgreSQL connections (libpq): an idle pooled connection
#: whose peer is gone is found dead within about ``IDLE + tcp_user_timeout``
#: seconds and replaced before a request waits on it.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3

_LIBPQ_DRIVERS = frozenset({"psycopg", "psycopg_async", "psycopg2"})


def read_timeout_for(statement_timeout: float | None, read_timeout: float | None) -> float:
    """The client-side read timeout: ``read_timeout``, else ``statement_timeout + 1`` (or 30).

    One second above the server's own limit, so a slow statement ends with
    the server's clean error (the connection kept) before the client gives
    the connection up; 30 s when the server has no statement limit of ours.
    """
    if read_timeout is not None:
        return read_timeout
    return 30.0 if statement_timeout is None else statement_timeout + 1.0


def connect_args(
    url: URL,
    *,
    is_async: bool,
    connect_timeout: float,
    statement_timeout: float | None,
    read_timeout: float | None = None,
) -> dict[str, Any]:
    """Driver connect arguments that bound connecting, each statement and each answer.

    ``read_timeout`` (default: :func:`read_timeout_for`) is how long the
    client waits for any one answer. MySQL/MariaDB drivers enforce it on
    their socket; libpq has no such setting, so on PostgreSQL the database
    enforces it (:mod:`.watchdog`) and the connection gets TCP
    keepalives and ``tcp_user_timeout`` (unacknowledged data for that long
    ends the connection). Parameters given in the URL's query win.
    """
    backend, driver = url.get_backend_name(), url.get_driver_name()
    answer = read_timeout_for(statement_timeout, read_timeout)
    args: dict[str, Any] = {}
    if backend == "sqlite":
        # How long to wait for another writer's lock before "database is locked".
        args["timeout"] = statement_timeout if statement_timeout is not None else 5.0
    elif backend == "postgresql":
        args["connect_timeout"] = max(2, math.ceil(connect_timeout))  # libpq's minimum
        if statement_timeout is not None:
            # Added to, never replacing, ``?options=`` in the URL (a search_path...).
            given = url.query.get("options", ())
            given = (given,) if isinstance(given, str) else given
            timeout = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
            args["options"] = " ".join((*given, timeout))
        if driver in _LIBPQ_DRIVERS:
            libpq = {
                "keepalives": 1,
                "keepalives_idle": KEEPALIVE_IDLE,
                "keepalives_interval": KEEPALIVE_INTERVAL,
                "keepalives_count": KEEPALIVE_COUNT,
                "tcp_user_timeout": max(1, math.ceil(answer * 1000)),  # milliseconds
            }
            args.update({k: v for k, v in libpq.items() if k not in url.query})
    elif backend in ("mysql", "mariadb"):
        args["connect_timeout"] = max(1, math.ceil(connect_timeout))
        if statement_timeout is not None and "init_command" not in url.query:  # the URL's wins
            seconds = max(1, math.ceil(statement_timeout))
            args["init_command"] = f"SET SESSION innodb_lock_wait_timeout = {seconds}"
        # Socket timeouts: a server that stops answering fails the call (the
        # handshake after connecting too).
        if driver == "pymysql":
            args["read_timeout"] = args["write_timeout"] = answer
        elif driver == "mysqldb":  # whole seconds only
            args["read_timeout"] = args["write_timeout"] = max(1, math.ceil(answer))
        elif driver == "asyncmy":
            args["read_timeout"] = answer
    return args


def merged_options(
    url: URL, is_async: bool, timeouts: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """Engine options: the caller's ``given`` on top of our timeouts' connect arguments."""
    # connect_args are merged key by key.
    args = connect_args(url, is_async=is_async, **timeouts)
    args.update(given.get("connect_args", {}))
    return {**given, "connect_args": args}


def read_options(options: dict[str, Any]) -> dict[str, Any]:
    """Engine ``options`` for the read engine: autocommit, nothing to reset on return.

    A connection in autocommit is in no transaction between statements, so
    the pool's reset-on-return ``ROLLBACK`` would be a round trip for nothing.
    """
    return {**options, "isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}


def in_transaction(dbapi_connection: Any) -> bool:
    """Whether a DBAPI connection has a transaction open (``True`` when it cannot tell)."""
    driver = getattr(dbapi_connection, "driver_connection", None) or dbapi_connection
    status = getattr(driver, "server_status", None)  # PyMySQL, asyncmy: the server's flags
    if isinstance(status, int):
        return bool(status & _SERVER_STATUS_IN_TRANS)
    flag = getattr(driver, "in_transaction", None)  # sqlite3, aiosqlite
    if isinstance(flag, bool):
        return flag
    info = getattr(driver, "info", None)  # psycopg: TransactionStatus.IDLE is 0
    status = getattr(info, "transaction_status", None)
    return not (isinstance(status, int) and status == 0)


#: MySQL's ``SERVER_STATUS_IN_TRANS`` flag, in every OK packet's status.
_SERVER_STATUS_IN_TRANS = 1


def autocommit_reads(engine: Engine) -> Engine:
    """``engine`` (made with :func:`read_options`), skipping a ``ROLLBACK`` with nothing to end.

    SQLAlchemy ends every connection's use with the DBAPI ``rollback()``,
    even in autocommit. psycopg skips it when no transaction is open; PyMySQL
    and asyncmy send it to the server (a round trip), aiosqlite hops to its
    thread for it. On this engine's dialect (its own, made for the read
    engine) the rollback is skipped when the connection says no transaction
    is open, and done otherwise.
    """
    dialect = engine.dialect
    rollback: Callable[[Any], None] = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        if in_transaction(dbapi_connection):
            rollback(dbapi_connection)

    # The instance attribute shadows the class's method for this dialect only.
    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010
    return engine

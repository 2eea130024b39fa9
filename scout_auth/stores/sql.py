"""The SQL key store: SQLAlchemy Core on SQLite, PostgreSQL and MariaDB.

Needs the ``sql`` extra (``postgres`` / ``mariadb`` for those drivers). See
``docs/sql-store.md`` for the schema, migrations and guarantees.

Example:
    >>> from scout_auth import KeyManager, Verifier
    >>> from scout_auth.stores.sql import SQLKeyStore
    >>> store = SQLKeyStore("sqlite:///keys.db")  # doctest: +SKIP
    >>> store.create_all()  # doctest: +SKIP
    >>> new = KeyManager(store).create_key("org_1", "billing-sync prod")  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, CursorResult, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from .._records import KeyRecord, LegacyRecord
from . import _sql_ops as ops
from ._base import KeyUpdate, StoreEventsMixin
from ._sql_audit import SQLAuditSink
from ._sql_engines import async_url, connect_args, is_memory_sqlite, is_retryable, sync_url
from ._sql_engines import unavailable as _unavailable
from ._sql_migrate import alembic_config, create_all, upgrade
from ._sql_schema import AUDIT, KEYS, LEGACY, METADATA

__all__ = [
    "AUDIT",
    "KEYS",
    "LEGACY",
    "METADATA",
    "SQLAuditSink",
    "SQLKeyStore",
    "alembic_config",
    "create_all",
    "upgrade",
]

T = TypeVar("T")
MakeOp = Callable[[Dialect], ops.Op[T]]

_ATTEMPTS = 3


class _Attempt:
    """One run of an operation: how many of its statements the database answered."""

    __slots__ = ("answered",)

    def __init__(self) -> None:
        self.answered = 0

    def may_retry(self, exc: Exception, *, write: bool) -> bool:
        # A pooled connection found dead before any statement was answered:
        # nothing can have been committed, so run again on a fresh connection
        # (what pool_pre_ping does, without a ping round trip on every call).
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return self.answered == 0
        # A deadlock victim was rolled back whole: running it again is safe.
        return write and is_retryable(exc)

    def drive(
        self, op: ops.Op[T], execute: Callable[[Executable], CursorResult[Any]]
    ) -> ops.Outcome[T]:
        try:
            statement = next(op)
            while True:
                result = execute(statement)
                self.answered += 1
                statement = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    async def adrive(
        self, op: ops.Op[T], execute: Callable[[Executable], Awaitable[CursorResult[Any]]]
    ) -> ops.Outcome[T]:
        try:
            statement = next(op)
            while True:
                result = await execute(statement)
                self.answered += 1
                statement = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()


def _options(
    url: URL, is_async: bool, timeouts: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    # Ours first, the caller's on top; connect_args merged key by key.
    args = connect_args(url, is_async=is_async, **timeouts)
    args.update(given.get("connect_args", {}))
    return {**given, "connect_args": args}


def _translate(exc: Exception) -> Exception | None:
    if isinstance(exc, sa_exc.IntegrityError):
        return ValueError("duplicate key id")
    if type(exc) is sa_exc.StatementError and isinstance(exc.orig, ValueError):
        return exc.orig  # a value our column types refused (a naive datetime)
    return _unavailable(exc)


class SQLKeyStore(StoreEventsMixin):
    """A key store in a SQL database, with sync and async methods side by side.

    Build it from one URL (the store creates a sync engine and its async twin
    lazily, on first use) or hand it the engines a service already has, so it
    shares their connection pools.

    Args:
        url: A SQLAlchemy URL with a sync or async driver, e.g.
            ``sqlite:///keys.db``, ``postgresql+psycopg://…``,
            ``mysql+pymysql://…``. The async twin is derived (``aiosqlite``,
            ``psycopg``, ``asyncmy``).
        engine: An existing sync :class:`~sqlalchemy.engine.Engine`. Alone, the
            ``a*`` methods run the sync ones in a worker thread.
        async_engine: An existing :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.
            Alone, the sync methods raise ``RuntimeError``.
        connect_timeout: Seconds to wait for a connection (engines built from
            ``url`` only; PostgreSQL rounds up to at least 2).
        statement_timeout: Seconds a statement or lock wait may take, or
            ``None`` for the server default (engines built from ``url`` only).
        engine_options: Extra :func:`~sqlalchemy.create_engine` arguments.
        async_engine_options: Extra
            :func:`~sqlalchemy.ext.asyncio.create_async_engine` arguments.

    Raises:
        ValueError: Neither or both of ``url`` and engines, a bad timeout, or
            an in-memory SQLite URL (each connection would see its own empty
            database; use a file or :class:`~scout_auth.InMemoryKeyStore`).

    Store methods raise :class:`~scout_auth.exceptions.StoreUnavailable` when
    the database cannot be reached or times out; the next call tries again, no
    rebuild needed. A pooled connection that turns out dead (the server
    restarted) is replaced and the call run again before anything was
    written, so a restart between two calls goes unnoticed.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        engine: Engine | None = None,
        async_engine: AsyncEngine | None = None,
        connect_timeout: float = 5.0,
        statement_timeout: float | None = 5.0,
        engine_options: Mapping[str, Any] | None = None,
        async_engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if (url is None) == (engine is None and async_engine is None):
            raise ValueError("pass either url or engine= / async_engine=")
        if connect_timeout <= 0 or (statement_timeout is not None and statement_timeout <= 0):
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
        self._timeouts = {
            "connect_timeout": connect_timeout,
            "statement_timeout": statement_timeout,
        }
        self._engine_options = dict(engine_options or {})
        self._async_engine_options = dict(async_engine_options or {})
        self._engine_lock = threading.Lock()

    def __repr__(self) -> str:
        url = self._sync_url or (self._engine or self._async_engine).url  # type: ignore[union-attr]
        return f"SQLKeyStore(url={str(url)!r})"  # str(URL) masks the password

    # -- engines --------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The sync engine (created on first use when built from a URL)."""
        if self._engine is not None:
            return self._engine
        with self._engine_lock:
            if self._engine is None:
                if self._sync_url is None:
                    raise RuntimeError("this SQLKeyStore has only an async engine: pass engine=")
                options = _options(self._sync_url, False, self._timeouts, self._engine_options)
                self._engine = create_engine(self._sync_url, **options)
            return self._engine

    @property
    def async_engine(self) -> AsyncEngine | None:
        """The async engine, or ``None`` if async calls go through a worker thread."""
        if self._async_engine is not None:
            return self._async_engine
        with self._engine_lock:
            if self._async_engine is None and self._async_url is not None:
                options = _options(
                    self._async_url, True, self._timeouts, self._async_engine_options
                )
                self._async_engine = create_async_engine(self._async_url, **options)
            return self._async_engine

    def create_all(self) -> None:
        """Create the tables if missing and stamp the migration head (SQLite, tests)."""
        create_all(self.engine)

    def audit_sink(self) -> SQLAuditSink:
        """An audit sink on this store's engines: the ``scout_auth_audit_events`` table.

        Example:
            >>> manager = KeyManager(store, audit=AuditBuffer(store.audit_sink()))  # doctest: +SKIP
        """
        return SQLAuditSink(self)

    # -- drivers: one transaction per operation, events after commit ----
    def _read(self, make: MakeOp[T]) -> T:
        return self._run(make, write=False)

    def _write(self, make: MakeOp[T]) -> T:
        return self._run(make, write=True)

    def _run(self, make: MakeOp[T], *, write: bool) -> T:
        engine = self.engine
        for attempt in range(1, _ATTEMPTS + 1):
            run = _Attempt()
            try:
                with engine.begin() if write else engine.connect() as conn:
                    outcome = run.drive(make(conn.dialect), conn.execute)
                break
            except Exception as exc:
                if attempt < _ATTEMPTS and run.may_retry(exc, write=write):
                    continue
                mapped = _translate(exc)
                if mapped is None:
                    raise
                raise mapped from exc
        for event in outcome.events:  # never for a rolled-back write
            self._publish(event)
        return outcome.value

    async def _aread(self, make: MakeOp[T]) -> T:
        return await self._arun(make, write=False)

    async def _awrite(self, make: MakeOp[T]) -> T:
        return await self._arun(make, write=True)

    async def _arun(self, make: MakeOp[T], *, write: bool) -> T:
        engine = self.async_engine
        if engine is None:  # only a sync engine: share its pool from a worker thread
            return await anyio.to_thread.run_sync(partial(self._run, make, write=write))
        for attempt in range(1, _ATTEMPTS + 1):
            run = _Attempt()
            try:
                async with engine.begin() if write else engine.connect() as conn:
                    outcome = await run.adrive(make(conn.dialect), conn.execute)
                break
            except Exception as exc:
                if attempt < _ATTEMPTS and run.may_retry(exc, write=write):
                    continue
                mapped = _translate(exc)
                if mapped is None:
                    raise
                raise mapped from exc
        for event in outcome.events:
            self._publish(event)
        return outcome.value

    # -- sync -----------------------------------------------------------
    def get_key(self, key_id: str) -> KeyRecord | None:
        """Return the key with ``key_id``, or ``None`` (one primary-key look-up)."""
        return self._read(partial(ops.get_key, key_id))

    def list_keys(self, org_id: str) -> list[KeyRecord]:
        """Return the org's keys, oldest first."""
        return self._read(partial(ops.list_keys, org_id))

    def add_key(self, record: KeyRecord) -> None:
        """Insert a new key; ``ValueError("duplicate key id")`` if the id exists."""
        self._write(partial(ops.add_key, record))

    def update_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Apply ``update`` in one transaction; return the new record or ``None``."""
        return self._write(partial(ops.update_key, key_id, update))

    def rotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Insert ``new_record`` and end the old key at ``grace_until``, in one transaction."""
        return self._write(partial(ops.rotate_key, old_key_id, new_record, grace_until))

    def delete_key(self, key_id: str) -> KeyRecord | None:
        """Delete permanently; return the deleted record or ``None``."""
        return self._write(partial(ops.delete_key, key_id))

    def get_legacy(self, org_id: str) -> LegacyRecord | None:
        """Return the org's legacy key hash, or ``None``."""
        return self._read(partial(ops.get_legacy, org_id))

    def put_legacy(self, record: LegacyRecord) -> None:
        """Create or replace the org's legacy key hash (one upsert)."""
        self._write(partial(ops.put_legacy, record))

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""
        return self._write(partial(ops.delete_legacy, org_id))

    def close(self) -> None:
        """Close the pooled connections of the sync engine this store created.

        Engines passed in are left alone (their owner disposes them). Call
        :meth:`aclose` from async code to release the async pool too. The store
        stays usable: a later call connects again.
        """
        if self._engine is not None and self._sync_url is not None:
            self._engine.dispose()

    # -- async ----------------------------------------------------------
    async def aget_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`get_key`."""
        return await self._aread(partial(ops.get_key, key_id))

    async def alist_keys(self, org_id: str) -> list[KeyRecord]:
        """Async :meth:`list_keys`."""
        return await self._aread(partial(ops.list_keys, org_id))

    async def aadd_key(self, record: KeyRecord) -> None:
        """Async :meth:`add_key`."""
        await self._awrite(partial(ops.add_key, record))

    async def aupdate_key(self, key_id: str, update: KeyUpdate) -> KeyRecord | None:
        """Async :meth:`update_key`."""
        return await self._awrite(partial(ops.update_key, key_id, update))

    async def arotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> KeyRecord | None:
        """Async :meth:`rotate_key`."""
        return await self._awrite(partial(ops.rotate_key, old_key_id, new_record, grace_until))

    async def adelete_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`delete_key`."""
        return await self._awrite(partial(ops.delete_key, key_id))

    async def aget_legacy(self, org_id: str) -> LegacyRecord | None:
        """Async :meth:`get_legacy`."""
        return await self._aread(partial(ops.get_legacy, org_id))

    async def aput_legacy(self, record: LegacyRecord) -> None:
        """Async :meth:`put_legacy`."""
        await self._awrite(partial(ops.put_legacy, record))

    async def adelete_legacy(self, org_id: str) -> bool:
        """Async :meth:`delete_legacy`."""
        return await self._awrite(partial(ops.delete_legacy, org_id))

    async def aclose(self) -> None:
        """Close the pooled connections of the engines this store created."""
        if self._async_engine is not None and self._async_url is not None:
            await self._async_engine.dispose()
        self.close()

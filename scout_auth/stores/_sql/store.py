"""The SQL key store: SQLAlchemy Core on SQLite, PostgreSQL and MariaDB.

Needs the ``sql`` extra (``postgres`` / ``mariadb`` for those drivers). See
``docs/sql-store.md`` for the schema, migrations, guarantees and the
PostgreSQL change feed (``LISTEN``/``NOTIFY``).

Example:
    >>> from scout_auth import KeyManager, Verifier
    >>> from scout_auth.stores.sql import SQLKeyStore
    >>> store = SQLKeyStore("sqlite:///keys.db")  # doctest: +SKIP
    >>> store.create_all()  # doctest: +SKIP
    >>> new = KeyManager(store).create_key("org_1", "billing-sync prod")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, Pool

from .._core.records import KeyRecord, LegacyRecord, RoleRecord
from .._core.store import KeyUpdate, Listener, StoreEventsMixin
from ._sql import ops as ops
from ._sql.audit import SQLAuditSink
from ._sql.database import (
    ATTEMPTS,
    Attempt,
    async_url,
    connect_args,
    is_memory_sqlite,
    merged_options,
    read_timeout_for,
    sync_url,
    translate,
)
from ._sql.migrate import alembic_config, create_all, upgrade
from ._sql.ops import MakeOp
from ._sql.pepper import load_or_create, pepper_file
from ._sql.schema import AUDIT, KEYS, LEGACY, LEGACY_USAGE, METADATA, ROLES
from ._sql.watchdog import NO_WATCH, WATCHDOG, Watch

if TYPE_CHECKING:
    from ._sql.feed import PostgresFeed

__all__ = [
    "AUDIT",
    "KEYS",
    "LEGACY",
    "LEGACY_USAGE",
    "METADATA",
    "ROLES",
    "SQLAuditSink",
    "SQLKeyStore",
    "alembic_config",
    "create_all",
    "upgrade",
]

T = TypeVar("T")

#: The default PostgreSQL notification channel (the tables' prefix + ``events``).
DEFAULT_CHANNEL = "scout_auth_events"


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
        listen: PostgreSQL only: once something subscribes (a verifier),
            run a change-feed thread that listens on ``channel`` and
            delivers changes made by *other* processes to the subscribers, so
            every verifier drops a disabled or deleted key within
            milliseconds. If the feed drops, caches fall back to their TTL
            and the thread reconnects by itself (then flushes them: events
            may have been missed). Ignored on SQLite and MariaDB, which have
            no such channel: other processes' changes show after the cache
            TTL there. Writes announce themselves either way.
        channel: PostgreSQL notification channel: a lower-case identifier.
            Stores that share tables must share it; deployments sharing one
            database but not the tables (another schema) should not.
        ping_interval: Seconds between liveness pings on the feed connection.

    Raises:
        ValueError: Neither or both of ``url`` and engines, a bad timeout,
            ``read_timeout`` with a MySQL/MariaDB engine passed in, a bad
            ``channel``, ``listen=True`` on PostgreSQL without psycopg 3
            installed, or an in-memory SQLite URL (each connection would see
            its own empty database; use a file or
            :class:`~scout_auth.InMemoryKeyStore`).

    Store methods raise :class:`~scout_auth.exceptions.StoreUnavailable` when
    the database cannot be reached or times out; the next call tries again, no
    rebuild needed. A pooled connection that turns out dead (the server
    restarted) is replaced and the call run again before anything was
    written, so a restart between two calls goes unnoticed. A
    ``StoreUnavailable`` from a lifecycle write means its outcome is unknown
    (the reply to its ``COMMIT`` may be what was lost): read the key back
    before retrying. The store's own subscribers are told of such a write
    anyway, so this process's verifiers never keep a key it may have
    disabled or deleted.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        engine: Engine | None = None,
        async_engine: AsyncEngine | None = None,
        connect_timeout: float = 5.0,
        statement_timeout: float | None = 5.0,
        read_timeout: float | None = None,
        engine_options: Mapping[str, Any] | None = None,
        async_engine_options: Mapping[str, Any] | None = None,
        listen: bool = True,
        channel: str = DEFAULT_CHANNEL,
        ping_interval: float = 5.0,
    ) -> None:
        super().__init__()
        if (url is None) == (engine is None and async_engine is None):
            raise ValueError("pass either url or engine= / async_engine=")
        if (
            connect_timeout <= 0
            or (statement_timeout is not None and statement_timeout <= 0)
            or (read_timeout is not None and read_timeout <= 0)
        ):
            raise ValueError("timeouts must be positive")
        if ping_interval <= 0:
            raise ValueError("ping_interval must be positive")
        self.origin = uuid.uuid4().hex
        self._announce = ops.Announce(channel, self.origin)
        self._engine = engine
        self._async_engine = async_engine
        self._sync_url: URL | None = None
        self._async_url: URL | None = None
        if url is not None:
            self._sync_url = sync_url(url)
            self._async_url = async_url(url)
            if is_memory_sqlite(self._sync_url):
                raise ValueError("in-memory SQLite is per connection: use a file path")
        if url is None and read_timeout is not None and self._backend in ("mysql", "mariadb"):
            # The store cannot change a given engine's driver arguments.
            raise ValueError("read_timeout with engine=: set the driver's own in its connect_args")
        self._timeouts: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "statement_timeout": statement_timeout,
            "read_timeout": read_timeout,
        }
        # The deadline the store itself enforces on PostgreSQL connections
        # (libpq has no read timeout; the MySQL drivers and SQLite time their
        # reads themselves): on the engines it builds, and on engines passed
        # in only when asked to.
        self._read_deadline = (
            read_timeout_for(statement_timeout, read_timeout)
            if self._backend == "postgresql" and (url is not None or read_timeout is not None)
            else None
        )
        self._engine_options = dict(engine_options or {})
        self._async_engine_options = dict(async_engine_options or {})
        self._engine_lock = threading.Lock()
        self._listen = listen and self._backend == "postgresql"
        if self._listen and importlib.util.find_spec("psycopg") is None:
            raise ValueError("listen=True on PostgreSQL needs psycopg 3: pass listen=False")
        self._ping_interval = ping_interval
        self._feed: PostgresFeed | None = None
        self._feed_engine: Engine | None = None
        self._feed_pool: Pool | None = None
        self._feed_lock = threading.Lock()
        self._closed = False
        self._pepper: bytes | None = None

    def __repr__(self) -> str:
        url = self._sync_url or (self._engine or self._async_engine).url  # type: ignore[union-attr]
        return f"SQLKeyStore(url={str(url)!r})"  # str(URL) masks the password

    @property
    def _backend(self) -> str:
        url = self._sync_url or (self._engine or self._async_engine).url  # type: ignore[union-attr]
        return url.get_backend_name()

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
        with self._engine_lock:
            if self._async_engine is None and self._async_url is not None:
                options = merged_options(
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

    # -- change feed (PostgreSQL) ---------------------------------------
    @property
    def listening(self) -> bool:
        """Whether the change feed is listening right now."""
        feed = self._feed
        return feed is not None and feed.connected.is_set()

    def wait_listening(self, timeout: float | None = None) -> bool:
        """Start the change feed if need be and wait until it listens.

        Returns ``False`` on timeout, and at once where there is no feed
        (``listen=False``, SQLite, MariaDB, a closed store).
        """
        feed = self._start_feed()
        return feed is not None and feed.connected.wait(timeout)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns an unsubscribe function.

        On PostgreSQL with ``listen=True`` the first subscription starts the
        change feed, so changes made by other processes reach ``listener`` too.
        """
        unsubscribe = super().subscribe(listener)
        self._start_feed()
        return unsubscribe

    def _start_feed(self) -> PostgresFeed | None:
        if not self._listen:
            return None
        with self._feed_lock:
            if self._feed is None and not self._closed:
                from ._sql.feed import PostgresFeed

                self._feed = PostgresFeed(
                    self._feed_connection,
                    self._announce.channel,
                    self.origin,
                    self._deliver_remote,
                    ping_interval=self._ping_interval,
                )
                self._feed.start()
            return self._feed

    def _feed_connection(self) -> Any:
        # Always a new connection, never one out of the store's pool: a pooled
        # connection may have gone silent with the one the feed just lost, and
        # LISTEN would wait on it for good. It comes from a pool of its own
        # that is a copy of the sync engine's (its connect arguments, pool
        # events and creator apply) and never keeps a connection: each one is
        # detached at once. An engine on another driver, or an async engine
        # alone, lends its URL to a psycopg engine of the feed's own.
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
        with self._engine_lock:
            if self._feed_engine is None:
                given = self._sync_url or (self._engine or self._async_engine).url  # type: ignore[union-attr]
                url = given.set(drivername="postgresql+psycopg")
                args = connect_args(url, is_async=False, **self._timeouts)
                self._feed_engine = create_engine(url, poolclass=NullPool, connect_args=args)
            return self._feed_engine

    def _stop_feed(self) -> None:
        with self._feed_lock:
            self._closed = True
            feed, self._feed = self._feed, None
        if feed is not None:
            feed.stop()
        if self._feed_engine is not None:
            self._feed_engine.dispose()

    # -- drivers: one transaction per operation, events after commit ----
    # (and, on PostgreSQL, a NOTIFY of them inside it: see _sql/ops.py, announcing)
    def _read(self, make: MakeOp[T]) -> T:
        return self._run(make, write=False)

    def _write(self, make: MakeOp[T], *, rerun_on_conflict: bool = False) -> T:
        made = ops.announcing(make, self._announce)
        return self._run(made, write=True, rerun_on_conflict=rerun_on_conflict)

    def _watch(self, raw: Any) -> Watch:
        """The read deadline for one operation on ``raw`` (a pooled DBAPI connection)."""
        if self._read_deadline is None:
            return NO_WATCH
        return WATCHDOG.watch(raw.driver_connection, self._read_deadline)

    def _run(self, make: MakeOp[T], *, write: bool, rerun_on_conflict: bool = False) -> T:
        # rerun_on_conflict: the operation looks up what could conflict before
        # it writes, so a unique violation means another transaction committed
        # the same value in between. The violation rolled the transaction back
        # whole (on PostgreSQL it could not go on anyway); running it again
        # lets its look-up see that value.
        engine = self.engine
        for attempt in range(1, ATTEMPTS + 1):
            run = Attempt()
            try:
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
                self._unsure(run, write)
                if attempt < ATTEMPTS and (
                    run.may_retry(exc, write=write) or _rerun(exc, rerun_on_conflict)
                ):
                    continue
                mapped = translate(exc)
                if mapped is None:
                    raise
                raise mapped from exc
        for event in outcome.events:  # never for a rolled-back write
            self._publish(event)
        return outcome.value

    def _unsure(self, run: Attempt, write: bool) -> None:
        """Tell local subscribers of a write that failed once it reached its COMMIT.

        Its outcome is unknown: the COMMIT may have been carried out and only
        its reply lost. Other instances hear of it through the change feed if
        it committed, but this store skips its own echo there; so its
        subscribers get the write's events now. Invalidating a key that did
        not change costs one look-up; keeping a key that was disabled would
        accept it for the cache TTL. (A failure before the last statement was
        answered rolls the transaction back: nothing to tell.)
        """
        if write and run.outcome is not None:
            for event in run.outcome.events:
                # As from the feed: a subscriber that raises is logged, and
                # does not hide the write's own error from the caller.
                self._deliver_remote(event)

    async def _aread(self, make: MakeOp[T]) -> T:
        return await self._arun(make, write=False)

    async def _awrite(self, make: MakeOp[T], *, rerun_on_conflict: bool = False) -> T:
        made = ops.announcing(make, self._announce)
        return await self._arun(made, write=True, rerun_on_conflict=rerun_on_conflict)

    async def _arun(self, make: MakeOp[T], *, write: bool, rerun_on_conflict: bool = False) -> T:
        engine = self.async_engine
        if engine is None:  # only a sync engine: share its pool from a worker thread
            run_sync = partial(self._run, make, write=write, rerun_on_conflict=rerun_on_conflict)
            return await anyio.to_thread.run_sync(run_sync)
        for attempt in range(1, ATTEMPTS + 1):
            run = Attempt()
            try:
                async with engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    with run.watched(self._watch(raw)):
                        async with conn.begin() as transaction:
                            outcome = await run.adrive(make(conn.dialect), conn.execute)
                            if not write:
                                await transaction.rollback()
                break
            except Exception as exc:
                self._unsure(run, write)
                if attempt < ATTEMPTS and (
                    run.may_retry(exc, write=write) or _rerun(exc, rerun_on_conflict)
                ):
                    continue
                mapped = translate(exc)
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
        """Create or replace the org's legacy key hash and its look-up digest, atomically.

        A digest another org holds is not stored: the record gets none (see
        :meth:`KeyStore.put_legacy <scout_auth.stores.KeyStore.put_legacy>`).
        """
        self._write(partial(ops.put_legacy, record), rerun_on_conflict=True)

    def delete_legacy(self, org_id: str) -> bool:
        """Delete the org's legacy key; ``False`` if there was none."""
        return self._write(partial(ops.delete_legacy, org_id))

    def set_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Switch legacy auth on or off for one org; ``None`` without a legacy key."""
        return self._write(partial(ops.set_legacy_enabled, org_id, enabled))

    def find_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """The legacy record holding ``lookup_digest``, or ``None`` (one unique-index look-up)."""
        return self._read(partial(ops.find_legacy, bytes(lookup_digest)))

    def set_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Give the org's record this digest if it still holds ``secret_hash`` (no event).

        ``False``, writing nothing, when the org has no record, its hash
        changed, or another org holds the digest (see
        :meth:`KeyStore.set_legacy_digest <scout_auth.stores.KeyStore.set_legacy_digest>`).
        """
        op = partial(ops.set_legacy_digest, org_id, secret_hash, bytes(lookup_digest), pepper_id)
        try:
            return self._write(op, rerun_on_conflict=True)
        except ValueError as exc:
            if _unique_violation(exc):  # still lost after the reruns: another org has it
                return False
            raise

    def legacy_digest_counts(self) -> dict[str | None, int]:
        """How many legacy records hold a digest of each pepper id (``None``: no digest)."""
        return self._read(ops.legacy_digest_counts)

    def legacy_pepper_ids(self) -> frozenset[str]:
        """The pepper ids of the digests held now (one ``SELECT DISTINCT``)."""
        return self._read(ops.legacy_pepper_ids)

    def embedded_legacy_pepper(self) -> bytes | None:
        """A pepper for legacy look-up digests kept outside the database, where one can be.

        The digests are only as safe as the pepper is far from them: a pepper
        stored in the database would make a dump of it test guesses at HMAC
        speed. So:

        * a SQLite file: 32 random bytes in ``<database path>.legacy-pepper``
          (mode 0600), made atomically by the first store that needs it and
          read by every later one. A copy of the database file alone (a
          backup, an ``.dump``) then tests guesses only through argon2id.
          Keep the pepper file out of database backups; back it up
          separately, or digests stop matching after a restore (they are
          made again as each org's secret is next used).
        * in-memory SQLite: a random pepper of this store object, which lives
          and dies with it, like the data.
        * PostgreSQL and MariaDB: ``None``. Several hosts share the database
          and no file is beside it; production configures the pepper in
          ``$SCOUT_AUTH_LEGACY_PEPPER`` (:class:`~scout_auth.LegacyPepper`).

        Raises:
            ConfigurationError: The pepper file exists but is too short.
        """
        url = self._sync_url or (self._engine or self._async_engine).url  # type: ignore[union-attr]
        if url.get_backend_name() != "sqlite":
            return None
        with self._engine_lock:
            if self._pepper is None:
                path = pepper_file(url)
                self._pepper = secrets.token_bytes(32) if path is None else load_or_create(path)
            return self._pepper

    def put_role(self, role: RoleRecord) -> None:
        """Create or replace a role (one upsert)."""
        self._write(partial(ops.put_role, role))

    def get_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Return one role, or ``None``."""
        return self._read(partial(ops.get_role, org_id, name))

    def delete_role(self, org_id: str, name: str) -> bool:
        """Delete a role; ``False`` if there was none."""
        return self._write(partial(ops.delete_role, org_id, name))

    def list_roles(self, org_id: str) -> list[RoleRecord]:
        """Return the org's roles, by name."""
        return self._read(partial(ops.list_roles, org_id))

    def record_usage(self, key_id: str, uses: int, last_used_at: datetime) -> None:
        """Add ``uses`` and raise ``last_used_at`` in one UPDATE (no event)."""
        self._write(partial(ops.record_usage, key_id, uses, last_used_at))

    def record_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Add ``uses`` to the org's legacy bucket of that UTC day (one upsert)."""
        self._write(partial(ops.record_legacy_usage, org_id, uses, last_used_at))

    def legacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """``(last legacy use, legacy uses on UTC days from since's day on)``."""
        return self._read(partial(ops.legacy_usage, org_id, since))

    def close(self) -> None:
        """Stop the change feed; close the pooled connections of the sync engine made here.

        Engines passed in are left alone (their owner disposes them). Call
        :meth:`aclose` from async code to release the async pool too. The store
        stays usable: a later call connects again. The change feed does not
        start again: subscribers fall back to their cache TTL.
        """
        self._stop_feed()
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
        await self._awrite(partial(ops.put_legacy, record), rerun_on_conflict=True)

    async def adelete_legacy(self, org_id: str) -> bool:
        """Async :meth:`delete_legacy`."""
        return await self._awrite(partial(ops.delete_legacy, org_id))

    async def aset_legacy_enabled(self, org_id: str, enabled: bool) -> LegacyRecord | None:
        """Async :meth:`set_legacy_enabled`."""
        return await self._awrite(partial(ops.set_legacy_enabled, org_id, enabled))

    async def afind_legacy(self, lookup_digest: bytes) -> LegacyRecord | None:
        """Async :meth:`find_legacy`."""
        return await self._aread(partial(ops.find_legacy, bytes(lookup_digest)))

    async def aset_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> bool:
        """Async :meth:`set_legacy_digest`."""
        op = partial(ops.set_legacy_digest, org_id, secret_hash, bytes(lookup_digest), pepper_id)
        try:
            return await self._awrite(op, rerun_on_conflict=True)
        except ValueError as exc:
            if _unique_violation(exc):
                return False
            raise

    async def alegacy_digest_counts(self) -> dict[str | None, int]:
        """Async :meth:`legacy_digest_counts`."""
        return await self._aread(ops.legacy_digest_counts)

    async def alegacy_pepper_ids(self) -> frozenset[str]:
        """Async :meth:`legacy_pepper_ids`."""
        return await self._aread(ops.legacy_pepper_ids)

    async def aput_role(self, role: RoleRecord) -> None:
        """Async :meth:`put_role`."""
        await self._awrite(partial(ops.put_role, role))

    async def aget_role(self, org_id: str, name: str) -> RoleRecord | None:
        """Async :meth:`get_role`."""
        return await self._aread(partial(ops.get_role, org_id, name))

    async def adelete_role(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_role`."""
        return await self._awrite(partial(ops.delete_role, org_id, name))

    async def alist_roles(self, org_id: str) -> list[RoleRecord]:
        """Async :meth:`list_roles`."""
        return await self._aread(partial(ops.list_roles, org_id))

    async def arecord_usage(self, key_id: str, uses: int, last_used_at: datetime) -> None:
        """Async :meth:`record_usage`."""
        await self._awrite(partial(ops.record_usage, key_id, uses, last_used_at))

    async def arecord_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> None:
        """Async :meth:`record_legacy_usage`."""
        await self._awrite(partial(ops.record_legacy_usage, org_id, uses, last_used_at))

    async def alegacy_usage(self, org_id: str, since: datetime) -> tuple[datetime | None, int]:
        """Async :meth:`legacy_usage`."""
        return await self._aread(partial(ops.legacy_usage, org_id, since))

    async def aclose(self) -> None:
        """:meth:`close`, and close the async pool too (the feed is stopped off the loop)."""
        await anyio.to_thread.run_sync(self._stop_feed)
        if self._async_engine is not None and self._async_url is not None:
            await self._async_engine.dispose()
        self.close()


def _rerun(exc: Exception, rerun_on_conflict: bool) -> bool:
    return rerun_on_conflict and isinstance(exc, sa_exc.IntegrityError)


def _unique_violation(exc: ValueError) -> bool:
    # What translate() made of an IntegrityError. The digest UPDATE touches no
    # other constraint, and the org's own row cannot collide with itself.
    return isinstance(exc.__cause__, sa_exc.IntegrityError)

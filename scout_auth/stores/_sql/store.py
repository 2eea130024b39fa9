"""The SQL key store: the operations of :mod:`.ops` on a :class:`~.database.Database`.

The database runs each operation in one transaction; the store adds what is
its own: on PostgreSQL the ``NOTIFY`` of a write's events inside that
transaction (:func:`~.ops.announcing`), their delivery to this process's
subscribers once it committed (or when its outcome is unknown), and the
change feed that brings other processes' writes (:mod:`.feed`).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ..._core.records import KeyRecord, RoleRecord, ScopeInfo
from ..._core.store import KeyUpdate, Listener
from . import ops as ops
from .audit import SQLAuditSink
from .database import CONNECT_TIMEOUT, STATEMENT_TIMEOUT, Database
from .legacy import LegacyMethods
from .migrate import create_all

if TYPE_CHECKING:
    from .feed import PostgresFeed

__all__ = ["DEFAULT_CHANNEL", "SQLKeyStore"]

#: The default PostgreSQL notification channel (the tables' prefix + ``events``).
DEFAULT_CHANNEL = "scout_auth_events"


class SQLKeyStore(LegacyMethods):
    """A key store in a SQL database, with sync and async methods side by side.

    Build it from one URL (the store creates a sync engine and its async twin
    lazily, on first use), hand it the engines a service already has, so it
    shares their connection pools, or give it a
    :class:`~scout_auth.stores.sql.Database` to share
    with an :class:`SQLAuditSink`.

    Args:
        url: A SQLAlchemy URL with a sync or async driver, e.g.
            ``sqlite:///keys.db``, ``postgresql+psycopg://…``,
            ``mysql+pymysql://…``; or a :class:`Database` (then no engines,
            timeouts or engine options here: they are the database's).
        engine: An existing sync :class:`~sqlalchemy.engine.Engine`.
        async_engine: An existing :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.
        connect_timeout: Seconds to wait for a connection.
        statement_timeout: Seconds a statement or lock wait may take, or
            ``None`` for the server default.
        read_timeout: Seconds the client waits for any one answer (default
            ``statement_timeout + 1``).
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

    The engine arguments are :class:`Database`'s, documented there in full.

    Raises:
        ValueError: What :class:`Database` refuses; engines, timeouts or
            engine options beside a ``Database``; a bad ``ping_interval`` or
            ``channel``; or ``listen=True`` on PostgreSQL without psycopg 3.

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
        url: str | URL | Database | None = None,
        *,
        engine: Engine | None = None,
        async_engine: AsyncEngine | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        statement_timeout: float | None = STATEMENT_TIMEOUT,
        read_timeout: float | None = None,
        engine_options: Mapping[str, Any] | None = None,
        async_engine_options: Mapping[str, Any] | None = None,
        listen: bool = True,
        channel: str = DEFAULT_CHANNEL,
        ping_interval: float = 5.0,
    ) -> None:
        if not isinstance(url, Database):
            url = Database(
                url,
                engine=engine,
                async_engine=async_engine,
                connect_timeout=connect_timeout,
                statement_timeout=statement_timeout,
                read_timeout=read_timeout,
                engine_options=engine_options,
                async_engine_options=async_engine_options,
            )
        elif any(
            given is not None
            for given in (engine, async_engine, read_timeout, engine_options, async_engine_options)
        ) or (connect_timeout, statement_timeout) != (CONNECT_TIMEOUT, STATEMENT_TIMEOUT):
            raise ValueError("with a Database, give engines and timeouts to the Database")
        if ping_interval <= 0:
            raise ValueError("ping_interval must be positive")
        super().__init__(url, channel)
        self._listen = listen and self.database.backend == "postgresql"
        if self._listen and importlib.util.find_spec("psycopg") is None:
            raise ValueError("listen=True on PostgreSQL needs psycopg 3: pass listen=False")
        self._ping_interval = ping_interval
        self._feed: PostgresFeed | None = None
        self._feed_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLKeyStore(url={str(self.database.url)!r})"  # str(URL) masks the password

    @property
    def engine(self) -> Engine:
        """The sync engine (created on first use when built from a URL)."""
        return self.database.engine

    @property
    def async_engine(self) -> AsyncEngine | None:
        """The async engine, or ``None`` if async calls go through a worker thread."""
        return self.database.async_engine

    def create_all(self) -> None:
        """Create the tables if missing and stamp the migration head (SQLite, tests)."""
        create_all(self.engine)

    def audit_sink(self) -> SQLAuditSink:
        """An audit sink on this store's database: the ``scout_auth_audit_events`` table.

        Example:
            >>> manager = KeyManager(store, audit=AuditBuffer(store.audit_sink()))  # doctest: +SKIP
        """
        return SQLAuditSink(self.database)

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
                from .feed import PostgresFeed

                self._feed = PostgresFeed(
                    self.database.feed_connection,
                    self._announce.channel,
                    self.origin,
                    self._deliver_remote,
                    ping_interval=self._ping_interval,
                )
                self._feed.start()
            return self._feed

    def _stop_feed(self) -> None:
        with self._feed_lock:
            self._closed = True
            feed, self._feed = self._feed, None
        if feed is not None:
            feed.stop()

    # -- sync -----------------------------------------------------------
    def get_key(self, key_id: str) -> KeyRecord | None:
        """Return the key with ``key_id``, or ``None`` (one primary-key look-up)."""
        database = self.database
        if database.raw_reads:  # the verifier's hot read: past Core (see .raw)
            return ops.found_key(database.fetch_one(ops.KEY_BY_ID, key_id), key_id)
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

    def put_scope_info(self, info: ScopeInfo) -> None:
        """Create or replace one scope of the org's catalogue (one upsert, no event)."""
        self._write(partial(ops.put_scope_info, info))

    def delete_scope_info(self, org_id: str, name: str) -> bool:
        """Delete one scope from the catalogue; ``False`` if it was not there."""
        return self._write(partial(ops.delete_scope_info, org_id, name))

    def list_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Return the org's scope catalogue, by name."""
        return self._read(partial(ops.list_scope_infos, org_id))

    def list_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """``(key_id, kek_id)`` of recoverable keys, a page of the primary key after ``after``."""
        return self._read(partial(ops.list_sealed_seeds, after, limit))

    def record_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Add ``uses``, raise ``last_used_at``, its ``address`` with it: one UPDATE (no event)."""
        self._write(partial(ops.record_usage, key_id, uses, last_used_at, address))

    def close(self) -> None:
        """Stop the change feed; close the pooled connections of the sync engine made here.

        Engines passed in are left alone (their owner disposes them). Call
        :meth:`aclose` from async code to release the async pool too. The store
        stays usable: a later call connects again. The change feed does not
        start again: subscribers fall back to their cache TTL.
        """
        self._stop_feed()
        self.database.close()

    # -- async ----------------------------------------------------------
    async def aget_key(self, key_id: str) -> KeyRecord | None:
        """Async :meth:`get_key`."""
        database = self.database
        if database.async_raw_reads:
            return ops.found_key(await database.afetch_one(ops.KEY_BY_ID, key_id), key_id)
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

    async def aput_scope_info(self, info: ScopeInfo) -> None:
        """Async :meth:`put_scope_info`."""
        await self._awrite(partial(ops.put_scope_info, info))

    async def adelete_scope_info(self, org_id: str, name: str) -> bool:
        """Async :meth:`delete_scope_info`."""
        return await self._awrite(partial(ops.delete_scope_info, org_id, name))

    async def alist_scope_infos(self, org_id: str) -> list[ScopeInfo]:
        """Async :meth:`list_scope_infos`."""
        return await self._aread(partial(ops.list_scope_infos, org_id))

    async def alist_sealed_seeds(
        self, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, str]]:
        """Async :meth:`list_sealed_seeds`."""
        return await self._aread(partial(ops.list_sealed_seeds, after, limit))

    async def arecord_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> None:
        """Async :meth:`record_usage`."""
        await self._awrite(partial(ops.record_usage, key_id, uses, last_used_at, address))

    async def aclose(self) -> None:
        """:meth:`close`, and close the async pool too (the feed is stopped off the loop)."""
        await anyio.to_thread.run_sync(self._stop_feed)
        await self.database.aclose()

"""Two audit sinks with no back end: in process memory, and stdlib logging."""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime

from .events import DEFAULT_PAGE_SIZE, AuditEvent, AuditPage, event_json, event_to_dict
from .query import AuditQuery, QueryableSink, decode_cursor

__all__ = ["InMemoryAuditSink", "LoggingAuditSink"]

_Position = tuple[datetime, str]


class InMemoryAuditSink(QueryableSink):
    """Audit events in process memory: the reference the stored sinks match.

    Thread-safe; the ``a*`` methods never block, so they call their sync
    twins. Writing an event id a second time is a no-op. It keeps every
    event until the process ends: for tests and single-process tools.

    Example:
        >>> from scout_auth import InMemoryKeyStore, KeyManager
        >>> store = InMemoryKeyStore()
        >>> manager = KeyManager(store, audit=store.audit_sink())
        >>> new = manager.create_key("org_1", "billing-sync prod", actor="alice")
        >>> [e.action for e in store.audit_sink().query("org_1")]
        ['created']
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, AuditEvent] = {}
        self._by_org: dict[str, list[_Position]] = {}
        self._by_key: dict[str, list[_Position]] = {}

    def __repr__(self) -> str:
        return f"InMemoryAuditSink(events={len(self._events)})"

    def __len__(self) -> int:
        return len(self._events)

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Append ``events`` (ids already present are skipped)."""
        with self._lock:
            for event in events:
                if not isinstance(event, AuditEvent):
                    raise TypeError("an audit sink stores AuditEvent objects only")
                if event.id in self._events:
                    continue
                self._events[event.id] = event
                position = (event.at, event.id)
                bisect.insort(self._by_org.setdefault(event.org_id, []), position)
                if event.key_id is not None:
                    bisect.insort(self._by_key.setdefault(event.key_id, []), position)

    def _query(self, query: AuditQuery) -> AuditPage:
        with self._lock:
            if query.key_id is not None:
                positions = self._by_key.get(query.key_id, [])
            else:
                assert query.org_id is not None
                positions = self._by_org.get(query.org_id, [])
            end = len(positions)
            if query.before is not None:
                end = bisect.bisect_left(positions, decode_cursor(query.before))
            # Event ids are never empty: (t, "") sorts before every event at t.
            if query.until is not None:
                end = min(end, bisect.bisect_left(positions, (query.until, "")))
            start = 0
            if query.since is not None:
                start = bisect.bisect_left(positions, (query.since, ""))
            found: list[AuditEvent] = []
            while end > start and len(found) < query.fetch:
                end -= 1
                event = self._events[positions[end][1]]
                if query.matches(event):
                    found.append(event)
        return query.page(found)

    async def awrite(self, events: Sequence[AuditEvent]) -> None:
        """Async :meth:`write`."""
        self.write(events)

    async def _aquery(self, query: AuditQuery) -> AuditPage:
        return self._query(query)


class LoggingAuditSink:
    """Audit events as JSON through stdlib :mod:`logging`: one log record per event.

    The message is one compact JSON object (ASCII only, every field present,
    ``null`` where it does not apply); the same fields are on the record as
    ``record.audit`` (a dict) for structured handlers. A write-only sink:
    :meth:`query` raises ``NotImplementedError``.

    Args:
        logger: A logger or its name (default ``"scout_auth.audit"``).
        level: The level of every record (default ``INFO``).

    Example:
        >>> sink = LoggingAuditSink()
        >>> buffer = AuditBuffer(sink)  # doctest: +SKIP
    """

    def __init__(
        self, logger: logging.Logger | str = "scout_auth.audit", *, level: int = logging.INFO
    ) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level

    def __repr__(self) -> str:
        return f"LoggingAuditSink(logger={self.logger.name!r})"

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Log each event as one JSON object."""
        if not self.logger.isEnabledFor(self.level):
            return
        for event in events:
            self.logger.log(self.level, event_json(event), extra={"audit": event_to_dict(event)})

    def query(
        self,
        org_id: str | None = None,
        key_id: str | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before: str | None = None,
        actions: Iterable[str] | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AuditPage:
        """Not supported: logs are read where the log shipper puts them."""
        raise NotImplementedError("a LoggingAuditSink is write-only")

    async def awrite(self, events: Sequence[AuditEvent]) -> None:
        """Same as :meth:`write` (logging handlers are called in place)."""
        self.write(events)

    async def aquery(
        self,
        org_id: str | None = None,
        key_id: str | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before: str | None = None,
        actions: Iterable[str] | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AuditPage:
        """Not supported: see :meth:`query`."""
        raise NotImplementedError("a LoggingAuditSink is write-only")

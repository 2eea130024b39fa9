"""Audit queries: one page of events at a time, and the cursor below it. No I/O.

Theory of operation
-------------------
Sinks list events newest first, ``(at, id)`` descending, a page at a time.
The ``next`` cursor names the last event of a page; the next page starts
strictly below it (keyset pagination), so events appended meanwhile (newer)
never shift, repeat or hide an older page.

A cursor is opaque to callers: :func:`encode_cursor` packs the ``(at, id)``
of the last event shown, :func:`decode_cursor` unpacks it and refuses
anything else with ``ValueError``. A sink whose positions are not
``(at, id)`` (Redis: stream entry ids) brings its own cursor to
:meth:`AuditQuery.page`. A cursor continues the query it came from.

:class:`AuditQuery` checks a query's arguments and cuts its page for every
sink: the sink fetches one event past the page, and that event only tells
that another page follows. A sink built on :class:`QueryableSink` only
fetches, once with a plain call, once with ``await``.
"""

from __future__ import annotations

import abc
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .events import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, AuditEvent, AuditPage

__all__ = ["AuditQuery", "QueryableSink", "decode_cursor", "encode_cursor"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(at: datetime, event_id: str) -> str:
    """An opaque cursor for the position just below ``(at, event_id)``."""
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}.{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(at, id)`` of a cursor from :func:`encode_cursor`; ``ValueError`` if not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, event_id = raw.split(".", 1)
        at = _EPOCH + timedelta(microseconds=int(micros))
    except (ValueError, TypeError, OverflowError, UnicodeError):
        raise ValueError("not an audit cursor") from None
    if not event_id:
        raise ValueError("not an audit cursor")
    return at, event_id


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The arguments of one :meth:`AuditSink.query`, checked the same for every sink.

    A sink fetches up to :attr:`fetch` events that :meth:`matches`, newest
    first from below ``before``, and returns :meth:`page` of them: the one
    event past ``limit`` only tells that another page follows.

    Raises:
        ValueError: No ``org_id`` nor ``key_id``; ``limit`` not an int from 1 to 1000.
    """

    org_id: str | None
    key_id: str | None
    limit: int
    before: str | None

    def __post_init__(self) -> None:
        if self.org_id is None and self.key_id is None:
            raise ValueError("query needs org_id, key_id or both")
        limit = self.limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be an int from 1 to {MAX_PAGE_SIZE}")

    @property
    def fetch(self) -> int:
        """How many events to fetch: one past the page."""
        return self.limit + 1

    def matches(self, event: AuditEvent) -> bool:
        """Whether ``event`` is of the org and the key asked for."""
        return (self.org_id is None or event.org_id == self.org_id) and (
            self.key_id is None or event.key_id == self.key_id
        )

    def page(
        self, fetched: Sequence[AuditEvent], cursor: Callable[[int], str] | None = None
    ) -> AuditPage:
        """The page of ``fetched``: what the sink found for this query, newest first.

        An event of another org or key is left out, should a back end compare
        ids more loosely than Python (a case-insensitive collation): a page
        never shows another org's events.

        Args:
            fetched: At most :attr:`fetch` events, newest first, below ``before``.
            cursor: The cursor below ``fetched[i]``, for a sink whose positions
                are not ``(at, id)`` (Redis: stream entry ids); default:
                :func:`encode_cursor` of the event's ``(at, id)``.
        """
        shown = fetched[: self.limit]
        events = tuple(event for event in shown if self.matches(event))
        if len(shown) == len(fetched):
            return AuditPage(events)
        if cursor is not None:
            return AuditPage(events, cursor(len(shown) - 1))
        return AuditPage(events, encode_cursor(shown[-1].at, shown[-1].id))


class QueryableSink(abc.ABC):
    """:meth:`query` and :meth:`aquery` of a sink that can list its events.

    Both check their arguments into one :class:`AuditQuery`; a subclass only
    fetches, in :meth:`_query` and :meth:`_aquery`, and returns
    :meth:`AuditQuery.page`.
    """

    def query(
        self,
        org_id: str | None = None,
        key_id: str | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before: str | None = None,
    ) -> AuditPage:
        """Newest first; see :class:`~scout_auth.audit.AuditSink`."""
        return self._query(AuditQuery(org_id, key_id, limit, before))

    async def aquery(
        self,
        org_id: str | None = None,
        key_id: str | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before: str | None = None,
    ) -> AuditPage:
        """Async :meth:`query`."""
        return await self._aquery(AuditQuery(org_id, key_id, limit, before))

    @abc.abstractmethod
    def _query(self, query: AuditQuery) -> AuditPage:
        """The page of ``query``, fetched with a plain call."""

    @abc.abstractmethod
    async def _aquery(self, query: AuditQuery) -> AuditPage:
        """The page of ``query``, fetched with ``await``."""

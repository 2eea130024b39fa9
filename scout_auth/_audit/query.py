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
:meth:`AuditQuery.page`. A cursor continues the query it came from. It
holds a position only, no filter: carried to a query with other filters it
continues below that position under the new filters (no error; rarely what
a caller wants, so a caller that changes a filter starts from the top).

Filters (``actions``, ``actor``, ``since`` / ``until``) narrow a query
down, all together; :meth:`AuditQuery.matches` is their one definition,
which a sink may push down to its back end (SQL ``WHERE``) but must agree
with. The ``actor`` filter is cleaned like the event field it compares
with (trimmed, redacted, unstorable characters replaced), so it matches
what was stored and never sends a back end a value it refuses.

:class:`AuditQuery` checks a query's arguments and cuts its page for every
sink: the sink fetches one event past the page, and that event only tells
that another page follows. A sink built on :class:`QueryableSink` only
fetches, once with a plain call, once with ``await``.
"""

from __future__ import annotations

import abc
import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .events import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AuditEvent,
    AuditPage,
    action_code,
    clean_text,
)

__all__ = [
    "MAX_ACTIONS",
    "AuditQuery",
    "QueryableSink",
    "action_set",
    "decode_cursor",
    "encode_cursor",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The most distinct actions one ``actions=`` filter may name (an SQL ``IN``
#: list stays far below every back end's parameter limit).
MAX_ACTIONS = 100


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


def action_set(actions: Iterable[str] | None) -> frozenset[str] | None:
    """The ``actions=`` filter as a set of plain action strings (``None``: no filter).

    An action need not be a known :class:`~scout_auth.audit.AuditAction`
    (an unknown one matches nothing), but it must have the form of one.

    Raises:
        TypeError: A single string instead of a collection; an item not a string.
        ValueError: No action at all, more than :data:`MAX_ACTIONS`, or one
            that is not a lower-case code of 1 to 64 characters.
    """
    if actions is None:
        return None
    if isinstance(actions, str | bytes):  # "denied" would be six one-letter actions
        raise TypeError("actions must be a collection of action codes, not one string")
    codes = frozenset(action_code(action) for action in actions)
    if not codes:
        raise ValueError("actions must name at least one action (or be None: any action)")
    if len(codes) > MAX_ACTIONS:
        raise ValueError(f"actions may name at most {MAX_ACTIONS} actions")
    return codes


def _instant(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 in a zone that UTC puts past the calendar
        raise ValueError(f"{name} is out of range") from None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The arguments of one :meth:`AuditSink.query`, checked the same for every sink.

    A sink fetches up to :attr:`fetch` events that :meth:`matches`, newest
    first from below ``before``, and returns :meth:`page` of them: the one
    event past ``limit`` only tells that another page follows.

    Attributes:
        org_id: Only this org's events.
        key_id: Only this key's events.
        limit: The page size.
        before: The cursor the page starts below.
        actions: Only events with one of these actions (``None``: any): any
            collection of action codes, kept as the frozenset of
            :func:`action_set`.
        actor: Only events of exactly this actor, cleaned like the event
            field (``None``: any, also none).
        since: Only events at or after this instant (UTC).
        until: Only events before this instant (UTC).

    Raises:
        TypeError: A filter of the wrong type (see :func:`action_set`).
        ValueError: No ``org_id`` nor ``key_id``; ``limit`` not an int from 1
            to 1000; a malformed action; an empty ``actor``; a naive
            ``since`` / ``until``; ``since`` later than ``until``.
    """

    org_id: str | None
    key_id: str | None
    limit: int
    before: str | None
    # Any collection of action codes in; a frozenset (or None) once made: see action_set.
    actions: Iterable[str] | None = field(default=None, kw_only=True)
    actor: str | None = field(default=None, kw_only=True)
    since: datetime | None = field(default=None, kw_only=True)
    until: datetime | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.org_id is None and self.key_id is None:
            raise ValueError("query needs org_id, key_id or both")
        limit = self.limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be an int from 1 to {MAX_PAGE_SIZE}")
        object.__setattr__(self, "actions", action_set(self.actions))
        if self.actor is not None:
            if not isinstance(self.actor, str):
                raise TypeError("actor must be a string or None")
            actor = clean_text("actor", self.actor)
            if actor is None:  # no event has an empty actor: that would be "no actor"
                raise ValueError("actor must be a non-empty string (or None: any actor)")
            object.__setattr__(self, "actor", actor)
        since, until = _instant("since", self.since), _instant("until", self.until)
        if since is not None and until is not None and since > until:
            raise ValueError("since must not be later than until")
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)

    @property
    def filtered(self) -> bool:
        """Whether a filter besides ``org_id`` / ``key_id`` is set."""
        filters = (self.actions, self.actor, self.since, self.until)
        return any(value is not None for value in filters)

    @property
    def fetch(self) -> int:
        """How many events to fetch: one past the page."""
        return self.limit + 1

    def matches(self, event: AuditEvent) -> bool:
        """Whether ``event`` is of the org and the key asked for, and passes every filter."""
        return (
            (self.org_id is None or event.org_id == self.org_id)
            and (self.key_id is None or event.key_id == self.key_id)
            and (self.actions is None or event.action in self.actions)
            and (self.actor is None or event.actor == self.actor)
            and (self.since is None or event.at >= self.since)
            and (self.until is None or event.at < self.until)
        )

    def page(
        self, fetched: Sequence[AuditEvent], cursor: Callable[[int], str] | None = None
    ) -> AuditPage:
        """The page of ``fetched``: what the sink found for this query, newest first.

        An event that does not :meth:`match <matches>` is left out, should a
        back end compare more loosely than Python (a case-insensitive
        collation): a page never shows another org's events.

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
        actions: Iterable[str] | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AuditPage:
        """Newest first; see :class:`~scout_auth.audit.AuditSink` and :class:`AuditQuery`."""
        query = AuditQuery(
            org_id, key_id, limit, before, actions=actions, actor=actor, since=since, until=until
        )
        return self._query(query)

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
        """Async :meth:`query`."""
        query = AuditQuery(
            org_id, key_id, limit, before, actions=actions, actor=actor, since=since, until=until
        )
        return await self._aquery(query)

    @abc.abstractmethod
    def _query(self, query: AuditQuery) -> AuditPage:
        """The page of ``query``, fetched with a plain call."""

    @abc.abstractmethod
    async def _aquery(self, query: AuditQuery) -> AuditPage:
        """The page of ``query``, fetched with ``await``."""

"""The audit trail's SQL, written once for the sync and the async driver.

Like :mod:`.ops`: generators that yield SQLAlchemy Core statements and
return an :class:`~.ops.Outcome`; the store runs them in one
transaction. Inserts skip an event id already stored (a batch retried after
a lost commit reply is not stored twice). Queries walk the
``(org_id, at, id)`` or ``(key_id, at, id)`` index backwards from a keyset
cursor (or from ``until``) down to ``since``, one statement per page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.sql import Executable

from ..._audit.events import FIELDS, AuditEvent, AuditPage
from ..._audit.query import AuditQuery, decode_cursor
from .ops import Op, Outcome
from .schema import AUDIT

__all__ = ["query_events", "write_events"]

#: Rows per INSERT statement (well under every back end's parameter limit).
CHUNK = 500


def _row(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in FIELDS}


def _event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(**{name: getattr(row, name) for name in FIELDS})


def _insert(rows: list[dict[str, Any]], dialect: Dialect) -> Executable:
    if dialect.name == "postgresql":
        return postgresql.insert(AUDIT).values(rows).on_conflict_do_nothing(index_elements=["id"])
    if dialect.name == "sqlite":
        return sqlite.insert(AUDIT).values(rows).on_conflict_do_nothing(index_elements=["id"])
    if dialect.name in ("mysql", "mariadb"):
        stmt = mysql.insert(AUDIT).values(rows)
        # Not INSERT IGNORE: that would also turn real errors into warnings.
        return stmt.on_duplicate_key_update(id=stmt.inserted.id)
    return sa.insert(AUDIT).values(rows)  # pragma: no cover - other dialects


def write_events(events: Sequence[AuditEvent], dialect: Dialect) -> Op[None]:
    """Insert ``events``, skipping ids already stored."""
    rows = [_row(event) for event in events]
    for start in range(0, len(rows), CHUNK):
        yield _insert(rows[start : start + CHUNK], dialect)
    return Outcome(None)


def query_events(query: AuditQuery, dialect: Dialect) -> Op[AuditPage]:
    """One page, newest first: ``(at, id)`` descending, strictly below ``query.before``.

    Every filter is a ``WHERE`` clause: ``since`` / ``until`` narrow the
    ``(org_id, at, id)`` / ``(key_id, at, id)`` index range, ``actions`` /
    ``actor`` are checked on each row it reaches.
    """
    stmt = sa.select(AUDIT)
    if query.key_id is not None:
        stmt = stmt.where(AUDIT.c.key_id == query.key_id)
    if query.org_id is not None:
        stmt = stmt.where(AUDIT.c.org_id == query.org_id)
    if query.before is not None:
        at, event_id = decode_cursor(query.before)
        # "at <= x" alone bounds the index range; the OR breaks ties by id.
        stmt = stmt.where(AUDIT.c.at <= at, sa.or_(AUDIT.c.at < at, AUDIT.c.id < event_id))
    # The time range bounds the same index range; actions and actor are
    # checked on the rows the index walk reaches (no index of their own).
    if query.since is not None:
        stmt = stmt.where(AUDIT.c.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(AUDIT.c.at < query.until)
    if query.actions is not None:
        stmt = stmt.where(AUDIT.c.action.in_(sorted(query.actions)))
    if query.actor is not None:
        stmt = stmt.where(AUDIT.c.actor == query.actor)
    stmt = stmt.order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(query.fetch)
    result = yield stmt
    return Outcome(query.page([_event(row) for row in result]))

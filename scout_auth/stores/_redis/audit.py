"""The Redis audit trail, sans-I/O: a Lua script and the operations that yield it.

Theory of operation
-------------------
Each org has one audit *stream* (``<prefix>:{o:<org>}:audit``) and one
stream per key (``…:audit:key:<key>``), all in the org's hash slot, so a
batch of an org's events lands in every stream it belongs to with one
atomic script, on a single server or a Redis Cluster alike. Entries are the
event's non-empty fields as text; stream ids are Redis's own (arrival
order), which is the "newest first" order of a query (``XREVRANGE``).

A query reads one stream newest first, in batches, and checks the
filters in Python: stream ids are arrival times, not the events' ``at``,
so only ``since`` bounds the range read (with a margin for clock skew). A
query reads at most :data:`SCAN_CAP` entries: a filter that matches rarely
gives a short page (maybe empty) whose cursor continues below the last
entry read, so memory and time per call stay bounded and pagination
neither repeats nor skips.

A per-key query names only the key: a small directory entry
``<prefix>:{k:<key>}:audit`` (written once, ``SET NX``, never deleted, so
a deleted key's history stays reachable) says which org holds its stream.

The script first checks a digest of the batch (its event ids) against the
org's recent batches (a sorted set capped at 1000): the same batch sent
again — the audit buffer retries a batch whose reply was lost — is not
appended twice. ``maxlen`` trims every stream approximately
(``XADD MAXLEN ~``) when set.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..._audit.events import AuditEvent, AuditPage, event_from_dict, event_to_dict
from ..._audit.query import AuditQuery
from .layout import Layout, fields_from_reply, text
from .ops import Batch, Call, Lua, Op, Script

__all__ = [
    "CLOCK_SKEW",
    "SCAN_BATCH",
    "SCAN_CAP",
    "WRITE_AUDIT",
    "AuditOps",
    "decode_stream_cursor",
    "encode_stream_cursor",
    "stream_floor",
]

#: The most stream entries one query reads: a filtered page that has not
#: found ``limit`` events by then comes back short, with a ``next`` cursor.
SCAN_CAP = 5000
#: Entries per ``XREVRANGE`` of a filtered query (one past the page if larger).
SCAN_BATCH = 500
#: How far ahead of Redis's clock an event's ``at`` may be and still be
#: found by a ``since`` query (see :func:`stream_floor`).
CLOCK_SKEW = timedelta(minutes=5)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS[1] org stream, KEYS[2] recent batch digests, KEYS[3..] key streams.
# ARGV[1] batch digest, ARGV[2] MAXLEN ('' = none), ARGV[3] event count, then
# per event: index of its key stream in KEYS (0 = none), field count, fields...
WRITE_AUDIT = Script(
    "write_audit",
    """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local function add(stream, fields)
  if ARGV[2] == '' then return redis.call('XADD', stream, '*', unpack(fields)) end
  return redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
end
local i, last = 4, nil
for _ = 1, tonumber(ARGV[3]) do
  local k, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local fields = {unpack(ARGV, i + 2, i + 1 + n)}
  last = add(KEYS[1], fields)
  if k > 0 then add(KEYS[k], fields) end
  i = i + 2 + n
end
redis.call('ZADD', KEYS[2], string.match(last, '^%d+'), ARGV[1])
if redis.call('ZCARD', KEYS[2]) > 1000 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1001) end
return 1
""",
)

_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


def encode_stream_cursor(entry_id: str) -> str:
    """An opaque cursor for the position just below stream entry ``entry_id``."""
    return base64.urlsafe_b64encode(f"r{entry_id}".encode()).decode("ascii").rstrip("=")


def decode_stream_cursor(cursor: str) -> str:
    """The stream entry id of a cursor; ``ValueError`` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeError):
        raise ValueError("not an audit cursor of a Redis sink") from None
    if not raw.startswith("r") or not _STREAM_ID.fullmatch(raw[1:]):
        raise ValueError("not an audit cursor of a Redis sink")
    return raw[1:]


def _entry_fields(event: AuditEvent) -> list[str]:
    return [part for k, v in event_to_dict(event).items() if v is not None for part in (k, v)]


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    # XREVRANGE: [(id, {field: value}) ...] or [[id, [field, value, ...]] ...]
    return [(text(entry_id), fields_from_reply(fields)) for entry_id, fields in reply or ()]


@dataclass(frozen=True, slots=True)
class AuditOps:
    """The audit operations over one key layout."""

    layout: Layout
    maxlen: int | None = None

    def write(self, events: Sequence[AuditEvent]) -> Op[None]:
        """Append ``events``: one script per org, directory entries first."""
        by_org: dict[str, list[AuditEvent]] = {}
        for event in events:
            by_org.setdefault(event.org_id, []).append(event)
        owners: dict[str, str] = {}
        for event in events:
            if event.key_id is not None:
                owners.setdefault(event.key_id, event.org_id)
        if owners:
            yield Batch(
                tuple(("SET", self.layout.audit_directory(k), o, "NX") for k, o in owners.items())
            )
        for org_id, group in by_org.items():
            yield self._append(org_id, group)

    def _append(self, org_id: str, group: list[AuditEvent]) -> Lua:
        keys = [self.layout.audit(org_id), self.layout.audit_batches(org_id)]
        slots: dict[str, int] = {}
        digest = hashlib.sha256("\n".join(e.id for e in group).encode()).hexdigest()
        args = [digest, "" if self.maxlen is None else str(self.maxlen), str(len(group))]
        for event in group:
            slot = 0
            if event.key_id is not None:
                if event.key_id not in slots:
                    keys.append(self.layout.audit_key(org_id, event.key_id))
                    slots[event.key_id] = len(keys)  # Lua indexes from 1
                slot = slots[event.key_id]
            fields = _entry_fields(event)
            args += [str(slot), str(len(fields)), *fields]
        # Repeatable: a batch sent again is recognised by its digest.
        return Lua(WRITE_AUDIT, tuple(keys), tuple(args), repeatable=True)

    def query(self, query: AuditQuery) -> Op[AuditPage]:
        """One page, newest first (``XREVRANGE`` from below the cursor).

        Filters are checked in Python on entries read in batches of
        :data:`SCAN_BATCH`; ``since`` also bounds the range read (see
        :func:`stream_floor`). After :data:`SCAN_CAP` entries a page ends
        short, with a cursor below the last entry read.
        """
        end = "+" if query.before is None else "(" + decode_stream_cursor(query.before)
        start = "-" if query.since is None else stream_floor(query.since)
        org_id = query.org_id
        if org_id is None:
            assert query.key_id is not None
            owner = yield Call(("GET", self.layout.audit_directory(query.key_id)))
            if owner is None:
                return AuditPage(())
            org_id = text(owner)
        if query.key_id is None:
            stream = self.layout.audit(org_id)
        else:
            stream = self.layout.audit_key(org_id, query.key_id)
        # Unfiltered, every entry matches: one read of one past the page.
        batch = max(query.fetch, SCAN_BATCH) if query.filtered else query.fetch
        found: list[tuple[str, AuditEvent]] = []
        examined = 0
        while True:
            count = min(batch, SCAN_CAP - examined)
            reply = yield Call(("XREVRANGE", stream, end, start, "COUNT", str(count)))
            entries = _entries(reply)
            examined += len(entries)
            for entry_id, fields in entries:
                event = event_from_dict(fields)
                if query.matches(event):
                    found.append((entry_id, event))
                    if len(found) == query.fetch:
                        return _page(query, found)
            if len(entries) < count:  # the range is read to its end
                return _page(query, found)
            if examined >= SCAN_CAP:  # short page; the cursor is past all that was read
                return AuditPage(tuple(e for _, e in found), encode_stream_cursor(entries[-1][0]))
            end = "(" + entries[-1][0]


def _page(query: AuditQuery, found: list[tuple[str, AuditEvent]]) -> AuditPage:
    return query.page([e for _, e in found], lambda i: encode_stream_cursor(found[i][0]))


def stream_floor(since: datetime) -> str:
    """The lowest stream id an event at or after ``since`` can have (``-``: any).

    Stream ids are Redis's arrival times, not the events' ``at``: an event
    arrives after it happened (a buffered one, long after), so no entry
    below ``since`` holds a later event — unless the writer's clock ran
    ahead of Redis's, hence :data:`CLOCK_SKEW` below ``since``. Nothing
    bounds the other end: an event before ``until`` may arrive any time
    later, so ``until`` is checked entry by entry.
    """
    millis = (since - _EPOCH - CLOCK_SKEW) // timedelta(milliseconds=1)  # never overflows
    return str(millis) if millis > 0 else "-"

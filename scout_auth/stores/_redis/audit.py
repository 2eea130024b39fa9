"""The Redis audit trail, sans-I/O: a Lua script and the operations that yield it.

Theory of operation
-------------------
Each org has one audit *stream* (``<prefix>:{o:<org>}:audit``) and one
stream per key (``…:audit:key:<key>``), all in the org's hash slot, so a
batch of an org's events lands in every stream it belongs to with one
atomic script, on a single server or a Redis Cluster alike. Entries are the
event's non-empty fields as text; stream ids are Redis's own (arrival
order), which is the "newest first" order of a query (``XREVRANGE``).

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
from typing import Any

from ..._audit.events import AuditEvent, AuditPage, event_from_dict, event_to_dict
from ..._audit.query import AuditQuery
from .layout import Layout, fields_from_reply, text
from .ops import Batch, Call, Lua, Op, Script

__all__ = ["WRITE_AUDIT", "AuditOps", "decode_stream_cursor", "encode_stream_cursor"]

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
        """One page, newest first (``XREVRANGE`` from below the cursor)."""
        end = "+" if query.before is None else "(" + decode_stream_cursor(query.before)
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
        reply = yield Call(("XREVRANGE", stream, end, "-", "COUNT", str(query.fetch)))
        entries = _entries(reply)
        events = [event_from_dict(fields) for _, fields in entries]
        return query.page(events, lambda i: encode_stream_cursor(entries[i][0]))

"""Redis store operations, written once: Lua scripts and sans-I/O generators.

Theory of operation
-------------------
Each store operation is a generator that yields what it needs from Redis
(the needs of :mod:`.needs`: a command, a batch, a script, a scan, a
notification of this process's subscribers) and returns the operation's
result. The store drives it with a sync client or ``await``\\ s it on an
async client (the httpx ``auth_flow`` pattern); neither driver knows what
a key is.

Every write is one Lua script whose keys share the org's hash slot (see
:mod:`.layout`), so it happens whole or not at all. The same script
``PUBLISH``\\ es the change on the events channel: a message exists only for
a committed write, and a process that receives it and then reads sees the
new state (commands on one server execute in order), which is what lets a
remote revocation never be undone by a cache fill that raced with it.

Lifecycle writes are exactly-once (a request id their script checks, see
:mod:`.needs`); the driver retries only what is safe to repeat.

The org's legacy record and its look-up digest directory are in
:mod:`.legacy` (same needs, same drivers).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from ..._core.records import KeyRecord, RoleRecord, ScopeInfo
from ..._core.store import KEEP, KeyEvent, KeyUpdate, utc_day
from ..._core.usage import normalise_address
from .._feed import encode_event_payload
from .layout import (
    Layout,
    fields_from_reply,
    format_time,
    index_member,
    json_list,
    key_fields,
    key_from_fields,
    record_from_json,
    sealed_fields,
    text,
)
from .needs import (
    ONCE_TTL_MS,
    Batch,
    Call,
    Lua,
    Need,
    Notify,
    Op,
    Scan,
    Script,
    once,
)

# The needs are re-exported: the other operation modules name them from here.
__all__ = [
    "ONCE_TTL_MS",
    "Batch",
    "Call",
    "Lua",
    "Need",
    "Notify",
    "Op",
    "Ops",
    "Scan",
    "Script",
    "once",
    "published",
]

# Key records read per round trip by list_sealed_seeds.
_SEALED_BATCH = 500

# The lifecycle scripts below take, after the keys listed, the request's
# ``once`` entry as their last key (see once()).

# KEYS[1] record, KEYS[2] index; ARGV channel, payload, index member, fields...
ADD_KEY = once(
    "add_key",
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
""",
)

# KEYS[1] record; ARGV channel, payload, field/value pairs to set...
UPDATE_KEY = once(
    "update_key",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
""",
)

# KEYS[1] old record, KEYS[2] new record, KEYS[3] index;
# ARGV channel, payload, grace_until, new key id, new index member, new fields...
# Timestamps are fixed-width UTC ISO 8601, so string order is time order.
ROTATE_KEY = once(
    "rotate_key",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local expires = redis.call('HGET', KEYS[1], 'expires_at')
if (not expires) or expires == '' or ARGV[3] < expires then
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
end
redis.call('HSET', KEYS[1], 'replaced_by', ARGV[4])
redis.call('HSET', KEYS[2], unpack(ARGV, 6))
redis.call('ZADD', KEYS[3], 0, ARGV[5])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
""",
)

# KEYS[1] record, KEYS[2] index; ARGV channel, payload, key id
DELETE_KEY = once(
    "delete_key",
    """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
local created = redis.call('HGET', KEYS[1], 'created_at')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], created .. ' ' .. ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return fields
""",
)

# KEYS[1] roles hash; ARGV channel, payload, name, JSON scopes
PUT_ROLE = once(
    "put_role",
    """
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
""",
)

# KEYS[1] roles hash; ARGV channel, payload, name
DELETE_ROLE = once(
    "delete_role",
    """
if redis.call('HDEL', KEYS[1], ARGV[3]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
""",
)

# KEYS[1] scope catalogue; ARGV scope name. No PUBLISH: the catalogue is no
# credential. A once() script all the same: a resent HDEL would answer 0.
DELETE_SCOPE_INFO = once(
    "delete_scope_info",
    """
return redis.call('HDEL', KEYS[1], ARGV[1])
""",
)

# KEYS[1] record; ARGV uses, last used at, address ('' : not known). Increment
# and max, the address going with the latest use: flushes from several
# instances merge exactly. No PUBLISH: usage is not a credential change.
RECORD_USAGE = Script(
    "record_usage",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'use_count', ARGV[1])
local last = redis.call('HGET', KEYS[1], 'last_used_at')
if (not last) or last == '' or last <= ARGV[2] then
  redis.call('HSET', KEYS[1], 'last_used_at', ARGV[2])
  if ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], 'last_used_address')
  else
    redis.call('HSET', KEYS[1], 'last_used_address', ARGV[3])
  end
end
return 1
""",
)

# KEYS[1] legacy usage hash; ARGV day, uses, last used at
RECORD_LEGACY_USAGE = Script(
    "record_legacy_usage",
    """
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
local last = redis.call('HGET', KEYS[1], 'last')
if (not last) or last < ARGV[3] then redis.call('HSET', KEYS[1], 'last', ARGV[3]) end
return 1
""",
)

# KEYS[1] directory entry; ARGV the record name's head ("<prefix>:{o:") and tail
# ("}:key:<escaped key id>"). The directory names the org, the script escapes
# it as Layout does and reads the record: one round trip. The record is not a
# declared key (its name depends on the entry). One server allows that; a
# cluster node allows it for a key it serves, which a key id minted into its
# org's slot (slots.py) guarantees. A record the node does not serve (an older
# id, or a slot migrating away) is refused: pcall catches that and the script
# answers the org alone, {org}, for a second trip to the record's own slot
# (RECORD_JSON). Any other error takes that path too and fails there. So does
# an entry without a record: while the slot migrates, the entry may already be
# on the importing node (the client came with ASKING) and the record not yet,
# and the node then reads the record as absent; the second trip, a declared
# key, is routed to whichever node has it (an orphan entry also answers None
# there, one trip later). The record comes back as one JSON object (see
# RECORD_JSON).
GET_KEY = Script(
    "get_key",
    """
local org = redis.call('GET', KEYS[1])
if not org then return false end
local escapes = {['%'] = '%25', ['{'] = '%7B', ['}'] = '%7D', [':'] = '%3A'}
local escaped = string.gsub(org, '[%%{}:]', escapes)
local flat = redis.pcall('HGETALL', ARGV[1] .. escaped .. ARGV[2])
if flat.err or #flat == 0 then return {org} end
local record = {}
for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
return cjson.encode(record)
""",
)

# KEYS[1] record. The record as one JSON object ({field: value}, all text):
# one bulk string parses far faster than HGETALL's array of ~30 (redis-py
# reads an array element by element), and the values are text already.
RECORD_JSON = Script(
    "record_json",
    """
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return false end
local record = {}
for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
return cjson.encode(record)
""",
)

# KEYS[1] directory entry; ARGV org id. Delete it only if it still names that org.
RELEASE_DIRECTORY = Script(
    "release_directory",
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)

SCRIPTS = (
    GET_KEY,
    RECORD_JSON,
    ADD_KEY,
    UPDATE_KEY,
    ROTATE_KEY,
    DELETE_KEY,
    RELEASE_DIRECTORY,
    PUT_ROLE,
    DELETE_ROLE,
    DELETE_SCOPE_INFO,
    RECORD_USAGE,
    RECORD_LEGACY_USAGE,
)


def published(
    layout: Layout,
    origin: str,
    org_id: str,
    script: Script,
    keys: tuple[str, ...],
    events: tuple[KeyEvent, ...],
    *args: str,
    replicate: bool = True,
) -> Lua:
    """A lifecycle write of ``org_id`` that also ``PUBLISH``\\ es ``events``.

    ``script`` is a :func:`once` script: KEYS ``keys`` then a fresh request
    id's entry; ARGV channel, payload, then ``args``.
    """
    payload = encode_event_payload(origin, events)
    entry = layout.once(org_id, secrets.token_hex(16))
    return Lua(
        script,
        (*keys, entry),
        (layout.channel, payload, *args),
        repeatable=True,
        events=events,
        replicate=replicate,
    )


@dataclass(frozen=True, slots=True)
class Ops:
    """The operations of one store: its key layout and its origin id (for events)."""

    layout: Layout
    origin: str

    def _write(
        self,
        script: Script,
        org_id: str,
        keys: tuple[str, ...],
        events: tuple[KeyEvent, ...],
        *args: str,
        replicate: bool = True,
    ) -> Lua:
        return published(
            self.layout, self.origin, org_id, script, keys, events, *args, replicate=replicate
        )

    def _org_of(self, key_id: str) -> Op[str | None]:
        org = yield Call(("GET", self.layout.directory(key_id)))
        return None if org is None else text(org)

    def _claim_directory(self, record: KeyRecord) -> Op[None]:
        entry = self.layout.directory(record.key_id)
        if (yield Call(("SET", entry, record.org_id, "NX"))):
            return
        current = yield Call(("GET", entry))
        if current is not None and (
            yield Call(("EXISTS", self.layout.key(text(current), record.key_id)))
        ):
            raise ValueError("duplicate key id")
        # An orphan left by an interrupted write (no record behind it): take it over.
        yield Call(("SET", entry, record.org_id))

    def _confirm_directory(self, record: KeyRecord) -> Op[None]:
        # Dekker, writer's half (see sweep.py): after the record, read the
        # entry; a sweep that took it meanwhile gets it put back. Best effort:
        # the write has committed.
        entry = self.layout.directory(record.key_id)
        if (yield Call(("GET", entry), best_effort=True)) is None:
            yield Call(("SET", entry, record.org_id, "NX"), best_effort=True)

    def get_key(self, key_id: str) -> Op[KeyRecord | None]:
        """See :meth:`KeyStore.get_key`.

        One round trip: :data:`GET_KEY` reads the directory and the record in
        one script, on one server, and on a cluster for a key id minted into
        its org's slot (:mod:`.slots`). A record in another slot (a key id
        minted before, on a cluster) takes a second: the script answers the
        org, then :data:`RECORD_JSON` reads the record in the org's slot.
        """
        head, tail = self.layout.key_name_parts(key_id)
        reply = yield Lua(GET_KEY, (self.layout.directory(key_id),), (head, tail), repeatable=True)
        if isinstance(reply, list):  # [org]: the record is in a slot of its own
            org = text(reply[0])
            reply = yield Lua(RECORD_JSON, (self.layout.key(org, key_id),), (), repeatable=True)
        return None if reply is None else key_from_fields(record_from_json(reply))

    def list_keys(self, org_id: str) -> Op[list[KeyRecord]]:
        """See :meth:`KeyStore.list_keys`."""
        members = yield Call(("ZRANGE", self.layout.index(org_id), "0", "-1"))
        key_ids = [text(m).rpartition(" ")[2] for m in members]
        if not key_ids:
            return []
        replies = yield Batch(tuple(("HGETALL", self.layout.key(org_id, k)) for k in key_ids))
        records = (fields_from_reply(r) for r in replies)
        return [key_from_fields(f) for f in records if f]

    def add_key(self, record: KeyRecord) -> Op[None]:
        """See :meth:`KeyStore.add_key`."""
        fields = key_fields(record)  # validates before anything is written
        yield from self._claim_directory(record)
        event = KeyEvent("created", record.org_id, record.key_id)
        keys = (self.layout.key(record.org_id, record.key_id), self.layout.index(record.org_id))
        if not (
            yield self._write(
                ADD_KEY,
                record.org_id,
                keys,
                (event,),
                index_member(record),
                *fields,
                replicate=False,
            )
        ):
            raise ValueError("duplicate key id")
        yield Notify((event,))
        yield from self._confirm_directory(record)

    def update_key(self, key_id: str, update: KeyUpdate) -> Op[KeyRecord | None]:
        """See :meth:`KeyStore.update_key`."""
        org = yield from self._org_of(key_id)
        if org is None:
            return None
        pairs: list[str] = []
        if update.name is not None:
            pairs += ["name", update.name]
        if update.enabled is not None:
            pairs += ["enabled", "1" if update.enabled else "0"]
        if update.scopes is not KEEP:
            pairs += ["scopes", json_list(update.scopes)]
        if update.roles is not None:
            pairs += ["roles", json_list(update.roles)]
        if update.allowed_ips is not KEEP:
            pairs += ["allowed_ips", json_list(update.allowed_ips)]
        if update.description is not None:
            pairs += ["description", update.description]
        if update.expires_at is not KEEP:
            expires = update.expires_at
            pairs += ["expires_at", "" if expires is None else format_time(expires)]
        pairs += sealed_fields(update.sealed_seed)
        event = KeyEvent("updated", org, key_id)
        reply = yield self._write(
            UPDATE_KEY, org, (self.layout.key(org, key_id),), (event,), *pairs
        )
        if reply is None:
            return None
        yield Notify((event,))
        return key_from_fields(fields_from_reply(reply))

    def rotate_key(
        self, old_key_id: str, new_record: KeyRecord, grace_until: datetime
    ) -> Op[KeyRecord | None]:
        """See :meth:`KeyStore.rotate_key`; the new key must belong to the same org."""
        fields, until = key_fields(new_record), format_time(grace_until)
        org = yield from self._org_of(old_key_id)
        if org is None:
            return None
        if new_record.org_id != org:
            if not (yield Call(("EXISTS", self.layout.key(org, old_key_id)))):
                return None
            raise ValueError("a rotation stays within one organization")
        yield from self._claim_directory(new_record)
        events = (KeyEvent("rotated", org, old_key_id), KeyEvent("created", org, new_record.key_id))
        keys = (
            self.layout.key(org, old_key_id),
            self.layout.key(org, new_record.key_id),
            self.layout.index(org),
        )
        member = index_member(new_record)
        reply = yield self._write(
            ROTATE_KEY, org, keys, events, until, new_record.key_id, member, *fields
        )
        if reply is None:  # the old key vanished meanwhile: give the id back
            yield self._release(new_record.key_id, org)
            return None
        if isinstance(reply, int):
            raise ValueError("duplicate key id")
        yield Notify(events)
        yield from self._confirm_directory(new_record)
        return key_from_fields(fields_from_reply(reply))

    def delete_key(self, key_id: str) -> Op[KeyRecord | None]:
        """See :meth:`KeyStore.delete_key`."""
        org = yield from self._org_of(key_id)
        if org is None:
            return None
        event = KeyEvent("deleted", org, key_id)
        keys = (self.layout.key(org, key_id), self.layout.index(org))
        reply = yield self._write(DELETE_KEY, org, keys, (event,), key_id)
        if reply is None:
            return None
        yield Notify((event,))
        yield self._release(key_id, org)
        return key_from_fields(fields_from_reply(reply))

    def _release(self, key_id: str, org: str) -> Lua:
        entry = self.layout.directory(key_id)
        return Lua(RELEASE_DIRECTORY, (entry,), (org,), best_effort=True, repeatable=True)

    def list_sealed_seeds(self, after: str | None, limit: int) -> Op[list[tuple[str, str]]]:
        """See :meth:`KeyStore.list_sealed_seeds`: a SCAN of the keyspace per page.

        For ``scout-auth vault`` only: every page walks every key name (on
        a cluster, of every primary), then reads ``sealed_kek_id`` of the
        records after ``after`` in pipelined batches.
        """
        names: dict[str, str] = {}
        for name in (yield Scan(self.layout.key_pattern)):
            key_id = self.layout.key_record(text(name))
            if key_id is not None and (after is None or key_id > after):
                names[text(name)] = key_id
        ordered = sorted(names.items(), key=lambda item: item[1])
        found: list[tuple[str, str]] = []
        for start in range(0, len(ordered), _SEALED_BATCH):
            chunk = ordered[start : start + _SEALED_BATCH]
            replies = yield Batch(tuple(("HGET", name, "sealed_kek_id") for name, _ in chunk))
            for (_, key_id), kek_id in zip(chunk, replies, strict=True):
                if kek_id:  # recoverable, and not deleted since the SCAN
                    found.append((key_id, text(kek_id)))
            if len(found) >= limit:
                break
        return found[: max(int(limit), 0)]

    # -- roles ------------------------------------------------------------
    def put_role(self, role: RoleRecord) -> Op[None]:
        """See :meth:`KeyStore.put_role`."""
        event = KeyEvent("role_updated", role.org_id)
        keys = (self.layout.roles(role.org_id),)
        yield self._write(PUT_ROLE, role.org_id, keys, (event,), role.name, json_list(role.scopes))
        yield Notify((event,))

    def get_role(self, org_id: str, name: str) -> Op[RoleRecord | None]:
        """See :meth:`KeyStore.get_role`."""
        scopes = yield Call(("HGET", self.layout.roles(org_id), name))
        return None if scopes is None else RoleRecord(org_id, name, _scope_set(scopes))

    def list_roles(self, org_id: str) -> Op[list[RoleRecord]]:
        """See :meth:`KeyStore.list_roles`."""
        fields = fields_from_reply((yield Call(("HGETALL", self.layout.roles(org_id)))))
        return [RoleRecord(org_id, name, _scope_set(fields[name])) for name in sorted(fields)]

    def delete_role(self, org_id: str, name: str) -> Op[bool]:
        """See :meth:`KeyStore.delete_role`."""
        event = KeyEvent("role_deleted", org_id)
        if not (
            yield self._write(DELETE_ROLE, org_id, (self.layout.roles(org_id),), (event,), name)
        ):
            return False
        yield Notify((event,))
        return True

    # -- the scope catalogue: one hash in the org's slot, no events ---------
    def put_scope_info(self, info: ScopeInfo) -> Op[None]:
        """See :meth:`KeyStore.put_scope_info`: one ``HSET`` (safe to resend)."""
        key = self.layout.scope_catalogue(info.org_id)
        yield Call(("HSET", key, info.name, info.description))

    def delete_scope_info(self, org_id: str, name: str) -> Op[bool]:
        """See :meth:`KeyStore.delete_scope_info`: one exactly-once ``HDEL``."""
        keys = (
            self.layout.scope_catalogue(org_id),
            self.layout.once(org_id, secrets.token_hex(16)),
        )
        removed = yield Lua(DELETE_SCOPE_INFO, keys, (name,), repeatable=True)
        return bool(removed)

    def list_scope_infos(self, org_id: str) -> Op[list[ScopeInfo]]:
        """See :meth:`KeyStore.list_scope_infos`: one ``HGETALL``, sorted here."""
        fields = fields_from_reply((yield Call(("HGETALL", self.layout.scope_catalogue(org_id)))))
        return [ScopeInfo(org_id, name, fields[name]) for name in sorted(fields)]

    # -- usage --------------------------------------------------------------
    def record_usage(
        self, key_id: str, uses: int, last_used_at: datetime, address: str | None = None
    ) -> Op[None]:
        """See :meth:`KeyStore.record_usage`."""
        args = (str(int(uses)), format_time(last_used_at), normalise_address(address) or "")
        org = yield from self._org_of(key_id)
        if org is not None:
            yield Lua(RECORD_USAGE, (self.layout.key(org, key_id),), args)

    def record_legacy_usage(self, org_id: str, uses: int, last_used_at: datetime) -> Op[None]:
        """See :meth:`KeyStore.record_legacy_usage`."""
        args = (utc_day(last_used_at), str(int(uses)), format_time(last_used_at))
        yield Lua(RECORD_LEGACY_USAGE, (self.layout.legacy_usage(org_id),), args)

    def legacy_usage(self, org_id: str, since: datetime) -> Op[tuple[datetime | None, int]]:
        """See :meth:`KeyStore.legacy_usage`: one HGETALL, summed here."""
        first = utc_day(since)
        fields = fields_from_reply((yield Call(("HGETALL", self.layout.legacy_usage(org_id)))))
        last = fields.pop("last", None)
        count = sum(int(n) for day, n in fields.items() if day >= first)
        return (None if last is None else datetime.fromisoformat(last)), count


def _scope_set(value: bytes | str) -> frozenset[str]:
    return frozenset(json.loads(text(value)))

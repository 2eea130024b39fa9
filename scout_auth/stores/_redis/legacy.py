"""Redis operations on an org's legacy record and its look-up digest directory.

Theory of operation
-------------------
The record ``<prefix>:{o:<org>}:legacy`` holds the argon2id hash and, once
known, ``lookup_digest`` (hex) and ``pepper_id``; the directory entry
``<prefix>:{l:<hex digest>}`` names the org holding that digest. They live
in different hash slots, so on a cluster no script can change both. The
record is the truth; the entry is a pointer that a look-up always checks
(:meth:`LegacyOps.find_legacy` answers ``None`` unless the org it names
holds exactly that digest), so a stale or orphan entry never names the
wrong org. The rest of the protocol keeps two orgs from ever *both* holding
one digest, and entries from piling up:

1. **Claim before writing.** ``SET NX`` the entry to the org. If it names
   another org that still holds the digest, the digest is taken: the record
   is stored without it (``put_legacy``) or nothing is written
   (``set_legacy_digest``). If that org no longer holds it (deleted,
   re-digested, or a write interrupted between claim and record), the entry
   is taken over with a compare-and-swap, then that org's record is read
   once more: if it holds the digest now, its writer got there first, and
   the entry is handed back.
2. **Write the record** in the org's own slot, one script (``set_legacy_digest``
   only over the ``secret_hash`` the caller verified).
3. **Confirm after writing.** Read the entry again; if it no longer names
   the org, a taker won the race: drop the digest from the record (only if
   it is still that one).

Steps 1 and 3 are the two halves of Dekker's mutual exclusion: a writer
writes its record, then reads the entry; a taker writes the entry, then
reads the record. Each step is one single-key command, linearizable, so at
least one of them sees the other's write and backs off: two orgs never both
keep the digest (under a race both may lose it; the next successful use sets
it again). Old entries are released after a record's digest changes or the
record is deleted, and only while they still name the org (best effort:
an entry left behind is stale, which is harmless).
"""

from __future__ import annotations

import hmac
from collections import Counter
from dataclasses import dataclass, replace
from enum import Enum

from ..._core.records import LegacyRecord
from ..._core.store import KeyEvent
from .layout import Layout, fields_from_reply, legacy_fields, legacy_from_fields, text
from .needs import Batch, Call, Lua, Notify, Op, Scan, Script, once
from .ops import RELEASE_DIRECTORY, published

__all__ = ["LegacyOps"]

# The three lifecycle scripts take the request's ``once`` entry as their last
# key (see needs.once); the others are idempotent as they are.

# KEYS[1] legacy record; ARGV channel, payload, fields... A new hash keeps the
# switch. Returns {the digest the record held before, or ''}.
PUT_LEGACY = once(
    "put_legacy",
    """
local enabled = redis.call('HGET', KEYS[1], 'enabled')
local old = redis.call('HGET', KEYS[1], 'lookup_digest')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if enabled then redis.call('HSET', KEYS[1], 'enabled', enabled) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {old or ''}
""",
)

# KEYS[1] legacy record; ARGV channel, payload. Returns {old digest or ''}, nil if absent.
DELETE_LEGACY = once(
    "delete_legacy",
    """
local old = redis.call('HGET', KEYS[1], 'lookup_digest')
if redis.call('DEL', KEYS[1]) == 0 then return false end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {old or ''}
""",
)

# KEYS[1] legacy record; ARGV channel, payload, "1" or "0"
SET_LEGACY_ENABLED = once(
    "set_legacy_enabled",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'enabled', ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
""",
)

# KEYS[1] legacy record; ARGV secret hash, hex digest, pepper id. Only over the
# hash the caller verified (a re-import meanwhile wins). No PUBLISH: no
# credential changes. Returns {1 written or 0, the digest held before or ''}.
SET_LEGACY_DIGEST = Script(
    "set_legacy_digest",
    """
local old = redis.call('HGET', KEYS[1], 'lookup_digest') or ''
if redis.call('HGET', KEYS[1], 'secret_hash') ~= ARGV[1] then return {0, old} end
redis.call('HSET', KEYS[1], 'lookup_digest', ARGV[2], 'pepper_id', ARGV[3])
return {1, old}
""",
)

# KEYS[1] legacy record; ARGV hex digest. Drop the digest if it is still that one.
DROP_LEGACY_DIGEST = Script(
    "drop_legacy_digest",
    """
if redis.call('HGET', KEYS[1], 'lookup_digest') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'lookup_digest', 'pepper_id')
return 1
""",
)

# KEYS[1] directory entry; ARGV expected org id, new org id (compare-and-swap).
SWAP_DIRECTORY = Script(
    "swap_directory",
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
""",
)

SCRIPTS = (
    PUT_LEGACY,
    DELETE_LEGACY,
    SET_LEGACY_ENABLED,
    SET_LEGACY_DIGEST,
    DROP_LEGACY_DIGEST,
    SWAP_DIRECTORY,
)

# A claim that keeps losing compare-and-swaps to other writers gives up
# (the record is then stored without a digest: fail safe, not wrong).
_CLAIM_ATTEMPTS = 3
_COUNT_BATCH = 500


class _Claim(Enum):
    MINE = "mine"  # the entry named the org already
    NEW = "new"  # this operation set it or took it over
    TAKEN = "taken"  # another org holds the digest


@dataclass(frozen=True, slots=True)
class LegacyOps:
    """The legacy-record operations of one store (see the module docstring)."""

    layout: Layout
    origin: str

    def get_legacy(self, org_id: str) -> Op[LegacyRecord | None]:
        """See :meth:`KeyStore.get_legacy`."""
        fields = fields_from_reply((yield Call(("HGETALL", self.layout.legacy(org_id)))))
        return legacy_from_fields(fields) if fields else None

    def find_legacy(self, lookup_digest: bytes) -> Op[LegacyRecord | None]:
        """See :meth:`KeyStore.find_legacy`: two reads (directory entry, record)."""
        org = yield Call(("GET", self.layout.legacy_directory(lookup_digest)))
        if org is None:
            return None
        fields = fields_from_reply((yield Call(("HGETALL", self.layout.legacy(text(org))))))
        held = fields.get("lookup_digest", "")
        # The record, not the entry, decides: a stale entry reads as None.
        if not held or not hmac.compare_digest(held.encode(), lookup_digest.hex().encode()):
            return None
        return legacy_from_fields(fields)

    def put_legacy(self, record: LegacyRecord) -> Op[None]:
        """See :meth:`KeyStore.put_legacy`."""
        legacy_fields(record)  # validates before anything is written
        digest = record.lookup_digest
        if digest is not None:
            yield from self._note_pepper(record.pepper_id)
        if digest is not None and (yield from self._claim(record.org_id, digest)) is _Claim.TAKEN:
            record = replace(record, lookup_digest=None, pepper_id=None)
        event = KeyEvent("legacy_imported", record.org_id)
        keys = (self.layout.legacy(record.org_id),)
        reply = yield self._write(PUT_LEGACY, record.org_id, keys, (event,), *legacy_fields(record))
        yield Notify((event,))
        yield from self._release_old(record.org_id, _first(reply), record.lookup_digest)
        if record.lookup_digest is not None:
            yield from self._confirm(record.org_id, record.lookup_digest)

    def delete_legacy(self, org_id: str) -> Op[bool]:
        """See :meth:`KeyStore.delete_legacy`."""
        event = KeyEvent("legacy_deleted", org_id)
        reply = yield self._write(DELETE_LEGACY, org_id, (self.layout.legacy(org_id),), (event,))
        if reply is None:
            return False
        yield Notify((event,))
        yield from self._release_old(org_id, _first(reply), None)
        return True

    def set_legacy_enabled(self, org_id: str, enabled: bool) -> Op[LegacyRecord | None]:
        """See :meth:`KeyStore.set_legacy_enabled`."""
        event = KeyEvent("legacy_updated", org_id)
        flag = "1" if enabled else "0"
        keys = (self.layout.legacy(org_id),)
        reply = yield self._write(SET_LEGACY_ENABLED, org_id, keys, (event,), flag)
        if reply is None:
            return None
        yield Notify((event,))
        return legacy_from_fields(fields_from_reply(reply))

    def set_legacy_digest(
        self, org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str
    ) -> Op[bool]:
        """See :meth:`KeyStore.set_legacy_digest` (no event)."""
        key = self.layout.legacy(org_id)
        current = yield Call(("HGET", key, "secret_hash"))
        if current is None or text(current) != secret_hash:
            return False  # checked again in the script; this only avoids a needless claim
        yield from self._note_pepper(pepper_id)
        claim = yield from self._claim(org_id, lookup_digest)
        if claim is _Claim.TAKEN:
            return False
        wanted = lookup_digest.hex()
        reply = yield Lua(
            SET_LEGACY_DIGEST, (key,), (secret_hash, wanted, pepper_id), repeatable=True
        )
        written, old = int(reply[0]), text(reply[1])
        if not written:
            if claim is _Claim.NEW and old != wanted:  # give back what this call claimed
                yield self._release(lookup_digest, org_id)
            return False
        yield from self._release_old(org_id, old, lookup_digest)
        return (yield from self._confirm(org_id, lookup_digest))

    def legacy_pepper_ids(self) -> Op[frozenset[str]]:
        """See :meth:`RedisKeyStore.legacy_pepper_ids`: one ``SMEMBERS``."""
        members = yield Call(("SMEMBERS", self.layout.legacy_peppers))
        return frozenset(text(m) for m in members or ())

    def _note_pepper(self, pepper_id: str | None) -> Op[None]:
        # Before the digest is written: the set always holds every id in use
        # (a write that fails after it leaves an extra id, which is harmless).
        if pepper_id:
            yield Call(("SADD", self.layout.legacy_peppers, pepper_id))

    def legacy_digest_counts(self) -> Op[dict[str | None, int]]:
        """See :meth:`KeyStore.legacy_digest_counts`: a SCAN of the keyspace (startup only)."""
        names = sorted({text(n) for n in (yield Scan(self.layout.legacy_pattern))})
        counts: Counter[str | None] = Counter()
        for start in range(0, len(names), _COUNT_BATCH):
            chunk = names[start : start + _COUNT_BATCH]
            replies = yield Batch(tuple(("HMGET", n, "secret_hash", "pepper_id") for n in chunk))
            for secret_hash, pepper_id in replies:
                if secret_hash is not None:  # not deleted since the SCAN
                    counts[text(pepper_id) if pepper_id else None] += 1
        return dict(counts)

    # -- the directory protocol (module docstring) --------------------------
    def _write(
        self,
        script: Script,
        org_id: str,
        keys: tuple[str, ...],
        events: tuple[KeyEvent, ...],
        *args: str,
    ) -> Lua:
        return published(self.layout, self.origin, org_id, script, keys, events, *args)

    def _holds(self, org_id: str, lookup_digest: bytes) -> Op[bool]:
        held = yield Call(("HGET", self.layout.legacy(org_id), "lookup_digest"))
        return held is not None and text(held) == lookup_digest.hex()

    def _claim(self, org_id: str, lookup_digest: bytes) -> Op[_Claim]:
        entry = self.layout.legacy_directory(lookup_digest)
        for _ in range(_CLAIM_ATTEMPTS):
            if (yield Call(("SET", entry, org_id, "NX"))):
                return _Claim.NEW
            current = yield Call(("GET", entry))
            if current is None:
                continue  # released meanwhile: claim it afresh
            holder = text(current)
            if holder == org_id:
                return _Claim.MINE
            if (yield from self._holds(holder, lookup_digest)):
                return _Claim.TAKEN
            if not (yield Lua(SWAP_DIRECTORY, (entry,), (holder, org_id), repeatable=True)):
                continue  # someone else moved it first: look again
            # Dekker, taker's half: the holder may have written its record since.
            if (yield from self._holds(holder, lookup_digest)):
                yield Lua(
                    SWAP_DIRECTORY, (entry,), (org_id, holder), best_effort=True, repeatable=True
                )
                return _Claim.TAKEN
            return _Claim.NEW
        return _Claim.TAKEN

    def _confirm(self, org_id: str, lookup_digest: bytes) -> Op[bool]:
        # Dekker, writer's half. After the committed write, so best effort; an
        # unreadable entry counts as lost (dropping a digest is the safe side).
        entry = self.layout.legacy_directory(lookup_digest)
        current = yield Call(("GET", entry), best_effort=True)
        if current is not None and text(current) == org_id:
            return True
        keys = (self.layout.legacy(org_id),)
        digest = lookup_digest.hex()
        yield Lua(DROP_LEGACY_DIGEST, keys, (digest,), best_effort=True, repeatable=True)
        return False

    def _release_old(self, org_id: str, old_hex: str, new: bytes | None) -> Op[None]:
        if not old_hex or (new is not None and old_hex == new.hex()):
            return
        try:
            old = bytes.fromhex(old_hex)
        except ValueError:  # not written by us; nothing to release
            return
        yield self._release(old, org_id)

    def _release(self, lookup_digest: bytes, org_id: str) -> Lua:
        entry = self.layout.legacy_directory(lookup_digest)
        return Lua(RELEASE_DIRECTORY, (entry,), (org_id,), best_effort=True, repeatable=True)


def _first(reply: object) -> str:
    # The scripts answer {old digest or ''}.
    if isinstance(reply, list | tuple) and reply:
        return text(reply[0])
    return ""

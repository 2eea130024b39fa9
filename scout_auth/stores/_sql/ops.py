"""The store's SQL, written once for the sync and the async driver.

Theory of operation
-------------------
Each operation is a generator: it yields a SQLAlchemy Core statement, receives
the statement's result, and finally returns an :class:`Outcome` (the value for
the caller plus the :class:`~scout_auth.stores.KeyEvent` s to publish once the
transaction has committed). :class:`~scout_auth.stores.sql.SQLKeyStore` runs a
generator inside one transaction on a ``Connection`` (plain calls) or an
``AsyncConnection`` (``await``); nothing here performs I/O.

Writes are ordered so that the first statement of every lifecycle transaction
takes the row's write lock (``UPDATE``/``DELETE``), and the record returned to
the caller is read *after* that, inside the same transaction. That holds on
every back end, including SQLite, whose driver only opens a transaction at the
first write: there is no window between "read" and "write" for another client
to slip into (no lost update, no successor inserted for a key deleted
meanwhile, no deleted key resurrected by a concurrent rename).

On PostgreSQL every write that changed something also announces its events
with ``SELECT pg_notify(channel, payload)`` as the last statement of the same
transaction (:func:`announcing`): PostgreSQL delivers a notification only if,
and after, its transaction commits, so a rolled-back write announces nothing
and a listener that hears of a change reads the changed row. The payload is
the compact JSON of :func:`~._feed.encode_event_payload`, with the writing
store's origin id so it can skip its own echo.

Ids are compared exactly: the MariaDB tables use a binary NO PAD collation,
and every row a read returns is checked again in Python against the id asked
for (an org id differing only in case or trailing spaces is another org).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import CursorResult, Dialect, Row
from sqlalchemy.sql import Executable

from ..._core.records import KeyRecord, LegacyRecord, RoleRecord, ScopeInfo, SealedSeed
from ..._core.store import KEEP, KeyEvent, KeyUpdate, utc_day
from ..._core.usage import normalise_address
from .._feed import encode_event_payload
from .schema import KEYS, LEGACY, LEGACY_USAGE, ROLES, SCOPE_CATALOGUE, UTCDateTime

__all__ = [
    "KEY_BY_ID",
    "Announce",
    "MakeOp",
    "Op",
    "Outcome",
    "announcing",
    "found_key",
    "key_record",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What an operation returns: its value and the events to publish after commit."""

    value: T
    events: tuple[KeyEvent, ...] = field(default=())


Op = Generator[Executable, CursorResult[Any], Outcome[T]]
MakeOp = Callable[[Dialect], Op[T]]

# An unquoted PostgreSQL identifier as LISTEN folds it: lower case, at most 63 bytes.
_CHANNEL = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class Announce:
    """Where a store announces its committed writes on PostgreSQL, and as whom.

    Raises:
        ValueError: ``channel`` is not a lower-case identifier of at most 63
            characters (``LISTEN`` would fold or truncate it and hear nothing).
    """

    channel: str
    origin: str

    def __post_init__(self) -> None:
        if not _CHANNEL.fullmatch(self.channel):
            raise ValueError("channel must match [a-z_][a-z0-9_]* (at most 63 characters)")


def announcing(make: MakeOp[T], announce: Announce) -> MakeOp[T]:
    """``make``, plus one ``pg_notify`` of its events at the end of its transaction.

    Other databases have no such channel: there the operation is unchanged.
    """

    def op(dialect: Dialect) -> Op[T]:
        outcome = yield from make(dialect)
        if outcome.events and dialect.name == "postgresql":
            payload = encode_event_payload(announce.origin, outcome.events)
            yield sa.select(sa.func.pg_notify(announce.channel, payload))
        return outcome

    return op


# -- rows <-> records ------------------------------------------------------
def _encode_scopes(scopes: frozenset[str] | None) -> str | None:
    # NULL = unrestricted; "[]" = no scope at all. Sorted, so equal sets are equal text.
    return None if scopes is None else json.dumps(sorted(scopes))


# An org's keys share a handful of distinct scope, role and allowlist texts:
# decoding each once (the results are immutable) makes listing 1,000 keys
# cheaper by a third (benchmarks/manage_list.py). Bounded: texts come from
# admins, not from requests.
@functools.lru_cache(maxsize=1024)
def _decode_set(text: str) -> frozenset[str]:
    return frozenset(json.loads(text))


def _decode_scopes(text: str | None) -> frozenset[str] | None:
    return None if text is None else _decode_set(text)


def _encode_list(values: frozenset[str] | tuple[str, ...] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def _encode_roles(roles: frozenset[str]) -> str | None:
    return json.dumps(sorted(roles)) if roles else None


@functools.lru_cache(maxsize=1024)
def _decode_tuple(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _decode_ips(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else _decode_tuple(text)


def _sealed_values(sealed: SealedSeed | None) -> dict[str, Any]:
    return {
        "sealed_ciphertext": None if sealed is None else bytes(sealed.ciphertext),
        "sealed_nonce": None if sealed is None else bytes(sealed.nonce),
        "sealed_wrapped_key": None if sealed is None else bytes(sealed.wrapped_key),
        "sealed_kek_id": None if sealed is None else sealed.kek_id,
    }


def key_values(record: KeyRecord) -> dict[str, Any]:
    """The ``scout_auth_keys`` row for ``record``."""
    return {
        "key_id": record.key_id,
        "org_id": record.org_id,
        "name": record.name,
        "public_key": bytes(record.public_key),
        "enabled": record.enabled,
        "scopes": _encode_scopes(record.scopes),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "replaced_by": record.replaced_by,
        "roles": _encode_roles(record.roles),
        "allowed_ips": _encode_list(record.allowed_ips),
        "use_count": record.use_count,
        "last_used_at": record.last_used_at,
        "description": record.description,
        "created_by": record.created_by,
        **_sealed_values(record.sealed_seed),
        "last_used_address": record.last_used_address,
    }


# Where each column of ``select(KEYS)`` sits in a row: Core's ``Row`` and the
# raw path's DBAPI tuple (:mod:`.raw`) are read by position, so one mapping
# serves both.
(
    _KEY_ID, _ORG_ID, _NAME, _PUBLIC_KEY, _ENABLED, _SCOPES, _CREATED_AT, _EXPIRES_AT,
    _REPLACED_BY, _ROLES, _ALLOWED_IPS, _USE_COUNT, _LAST_USED_AT, _DESCRIPTION,
    _CREATED_BY, _SEALED_CIPHERTEXT, _SEALED_NONCE, _SEALED_WRAPPED_KEY, _SEALED_KEK_ID,
    _LAST_USED_ADDRESS,
) = range(20)  # fmt: skip
assert tuple(KEYS.c.keys()) == (  # the order above is the table's
    "key_id", "org_id", "name", "public_key", "enabled", "scopes", "created_at",
    "expires_at", "replaced_by", "roles", "allowed_ips", "use_count", "last_used_at",
    "description", "created_by", "sealed_ciphertext", "sealed_nonce",
    "sealed_wrapped_key", "sealed_kek_id", "last_used_address",
)  # fmt: skip


def key_record(row: Sequence[Any]) -> KeyRecord:
    """The record of one ``select(KEYS)`` row, its values already processed by
    the column types (a Core ``Row``, or a raw tuple through :mod:`.raw`)."""
    kek_id, ciphertext = row[_SEALED_KEK_ID], row[_SEALED_CIPHERTEXT]
    roles = row[_ROLES]
    return KeyRecord(
        key_id=row[_KEY_ID],
        org_id=row[_ORG_ID],
        name=row[_NAME],
        public_key=bytes(row[_PUBLIC_KEY]),
        enabled=bool(row[_ENABLED]),
        created_at=row[_CREATED_AT],
        expires_at=row[_EXPIRES_AT],
        scopes=_decode_scopes(row[_SCOPES]),
        replaced_by=row[_REPLACED_BY],
        roles=_decode_set(roles) if roles else frozenset(),
        allowed_ips=_decode_ips(row[_ALLOWED_IPS]),
        use_count=int(row[_USE_COUNT]),
        last_used_at=row[_LAST_USED_AT],
        description=row[_DESCRIPTION] or "",
        created_by=row[_CREATED_BY],
        sealed_seed=None
        if kek_id is None or ciphertext is None
        else SealedSeed(
            ciphertext=bytes(ciphertext),
            nonce=bytes(row[_SEALED_NONCE] or b""),
            wrapped_key=bytes(row[_SEALED_WRAPPED_KEY] or b""),
            kek_id=kek_id,
        ),
        last_used_address=row[_LAST_USED_ADDRESS],
    )


def found_key(row: Sequence[Any] | None, key_id: str) -> KeyRecord | None:
    """The record of the row a look-up of ``key_id`` returned, if it is that key's.

    The id is compared again in Python: exactly, whatever the collation.
    """
    return None if row is None or row[_KEY_ID] != key_id else key_record(row)


def _legacy(row: Row[Any]) -> LegacyRecord:
    digest = row.lookup_digest
    return LegacyRecord(
        org_id=row.org_id,
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        enabled=bool(row.enabled),
        lookup_digest=None if digest is None else bytes(digest),
        pepper_id=row.pepper_id,
    )


def _role(row: Row[Any]) -> RoleRecord:
    return RoleRecord(row.org_id, row.name, frozenset(json.loads(row.scopes)))


def _upsert(
    table: sa.Table,
    values: dict[str, Any],
    changes: Callable[[Any], dict[str, Any]],
    dialect: Dialect,
) -> Executable:
    """One ``INSERT … ON CONFLICT/DUPLICATE KEY UPDATE``; ``changes(new)`` may read
    the row that failed to insert through ``new`` (``excluded`` / ``VALUES()``)."""
    if dialect.name in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        stmt = insert(table).values(values)
        keys = [c for c in table.primary_key.columns]
        return stmt.on_conflict_do_update(index_elements=keys, set_=changes(stmt.excluded))
    if dialect.name in ("mysql", "mariadb"):
        my = mysql.insert(table).values(values)
        return my.on_duplicate_key_update(changes(my.inserted))
    raise NotImplementedError(f"no upsert for {dialect.name}")  # pragma: no cover


# -- reads -----------------------------------------------------------------
# The look-ups a cold verification makes are lambda statements: SQLAlchemy
# builds and compiles each once, keyed by the lambda's code, and binds the
# closure's value as the parameter; building the ``select()`` anew and
# deriving its cache key on every call cost about as much as a round trip to
# SQLite (issue 15).
def get_key(key_id: str, dialect: Dialect) -> Op[KeyRecord | None]:
    """One key by primary key."""
    result = yield sa.lambda_stmt(lambda: sa.select(KEYS).where(KEYS.c.key_id == key_id))
    return Outcome(found_key(result.first(), key_id))


#: :func:`get_key`'s statement for the raw path (:mod:`.raw`): the same
#: ``SELECT``, the id as the one bound parameter.
KEY_BY_ID = sa.select(KEYS).where(KEYS.c.key_id == sa.bindparam("value"))


def list_keys(org_id: str, dialect: Dialect) -> Op[list[KeyRecord]]:
    """An org's keys, oldest first, through the ``org_id`` index."""
    result = yield (
        sa.select(KEYS).where(KEYS.c.org_id == org_id).order_by(KEYS.c.created_at, KEYS.c.key_id)
    )
    return Outcome([key_record(row) for row in result if row.org_id == org_id])


def list_sealed_seeds(after: str | None, limit: int, dialect: Dialect) -> Op[list[tuple[str, str]]]:
    """A page of ``(key_id, kek_id)`` of recoverable keys: a range of the primary key."""
    t = KEYS.c
    query = sa.select(t.key_id, t.sealed_kek_id).where(t.sealed_kek_id.is_not(None))
    if after is not None:
        query = query.where(t.key_id > after)
    result = yield query.order_by(t.key_id).limit(max(int(limit), 0))
    return Outcome([(str(row.key_id), str(row.sealed_kek_id)) for row in result])


def get_legacy(org_id: str, dialect: Dialect) -> Op[LegacyRecord | None]:
    """An org's legacy hash by primary key."""
    result = yield sa.lambda_stmt(lambda: sa.select(LEGACY).where(LEGACY.c.org_id == org_id))
    row = result.first()
    return Outcome(None if row is None or row.org_id != org_id else _legacy(row))


def find_legacy(lookup_digest: bytes, dialect: Dialect) -> Op[LegacyRecord | None]:
    """The legacy record holding ``lookup_digest``: one look-up of its unique index."""
    result = yield sa.lambda_stmt(
        lambda: sa.select(LEGACY).where(LEGACY.c.lookup_digest == lookup_digest)
    )
    row = result.first()
    if row is None or row.lookup_digest is None or bytes(row.lookup_digest) != lookup_digest:
        return Outcome(None)
    return Outcome(_legacy(row))


def legacy_digest_counts(dialect: Dialect) -> Op[dict[str | None, int]]:
    """Legacy records per pepper id (``None``: no digest), one ``GROUP BY``."""
    pepper_id = LEGACY.c.pepper_id
    result = yield sa.select(pepper_id, sa.func.count().label("n")).group_by(pepper_id)
    return Outcome({row.pepper_id: int(row.n) for row in result})


def legacy_pepper_ids(dialect: Dialect) -> Op[frozenset[str]]:
    """The pepper ids of the digests held now, one ``SELECT DISTINCT`` (one row per org)."""
    pepper_id = LEGACY.c.pepper_id
    result = yield sa.select(pepper_id).where(pepper_id.is_not(None)).distinct()
    return Outcome(frozenset(str(row.pepper_id) for row in result))


def _digest_holder(lookup_digest: bytes) -> Generator[Executable, CursorResult[Any], str | None]:
    # Which org holds the digest now (the unique index: one row at most).
    result = yield sa.select(LEGACY.c.org_id).where(LEGACY.c.lookup_digest == lookup_digest)
    row = result.first()
    return None if row is None else str(row.org_id)


def _reread(key_id: str, dialect: Dialect) -> Generator[Executable, CursorResult[Any], KeyRecord]:
    # FOR UPDATE: a locking (current) read on PostgreSQL/InnoDB; SQLite ignores it
    # and needs none, the transaction already holds the write lock.
    result = yield sa.select(KEYS).where(KEYS.c.key_id == key_id).with_for_update()
    return key_record(result.one())


# -- writes ----------------------------------------------------------------
def add_key(record: KeyRecord, dialect: Dialect) -> Op[None]:
    """Insert a key (the caller turns an IntegrityError into ``ValueError``)."""
    yield sa.insert(KEYS).values(key_values(record))
    return Outcome(None, (KeyEvent("created", record.org_id, record.key_id),))


def update_key(key_id: str, update: KeyUpdate, dialect: Dialect) -> Op[KeyRecord | None]:
    """Change the fields ``update`` names, in one UPDATE; return the record as
    this transaction left it."""
    values: dict[str, Any] = {}
    if update.name is not None:
        values["name"] = update.name
    if update.enabled is not None:
        values["enabled"] = update.enabled
    if update.scopes is not KEEP:
        values["scopes"] = _encode_scopes(update.scopes)
    if update.roles is not None:
        values["roles"] = _encode_roles(update.roles)
    if update.allowed_ips is not KEEP:
        values["allowed_ips"] = _encode_list(update.allowed_ips)
    if update.description is not None:
        values["description"] = update.description
    if update.expires_at is not KEEP:
        values["expires_at"] = update.expires_at
    if update.sealed_seed is not None:
        values.update(_sealed_values(update.sealed_seed))
    where = KEYS.c.key_id == key_id
    if values:
        result = yield sa.update(KEYS).where(where).values(values)
        if result.rowcount == 0:
            return Outcome(None)
    else:
        result = yield sa.select(KEYS.c.key_id).where(where).with_for_update()
        if result.first() is None:
            return Outcome(None)
    new = yield from _reread(key_id, dialect)
    return Outcome(new, (KeyEvent("updated", new.org_id, key_id),))


def rotate_key(
    old_key_id: str, new_record: KeyRecord, grace_until: datetime, dialect: Dialect
) -> Op[KeyRecord | None]:
    """End the old key at ``min(expires_at, grace_until)``, then insert the successor.

    The ``UPDATE`` comes first: if the old key is gone (or deleted meanwhile)
    nothing is written; if it exists its row stays locked until commit. A
    duplicate successor id raises IntegrityError and rolls the update back.
    """
    grace = sa.literal(grace_until, UTCDateTime())
    expires = KEYS.c.expires_at
    result = yield (
        sa.update(KEYS)
        .where(KEYS.c.key_id == old_key_id)
        .values(
            expires_at=sa.case(
                (sa.and_(expires.is_not(None), expires < grace), expires), else_=grace
            ),
            replaced_by=new_record.key_id,
        )
    )
    if result.rowcount == 0:
        return Outcome(None)
    yield sa.insert(KEYS).values(key_values(new_record))
    old = yield from _reread(old_key_id, dialect)
    return Outcome(
        old,
        (
            KeyEvent("rotated", old.org_id, old_key_id),
            KeyEvent("created", new_record.org_id, new_record.key_id),
        ),
    )


def delete_key(key_id: str, dialect: Dialect) -> Op[KeyRecord | None]:
    """Delete a key and return it as it was when deleted."""
    where = KEYS.c.key_id == key_id
    if dialect.delete_returning:
        result = yield sa.delete(KEYS).where(where).returning(*KEYS.c)
        row = result.first()
    else:  # MySQL: lock, read, delete
        result = yield sa.select(KEYS).where(where).with_for_update()
        row = result.first()
        if row is not None:
            yield sa.delete(KEYS).where(where)
    if row is None:
        return Outcome(None)
    old = key_record(row)
    return Outcome(old, (KeyEvent("deleted", old.org_id, key_id),))


def put_legacy(record: LegacyRecord, dialect: Dialect) -> Op[None]:
    """Create or replace an org's legacy hash; give it the record's digest if no other org has it.

    The upsert comes first and writes no digest: it takes the row's lock,
    drops the old digest, and can only conflict on ``org_id`` (on MariaDB
    ``ON DUPLICATE KEY UPDATE`` fires on *any* unique key, so an upsert
    carrying a digest another org holds would overwrite that org's row). The
    digest follows in an ``UPDATE`` if its holder, looked up first, is no
    other org. Another org taking the digest in between makes that ``UPDATE``
    a unique violation, and the store runs the whole operation again
    (``Database.run``, ``rerun_on_conflict``): the look-up then sees the
    holder, and the record is stored without a digest. The switch is never
    written: it survives.
    """
    values = {
        "org_id": record.org_id,
        "secret_hash": record.secret_hash,
        "created_at": record.created_at,
        "lookup_digest": None,
        "pepper_id": None,
    }

    def changes(new: Any) -> dict[str, Any]:
        return {
            "secret_hash": new.secret_hash,
            "created_at": new.created_at,
            "lookup_digest": None,
            "pepper_id": None,
        }

    yield _upsert(LEGACY, values, changes, dialect)
    digest = record.lookup_digest
    if digest is not None and (yield from _digest_holder(digest)) is None:
        yield (
            sa.update(LEGACY)
            .where(LEGACY.c.org_id == record.org_id)
            .values(lookup_digest=digest, pepper_id=record.pepper_id)
        )
    return Outcome(None, (KeyEvent("legacy_imported", record.org_id),))


def set_legacy_digest(
    org_id: str, secret_hash: str, lookup_digest: bytes, pepper_id: str, dialect: Dialect
) -> Op[bool]:
    """Give the org's record this digest if it still holds ``secret_hash``; no event.

    Checked first, in the same transaction: a digest another org holds
    answers ``False`` without a failing statement (on PostgreSQL a unique
    violation aborts the whole transaction). Then one conditional
    ``UPDATE … WHERE org_id = ? AND secret_hash = ?``. Another org taking the
    digest in between makes it a unique violation: the store runs the
    operation again, and the check answers ``False``.
    """
    holder = yield from _digest_holder(lookup_digest)
    if holder is not None and holder != org_id:
        return Outcome(False)
    where = sa.and_(LEGACY.c.org_id == org_id, LEGACY.c.secret_hash == secret_hash)
    result = yield (
        sa.update(LEGACY).where(where).values(lookup_digest=lookup_digest, pepper_id=pepper_id)
    )
    if result.rowcount == 0:
        # MySQL counts *changed* rows: the digest it already holds reads 0 too.
        found = yield sa.select(LEGACY.c.org_id, LEGACY.c.lookup_digest).where(where)
        row = found.first()
        if row is None or row.org_id != org_id or row.lookup_digest is None:
            return Outcome(False)
        return Outcome(bytes(row.lookup_digest) == lookup_digest)
    return Outcome(True)


def delete_legacy(org_id: str, dialect: Dialect) -> Op[bool]:
    """Delete an org's legacy hash; ``False`` if there was none."""
    result = yield sa.delete(LEGACY).where(LEGACY.c.org_id == org_id)
    if result.rowcount == 0:
        return Outcome(False)
    return Outcome(True, (KeyEvent("legacy_deleted", org_id),))


def set_legacy_enabled(org_id: str, enabled: bool, dialect: Dialect) -> Op[LegacyRecord | None]:
    """Flip the org's legacy switch; ``None`` if it has no legacy key."""
    where = LEGACY.c.org_id == org_id
    result = yield sa.update(LEGACY).where(where).values(enabled=enabled)
    if result.rowcount == 0:
        # MySQL counts *changed* rows: an unchanged switch reads 0 too.
        found = yield sa.select(LEGACY).where(where).with_for_update()
        row = found.first()
        if row is None or row.org_id != org_id:
            return Outcome(None)
    found = yield sa.select(LEGACY).where(where).with_for_update()
    return Outcome(_legacy(found.one()), (KeyEvent("legacy_updated", org_id),))


# -- roles -------------------------------------------------------------------
def put_role(role: RoleRecord, dialect: Dialect) -> Op[None]:
    """Create or replace a role (one upsert)."""
    scopes = json.dumps(sorted(role.scopes))
    values = {"org_id": role.org_id, "name": role.name, "scopes": scopes}
    yield _upsert(ROLES, values, lambda new: {"scopes": new.scopes}, dialect)
    return Outcome(None, (KeyEvent("role_updated", role.org_id),))


def get_role(org_id: str, name: str, dialect: Dialect) -> Op[RoleRecord | None]:
    """One role by primary key."""
    result = yield sa.select(ROLES).where(ROLES.c.org_id == org_id, ROLES.c.name == name)
    row = result.first()
    return Outcome(None if row is None or (row.org_id, row.name) != (org_id, name) else _role(row))


def list_roles(org_id: str, dialect: Dialect) -> Op[list[RoleRecord]]:
    """An org's roles by name (a primary-key range)."""
    result = yield sa.lambda_stmt(
        lambda: sa.select(ROLES).where(ROLES.c.org_id == org_id).order_by(ROLES.c.name)
    )
    return Outcome([_role(row) for row in result if row.org_id == org_id])


def delete_role(org_id: str, name: str, dialect: Dialect) -> Op[bool]:
    """Delete a role; ``False`` if there was none."""
    result = yield sa.delete(ROLES).where(ROLES.c.org_id == org_id, ROLES.c.name == name)
    if result.rowcount == 0:
        return Outcome(False)
    return Outcome(True, (KeyEvent("role_deleted", org_id),))


# -- the scope catalogue: no events (it changes no credential) ---------------
def put_scope_info(info: ScopeInfo, dialect: Dialect) -> Op[None]:
    """Create or replace one catalogue entry (one upsert)."""
    values = {"org_id": info.org_id, "name": info.name, "description": info.description}
    yield _upsert(SCOPE_CATALOGUE, values, lambda new: {"description": new.description}, dialect)
    return Outcome(None)


def delete_scope_info(org_id: str, name: str, dialect: Dialect) -> Op[bool]:
    """Delete one catalogue entry; ``False`` if there was none."""
    t = SCOPE_CATALOGUE.c
    result = yield sa.delete(SCOPE_CATALOGUE).where(t.org_id == org_id, t.name == name)
    return Outcome(result.rowcount > 0)


def list_scope_infos(org_id: str, dialect: Dialect) -> Op[list[ScopeInfo]]:
    """An org's catalogue by name (a primary-key range; sorted again here)."""
    t = SCOPE_CATALOGUE.c
    result = yield sa.select(SCOPE_CATALOGUE).where(t.org_id == org_id).order_by(t.name)
    infos = [ScopeInfo(row.org_id, row.name, row.description) for row in result]
    # By code point, as every store: a PostgreSQL collation may order otherwise.
    return Outcome(sorted((i for i in infos if i.org_id == org_id), key=lambda i: i.name))


# -- usage: atomic increments and max(), so instances merge exactly ----------
def _later(column: sa.ColumnElement[Any], value: Any) -> sa.ColumnElement[Any]:
    return sa.case((sa.or_(column.is_(None), column < value), value), else_=column)


def record_usage(
    key_id: str, uses: int, last_used_at: datetime, address: str | None, dialect: Dialect
) -> Op[None]:
    """``use_count += uses``, ``last_used_at = max(...)`` and its address: one UPDATE, no event."""
    at = sa.literal(last_used_at, UTCDateTime())
    c = KEYS.c
    latest = sa.or_(c.last_used_at.is_(None), c.last_used_at <= at)
    new_address = sa.literal(normalise_address(address), sa.String(64))
    # The address first: MySQL/MariaDB evaluate SET left to right, so it must
    # compare with last_used_at before that is raised.
    yield (
        sa.update(KEYS)
        .where(c.key_id == key_id)
        .ordered_values(
            (c.last_used_address, sa.case((latest, new_address), else_=c.last_used_address)),
            (c.use_count, c.use_count + uses),
            (c.last_used_at, _later(c.last_used_at, at)),
        )
    )
    return Outcome(None)


def record_legacy_usage(
    org_id: str, uses: int, last_used_at: datetime, dialect: Dialect
) -> Op[None]:
    """Add to the org's bucket of the UTC day of ``last_used_at`` (one upsert)."""
    values = {"org_id": org_id, "day": utc_day(last_used_at), "uses": uses}
    values["last_used_at"] = last_used_at
    t = LEGACY_USAGE.c

    def changes(new: Any) -> dict[str, Any]:
        return {"uses": t.uses + new.uses, "last_used_at": _later(t.last_used_at, new.last_used_at)}

    yield _upsert(LEGACY_USAGE, values, changes, dialect)
    return Outcome(None)


def legacy_usage(org_id: str, since: datetime, dialect: Dialect) -> Op[tuple[datetime | None, int]]:
    """``(last legacy use, uses on UTC days from since's day on)``: one range scan."""
    t = LEGACY_USAGE.c
    recent = sa.case((t.day >= utc_day(since), t.uses), else_=0)
    result = yield sa.select(
        sa.func.max(t.last_used_at).label("last"), sa.func.sum(recent).label("uses")
    ).where(t.org_id == org_id)
    row = result.one()
    last = row.last
    if last is not None and not isinstance(last, datetime):  # SQLite: text from max()
        last = datetime.fromisoformat(str(last))
    if last is not None:
        last = UTCDateTime().process_result_value(last, dialect)
    return Outcome((last, int(row.uses or 0)))

"""The SQL schema of :class:`~scout_auth.stores.sql.SQLKeyStore`.

Six tables, each answering its look-ups with one indexed query:

* ``scout_auth_keys`` — one row per Org Credential (public key only, its
  scopes, roles and IP allowlist as JSON text, its usage counters, its
  description and who created it, and for a recoverable key its sealed seed:
  ciphertext, nonce, wrapped data key and KEK id, never a KEK; see
  docs/vault.md). ``list_sealed_seeds`` pages through the primary key.
  ``get_key`` hits the primary key; ``list_keys`` the ``(org_id, created_at, key_id)``
  index, which also serves the "oldest first" order.
* ``scout_auth_legacy_keys`` — one argon2id hash per org, keyed by ``org_id``,
  with the org's legacy on/off switch and the look-up digest of its secret
  (an HMAC under a pepper the database never holds) with the pepper's public
  id. ``find_legacy`` hits the unique ``lookup_digest`` index, which also
  keeps two orgs from ever holding one digest (``NULL`` is "no digest" and
  may repeat).
* ``scout_auth_roles`` — an org's roles, keyed by ``(org_id, name)``.
* ``scout_auth_scope_catalogue`` — the scopes an org publishes, with their
  descriptions, keyed by ``(org_id, name)`` (listing by name is a range of it).
* ``scout_auth_legacy_usage`` — legacy requests per org and UTC day
  (``YYYY-MM-DD``), keyed by ``(org_id, day)``: "the last N days" is a
  range scan of that key.
* ``scout_auth_audit_events`` — the append-only audit trail (no secret, no
  token). The ``(org_id, at, id)`` and ``(key_id, at, id)`` indexes serve the
  per-org and per-key queries, newest first, and their keyset cursors.

Column types are chosen so values round-trip exactly on SQLite, PostgreSQL and
MariaDB/MySQL: datetimes as timezone-aware UTC with microseconds
(:class:`UTCDateTime`), scopes as JSON text where SQL ``NULL`` means
unrestricted and ``[]`` means no scope at all. On MariaDB the tables use
``utf8mb4_nopad_bin``, so ids compare exactly: case-sensitively and without
the trailing-space padding of the default collations.

The Alembic migrations in ``sql_migrations/versions`` must produce exactly this
schema; ``tests/stores/test_sql.py`` checks that they do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

from ..._audit.events import ID_WIDTHS, TEXT_WIDTHS

__all__ = [
    "AUDIT",
    "KEYS",
    "LEGACY",
    "LEGACY_USAGE",
    "METADATA",
    "ROLES",
    "SCOPE_CATALOGUE",
    "VERSION_TABLE",
    "UTCDateTime",
]

#: Alembic's version table for this schema (kept apart from the service's own).
VERSION_TABLE = "scout_auth_alembic_version"

_MYSQL_TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A datetime stored as UTC with microseconds, read back timezone-aware.

    PostgreSQL keeps ``timestamptz``; MySQL/MariaDB ``DATETIME(6)`` and SQLite
    text hold naive UTC, so the zone is attached again on the way out.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=dialect.name == "postgresql"))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("datetimes stored in a key store must be timezone-aware")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


METADATA = sa.MetaData()

# Raw 32 bytes: BYTEA / BLOB, and on MariaDB a VARBINARY that an index can hold
# whole (a BLOB index would need a prefix length).
_BYTES_32 = sa.LargeBinary().with_variant(mysql.VARBINARY(32), "mysql", "mariadb")

KEYS = sa.Table(
    "scout_auth_keys",
    METADATA,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("public_key", _BYTES_32, nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("scopes", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("replaced_by", sa.String(64), nullable=True),
    sa.Column("roles", sa.Text(), nullable=True),
    sa.Column("allowed_ips", sa.Text(), nullable=True),
    sa.Column("use_count", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=True),
    # A recoverable key's sealed seed (all four or none: NULL = not recoverable).
    sa.Column("sealed_ciphertext", sa.LargeBinary(), nullable=True),
    sa.Column("sealed_nonce", sa.LargeBinary(), nullable=True),
    sa.Column("sealed_wrapped_key", sa.LargeBinary(), nullable=True),
    sa.Column("sealed_kek_id", sa.String(200), nullable=True),
    # The client address of the latest use (normalised IP text; NULL: not known).
    sa.Column("last_used_address", sa.String(64), nullable=True),
    sa.Index("ix_scout_auth_keys_org_id", "org_id", "created_at", "key_id"),
    **_MYSQL_TABLE_ARGS,
)

LEGACY = sa.Table(
    "scout_auth_legacy_keys",
    METADATA,
    sa.Column("org_id", sa.String(200), primary_key=True),
    sa.Column("secret_hash", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("lookup_digest", _BYTES_32, nullable=True),
    sa.Column("pepper_id", sa.String(16), nullable=True),
    sa.Index("ix_scout_auth_legacy_keys_lookup_digest", "lookup_digest", unique=True),
    **_MYSQL_TABLE_ARGS,
)

ROLES = sa.Table(
    "scout_auth_roles",
    METADATA,
    sa.Column("org_id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("scopes", sa.Text(), nullable=False),
    **_MYSQL_TABLE_ARGS,
)

SCOPE_CATALOGUE = sa.Table(
    "scout_auth_scope_catalogue",
    METADATA,
    sa.Column("org_id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("description", sa.Text(), nullable=False),
    **_MYSQL_TABLE_ARGS,
)

LEGACY_USAGE = sa.Table(
    "scout_auth_legacy_usage",
    METADATA,
    sa.Column("org_id", sa.String(200), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("uses", sa.BigInteger(), nullable=False),
    sa.Column("last_used_at", UTCDateTime(), nullable=False),
    **_MYSQL_TABLE_ARGS,
)

AUDIT = sa.Table(
    "scout_auth_audit_events",
    METADATA,
    sa.Column("id", sa.String(ID_WIDTHS["id"]), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("action", sa.String(ID_WIDTHS["action"]), nullable=False),
    sa.Column("org_id", sa.String(ID_WIDTHS["org_id"]), nullable=False),
    sa.Column("key_id", sa.String(ID_WIDTHS["key_id"]), nullable=True),
    sa.Column("key_name", sa.String(TEXT_WIDTHS["key_name"]), nullable=True),
    sa.Column("actor", sa.String(TEXT_WIDTHS["actor"]), nullable=True),
    sa.Column("reason", sa.String(ID_WIDTHS["reason"]), nullable=True),
    sa.Column("method", sa.String(TEXT_WIDTHS["method"]), nullable=True),
    sa.Column("path", sa.String(TEXT_WIDTHS["path"]), nullable=True),
    sa.Column("client_ip", sa.String(TEXT_WIDTHS["client_ip"]), nullable=True),
    sa.Column("replaced_by", sa.String(ID_WIDTHS["replaced_by"]), nullable=True),
    sa.Index("ix_scout_auth_audit_events_org_id", "org_id", "at", "id"),
    sa.Index("ix_scout_auth_audit_events_key_id", "key_id", "at", "id"),
    **_MYSQL_TABLE_ARGS,
)

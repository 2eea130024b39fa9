"""Legacy look-up digests: find a ``Bearer`` legacy secret's org without a scan.

Adds to ``scout_auth_legacy_keys`` the nullable columns ``lookup_digest``
(HMAC-SHA-256 of the secret under a pepper the database never holds; 32
bytes) and ``pepper_id`` (the pepper's public id), and a unique index on
``lookup_digest``: the look-up is indexed and two orgs can never hold one
digest (``NULL`` may repeat). Existing rows keep everything and get ``NULL``
in both: each org gains its digest on its next successful legacy request or
re-import.

Revision ID: 0004
Revises: 0003
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Written out here, not imported: a migration must keep meaning what it meant.
# MariaDB: VARBINARY, so the unique index holds the whole value (no prefix).
_BYTES_32 = sa.LargeBinary().with_variant(mysql.VARBINARY(32), "mysql", "mariadb")
_INDEX = "ix_scout_auth_legacy_keys_lookup_digest"


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table much; elsewhere plain ALTERs.
    with op.batch_alter_table("scout_auth_legacy_keys") as batch:
        batch.add_column(sa.Column("lookup_digest", _BYTES_32, nullable=True))
        batch.add_column(sa.Column("pepper_id", sa.String(16), nullable=True))
    op.create_index(_INDEX, "scout_auth_legacy_keys", ["lookup_digest"], unique=True)


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="scout_auth_legacy_keys")
    with op.batch_alter_table("scout_auth_legacy_keys") as batch:
        batch.drop_column("pepper_id")
        batch.drop_column("lookup_digest")

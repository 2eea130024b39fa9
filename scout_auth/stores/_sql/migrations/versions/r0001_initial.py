"""Initial schema: keys (public keys only) and legacy keys (argon2id hashes only).

Revision ID: 0001
Revises:
Create Date: 2026-01-15
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Written out here, not imported: a migration must keep meaning what it meant.
_UTC = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}


def upgrade() -> None:
    op.create_table(
        "scout_auth_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "public_key",
            sa.LargeBinary().with_variant(mysql.VARBINARY(32), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("expires_at", _UTC, nullable=True),
        sa.Column("replaced_by", sa.String(64), nullable=True),
        **_MYSQL,
    )
    op.create_index(
        "ix_scout_auth_keys_org_id", "scout_auth_keys", ["org_id", "created_at", "key_id"]
    )
    op.create_table(
        "scout_auth_legacy_keys",
        sa.Column("org_id", sa.String(200), primary_key=True),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("scout_auth_legacy_keys")
    op.drop_index("ix_scout_auth_keys_org_id", table_name="scout_auth_keys")
    op.drop_table("scout_auth_keys")

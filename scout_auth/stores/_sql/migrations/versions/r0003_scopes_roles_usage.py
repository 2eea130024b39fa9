"""Roles, IP allowlists, usage counters and the legacy switch.

Adds to ``scout_auth_keys``: ``roles`` and ``allowed_ips`` (JSON text, NULL =
none / anywhere), ``use_count`` (0 for existing keys) and ``last_used_at``;
to ``scout_auth_legacy_keys``: ``enabled`` (true for existing orgs). New
tables ``scout_auth_roles`` and ``scout_auth_legacy_usage``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-15
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
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
    # batch mode: SQLite cannot ALTER a table much; elsewhere plain ALTERs.
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.add_column(sa.Column("roles", sa.Text(), nullable=True))
        batch.add_column(sa.Column("allowed_ips", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("use_count", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("last_used_at", _UTC, nullable=True))
    with op.batch_alter_table("scout_auth_legacy_keys") as batch:
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "scout_auth_roles",
        sa.Column("org_id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        **_MYSQL,
    )
    op.create_table(
        "scout_auth_legacy_usage",
        sa.Column("org_id", sa.String(200), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", _UTC, nullable=False),
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("scout_auth_legacy_usage")
    op.drop_table("scout_auth_roles")
    with op.batch_alter_table("scout_auth_legacy_keys") as batch:
        batch.drop_column("enabled")
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("use_count")
        batch.drop_column("allowed_ips")
        batch.drop_column("roles")

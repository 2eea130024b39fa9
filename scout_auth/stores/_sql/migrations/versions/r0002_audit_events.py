"""Audit trail: the append-only scout_auth_audit_events table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
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
        "scout_auth_audit_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(255), nullable=True),
        sa.Column("key_name", sa.String(200), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("path", sa.String(2048), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("replaced_by", sa.String(64), nullable=True),
        **_MYSQL,
    )
    op.create_index(
        "ix_scout_auth_audit_events_org_id", "scout_auth_audit_events", ["org_id", "at", "id"]
    )
    op.create_index(
        "ix_scout_auth_audit_events_key_id", "scout_auth_audit_events", ["key_id", "at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_scout_auth_audit_events_key_id", table_name="scout_auth_audit_events")
    op.drop_index("ix_scout_auth_audit_events_org_id", table_name="scout_auth_audit_events")
    op.drop_table("scout_auth_audit_events")

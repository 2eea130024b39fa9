"""Key descriptions and creators, and the per-org scope catalogue.

Adds to ``scout_auth_keys``: ``description`` (text, ``''`` for existing
keys) and ``created_by`` (who created the key; ``NULL`` for existing keys:
not known). New table ``scout_auth_scope_catalogue``: the scopes an org
publishes with their descriptions, keyed by ``(org_id, name)``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-03-15
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Written out here, not imported: a migration must keep meaning what it meant.
_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table much; elsewhere plain ALTERs.
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("created_by", sa.String(200), nullable=True))
    op.create_table(
        "scout_auth_scope_catalogue",
        sa.Column("org_id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False),
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("scout_auth_scope_catalogue")
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.drop_column("created_by")
        batch.drop_column("description")

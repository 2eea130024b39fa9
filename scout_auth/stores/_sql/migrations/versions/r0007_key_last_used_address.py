"""The client address of a key's latest use.

Adds to ``scout_auth_keys``: ``last_used_address`` (``VARCHAR(64)``, the
normalised IP address that came with ``last_used_at``), ``NULL`` for
existing keys: not known until their next use is written.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table much; elsewhere a plain ALTER.
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.add_column(sa.Column("last_used_address", sa.String(64), nullable=True))


def downgrade() -> None:
    # Only the addresses are lost; the keys and their usage counts stay.
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.drop_column("last_used_address")

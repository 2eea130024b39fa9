"""Recoverable keys: a key's sealed seed (docs/vault.md).

Adds to ``scout_auth_keys``: ``sealed_ciphertext``, ``sealed_nonce``,
``sealed_wrapped_key`` (binary) and ``sealed_kek_id`` (the public id of the
key-encryption key), all ``NULL`` for existing keys: they were shown once
and stay that way. No KEK is ever stored.

Revision ID: 0006
Revises: 0005
Create Date: 2026-04-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table much; elsewhere plain ALTERs.
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.add_column(sa.Column("sealed_ciphertext", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("sealed_nonce", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("sealed_wrapped_key", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("sealed_kek_id", sa.String(200), nullable=True))


def downgrade() -> None:
    # Dropping the columns forgets every sealed seed: those keys stay valid
    # but can no longer be revealed.
    with op.batch_alter_table("scout_auth_keys") as batch:
        batch.drop_column("sealed_kek_id")
        batch.drop_column("sealed_wrapped_key")
        batch.drop_column("sealed_nonce")
        batch.drop_column("sealed_ciphertext")

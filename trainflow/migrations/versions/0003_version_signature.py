"""model_versions.signature: an HMAC of each version's name, number and files' sha256 under the deployment's key.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:  # SQLite alters a table by copying it
        batch.add_column(sa.Column("signature", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("signature")

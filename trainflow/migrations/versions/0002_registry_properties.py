"""registry_properties: facts about the registry itself (a server database's files root).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("registry_properties",
                    sa.Column("name", sa.String(100), primary_key=True),
                    sa.Column("value", sa.String(2000), nullable=False))


def downgrade() -> None:
    op.drop_table("registry_properties")

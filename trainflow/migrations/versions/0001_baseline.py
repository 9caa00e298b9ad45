"""The registry's first schema: models, versions, serving variants, aliases and events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("registered_models",
                    sa.Column("name", sa.String(200), primary_key=True),
                    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("latest_version", sa.Integer, nullable=False))
    op.create_table("model_versions",
                    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("model_name", sa.String(200), sa.ForeignKey("registered_models.name"), nullable=False),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("run_id", sa.String(100), nullable=False),
                    sa.Column("family", sa.String(50), nullable=False),
                    sa.Column("task", sa.String(20), nullable=False),
                    sa.Column("uri", sa.String(1000), nullable=False),
                    sa.Column("sha256", sa.String(64), nullable=False),
                    sa.Column("metrics", sa.JSON, nullable=False),
                    sa.Column("lineage", sa.JSON, nullable=False),
                    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
                    sa.UniqueConstraint("model_name", "version"))
    op.create_table("serving_variants",
                    sa.Column("model_name", sa.String(200), sa.ForeignKey("registered_models.name"),
                              primary_key=True),
                    sa.Column("version", sa.Integer, primary_key=True),
                    sa.Column("variant", sa.String(100), nullable=False),
                    sa.Column("runtime", sa.String(20), nullable=False),
                    sa.Column("sha256", sa.String(64), nullable=False),
                    sa.Column("gate", sa.JSON, nullable=False),
                    sa.Column("created", sa.DateTime(timezone=True), nullable=False))
    op.create_table("model_aliases",
                    sa.Column("model_name", sa.String(200), sa.ForeignKey("registered_models.name"),
                              primary_key=True),
                    sa.Column("alias", sa.String(50), primary_key=True),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("updated", sa.DateTime(timezone=True), nullable=False))
    op.create_table("registry_events",
                    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("model_name", sa.String(200), nullable=False),
                    sa.Column("version", sa.Integer, nullable=True),
                    sa.Column("event", sa.String(50), nullable=False),
                    sa.Column("detail", sa.JSON, nullable=False),
                    sa.Column("created", sa.DateTime(timezone=True), nullable=False))


def downgrade() -> None:
    for table in ("registry_events", "model_aliases", "serving_variants", "model_versions", "registered_models"):
        op.drop_table(table)

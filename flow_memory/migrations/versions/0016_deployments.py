"""deployments, their immutable revisions, daily royalty sums, and usage records that name the
deployment a call went through (issue 25)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flow_memory.kit.db import JSONDocument, UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("deployment_id", sa.String(length=40), nullable=False),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("owner_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_index("ix_deployments_owner", "deployments", ["owner_id", "created_at"])
    op.create_table(
        "deployment_revisions",
        sa.Column("revision_id", sa.String(length=40), nullable=False),
        sa.Column("deployment_id", sa.String(length=40), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("solution_slug", sa.String(length=160), nullable=True),
        sa.Column("solution_version", sa.String(length=64), nullable=True),
        sa.Column("agent_version_id", sa.String(length=40), nullable=False),
        sa.Column("model_version_id", sa.String(length=40), nullable=False),
        sa.Column("agent", JSONDocument(), nullable=False),
        sa.Column("model", JSONDocument(), nullable=False),
        sa.Column("configuration", JSONDocument(), nullable=False),
        sa.Column("requirements", JSONDocument(), nullable=False),
        sa.Column("policy", JSONDocument(), nullable=False),
        sa.Column("wait_for_capacity", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.deployment_id"]),
        sa.PrimaryKeyConstraint("revision_id"),
        sa.UniqueConstraint("deployment_id", "revision"),
    )
    op.create_table(
        "royalty_days",
        sa.Column("publisher_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("version_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("slug", sa.String(length=160), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("royalty_bps", sa.Integer(), nullable=False),
        sa.Column("usage_records", sa.BigInteger(), nullable=False),
        sa.Column("cost_whole", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("cost_attos", sa.BigInteger(), nullable=False),
        sa.Column("royalty_whole", sa.BigInteger(), nullable=False),
        sa.Column("royalty_nanos", sa.BigInteger(), nullable=False),
        sa.Column("royalty_attos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("publisher_id", "day", "version_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("deployment_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("agent_version_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("model_version_id", sa.String(length=40), nullable=True))
        batch.create_index("ix_usage_records_deployment_time", ["deployment_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_index("ix_usage_records_deployment_time")
        batch.drop_column("model_version_id")
        batch.drop_column("agent_version_id")
        batch.drop_column("deployment_id")
    op.drop_table("royalty_days")
    op.drop_table("deployment_revisions")
    op.drop_index("ix_deployments_owner", table_name="deployments")
    op.drop_table("deployments")

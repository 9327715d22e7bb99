"""known-answer probes and the jobs the board posted from them (issue 23)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flow_memory.kit.db import JSONDocument, UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "known_answer_probes",
        sa.Column("probe_id", sa.String(length=40), nullable=False),
        sa.Column("requester_id", sa.String(length=128), nullable=False),
        sa.Column("job", JSONDocument(), nullable=False),
        sa.Column("match", sa.String(length=16), nullable=False),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("posted", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("probe_id"),
    )
    op.create_index("ix_known_answer_probes_status", "known_answer_probes", ["status", "probe_id"])
    op.create_table(
        "known_answer_jobs",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("probe_id", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=True),
        sa.Column("posted_at", UTCDateTime(), nullable=False),
        sa.Column("judged_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_known_answer_jobs_probe", "known_answer_jobs", ["probe_id", "posted_at"])


def downgrade() -> None:
    op.drop_index("ix_known_answer_jobs_probe", table_name="known_answer_jobs")
    op.drop_table("known_answer_jobs")
    op.drop_index("ix_known_answer_probes_status", table_name="known_answer_probes")
    op.drop_table("known_answer_probes")

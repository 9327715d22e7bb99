"""the job board

Jobs posted with an escrow hold, their sealed bids (one per bidder, revised in place), the
archive of results addressed by the SHA-256 of their canonical encoding, and the jobs' events in
the order streams deliver them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:23:40
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flow_memory.kit.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column(
            "event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index("ix_job_events_job", ["job_id", "event_id"], unique=False)
        batch_op.create_index("ix_job_events_order", ["tx", "event_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("requester_id", sa.String(length=128), nullable=False),
        sa.Column("payer_id", sa.String(length=128), nullable=False),
        sa.Column("posted_by", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("model_hint", sa.String(length=128), nullable=False),
        sa.Column("quality_threshold", sa.String(length=16), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("request", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("input_characters", sa.BigInteger(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("max_price", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("payment_mode", sa.String(length=8), nullable=False),
        sa.Column("visibility", sa.String(length=8), nullable=False),
        sa.Column("validation", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("escrow", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=False),
        sa.Column("bid_window_seconds", sa.Integer(), nullable=False),
        sa.Column("deadline_seconds", sa.Integer(), nullable=False),
        sa.Column(
            "min_reputation", flow_memory.kit.db.Money(precision=38, scale=18), nullable=True
        ),
        sa.Column("reaward_on_no_show", sa.Boolean(), nullable=False),
        sa.Column("bids_close_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("winning_bid_id", sa.String(length=40), nullable=True),
        sa.Column("award_count", sa.Integer(), nullable=False),
        sa.Column("awarded_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result_due_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result_hash", sa.String(length=80), nullable=True),
        sa.Column("submitted_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid", flow_memory.kit.db.Money(precision=38, scale=18), nullable=True),
        sa.Column("cancel_reason", sa.String(length=512), nullable=True),
        sa.Column("ended_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_deadline", ["status", "result_due_at"], unique=False)
        batch_op.create_index("ix_jobs_requester", ["requester_id", "created_at"], unique=False)
        batch_op.create_index("ix_jobs_time", ["created_at", "job_id"], unique=False)
        batch_op.create_index("ix_jobs_window", ["status", "bids_close_at"], unique=False)

    op.create_table(
        "job_bids",
        sa.Column("bid_id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("bidder_id", sa.String(length=128), nullable=False),
        sa.Column("placed_by", sa.String(length=128), nullable=False),
        sa.Column("provider_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("price", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("estimated_time_s", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("score", flow_memory.kit.db.Money(precision=38, scale=18), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("placed_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
        ),
        sa.PrimaryKeyConstraint("bid_id"),
        sa.UniqueConstraint("job_id", "bidder_id"),
    )
    with op.batch_alter_table("job_bids", schema=None) as batch_op:
        batch_op.create_index("ix_job_bids_bidder", ["bidder_id", "placed_at"], unique=False)

    op.create_table(
        "job_results",
        sa.Column("result_hash", sa.String(length=80), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("bid_id", sa.String(length=40), nullable=False),
        sa.Column("bidder_id", sa.String(length=128), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
        ),
        sa.PrimaryKeyConstraint("result_hash"),
        sa.UniqueConstraint("job_id"),
    )


def downgrade() -> None:
    op.drop_table("job_results")
    with op.batch_alter_table("job_bids", schema=None) as batch_op:
        batch_op.drop_index("ix_job_bids_bidder")

    op.drop_table("job_bids")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_window")
        batch_op.drop_index("ix_jobs_time")
        batch_op.drop_index("ix_jobs_requester")
        batch_op.drop_index("ix_jobs_deadline")

    op.drop_table("jobs")
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index("ix_job_events_order")
        batch_op.drop_index("ix_job_events_job")

    op.drop_table("job_events")

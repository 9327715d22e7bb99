"""validators, verdicts, disputes, reputation outcomes and stakes (issue 23)

Every outcome recorded for an identity (its history), each identity's decayed record per role,
the stakes bidders and validators hold on their accounts, the slashes taken from them, and the
validators who opted in.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flow_memory.kit.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _money(name: str) -> sa.Column[object]:
    return sa.Column(name, flow_memory.kit.db.Money(precision=38, scale=18), nullable=False)


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, flow_memory.kit.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "reputation_outcomes",
        sa.Column("outcome_id", sa.String(length=48), nullable=False),
        sa.Column("identity_id", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        _money("value"),
        _money("good"),
        _money("bad"),
        _time("recorded_at"),
        sa.PrimaryKeyConstraint("outcome_id"),
        sa.UniqueConstraint("job_id", "identity_id", "kind"),
    )
    with op.batch_alter_table("reputation_outcomes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reputation_outcomes_identity", ["identity_id", "role", "recorded_at"], unique=False
        )
        batch_op.create_index(
            "ix_reputation_outcomes_operator", ["operator_id", "role", "recorded_at"], unique=False
        )

    op.create_table(
        "reputation_records",
        sa.Column("identity_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        _money("good"),
        _money("bad"),
        _time("latest_at"),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("counts", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("outcomes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("identity_id", "role"),
    )

    op.create_table(
        "reputation_stakes",
        sa.Column("stake_id", sa.String(length=40), nullable=False),
        sa.Column("identity_id", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=8), nullable=False),
        sa.Column("payer_id", sa.String(length=128), nullable=False),
        sa.Column("placed_by", sa.String(length=128), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=False),
        _money("amount"),
        _money("slashed"),
        sa.Column("slashes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("withdrawn_at", nullable=True),
        sa.PrimaryKeyConstraint("stake_id"),
    )
    with op.batch_alter_table("reputation_stakes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reputation_stakes_identity", ["identity_id", "purpose", "status"], unique=False
        )

    op.create_table(
        "reputation_slashes",
        sa.Column("slash_id", sa.String(length=40), nullable=False),
        sa.Column("stake_id", sa.String(length=40), nullable=False),
        sa.Column("identity_id", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("payee_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        _money("amount"),
        _time("created_at"),
        sa.PrimaryKeyConstraint("slash_id"),
        sa.UniqueConstraint("stake_id", "job_id"),
    )
    with op.batch_alter_table("reputation_slashes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reputation_slashes_identity", ["identity_id", "created_at"], unique=False
        )

    op.create_table(
        "reputation_validators",
        sa.Column("identity_id", sa.String(length=128), nullable=False),
        sa.Column("owner_id", sa.String(length=128), nullable=False),
        sa.Column("stake_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("joined_at"),
        _time("withdrawn_at", nullable=True),
        sa.PrimaryKeyConstraint("identity_id"),
    )
    with op.batch_alter_table("reputation_validators", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reputation_validators_status", ["status", "joined_at"], unique=False
        )

    op.create_table(
        "validations",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("mode", sa.String(length=24), nullable=False),
        sa.Column("requester_id", sa.String(length=128), nullable=False),
        sa.Column("winner_id", sa.String(length=128), nullable=False),
        _money("value"),
        sa.Column("validators", sa.Integer(), nullable=False),
        _money("fee"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("score", flow_memory.kit.db.Money(precision=38, scale=18), nullable=True),
        _time("opened_at"),
        _time("due_at"),
        _time("decided_at", nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.create_index("ix_validations_due", ["status", "due_at"], unique=False)

    op.create_table(
        "validation_draws",
        sa.Column("draw_id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("validator_id", sa.String(length=128), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("drawn_at"),
        _time("due_at"),
        sa.PrimaryKeyConstraint("draw_id"),
        sa.UniqueConstraint("job_id", "validator_id"),
    )

    op.create_table(
        "validation_verdicts",
        sa.Column("verdict_id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("judge_id", sa.String(length=128), nullable=False),
        sa.Column("judge_role", sa.String(length=16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("accept", sa.Boolean(), nullable=False),
        _money("score"),
        sa.Column("reason", sa.String(length=512), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("verdict_id"),
        sa.UniqueConstraint("job_id", "judge_id", "round"),
    )
    with op.batch_alter_table("validation_verdicts", schema=None) as batch_op:
        batch_op.create_index("ix_validation_verdicts_job", ["job_id", "created_at"], unique=False)

    op.create_table(
        "validation_disputes",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("winner_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("opened_at"),
        _time("decided_at", nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )


def downgrade() -> None:
    op.drop_table("validation_disputes")
    with op.batch_alter_table("validation_verdicts", schema=None) as batch_op:
        batch_op.drop_index("ix_validation_verdicts_job")
    op.drop_table("validation_verdicts")
    op.drop_table("validation_draws")
    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.drop_index("ix_validations_due")
    op.drop_table("validations")
    with op.batch_alter_table("reputation_validators", schema=None) as batch_op:
        batch_op.drop_index("ix_reputation_validators_status")
    op.drop_table("reputation_validators")
    with op.batch_alter_table("reputation_slashes", schema=None) as batch_op:
        batch_op.drop_index("ix_reputation_slashes_identity")
    op.drop_table("reputation_slashes")
    with op.batch_alter_table("reputation_stakes", schema=None) as batch_op:
        batch_op.drop_index("ix_reputation_stakes_identity")
    op.drop_table("reputation_stakes")
    op.drop_table("reputation_records")
    with op.batch_alter_table("reputation_outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_reputation_outcomes_operator")
        batch_op.drop_index("ix_reputation_outcomes_identity")
    op.drop_table("reputation_outcomes")

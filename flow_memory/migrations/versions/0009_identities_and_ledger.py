"""agent identities and the dry-run credit ledger

Agent identities (bound and free), and the ledger they live on: accounts with their balance
rows, double-entry transfers keyed by the action that caused them, their postings, and holds.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 04:21:37
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flow_memory.kit.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_identities",
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("values", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("memory_ref", sa.String(length=256), nullable=True),
        sa.Column("models", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("profile", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("creator_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("keyed_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("suspended_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("suspend_reason", sa.String(length=512), nullable=True),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id"),
    )
    with op.batch_alter_table("agent_identities", schema=None) as batch_op:
        batch_op.create_index("ix_agent_identities_creator", ["creator_id", "status"], unique=False)
        batch_op.create_index("ix_agent_identities_time", ["created_at", "agent_id"], unique=False)

    op.create_table(
        "ledger_accounts",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("holder_kind", sa.String(length=16), nullable=False),
        sa.Column("holder_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("main_account_id", sa.String(length=40), nullable=True),
        sa.Column("enforcement", sa.String(length=8), nullable=False),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
        sa.UniqueConstraint("holder_id", "role", "currency"),
    )
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_accounts_main", ["main_account_id"], unique=False)

    op.create_table(
        "ledger_holds",
        sa.Column("hold_id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("hold_account_id", sa.String(length=40), nullable=False),
        sa.Column("amount", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("settled", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("released", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cause_kind", sa.String(length=32), nullable=False),
        sa.Column("cause_id", sa.String(length=128), nullable=False),
        sa.Column("expires_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("hold_id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("ledger_holds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_holds_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index("ix_ledger_holds_open", ["status", "expires_at"], unique=False)

    op.create_table(
        "ledger_transfers",
        sa.Column("transfer_id", sa.String(length=48), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("cause_kind", sa.String(length=32), nullable=False),
        sa.Column("cause_id", sa.String(length=128), nullable=False),
        sa.Column("actor_id", sa.String(length=128), nullable=True),
        sa.Column("memo", sa.String(length=256), nullable=False),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transfer_id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_transfers_time", ["created_at", "transfer_id"], unique=False
        )

    op.create_table(
        "ledger_balances",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("amount", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("postings", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.account_id"],
        ),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("posting_id", sa.String(length=48), nullable=False),
        sa.Column("transfer_id", sa.String(length=48), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("amount", flow_memory.kit.db.Money(precision=38, scale=18), nullable=False),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.account_id"],
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["ledger_transfers.transfer_id"],
        ),
        sa.PrimaryKeyConstraint("posting_id"),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_postings_account_time", ["account_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ledger_postings_transfer_id"), ["transfer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_postings_transfer_id"))
        batch_op.drop_index("ix_ledger_postings_account_time")

    op.drop_table("ledger_postings")
    op.drop_table("ledger_balances")
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_transfers_time")

    op.drop_table("ledger_transfers")
    with op.batch_alter_table("ledger_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_holds_open")
        batch_op.drop_index(batch_op.f("ix_ledger_holds_account_id"))

    op.drop_table("ledger_holds")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_accounts_main")

    op.drop_table("ledger_accounts")
    with op.batch_alter_table("agent_identities", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_identities_time")
        batch_op.drop_index("ix_agent_identities_creator")

    op.drop_table("agent_identities")

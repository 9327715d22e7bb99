"""orders and reservations carry their market's version

Each order and reservation row holds the version of its market when it was last written, so a
writer whose book is behind reloads only what changed since its version instead of the whole
book (several servers on one database trade on the same markets).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table, index in (
        ("market_orders", "ix_market_orders_changes"),
        ("market_reservations", "ix_market_reservations_changes"),
    ):
        op.add_column(
            table,
            sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        )
        op.create_index(index, table, ["model", "unit_type", "version"], unique=False)


def downgrade() -> None:
    for table, index in (
        ("market_orders", "ix_market_orders_changes"),
        ("market_reservations", "ix_market_reservations_changes"),
    ):
        op.drop_index(index, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")

"""usage sums count failed attempts apart

The daily and all-time usage sums count the failed attempts among their records (a proxied call
that was not answered and billed nothing), so summaries separate billed calls from failed
attempts without reading the records. Existing sums are filled in from the records.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC

import sqlalchemy as sa
from alembic import op

import flow_memory.kit.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

EVERYONE = "*"
# Decisions of an answered call or fill (flow_memory.usage.outcomes.ANSWERED, as of this
# revision): any other with no units is a failed attempt.
ANSWERED = ("market_fill", "selected", "fallback")

records = sa.table(
    "usage_records",
    sa.column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True)),
    sa.column("owner_id", sa.String),
    sa.column("seller_owner_id", sa.String),
    sa.column("model", sa.String),
    sa.column("unit_type", sa.String),
    sa.column("provider_id", sa.String),
    sa.column("decision", sa.String),
    sa.column("actual_units", sa.BigInteger),
)
rollups = sa.table(
    "usage_rollups",
    sa.column("party", sa.String),
    sa.column("day", sa.Date),
    sa.column("model", sa.String),
    sa.column("unit_type", sa.String),
    sa.column("provider_id", sa.String),
    sa.column("failed_records", sa.BigInteger),
)
totals = sa.table(
    "usage_totals",
    sa.column("party", sa.String),
    sa.column("model", sa.String),
    sa.column("unit_type", sa.String),
    sa.column("provider_id", sa.String),
    sa.column("failed_records", sa.BigInteger),
)


def upgrade() -> None:
    for table in ("usage_rollups", "usage_totals"):
        op.add_column(
            table,
            sa.Column(
                "failed_records", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            ),
        )
    _count_failed_attempts()


def _count_failed_attempts() -> None:
    """Fill the new sums in from the records: each record counts for everyone, its buyer and
    its seller (once when they are the same owner), as the sums are kept."""
    daily: Counter[tuple[object, ...]] = Counter()
    overall: Counter[tuple[object, ...]] = Counter()
    failed = sa.select(
        records.c.created_at,
        records.c.owner_id,
        records.c.seller_owner_id,
        records.c.model,
        records.c.unit_type,
        records.c.provider_id,
    ).where(records.c.decision.not_in(ANSWERED), records.c.actual_units == 0)
    for created_at, owner, seller, model, unit_type, provider in op.get_bind().execute(failed):
        day = created_at.astimezone(UTC).date()
        for party in dict.fromkeys((EVERYONE, owner, seller)):
            daily[(party, day, model, unit_type, provider)] += 1
            overall[(party, model, unit_type, provider)] += 1
    key = ("k_party", "k_day", "k_model", "k_unit_type", "k_provider_id")
    if daily:
        op.get_bind().execute(
            rollups.update()
            .where(
                rollups.c.party == sa.bindparam("k_party"),
                rollups.c.day == sa.bindparam("k_day"),
                rollups.c.model == sa.bindparam("k_model"),
                rollups.c.unit_type == sa.bindparam("k_unit_type"),
                rollups.c.provider_id == sa.bindparam("k_provider_id"),
            )
            .values(failed_records=sa.bindparam("n")),
            [{**dict(zip(key, k, strict=True)), "n": n} for k, n in daily.items()],
        )
    if overall:
        total_key = ("k_party", "k_model", "k_unit_type", "k_provider_id")
        op.get_bind().execute(
            totals.update()
            .where(
                totals.c.party == sa.bindparam("k_party"),
                totals.c.model == sa.bindparam("k_model"),
                totals.c.unit_type == sa.bindparam("k_unit_type"),
                totals.c.provider_id == sa.bindparam("k_provider_id"),
            )
            .values(failed_records=sa.bindparam("n")),
            [{**dict(zip(total_key, k, strict=True)), "n": n} for k, n in overall.items()],
        )


def downgrade() -> None:
    for table in ("usage_rollups", "usage_totals"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("failed_records")

"""royalty days indexed in the report's order: newest day first, then publisher, entry and
version, for every publisher and for one (issue 25)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_royalty_days_report",
        "royalty_days",
        [sa.desc(sa.column("day")), "publisher_id", "slug", "version", "version_id"],
    )
    op.create_index(
        "ix_royalty_days_publisher_report",
        "royalty_days",
        ["publisher_id", sa.desc(sa.column("day")), "slug", "version", "version_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_royalty_days_publisher_report", table_name="royalty_days")
    op.drop_index("ix_royalty_days_report", table_name="royalty_days")

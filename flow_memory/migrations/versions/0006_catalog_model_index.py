"""catalog entries indexed by model

Every quote, route and proxy call looks up the providers that list a model; without this index
each one scanned the whole catalog table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 16:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_provider_catalog_entries_model", "provider_catalog_entries", ["model"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_provider_catalog_entries_model", table_name="provider_catalog_entries")

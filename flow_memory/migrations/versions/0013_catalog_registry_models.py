"""a provider's catalog entry may name the registry model version it serves (issue 24)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 18:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_catalog_entries") as batch:
        batch.add_column(sa.Column("registry_slug", sa.String(length=129), nullable=True))
        batch.add_column(sa.Column("registry_version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("registry_version_id", sa.String(length=40), nullable=True))
        batch.create_index("ix_provider_catalog_registry", ["registry_version_id"])


def downgrade() -> None:
    with op.batch_alter_table("provider_catalog_entries") as batch:
        batch.drop_index("ix_provider_catalog_registry")
        batch.drop_column("registry_version_id")
        batch.drop_column("registry_version")
        batch.drop_column("registry_slug")

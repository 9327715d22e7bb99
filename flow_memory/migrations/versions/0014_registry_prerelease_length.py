"""a registry version's prerelease part holds as much as its version allows (issue 24)

A version is at most 64 characters, so its prerelease part may be 58; the column held 48, and
PostgreSQL refused a longer one with an error instead of storing it (SQLite stored it).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:56:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_versions") as batch:
        batch.alter_column(
            "prerelease", existing_type=sa.String(length=48), type_=sa.String(length=64)
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_versions") as batch:
        batch.alter_column(
            "prerelease", existing_type=sa.String(length=64), type_=sa.String(length=48)
        )

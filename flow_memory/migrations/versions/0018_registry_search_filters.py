"""registry search: each posting carries its entry's context window and price (issue 24)

A search filtered by context window or price read each candidate's entry row (a random read
per candidate); the postings now carry both, in the index a word's entries are read from, so a
filtered search reads that index alone. The price is for comparing only: a float on SQLite (the
entry's exact text price was compared as a float there), the exact decimal on PostgreSQL.
Existing postings are filled from their entries.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLE = "registry_search_terms"
INDEX = "ix_registry_search_terms_impact"
FACETS = ("kind", "license", "pricing_model", "modality", "tool_calling", "publisher_id")
PRICE = sa.Numeric(38, 18).with_variant(sa.Float(), "sqlite")


def upgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.add_column(TABLE, sa.Column("context_window", sa.Integer(), nullable=True))
    op.add_column(TABLE, sa.Column("price", PRICE, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"UPDATE {TABLE} AS t SET context_window = e.context_window, price = e.price "
            "FROM registry_entries AS e WHERE e.doc_id = t.doc_id"
        )
    else:
        op.execute(
            f"UPDATE {TABLE} SET (context_window, price) = (SELECT e.context_window, "
            "CAST(e.price AS REAL) FROM registry_entries AS e "
            f"WHERE e.doc_id = {TABLE}.doc_id)"
        )
    op.create_index(INDEX, TABLE, ["term", "impact", "doc_id", *FACETS, "context_window", "price"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.drop_column(TABLE, "price")
    op.drop_column(TABLE, "context_window")
    op.create_index(INDEX, TABLE, ["term", "impact", "doc_id", *FACETS])

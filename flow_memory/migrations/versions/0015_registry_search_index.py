"""the registry's search index of its own: impact-ordered postings (issue 24)

Search ranked every hit with the engine (FTS5's BM25, PostgreSQL's ``ts_rank_cd``), 200-800 ms
for a word in 15,000 of 100,000 entries. It now reads each word's entries best first from
``registry_search_terms`` and stops after what it shows (``flow_memory.registry.search``).
The engines still stem the words; their indexes are dropped: SQLite's FTS5 table
``registry_fts`` and its triggers give way to ``registry_fts_tokenize`` (the fts3 Porter
stemmer as a table, no storage); PostgreSQL's ``search_vector``, its trigger and GIN index go,
``to_tsvector`` stems each word. Every listed entry is indexed here, by the code of this
revision (``search_index.rebuild``): 100,000 entries took 100-125 s on the 2-core bench machine.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 20:50:00
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FACETS = ("kind", "license", "pricing_model", "modality", "tool_calling", "publisher_id")
TERM = sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "registry_search_terms",
        sa.Column("doc_id", sa.BigInteger(), nullable=False),
        sa.Column("term", TERM, nullable=False),
        sa.Column("impact", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("license", sa.String(length=64), nullable=False),
        sa.Column("pricing_model", sa.String(length=16), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("tool_calling", sa.Boolean(), nullable=True),
        sa.Column("publisher_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("term", "doc_id", postgresql_include=["impact"]),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_registry_search_terms_impact",
        "registry_search_terms",
        ["term", "impact", "doc_id", *FACETS],
        unique=False,
    )
    op.create_index("ix_registry_search_terms_doc", "registry_search_terms", ["doc_id"])
    op.create_table(
        "registry_search_words",
        sa.Column("term", TERM, nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("term"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS registry_fts_vector")
        op.execute("DROP TRIGGER IF EXISTS registry_fts_document ON registry_entries")
        op.execute("DROP FUNCTION IF EXISTS registry_fts_document()")
    else:
        for trigger in ("registry_fts_update", "registry_fts_delete", "registry_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS registry_fts")
        op.execute("CREATE VIRTUAL TABLE registry_fts_tokenize USING fts3tokenize(porter)")
    # In place on both databases: a batch would copy the table, which the versions' foreign
    # key refuses on SQLite while it holds rows.
    op.execute("ALTER TABLE registry_entries DROP COLUMN search_vector")
    # The index as the code of this revision builds it: entries written before it are found.
    from flow_memory.registry.search_index import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    registry = importlib.import_module("flow_memory.migrations.versions.0012_registry")
    if op.get_bind().dialect.name == "postgresql":
        op.add_column(
            "registry_entries", sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True)
        )
        registry._create_postgres_fts()
        op.execute("UPDATE registry_entries SET description = description")
    else:
        op.execute("ALTER TABLE registry_entries ADD COLUMN search_vector TEXT")
        op.execute("DROP TABLE IF EXISTS registry_fts_tokenize")
        registry._create_sqlite_fts()
        op.execute(
            f"INSERT INTO registry_fts (rowid, {registry.SQLITE_COLUMNS}) SELECT doc_id, "
            "replace(slug, '/', ' '), display_name, tag_text, description FROM registry_entries"
        )
    op.drop_table("registry_search_words")
    op.drop_index("ix_registry_search_terms_doc", table_name="registry_search_terms")
    op.drop_index("ix_registry_search_terms_impact", table_name="registry_search_terms")
    op.drop_table("registry_search_terms")

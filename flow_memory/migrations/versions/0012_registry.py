"""the registry of models, agents and solutions with their versions (issue 24)

Entries and their immutable versions, and full-text search in each backend's own engine: on
SQLite an FTS5 table ``registry_fts`` (its rowid the entry's ``doc_id``) that triggers keep in
step with ``registry_entries``; on PostgreSQL the weighted ``tsvector`` column ``search_vector``,
set by a trigger and indexed with GIN. The FTS5 table, the triggers and the GIN index are not
objects the models describe: the schema check leaves those named ``registry_fts*`` out.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flow_memory.kit.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The weighted document of an entry: its names weigh most, then its tags, then its description.
PG_DOCUMENT = (
    "setweight(to_tsvector('english', replace(new.slug, '/', ' ') || ' ' || new.display_name), "
    "'A') || setweight(to_tsvector('english', new.tag_text), 'B') "
    "|| setweight(to_tsvector('english', new.description), 'C')"
)
SQLITE_COLUMNS = "slug, display_name, tag_text, description"


def upgrade() -> None:
    op.create_table(
        "registry_entries",
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("doc_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("slug", sa.String(length=160), nullable=False),
        sa.Column("publisher_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("tags", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("tag_text", sa.String(length=1200), nullable=False),
        sa.Column("license", sa.String(length=64), nullable=False),
        sa.Column("published_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("latest_version", sa.String(length=64), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("family", sa.String(length=64), nullable=True),
        sa.Column("api_text", sa.String(length=600), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=True),
        sa.Column("tool_calling", sa.Boolean(), nullable=True),
        sa.Column("pricing_model", sa.String(length=16), nullable=True),
        sa.Column("price", flow_memory.kit.db.Money(precision=38, scale=18), nullable=True),
        sa.Column("royalty_bps", sa.Integer(), nullable=True),
        sa.Column(
            "search_vector",
            sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("entry_id"),
        sa.UniqueConstraint("slug"),
    )
    with op.batch_alter_table("registry_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_registry_entries_kind", ["kind", "listed", "context_window"], unique=False
        )
        batch_op.create_index(
            "ix_registry_entries_publisher", ["publisher_id", "kind", "slug"], unique=False
        )
        batch_op.create_index(
            "ix_registry_entries_doc",
            [
                "doc_id",
                "listed",
                "kind",
                "license",
                "pricing_model",
                "modality",
                "tool_calling",
                "publisher_id",
            ],
            unique=False,
        )

    op.create_table(
        "registry_versions",
        sa.Column("version_id", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("patch", sa.Integer(), nullable=False),
        sa.Column("prerelease", sa.String(length=48), nullable=False),
        sa.Column("spec", flow_memory.kit.db.JSONDocument(), nullable=False),
        sa.Column("pricing_model", sa.String(length=16), nullable=True),
        sa.Column("price", flow_memory.kit.db.Money(precision=38, scale=18), nullable=True),
        sa.Column("royalty_bps", sa.Integer(), nullable=False),
        sa.Column("changelog", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_reason", sa.String(length=512), nullable=True),
        sa.Column(
            "status_changed_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("published_by", sa.String(length=128), nullable=False),
        sa.Column("published_at", flow_memory.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["registry_entries.entry_id"]),
        sa.PrimaryKeyConstraint("version_id"),
        sa.UniqueConstraint("entry_id", "version"),
    )
    with op.batch_alter_table("registry_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_registry_versions_order", ["entry_id", "major", "minor", "patch"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        _create_postgres_fts()
    else:
        _create_sqlite_fts()


def _create_postgres_fts() -> None:
    op.execute(
        "CREATE FUNCTION registry_fts_document() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN new.search_vector := {PG_DOCUMENT}; RETURN new; END $$"
    )
    op.execute(
        "CREATE TRIGGER registry_fts_document BEFORE INSERT OR UPDATE OF slug, display_name, "
        "tag_text, description ON registry_entries "
        "FOR EACH ROW EXECUTE FUNCTION registry_fts_document()"
    )
    op.execute("CREATE INDEX registry_fts_vector ON registry_entries USING gin (search_vector)")


def _create_sqlite_fts() -> None:
    # The rowid of a row is its entry's doc_id.
    op.execute(
        f"CREATE VIRTUAL TABLE registry_fts USING fts5({SQLITE_COLUMNS}, "
        "tokenize = 'porter unicode61')"
    )
    values = "new.doc_id, replace(new.slug, '/', ' '), new.display_name, new.tag_text, "
    values += "new.description"
    insert = f"INSERT INTO registry_fts (rowid, {SQLITE_COLUMNS}) VALUES ({values});"
    op.execute(
        f"CREATE TRIGGER registry_fts_insert AFTER INSERT ON registry_entries BEGIN {insert} END"
    )
    op.execute(
        "CREATE TRIGGER registry_fts_delete AFTER DELETE ON registry_entries BEGIN "
        "DELETE FROM registry_fts WHERE rowid = old.doc_id; END"
    )
    op.execute(
        "CREATE TRIGGER registry_fts_update AFTER UPDATE OF doc_id, slug, display_name, "
        "tag_text, description ON registry_entries BEGIN "
        f"DELETE FROM registry_fts WHERE rowid = old.doc_id; {insert} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS registry_fts_vector")
        op.execute("DROP TRIGGER IF EXISTS registry_fts_document ON registry_entries")
        op.execute("DROP FUNCTION IF EXISTS registry_fts_document()")
    else:
        for trigger in ("registry_fts_update", "registry_fts_delete", "registry_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS registry_fts")
    with op.batch_alter_table("registry_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_versions_order")
    op.drop_table("registry_versions")
    with op.batch_alter_table("registry_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_entries_doc")
        batch_op.drop_index("ix_registry_entries_publisher")
        batch_op.drop_index("ix_registry_entries_kind")
    op.drop_table("registry_entries")

"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL: a
model change without its migration (or the reverse) fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import flow_memory.app  # noqa: F401  (imports every domain's tables)
from flow_memory.kit.db import Base, make_engine


def _described_by_models(name: str | None, type_: str, parent_names: object) -> bool:
    """The registry's text-engine objects (SQLite's ``registry_fts_tokenize`` stemmer table,
    migration 0015) are the engine's own, not models'."""
    return not (name or "").startswith("registry_fts")


def test_the_migrated_database_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_name": _described_by_models}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []

"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL: a
model change without its migration (or the reverse) fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import flow_memory.app  # noqa: F401  (imports every domain's tables)
from flow_memory.kit.db import Base, make_engine


def test_the_migrated_database_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []

from __future__ import annotations

from alembic import context

import flow_memory.models  # noqa: F401  (registers every table on Base.metadata)
from flow_memory.kit.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _include_name(name: str | None, type_: str, _parents: object) -> bool:
    """What autogenerate compares: not the registry's text-engine objects, which migrations
    build by hand (SQLite's ``registry_fts_tokenize``, the Porter stemmer as a table, since
    migration 0015; an FTS5 table and its shadow tables before it)."""
    return not (type_ == "table" and name is not None and name.startswith("registry_fts"))


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_name=_include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()

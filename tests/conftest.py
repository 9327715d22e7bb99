"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
FLOW_MEMORY_TEST_DATABASE_URL is set), a frozen clock, the app and a client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import hypothesis
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

import flow_memory.models  # noqa: F401
from flow_memory.app import create_app
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.db import Base, make_engine
from flow_memory.migrations import alembic_config, upgrade
from flow_memory.settings import Settings

TEST_START = datetime(2026, 6, 17, 0, 0, tzinfo=UTC)

# Tests never assert timings: hypothesis's per-example deadline fails a property test whenever the
# machine is busy, so it is off for every test (a test may still set its own).
hypothesis.settings.register_profile("flow-memory", deadline=None)
hypothesis.settings.load_profile("flow-memory")


def _reset_postgres(url: str) -> None:
    from alembic import command

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    command.upgrade(alembic_config(url), "head")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database for the whole run."""
    url = os.environ.get("FLOW_MEMORY_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
        return url
    path: Path = tmp_path_factory.mktemp("db") / "flow_memory_test.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def database_file(database_url: str) -> Path | None:
    """The SQLite file behind the test database (None on PostgreSQL)."""
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///"))
    return None


def clear_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(TEST_START)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``BOTH_MARKETS = True`` runs each test twice: with the market
    writer in the app's process, and in a market process of its own (as a server runs it)."""
    if getattr(metafunc.module, "BOTH_MARKETS", False) and "market_process" in (
        metafunc.fixturenames
    ):
        metafunc.parametrize("market_process", [False, True], ids=["in-process", "market-process"])


@pytest.fixture
def market_process() -> bool:
    return False


@pytest.fixture
def settings(database_url: str, market_process: bool) -> Settings:
    return Settings(database_url=database_url, market_process=market_process)


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[FastAPI]:
    clear_tables(settings.database_url)
    application = create_app(settings, clock=clock)
    yield application
    application.state.market.stop()
    application.state.engine.dispose()
    application.state.read_engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client

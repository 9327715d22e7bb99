"""Fixtures for tests that run real server processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import clear_tables
from tests.integration.test_server import Deployment


@pytest.fixture
def deployment(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """A fresh SQLite file, or the shared PostgreSQL test database emptied."""
    if os.environ.get("FLOW_MEMORY_TEST_DATABASE_URL"):
        url: str = request.getfixturevalue("database_url")
        clear_tables(url)
    else:
        url = f"sqlite:///{tmp_path / 'flow_memory.db'}"
    deployed = Deployment(url, tmp_path)
    try:
        yield deployed
    finally:
        deployed.stop_all()

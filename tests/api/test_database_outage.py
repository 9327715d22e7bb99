"""A database that cannot be used answers 503 database_unavailable with retry-after, in the one
error shape, and says for a write whether it may have been applied (kit/http, kit/deps)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from flow_memory.app import create_app
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.kit.http import install_error_handlers
from flow_memory.kit.outage import DATABASE
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.migrations import upgrade
from flow_memory.settings import Settings
from tests.conftest import TEST_START
from tests.factories import Headers, credential_ref_body, seller_headers

# Only against a hang: the waits below end on their condition long before.
GUARD_SECONDS = 60.0
REFS = "/inference/credential-refs"


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def assert_unavailable(response: httpx.Response, message: str) -> dict[str, Any]:
    """The answer is the 503 of a database outage, in the one error shape."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "2"
    body = response.json()
    error: dict[str, Any] = body["error"]
    assert error["code"] == "database_unavailable"
    assert error["message"] == message
    assert error["field"] is None and error["hint"]
    assert body["ok"] is False
    assert {key: body[key] for key in SAFETY_ENVELOPE} == dict(SAFETY_ENVELOPE)
    return error


@pytest.fixture
def process_state() -> Iterator[None]:
    """The process-wide outage state, back to "available" after the test."""
    DATABASE.recovered()
    yield
    DATABASE.recovered()


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    """A SQLite file of this test's own: the shared test database is left in place."""
    path = tmp_path / "flow_memory.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def own_app(database_path: Path) -> Iterator[FastAPI]:
    application = create_app(
        Settings(database_url=f"sqlite:///{database_path}"), clock=FrozenClock(TEST_START)
    )
    yield application
    application.state.market.stop()
    application.state.engine.dispose()
    application.state.read_engine.dispose()


@pytest.fixture
def own_client(own_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(own_app, raise_server_exceptions=False) as test_client:
        yield test_client


class UnopenableFile:
    """The database file moved aside and a directory put at its path: nothing, root included,
    opens it, and connections already open are dropped by the pool at their next checkout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.moved: list[tuple[Path, Path]] = []

    def __enter__(self) -> UnopenableFile:
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                target = source.with_name(source.name + ".away")
                source.rename(target)
                self.moved.append((source, target))
        self.path.mkdir()
        return self

    def __exit__(self, *_: object) -> None:
        self.path.rmdir()
        for source, target in self.moved:
            target.rename(source)


@pytest.mark.usefixtures("process_state")
class TestAnUnavailableSQLiteFile:
    def test_reads_and_writes_answer_503_until_the_file_is_back(
        self, own_app: FastAPI, own_client: TestClient, database_path: Path
    ) -> None:
        seller: Headers = seller_headers(own_app)
        assert own_client.post(REFS, json=credential_ref_body(), headers=seller).status_code == 201
        with UnopenableFile(database_path):
            read = own_client.get(REFS, headers=seller)
            assert_unavailable(read, "the database is unavailable")
            write = own_client.post(
                REFS,
                json=credential_ref_body(credential_ref="secret://inference/provider-beta"),
                headers=seller,
            )
            assert_unavailable(write, "the database is unavailable: the request was not applied")
        listed = own_client.get(REFS, headers=seller)
        assert listed.status_code == 200, listed.text
        # The refused write was not applied, as its answer said.
        assert [r["credential_ref"] for r in listed.json()["credential_refs"]] == [
            "secret://inference/provider-alpha"
        ]

    def test_the_outage_is_logged_once_and_its_end_once(
        self,
        own_app: FastAPI,
        own_client: TestClient,
        database_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        seller = seller_headers(own_app)
        caplog.set_level(logging.INFO, "flow_memory.database")
        with UnopenableFile(database_path):
            for _ in range(5):
                assert own_client.get(REFS, headers=seller).status_code == 503
        assert eventually(lambda: not DATABASE.down)
        # The first to meet the outage names it: a request, or the log checkpointer's thread.
        began, ended = caplog.records
        assert began.levelname == "ERROR"
        assert began.getMessage().startswith("database unavailable: ")
        assert ended.levelname == "WARNING"
        counted = re.fullmatch(
            r"database available again after \d+ s \((\d+) failed meanwhile\)", ended.getMessage()
        )
        assert counted is not None and int(counted[1]) >= 5
        assert own_client.get(REFS, headers=seller).status_code == 200


def handler_app() -> FastAPI:
    """Routes that fail as the market process's answers and stray database errors do."""
    app = FastAPI()
    install_error_handlers(app)
    crossed = FlowMemoryError(
        "the database became unavailable while the request was being committed: it may or may "
        "not have been applied",
        hint="look the record up before you retry",
        code="database_unavailable",
        status_code=503,
    )
    refused = OperationalError("SELECT 1", None, psycopg.OperationalError("connection refused"))
    missing = OperationalError("SELECT 1", None, psycopg.errors.UndefinedTable("no relation"))

    def fail(error: Exception) -> Callable[[], None]:
        def route() -> None:
            raise error

        return route

    for path, error in (("/crossed", crossed), ("/refused", refused), ("/bug", missing)):
        app.add_api_route(path, fail(error), methods=["GET", "POST"])
    return app


@pytest.mark.usefixtures("process_state")
class TestRendering:
    @pytest.fixture
    def client(self) -> Iterator[TestClient]:
        with TestClient(handler_app(), raise_server_exceptions=False) as test_client:
            yield test_client

    def test_the_code_alone_brings_retry_after(self, client: TestClient) -> None:
        # The market process sends an error back as its code, status and text, not its class.
        error = assert_unavailable(
            client.post("/crossed"),
            "the database became unavailable while the request was being committed: it may or "
            "may not have been applied",
        )
        assert error["hint"] == "look the record up before you retry"

    def test_a_read_says_nothing_about_applying(self, client: TestClient) -> None:
        assert_unavailable(client.get("/crossed"), "the database is unavailable")
        assert_unavailable(client.get("/refused"), "the database is unavailable")

    def test_a_stray_outage_error_on_a_write_may_have_been_applied(
        self, client: TestClient
    ) -> None:
        # No transaction said how far it got: the answer does not claim it was not applied.
        error = assert_unavailable(
            client.post("/refused"),
            "the database became unavailable while the request was being committed: it may or "
            "may not have been applied",
        )
        assert "look the record up" in str(error["hint"])
        assert DATABASE.down

    def test_a_database_error_that_is_a_bug_stays_a_500(self, client: TestClient) -> None:
        answer = client.post("/bug")
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal_error"
        assert "retry-after" not in answer.headers
        assert not DATABASE.down

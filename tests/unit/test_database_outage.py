"""Database outages told from bugs, logged once per change, and answered 503 (kit/outage,
kit/errors, kit/deps.transaction)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from flow_memory.kit.db import WalCheckpointer, make_engine
from flow_memory.kit.deps import transaction
from flow_memory.kit.errors import DatabaseUnavailable, FlowMemoryError, NotFound
from flow_memory.kit.outage import (
    DATABASE,
    DatabaseOutage,
    database_unavailable,
    is_database_outage,
    outage_reason,
)

# Only against a hang: every wait below ends on its condition long before.
GUARD_SECONDS = 30.0
OUTAGE_LOGGER = "flow_memory.database"


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    """An error as sqlite3 raises it, with its result code."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def wrapped(orig: BaseException, *, invalidated: bool = False) -> DBAPIError:
    """``orig`` as SQLAlchemy raises it."""
    return OperationalError("SELECT 1", None, orig, connection_invalidated=invalidated)


def unopenable(tmp_path: Path) -> str:
    """A database path that holds a directory: no one, root included, can open it."""
    path = tmp_path / "gone.db"
    path.mkdir()
    return str(path)


@pytest.fixture
def process_state() -> Iterator[None]:
    """The process-wide state, back to "available" after the test."""
    DATABASE.recovered()
    yield
    DATABASE.recovered()


class TestOutagesOfSQLite:
    def test_a_file_that_cannot_be_opened_is_an_outage(self, tmp_path: Path) -> None:
        with pytest.raises(sqlite3.OperationalError) as raised:
            sqlite3.connect(unopenable(tmp_path)).execute("SELECT * FROM sqlite_master")
        assert outage_reason(raised.value) == "unable to open database file"

    def test_a_write_to_a_read_only_file_is_an_outage(self, tmp_path: Path) -> None:
        path = tmp_path / "read-only.db"
        sqlite3.connect(path).execute("CREATE TABLE t (n)").connection.close()
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        with pytest.raises(sqlite3.OperationalError) as raised:
            connection.execute("INSERT INTO t VALUES (1)")
        connection.close()
        assert outage_reason(raised.value) == "attempt to write a readonly database"

    @pytest.mark.parametrize(
        ("code", "message"),
        [
            (10, "disk I/O error"),  # SQLITE_IOERR
            (10 | (4 << 8), "disk I/O error"),  # SQLITE_IOERR_FSYNC, an extended code
            (13, "database or disk is full"),  # SQLITE_FULL
            (3, "access permission denied"),  # SQLITE_PERM
        ],
    )
    def test_io_errors_and_a_full_disk_are_outages(self, code: int, message: str) -> None:
        assert outage_reason(sqlite_error(code, message)) == message

    @pytest.mark.parametrize(
        ("code", "message"),
        [
            (1, "no such table: orders"),  # SQLITE_ERROR: a bug
            (5, "database is locked"),  # SQLITE_BUSY: contention, not an outage
            (11, "database disk image is malformed"),  # SQLITE_CORRUPT: needs an operator
            (26, "file is not a database"),  # SQLITE_NOTADB
        ],
    )
    def test_other_errors_are_not(self, code: int, message: str) -> None:
        assert outage_reason(sqlite_error(code, message)) is None

    def test_a_real_constraint_failure_is_not(self) -> None:
        connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE t (n PRIMARY KEY)")
        connection.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError) as raised:
            connection.execute("INSERT INTO t VALUES (1)")
        assert not is_database_outage(raised.value)
        assert not is_database_outage(IntegrityError("INSERT", None, raised.value))

    def test_an_error_without_a_result_code_is_not(self) -> None:
        assert not is_database_outage(sqlite3.OperationalError("unable to open database file"))

    def test_an_engine_on_an_unopenable_file_raises_an_outage(self, tmp_path: Path) -> None:
        engine = create_engine(f"sqlite:///{unopenable(tmp_path)}")
        with pytest.raises(OperationalError) as raised, engine.connect():
            pass
        engine.dispose()
        assert outage_reason(raised.value) == "unable to open database file"


class TestOutagesOfPostgreSQL:
    def test_a_refused_connection_is_an_outage(self) -> None:
        refused = psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
            "connections?"
        )
        assert outage_reason(wrapped(refused)) == (
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            "Connection refused"
        )

    @pytest.mark.parametrize(
        "error",
        [
            psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
            psycopg.errors.CrashShutdown("terminating connection because of crash"),
            psycopg.errors.CannotConnectNow("the database system is shutting down"),
            psycopg.errors.TooManyConnections("sorry, too many clients already"),
            psycopg.errors.ConnectionFailure("server closed the connection unexpectedly"),
            psycopg.errors.DiskFull("could not extend file: No space left on device"),
            psycopg.OperationalError("consuming input failed: server closed the connection"),
        ],
    )
    def test_a_server_gone_stopping_or_full_is_an_outage(self, error: Exception) -> None:
        assert is_database_outage(error)
        assert is_database_outage(wrapped(error))

    @pytest.mark.parametrize(
        "error",
        [
            psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            psycopg.errors.DeadlockDetected("deadlock detected"),
            psycopg.errors.SerializationFailure("could not serialize access"),
            psycopg.errors.UndefinedTable('relation "orders" does not exist'),
            psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
        ],
    )
    def test_statement_errors_are_not(self, error: Exception) -> None:
        assert not is_database_outage(error)
        assert not is_database_outage(wrapped(error))

    def test_a_connection_sqlalchemy_invalidated_is_an_outage_whatever_its_error(self) -> None:
        lost = psycopg.InterfaceError("the connection is lost")
        assert not is_database_outage(lost)
        assert outage_reason(wrapped(lost, invalidated=True)) == "the connection is lost"


class TestWhatCausedAnError:
    def test_an_outage_behind_another_error_is_found(self) -> None:
        try:
            try:
                raise sqlite_error(10, "disk I/O error")
            except sqlite3.Error as error:
                raise RuntimeError("the batch failed") from error
        except RuntimeError as raised:
            assert outage_reason(raised) == "disk I/O error"

    def test_a_bug_is_not_an_outage(self) -> None:
        assert outage_reason(ValueError("a bug")) is None
        assert outage_reason(KeyError("orders")) is None

    def test_the_reason_is_one_short_line(self) -> None:
        reason = outage_reason(psycopg.OperationalError("x" * 500 + "\nmore"))
        assert reason == "x" * 200


class TestDatabaseUnavailable:
    def test_it_is_a_503_with_a_stable_code_and_a_retry_after(self) -> None:
        error = DatabaseUnavailable()
        assert isinstance(error, FlowMemoryError)
        assert (error.status_code, error.code, error.retry_after) == (
            503,
            "database_unavailable",
            2,
        )
        assert DatabaseUnavailable(retry_after=7).retry_after == 7

    def test_a_read_says_nothing_about_applying(self) -> None:
        error = DatabaseUnavailable()
        assert error.applied is None
        assert "appl" not in error.message
        assert error.message == "the database is unavailable"

    def test_a_write_that_failed_before_committing_was_not_applied(self) -> None:
        error = DatabaseUnavailable("not_applied")
        assert error.message == "the database is unavailable: the request was not applied"

    def test_a_write_that_failed_committing_may_have_been_applied(self) -> None:
        error = DatabaseUnavailable("may_have_applied")
        assert "may or may not have been applied" in error.message
        assert error.hint is not None and "look the record up before you retry" in error.hint


class TestDatabaseOutage:
    def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        now = [100.0]
        state = DatabaseOutage(clock=lambda: now[0])
        caplog.set_level(logging.INFO, OUTAGE_LOGGER)
        for _ in range(377):
            state.report("connection refused")
        assert state.down
        now[0] = 110.4
        state.recovered()
        state.recovered()
        assert not state.down
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("ERROR", "database unavailable: connection refused"),
            ("WARNING", "database available again after 10 s (377 failed meanwhile)"),
        ]

    def test_a_second_outage_is_logged_again(self, caplog: pytest.LogCaptureFixture) -> None:
        state = DatabaseOutage()
        caplog.set_level(logging.INFO, OUTAGE_LOGGER)
        state.report("connection refused")
        state.recovered()
        state.report("disk I/O error")
        messages = [r.getMessage() for r in caplog.records]
        assert messages[0] == "database unavailable: connection refused"
        assert messages[2] == "database unavailable: disk I/O error"

    def test_the_database_is_pinged_until_it_answers(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        pinged: list[Engine] = []
        answers = threading.Event()

        def probe(engine: Engine) -> None:
            pinged.append(engine)
            if not answers.is_set():
                raise sqlite_error(14, "unable to open database file")

        engine = create_engine("sqlite://")
        state = DatabaseOutage(probe=probe, probe_seconds=0.001)
        caplog.set_level(logging.INFO, OUTAGE_LOGGER)
        for _ in range(5):
            state.report("unable to open database file", engine)
        assert eventually(lambda: len(pinged) >= 3)
        assert state.down
        answers.set()
        assert eventually(lambda: not state.down)
        assert set(pinged) == {engine}
        assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
        # Pinging ended with the outage: only a new one starts it again.
        assert eventually(lambda: not state._watching)
        count = len(pinged)
        time.sleep(0.05)
        assert len(pinged) == count

    def test_one_probe_runs_however_many_failures_are_reported(self) -> None:
        release = threading.Event()
        probes: list[threading.Thread] = []

        def probe(_engine: Engine) -> None:
            probes.append(threading.current_thread())
            release.wait(GUARD_SECONDS)

        engine = create_engine("sqlite://")
        state = DatabaseOutage(probe=probe, probe_seconds=0.001)
        for _ in range(20):
            state.report("connection refused", engine)
        assert eventually(lambda: len(probes) >= 1)
        release.set()
        assert eventually(lambda: not state.down)
        assert len(set(probes)) == 1


@pytest.mark.usefixtures("process_state")
class TestDatabaseUnavailableFor:
    def test_an_outage_becomes_the_503_for_its_kind_of_work(self) -> None:
        refused = wrapped(psycopg.OperationalError("connection refused"))
        assert database_unavailable(refused, applied=None, bind=None) is not None
        answer = database_unavailable(refused, applied="not_applied", bind=None)
        assert answer is not None and answer.applied == "not_applied"
        assert DATABASE.down

    def test_a_bug_is_left_as_it_is(self) -> None:
        assert database_unavailable(ValueError("a bug"), applied=None, bind=None) is None
        assert not DATABASE.down

    def test_an_answer_chosen_on_purpose_is_left_as_it_is(self) -> None:
        try:
            try:
                raise wrapped(psycopg.OperationalError("connection refused"))
            except DBAPIError:
                raise NotFound("order not found") from None
        except NotFound as error:
            assert database_unavailable(error, applied=None, bind=None) is None
        already = DatabaseUnavailable("may_have_applied")
        assert database_unavailable(already, applied="not_applied", bind=None) is already


class FailingCommit(Session):
    def commit(self) -> None:
        raise wrapped(sqlite_error(10, "disk I/O error"))


@pytest.mark.usefixtures("process_state")
class TestTransaction:
    def test_an_outage_before_the_commit_was_not_applied(self, tmp_path: Path) -> None:
        engine = create_engine(f"sqlite:///{unopenable(tmp_path)}")
        with (
            pytest.raises(DatabaseUnavailable) as raised,
            transaction(lambda: Session(engine)) as session,
        ):
            session.execute(text("SELECT 1"))
        engine.dispose()
        assert raised.value.applied == "not_applied"
        assert isinstance(raised.value.__cause__, OperationalError)

    def test_an_outage_in_the_commit_may_have_been_applied(self) -> None:
        engine = create_engine("sqlite://")
        with (
            pytest.raises(DatabaseUnavailable) as raised,
            transaction(lambda: FailingCommit(engine)) as session,
        ):
            session.execute(text("SELECT 1"))
        assert raised.value.applied == "may_have_applied"

    def test_a_bug_is_raised_as_it_is(self) -> None:
        engine = create_engine("sqlite://")
        with (
            pytest.raises(OperationalError, match="no such table"),
            transaction(lambda: Session(engine)) as session,
        ):
            session.execute(text("SELECT * FROM missing"))
        assert not DATABASE.down

    def test_end_hooks_still_run_after_an_outage(self) -> None:
        ended: list[bool] = []
        engine = create_engine("sqlite://")
        with pytest.raises(DatabaseUnavailable), transaction(lambda: FailingCommit(engine)) as s:
            s.info.setdefault("on_end", []).append(ended.append)
        assert ended == [False]


@pytest.mark.usefixtures("process_state")
class TestFollowingTheDatabaseFile:
    """SQLite goes on using the file a connection holds open: the pool drops connections whose
    file is no longer the one at the database's path, and opens what is there now."""

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "flow_memory.db"

    @pytest.fixture
    def engine(self, path: Path) -> Iterator[Engine]:
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (n INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        yield engine
        engine.dispose()

    def count(self, engine: Engine) -> Any:
        with engine.begin() as connection:
            return connection.execute(text("SELECT count(*) FROM t")).scalar()

    def test_a_file_moved_away_is_an_outage_until_it_is_back(
        self, engine: Engine, path: Path
    ) -> None:
        held = [engine.connect() for _ in range(3)]  # the pool keeps three open connections
        for connection in held:
            connection.close()
        moved = move_away(path)
        path.mkdir()  # in its place, something no connection can open
        for _ in range(3):
            with pytest.raises(OperationalError) as raised:
                self.count(engine)
            assert outage_reason(raised.value) == "unable to open database file"
        path.rmdir()
        move_back(moved)
        assert self.count(engine) == 1

    def test_a_file_deleted_is_not_created_anew_and_empty(self, engine: Engine, path: Path) -> None:
        assert self.count(engine) == 1
        moved = move_away(path)
        with pytest.raises(OperationalError) as raised:
            self.count(engine)
        assert outage_reason(raised.value) == "unable to open database file"
        assert not path.exists()
        move_back(moved)
        assert self.count(engine) == 1


class FailingCheckpoints:
    """A connection as sqlite3 gives one, whose checkpoints fail as a disk that went away."""

    def execute(self, _sql: str) -> None:
        raise sqlite_error(10 | (2 << 8), "disk I/O error")  # SQLITE_IOERR_SHORT_READ

    def close(self) -> None:
        pass


@pytest.mark.usefixtures("process_state")
class TestTheWalCheckpointerInAnOutage:
    def test_it_reports_the_outage_once_and_checkpoints_again_on_a_new_connection(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "flow_memory.db"
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (n INTEGER)"))
        opened: list[str] = []
        real_connect = sqlite3.connect

        def connect(database: str, **options: Any) -> Any:
            opened.append(database)
            return FailingCheckpoints() if len(opened) == 1 else real_connect(database, **options)

        monkeypatch.setattr(sqlite3, "connect", connect)
        caplog.set_level(logging.INFO)
        checkpointer = WalCheckpointer(str(path), interval=0.001, engine=engine)
        checkpointer.start()
        try:
            assert eventually(lambda: checkpointer.checkpoints >= 3)
        finally:
            checkpointer.stop()
            engine.dispose()
        # The second connection opens the file only if it is there: never an empty new one.
        assert opened[1] == path.as_uri() + "?mode=rw"
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
            "database unavailable: disk I/O error"
        ]


def move_away(path: Path) -> list[tuple[Path, Path]]:
    """Move the database and its -wal and -shm files aside; the moves, to undo them."""
    moves = []
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            target = source.with_name(source.name + ".away")
            source.rename(target)
            moves.append((source, target))
    return moves


def move_back(moves: list[tuple[Path, Path]]) -> None:
    for source, target in moves:
        target.rename(source)

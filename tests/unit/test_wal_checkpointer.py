"""The write-ahead log of a SQLite file database is copied into it by WalCheckpointer's thread,
not by the commit that happens to take it past SQLite's default 1,000 pages."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import create_engine, text

from flow_memory.kit.db import WAL_BACKSTOP_PAGES, WalCheckpointer, make_engine

# Only against a hang: the wait below ends on its event long before.
GUARD_SECONDS = 60.0


def eventually(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` came true (polled) before the guard ran out."""
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def rows_in_database_file(path: Path, scratch: Path) -> int:
    """The rows of ``t`` in the database file itself, leaving its write-ahead log aside."""
    copy = scratch / f"copy-{time.monotonic_ns()}.db"
    shutil.copyfile(path, copy)  # without the -wal file beside it, only the file's own pages
    with closing(sqlite3.connect(copy)) as connection:
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'")
        if tables.fetchone()[0] == 0:
            return 0  # not even the table was copied in yet
        count: int = connection.execute("SELECT count(*) FROM t").fetchone()[0]
        return count


def test_commits_leave_the_log_to_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
            WAL_BACKSTOP_PAGES
        )
        connection.execute(text("CREATE TABLE t (n INTEGER, filler TEXT)"))
    for batch in range(40):  # about 2,000 pages of log, past SQLite's own 1,000
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO t VALUES (:n, :filler)"),
                [{"n": batch * 100 + n, "filler": "x" * 2000} for n in range(100)],
            )
    assert rows_in_database_file(path, tmp_path) == 0  # no commit checkpointed

    checkpointer = WalCheckpointer.for_engine(engine)
    assert checkpointer is not None
    checkpointer.interval = 0.01
    checkpointer.start()
    try:
        assert eventually(lambda: checkpointer.checkpoints >= 1)
    finally:
        checkpointer.stop()
    # Nothing else reads or writes: the first passive checkpoint copies the whole log.
    assert rows_in_database_file(path, tmp_path) == 4000
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 4000
    engine.dispose()


def test_only_a_sqlite_file_database_gets_one() -> None:
    assert WalCheckpointer.for_engine(create_engine("sqlite://")) is None
    assert WalCheckpointer.for_engine(create_engine("sqlite:///:memory:")) is None
    postgres = create_engine("postgresql+psycopg://user@localhost/db")
    assert WalCheckpointer.for_engine(postgres) is None

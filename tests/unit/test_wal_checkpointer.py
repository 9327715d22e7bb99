"""The write-ahead log of a SQLite file database is copied into it by WalCheckpointer's thread,
not by the commit that happens to take it past SQLite's default 1,000 pages."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from flow_memory.kit.db import WAL_BACKSTOP_PAGES, WalCheckpointer, make_engine


def eventually(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


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
    before = path.stat().st_size
    assert before < 1_000_000  # nothing was copied into the database file yet

    checkpointer = WalCheckpointer.for_engine(engine)
    assert checkpointer is not None
    checkpointer.interval = 0.01
    checkpointer.start()
    try:
        assert eventually(lambda: checkpointer.checkpoints >= 1)
        assert path.stat().st_size > 8_000_000  # the log's pages are in the database now
    finally:
        checkpointer.stop()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 4000
    engine.dispose()


def test_only_a_sqlite_file_database_gets_one() -> None:
    assert WalCheckpointer.for_engine(create_engine("sqlite://")) is None
    assert WalCheckpointer.for_engine(create_engine("sqlite:///:memory:")) is None
    postgres = create_engine("postgresql+psycopg://user@localhost/db")
    assert WalCheckpointer.for_engine(postgres) is None

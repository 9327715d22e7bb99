"""SQLite writers of one process take turns at the write lock: however a write transaction
ends (committed, rolled back on an error, its connection closed or invalidated mid-way), the
next writer, in another thread, gets its turn. A turn that leaked would keep every later
writer waiting (here, for as long as the test's guard)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from flow_memory.kit.db import WriterTurns, make_engine

GUARD_SECONDS = 60.0  # a guard against a hang, not a performance claim


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    # A leaked turn is waited for past the guard, never given up on.
    monkeypatch.setattr(WriterTurns, "WAIT_SECONDS", 10 * GUARD_SECONDS)
    made = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    with made.begin() as connection:
        connection.execute(text("CREATE TABLE notes (n INTEGER)"))
    yield made
    made.dispose()


def _commit(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO notes VALUES (1)"))


def _fail(engine: Engine) -> None:
    with pytest.raises(ZeroDivisionError), engine.begin() as connection:
        connection.execute(text("INSERT INTO notes VALUES (2)"))
        raise ZeroDivisionError


def _close_mid_way(engine: Engine) -> None:
    connection: Connection = engine.connect()
    connection.execute(text("INSERT INTO notes VALUES (3)"))  # begins a write transaction
    connection.close()


def _invalidate_mid_way(engine: Engine) -> None:
    connection = engine.connect()
    connection.execute(text("INSERT INTO notes VALUES (4)"))
    connection.invalidate()
    connection.close()


@pytest.mark.parametrize("end", [_commit, _fail, _close_mid_way, _invalidate_mid_way])
def test_the_next_writer_in_another_thread_gets_its_turn(
    engine: Engine, end: Callable[[Engine], None]
) -> None:
    end(engine)
    written = threading.Event()

    def write() -> None:
        _commit(engine)
        written.set()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert written.wait(GUARD_SECONDS), "the next writer never got its turn"
    with engine.connect() as connection:
        committed = connection.execute(text("SELECT count(*) FROM notes WHERE n = 1")).scalar()
    assert committed == (2 if end is _commit else 1)


def test_writers_in_many_threads_all_write(engine: Engine) -> None:
    threads = [threading.Thread(target=_commit, args=(engine,), daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD_SECONDS)
        assert not thread.is_alive()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM notes")).scalar() == 16

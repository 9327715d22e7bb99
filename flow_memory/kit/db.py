"""Database engine, session factory and the column types every domain shares."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Numeric,
    String,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.types import TypeEngine

from flow_memory.kit.money import exact
from flow_memory.kit.outage import DATABASE, follow_database_file, outage_reason

log = logging.getLogger("flow_memory.db")


class Base(DeclarativeBase):
    """Declarative base for every table."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use the injected clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC(38, 18) on PostgreSQL, canonical text on SQLite (no float)."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format(Decimal(value), "f")
        return Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return exact(value if isinstance(value, Decimal) else Decimal(str(value)))

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: Any) -> Any:  # ``process_bind_param`` in one step (text has none)
            if value is None:
                return None
            return format(value if type(value) is Decimal else Decimal(value), "f")

        return process


class JSONDocument(TypeDecorator[Any]):
    """JSON stored as text with sorted keys, so equal documents compare equal."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return canonical_json(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        # Most documents the market writes (an order's metadata and routing policy) are
        # empty: converted once, not once per row.
        process = super().bind_processor(dialect)
        if process is None:
            return None
        convert: Callable[[Any], Any] = process
        empty = convert({})

        def bind(value: Any) -> Any:
            return empty if type(value) is dict and not value else convert(value)

        return bind


_PLAIN = (str, int, bool, type(None))


def canonical_json(value: Any) -> Any:
    """``value`` as JSON would give it back, with every object's keys in sorted order (what
    becomes of text, numbers and nesting is what ``json`` does, ``str`` for anything else)."""
    sorted_value = _sorted_plain(value)
    if sorted_value is _NOT_PLAIN:
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    return sorted_value


_NOT_PLAIN = object()


def _sorted_plain(value: Any) -> Any:
    """A sorted copy of a document of plain values and text keys, without serialising it;
    ``_NOT_PLAIN`` for anything else (the round trip through ``json`` handles it)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (_INF, -_INF) else _NOT_PLAIN
    if isinstance(value, dict):
        copy = {}
        for key in sorted(value) if all(isinstance(k, str) for k in value) else ():
            item = _sorted_plain(value[key])
            if item is _NOT_PLAIN:
                return _NOT_PLAIN
            copy[key] = item
        return copy if len(copy) == len(value) else _NOT_PLAIN
    if isinstance(value, list):
        items = [_sorted_plain(item) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    return _NOT_PLAIN


_INF = float("inf")


def make_engine(database_url: str, *, read_only: bool = False) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout.

    On SQLite every transaction of a read-write engine takes the write lock up front; a
    ``read_only`` engine reads without it (WAL lets readers run beside the writer)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        in_memory = not url.database or url.database == ":memory:"
        if not in_memory:
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        # Enough pooled file connections for the server's worker threads: opening one runs
        # the pragmas, which is too slow to repeat per request.
        pool: dict[str, Any] = {} if in_memory else {"pool_size": 40, "max_overflow": 40}
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            **pool,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if not in_memory:
            follow_database_file(engine)
        if read_only:
            event.listen(engine, "begin", _sqlite_begin_deferred)
        else:
            WriterTurns(engine)
        return engine
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in {"", "psycopg2"}:
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
    cursor.close()


class WriterTurns:
    """On a SQLite read-write engine, the write transactions of this process's threads take
    turns: each waits for a lock of the engine's before it takes SQLite's write lock, and the
    next one starts the moment the last commits or rolls back. Left to SQLite, a writer that
    finds the lock taken sleeps and tries again, up to 100 ms between tries, so under several
    writers most of the time went on sleeping while the lock was free. Other processes on the
    same file still meet SQLite's own waiting. A turn not had within the busy timeout is not
    waited for any longer: the transaction then waits on SQLite's lock as before."""

    WAIT_SECONDS = 30.0

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None  # id() of the driver connection whose turn it is
        dialect = engine.dialect
        for name in ("do_commit", "do_rollback", "do_close"):
            setattr(dialect, name, self._ending(getattr(dialect, name)))
        event.listen(engine, "begin", self._begin)

    def _begin(self, connection: Connection) -> None:
        driver = connection.connection.dbapi_connection
        had_turn = self._lock.acquire(timeout=self.WAIT_SECONDS)
        if had_turn:
            self._holder = id(driver)
        try:
            # Take the write lock up front: a deferred transaction that later writes can fail
            # with SQLITE_BUSY instead of waiting when another writer committed in between.
            run_on_driver(connection, "BEGIN IMMEDIATE", ())
        except BaseException:
            self._end(driver)
            raise

    def _ending(self, method: Callable[[Any], None]) -> Callable[[Any], None]:
        def ended(driver: Any) -> None:
            try:
                method(driver)
            finally:
                self._end(driver)

        return ended

    def _end(self, driver: Any) -> None:
        # The dialect is handed the pool's proxy of a connection or the connection itself.
        driver = getattr(driver, "dbapi_connection", driver)
        if driver is not None and self._holder == id(driver):
            self._holder = None
            self._lock.release()


def _sqlite_begin_deferred(connection: Connection) -> None:
    # A read snapshot without the write lock: in WAL mode readers never wait for the writer.
    run_on_driver(connection, "BEGIN", ())


# A connection that commits past this many log pages (about 40 MB) checkpoints itself: only
# when no ``WalCheckpointer`` runs, or it falls behind.
WAL_BACKSTOP_PAGES = 10_000
CHECKPOINT_SECONDS = 0.2


class WalCheckpointer:
    """Copies a SQLite file database's write-ahead log into the database from its own thread.

    Left to itself, SQLite checkpoints in the commit that takes the log past 1,000 pages: that
    commit (most of the time the market writer's) then also copies about 4 MB and syncs the
    database file, and every order of its batch waits for it. Here connections checkpoint
    only past ``WAL_BACKSTOP_PAGES``, and this thread runs a passive checkpoint, which never
    waits for a reader or a writer, every ``CHECKPOINT_SECONDS``."""

    def __init__(
        self, path: str, interval: float = CHECKPOINT_SECONDS, *, engine: Engine | None = None
    ) -> None:
        self.path = path
        self.interval = interval
        self.engine = engine  # pinged for the end of an outage the checkpointer meets
        self.checkpoints = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_engine(cls, engine: Engine) -> WalCheckpointer | None:
        """One for a SQLite file database; None for anything else."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return cls(str(url.database), engine=engine)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="flow-memory-wal-checkpointer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        connection: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None)
        try:
            while not self._stopping.wait(self.interval):
                try:
                    if connection is None:  # never creating the file anew if it is gone
                        uri = Path(self.path).absolute().as_uri() + "?mode=rw"
                        connection = sqlite3.connect(uri, uri=True, isolation_level=None)
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    self.checkpoints += 1
                except sqlite3.Error as error:
                    reason = outage_reason(error)
                    if reason is None:
                        log.exception("checkpointing the write-ahead log failed; retrying")
                        continue
                    # Logged once for the whole outage, with the requests that meet it; the
                    # next try opens the file at the path afresh.
                    DATABASE.report(reason, self.engine)
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


_MEMOS = "flow_memory.memos"


class _Memos:
    """A transaction's memos, and which savepoint remembered what: a savepoint that rolls back
    takes what it remembered with it (it may rest on a write rolled back with it); one that
    commits hands it to its parent."""

    def __init__(self) -> None:
        self.kinds: dict[str, Memo] = {}
        self.journal: dict[SessionTransaction, list[tuple[str, Any]]] = {}
        # Savepoints just ended, with what they remembered: SQLAlchemy tells that a savepoint
        # ended before it tells that it rolled back.
        self.ended: dict[SessionTransaction, list[tuple[str, Any]]] = {}

    def remembered(self, session: Session, kind: str, key: Any) -> None:
        savepoint = session.get_nested_transaction()
        if savepoint is not None:
            self.journal.setdefault(savepoint, []).append((kind, key))

    def savepoint_ended(self, savepoint: SessionTransaction) -> None:
        entries = self.journal.pop(savepoint, [])
        self.ended[savepoint] = entries
        if savepoint.parent is not None and savepoint.parent.nested:
            self.journal.setdefault(savepoint.parent, []).extend(entries)

    def savepoint_rolled_back(self, savepoint: SessionTransaction) -> None:
        for kind, key in self.ended.pop(savepoint, []):
            self.kinds[kind].pop(key, None)


class Memo(dict[Any, Any]):
    """One kind of fact a transaction remembers (``transaction_memo``)."""

    def __init__(self, session: Session, memos: _Memos, kind: str) -> None:
        super().__init__()
        self._session = session
        self._memos = memos
        self._kind = kind

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._memos.remembered(self._session, self._kind, key)


def transaction_memo(session: Session, name: str) -> Memo:
    """What the session's transaction read and may read again, by kind (``name``): for facts
    no write changes behind the reader's back (whose account pays for an identity, a holder's
    accounts, bidders' standings). The job writer applies many commands in one transaction,
    each in a savepoint, and each read these again. What a savepoint remembered is forgotten
    when it rolls back; everything when the transaction ends. Set entries by key (``memo[k] =
    v``): that is what a savepoint's rollback can take back."""
    memos: _Memos | None = session.info.get(_MEMOS)
    if memos is None:
        memos = session.info[_MEMOS] = _Memos()
    memo = memos.kinds.get(name)
    if memo is None:
        memo = memos.kinds[name] = Memo(session, memos, name)
    return memo


@event.listens_for(Session, "after_transaction_create")
@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction itself
        session.info.pop(_MEMOS, None)
        return
    memos: _Memos | None = session.info.get(_MEMOS)
    if memos is not None and transaction.nested:
        memos.savepoint_ended(transaction)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous: SessionTransaction) -> None:
    memos: _Memos | None = session.info.get(_MEMOS)
    if memos is None:
        return
    if previous.nested:
        memos.savepoint_rolled_back(previous)
    else:
        session.info.pop(_MEMOS, None)


def run_on_driver(
    connection: Connection, sql: str, parameters: Any, *, many: bool = False
) -> list[Any]:
    """Run ``sql`` on the connection's driver connection as it stands (no transaction begun)."""
    driver = connection.connection.dbapi_connection
    if driver is None:
        raise RuntimeError("the connection is closed")
    cursor = None
    try:
        cursor = driver.cursor()
        if many:
            cursor.executemany(sql, parameters)
            return []
        cursor.execute(sql, parameters)
        return list(cursor.fetchall()) if cursor.description is not None else []
    except connection.dialect.loaded_dbapi.Error as error:
        # Told as SQLAlchemy tells it, a connection the database dropped included.
        raise DBAPIError.instance(
            sql,
            parameters,
            error,
            connection.dialect.loaded_dbapi.Error,
            connection_invalidated=connection.dialect.is_disconnect(error, driver, cursor),
        ) from error
    finally:
        if cursor is not None:
            cursor.close()

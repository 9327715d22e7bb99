"""Database engine, session factory and the column types every domain shares."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Insert,
    Numeric,
    Select,
    String,
    Table,
    TypeDecorator,
    Update,
    create_engine,
    event,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
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
            _run_on_driver(connection, "BEGIN IMMEDIATE", ())
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
    _run_on_driver(connection, "BEGIN", ())


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


class BulkWrite:
    """One insert or update run for many rows, handed to the driver as one ``executemany``.

    The market writer writes thousands of rows a second (orders, fills, feed events, usage
    records and rollups), and SQLAlchemy's general executemany path costs more per row than
    the write: here the statement is compiled once per dialect and set of parameters, and
    each value goes through its parameter's bind processor, the same one SQLAlchemy applies,
    so what is stored is identical. Rows are mappings by parameter name (an insert's are its
    column names), all with the first row's names; a statement that needs more parameters
    than given (a Python-side column default) goes through SQLAlchemy.

    ``dialects`` may give, per dialect name, the statement to run instead (an insert with an
    ``ON CONFLICT`` clause, say)."""

    def __init__(
        self, statement: Insert | Update, dialects: Mapping[str, Insert | Update] | None = None
    ) -> None:
        self._statement = statement
        self._dialects = dict(dialects or {})
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled | None] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = self._compile(connection, tuple(rows[0]))
        if compiled is None:
            connection.execute(self._statement_for(connection), list(rows))
            return
        on_driver(connection, compiled.sql, compiled.parameters(rows), many=True)

    def execute_rows(
        self, connection: Connection, names: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Write rows given as tuples of values in the order of ``names``: the hot paths build
        them straight from their objects, without a mapping per row."""
        if not rows:
            return
        compiled = self._compile(connection, names)
        if compiled is None:
            dicts = [dict(zip(names, row, strict=True)) for row in rows]
            connection.execute(self._statement_for(connection), dicts)
            return
        on_driver(connection, compiled.sql, compiled.rows(names, rows), many=True)

    def _statement_for(self, connection: Connection) -> Insert | Update:
        return self._dialects.get(connection.dialect.name, self._statement)

    def _compile(self, connection: Connection, names: tuple[str, ...]) -> _Compiled | None:
        key = (connection.dialect.name, names)
        if key not in self._compiled:
            statement = self._statement_for(connection)
            self._compiled[key] = _Compiled.build(statement, connection.dialect, names)
        return self._compiled[key]


class DriverQuery:
    """A fixed query run on the driver directly, compiled once per dialect: for statements run
    once per market batch, where SQLAlchemy's execution path costs more than the query. Its
    parameters are given by name; it answers plain row tuples (an insert's, those it returns)."""

    def __init__(self, statement: Select[Any] | Update | Insert) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[Any]:
        names = tuple(parameters)
        key = (connection.dialect.name, names)
        compiled = self._compiled.get(key)
        if compiled is None:
            built = _Compiled.build(self._statement, connection.dialect, names)
            if built is None:
                raise ValueError(f"the query takes other parameters than {names}")
            compiled = self._compiled[key] = built
        return on_driver(connection, compiled.sql, compiled.parameters([parameters])[0])


def on_driver(
    connection: Connection, sql: str, parameters: Any, *, many: bool = False
) -> list[Any]:
    """Run ``sql`` on the connection's driver connection, in its transaction (begun first if
    it has none, as ``exec_driver_sql`` would): without SQLAlchemy's execution context, events
    and result objects. The driver's errors come out as SQLAlchemy's, as from any other
    statement. Returns the rows a query answers (none for ``many``)."""
    if not connection.in_transaction():
        connection.begin()
    return _run_on_driver(connection, sql, parameters, many=many)


def _run_on_driver(
    connection: Connection, sql: str, parameters: Any, *, many: bool = False
) -> list[Any]:
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


def dialect_inserts(table: Table) -> dict[str, postgresql.Insert | sqlite.Insert]:
    """An insert into ``table`` per supported dialect, for clauses only a dialect's own insert
    offers (``ON CONFLICT``)."""
    return {"postgresql": postgresql.insert(table), "sqlite": sqlite.insert(table)}


def bulk_insert(table: Table) -> BulkWrite:
    """A plain insert into ``table``, for many rows at a time."""
    return BulkWrite(insert(table))


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters, in the statement's order
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    # Which processors convert times: a batch's rows share one, converted once (``_LastValue``);
    # other values differ from row to row, and remembering the last would only cost.
    of_times: tuple[bool, ...]

    @classmethod
    def build(
        cls, statement: Insert | Update | Select[Any], dialect: Dialect, names: tuple[str, ...]
    ) -> _Compiled | None:
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        order = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        if sorted(order) != sorted(names):
            return None  # a default or a renamed parameter: let SQLAlchemy fill it in
        types = [compiled.binds[name].type for name in order]
        processors = tuple(t.dialect_impl(dialect).bind_processor(dialect) for t in types)
        of_times = tuple(isinstance(t, UTCDateTime | DateTime) for t in types)
        return cls(compiled.string, order, processors, compiled.positional, of_times)

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        # Every value is read in one call; only those with a processor are passed through it.
        values_of = itemgetter(*self.names)
        if len(self.names) == 1:
            return self._converted([(values_of(row),) for row in rows])
        return self._converted([values_of(row) for row in rows])

    def rows(self, names: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> list[Any]:
        """The driver's parameters for rows of values in the order of ``names``."""
        if names != self.names:  # the statement takes them in another order
            values_of = itemgetter(*(names.index(name) for name in self.names))
            if len(self.names) == 1:
                return self._converted([(values_of(row),) for row in rows])
            rows = [values_of(row) for row in rows]
        return self._converted(rows)

    def _converted(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Rows of values in the statement's order, through their bind processors."""
        processed = [
            (index, _LastValue(process) if of_time else process)
            for index, (process, of_time) in enumerate(
                zip(self.processors, self.of_times, strict=True)
            )
            if process is not None
        ]
        out: list[Any] = []
        for row in rows:
            values = list(row)
            for index, process in processed:
                values[index] = process(values[index])
            out.append(values if self.positional else dict(zip(self.names, values, strict=True)))
        return out


class _LastValue:
    """A bind processor that remembers its last answer: the rows of a batch share one time, and
    that one object is converted once, not once per row."""

    __slots__ = ("answer", "process", "value")

    def __init__(self, process: Callable[[Any], Any]) -> None:
        self.process = process
        self.value: Any = _NOTHING
        self.answer: Any = None

    def __call__(self, value: Any) -> Any:
        if value is not self.value:
            self.answer = self.process(value)
            self.value = value
        return self.answer


_NOTHING = object()

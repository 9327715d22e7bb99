"""Database outages: telling one from a bug, and logging each outage once.

An outage is the database refusing or losing connections, shutting down or starting up, or a
SQLite file that cannot be opened, read or written. Work that meets one is answered 503
``database_unavailable`` (``DatabaseUnavailable``) instead of 500 with a traceback. The process
logs ``database unavailable: <reason>`` when the first failure is reported, then pings the
database until it answers and logs ``database available again after N s`` once: two lines per
outage, however many requests failed meanwhile. The pool hands out working connections again by
itself (PostgreSQL's are pinged at checkout; a disconnect invalidates the pool's older ones).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, InvalidatePoolError

from flow_memory.kit.errors import Applied, DatabaseUnavailable, FlowMemoryError

log = logging.getLogger("flow_memory.database")

PROBE_SECONDS = 1.0
_REASON_LENGTH = 200
_CHAIN_DEPTH = 8

# SQLite primary result codes of a file that cannot be used now: PERM, READONLY, IOERR, FULL,
# CANTOPEN. Busy and locked are contention, corrupt and notadb need an operator: neither is an
# outage to wait out.
_SQLITE_OUTAGES = frozenset({3, 8, 10, 13, 14})
# PostgreSQL SQLSTATEs: connection exceptions (class 08), a server shutting down, crashed or
# starting up (57P01-57P03), no connection slot left (53300) and a full disk (53100, as
# SQLite's FULL). Cancelled statements, deadlocks and serialization failures are not outages.
_POSTGRES_OUTAGES = frozenset({"57P01", "57P02", "57P03", "53300", "53100"})


def outage_reason(error: BaseException) -> str | None:
    """A short reason when ``error`` (or what caused it) says the database cannot be reached or
    used right now; None for anything else, a bug included."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending and len(seen) < _CHAIN_DEPTH:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return _short(current.orig if current.orig is not None else current)
            pending.append(current.orig)
        elif _is_driver_outage(current):
            return _short(current)
        pending += [current.__cause__, current.__context__]
    return None


def is_database_outage(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached or used right now."""
    return outage_reason(error) is not None


def _is_driver_outage(error: BaseException) -> bool:
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_OUTAGES
    psycopg: Any = sys.modules.get("psycopg")  # none of its errors exist until it is imported
    if psycopg is not None and isinstance(error, psycopg.OperationalError):
        state: str | None = getattr(error, "sqlstate", None)
        # No SQLSTATE: the client's own failure to connect or to keep the connection.
        return state is None or state.startswith("08") or state in _POSTGRES_OUTAGES
    return False


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0].strip() if text else type(error).__name__
    return first[:_REASON_LENGTH]


def follow_database_file(engine: Engine) -> None:
    """Have ``engine``'s pool (SQLite, on a file) drop its connections once the file at the
    database's path is not the one they opened: moved away, deleted or replaced. SQLite would
    go on reading and writing the file it holds open, which no one finds at the path any more;
    a new connection opens what is there now, or fails as an outage if nothing can be opened.
    Once the database has been opened, a missing file is never created anew (and empty)."""
    path = str(engine.url.database)
    opened = threading.Event()

    def open_existing(_dialect: Any, _record: Any, cargs: list[Any], cparams: Any) -> None:
        if opened.is_set() and not cparams.get("uri"):
            cargs[0] = Path(os.path.abspath(cargs[0])).as_uri() + "?mode=rw"
            cparams["uri"] = True

    def remember(_dbapi_connection: Any, record: Any) -> None:
        record.info["database_file"] = _file_identity(path)
        opened.set()

    def check(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if _file_identity(path) != record.info.get("database_file"):
            raise InvalidatePoolError("the database file was moved or replaced")

    event.listen(engine, "do_connect", open_existing)
    event.listen(engine, "connect", remember)
    event.listen(engine, "checkout", check)


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def ping(engine: Engine) -> None:
    """Raise unless the database answers a statement on a connection from ``engine``'s pool
    (on SQLite's write engine, inside the write lock it takes to begin)."""
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")


class DatabaseOutage:
    """Whether this process has found the database unavailable, logged once per change."""

    def __init__(
        self,
        *,
        probe: Callable[[Engine], None] = ping,
        probe_seconds: float = PROBE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._probe_seconds = probe_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0
        self._engine: Engine | None = None  # the last one reported: the one pinged
        self._watching = False

    @property
    def down(self) -> bool:
        return self._since is not None

    def report(self, reason: str, bind: Engine | Connection | None = None) -> None:
        """Note a failure for ``reason``: the first of an outage is logged, and the database
        behind ``bind`` is then pinged until it answers."""
        with self._lock:
            first = self._since is None
            if first:
                self._since = self._clock()
                self._failures = 0
            self._failures += 1
            if bind is not None:
                self._engine = bind if isinstance(bind, Engine) else bind.engine
            watch = self._engine is not None and not self._watching
            self._watching = self._watching or watch
        if first:
            log.error("database unavailable: %s", reason)
        if watch:
            threading.Thread(
                target=self._watch, name="flow-memory-database-probe", daemon=True
            ).start()

    def recovered(self) -> None:
        """Note that the database answers again; logged once if it was unavailable."""
        with self._lock:
            ended = self._end()
        self._log_end(ended)

    def _end(self) -> tuple[float, int] | None:
        since, self._since = self._since, None
        return None if since is None else (since, self._failures)

    def _log_end(self, ended: tuple[float, int] | None) -> None:
        if ended is not None:
            since, failures = ended
            log.warning(
                "database available again after %.0f s (%d failed meanwhile)",
                self._clock() - since,
                failures,
            )

    def _watch(self) -> None:
        while True:
            time.sleep(self._probe_seconds)
            with self._lock:
                engine = self._engine
                if self._since is None or engine is None:  # noted as recovered elsewhere
                    self._watching = False
                    return
            try:
                self._probe(engine)
            except Exception:  # still unavailable (or a probe that fails otherwise): wait
                continue
            with self._lock:
                # Ended together with the watch: an outage reported after it starts another.
                ended = self._end()
                self._watching = False
            self._log_end(ended)
            return


# One per process: the server's, and the market process's own.
DATABASE = DatabaseOutage()


def database_unavailable(
    error: BaseException, *, applied: Applied, bind: Engine | Connection | None
) -> DatabaseUnavailable | None:
    """The 503 to raise in place of ``error`` when it is a database outage (reported to
    ``DATABASE``, which then watches ``bind``'s database); None when it is not one.

    ``applied`` says what became of the work: None for a read, "not_applied" when it failed
    before its transaction began to commit, "may_have_applied" when it failed committing."""
    if isinstance(error, DatabaseUnavailable):
        return error
    if isinstance(error, FlowMemoryError):
        return None  # an answer chosen on purpose, whatever it was raised from
    reason = outage_reason(error)
    if reason is None:
        return None
    DATABASE.report(reason, bind)
    return DatabaseUnavailable(applied)

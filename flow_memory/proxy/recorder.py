"""Batched usage writes for proxied calls: one writer thread commits records in groups, so a
busy proxy pays one commit per batch instead of one per call. ``stop`` writes everything
still queued, so a clean shutdown loses nothing."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker

from flow_memory.kit.deps import transaction
from flow_memory.usage.models import UsageRecord
from flow_memory.usage.service import add_to_rollup

log = logging.getLogger("flow_memory.proxy.usage")

MAX_BATCH = 1_000
MAX_DRAIN = 10 * MAX_BATCH
LINGER_SECONDS = 0.1
RETRIES = 5
Row = dict[str, Any]  # a usage record's column values


class UsageRecorder:
    """Queue usage records from any thread; a writer thread commits them in batches."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._queue: queue.SimpleQueue[Row | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._urgent = threading.Event()
        self.written = 0
        self.lost = 0

    def add(self, record: Row) -> None:
        """Queue one record's column values (as ``record_values`` makes them)."""
        self._ensure_started()
        self._queue.put(record)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued before this call is committed."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        self._urgent.set()
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        self._urgent.set()
        thread.join(timeout)
        self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flow-memory-usage-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            # Let records gather, then take them all at once: waiting on the queue for each
            # one would wake this thread, and pass the GIL back and forth, once per call.
            self._urgent.wait(LINGER_SECONDS)
            self._urgent.clear()
            while len(items) < MAX_DRAIN:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch: list[Row] = []
            waiters: list[threading.Event] = []
            for item in items:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
            for start in range(0, len(batch), MAX_BATCH):
                self._write(batch[start : start + MAX_BATCH])
            for waiter in waiters:
                waiter.set()

    def _write(self, batch: list[Row]) -> None:
        for attempt in range(RETRIES):
            try:
                with transaction(self._factory) as session:
                    connection = session.connection()
                    statement = _statement_for(connection.dialect)
                    connection.exec_driver_sql(statement.sql, statement.parameters(batch))
                    time.sleep(0)
                    add_to_rollup(session, batch)
                self.written += len(batch)
                return
            except Exception:
                log.exception(
                    "usage batch of %d records failed (attempt %d)", len(batch), attempt + 1
                )
                time.sleep(0.05 * 2**attempt)
        self.lost += len(batch)
        log.error("%d usage records could not be written", len(batch))


_TABLE = cast(Table, UsageRecord.__table__)


class _Insert:
    """The records' INSERT for one dialect, with its parameters prepared in this module.

    This thread shares the GIL with the event loop: preparing every row through SQLAlchemy's
    executemany held it for milliseconds at a time, and calls waited that long. Here each row
    goes through the same bind processors in small slices, the GIL is offered back between
    slices, and the driver's own executemany inserts them."""

    def __init__(self, dialect: Dialect) -> None:
        compiled = insert(_TABLE).compile(dialect=dialect)
        self.sql = str(compiled)
        names = list(compiled.positiontup or []) if compiled.positional else list(compiled.params)
        columns = {column.key: column for column in _TABLE.columns}
        self.positional = compiled.positional
        self.names = tuple(names)
        self.processors = tuple(
            columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )

    def parameters(self, rows: list[Row]) -> list[Any]:
        prepared: list[Any] = []
        fields = tuple(zip(self.names, self.processors, strict=True))
        for index, row in enumerate(rows):
            if index and index % SLICE == 0:
                time.sleep(0)  # let the event loop take the GIL if it is waiting
            values = [
                row[name] if process is None else process(row[name]) for name, process in fields
            ]
            if self.positional:
                prepared.append(tuple(values))
            else:
                prepared.append(dict(zip(self.names, values, strict=True)))
        return prepared


SLICE = 16
_STATEMENTS: dict[str, _Insert] = {}


def _statement_for(dialect: Dialect) -> _Insert:
    found = _STATEMENTS.get(dialect.name)
    if found is None:
        found = _STATEMENTS[dialect.name] = _Insert(dialect)
    return found

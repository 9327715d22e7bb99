"""The job writer: on SQLite, the job board's writes of this process applied in batches.

SQLite lets one transaction write at a time, and each commit syncs the write-ahead log to disk
(``synchronous=FULL``). With every post, bid and award its own transaction, requests queued
for the write lock and each paid a commit. Here a request hands its unit of work (a command: it
runs the use case and builds the answer) to the writer's thread, which takes every command that
has arrived and applies them in one transaction, each in a savepoint of its own: a command that
refuses (or fails) is rolled back to its savepoint and answered with its error, the others go
on. Each caller hears back only after the batch has committed: an acknowledged post, bid or
award is a committed one, as before. The jobs a batch posted are handed to the next batches
that bid on them without being read again (``fresh.FreshJobs``).

What can go wrong, and what the writer does:
- a command refuses or fails: its savepoint is rolled back, it is answered with its error;
- the batch fails otherwise (a savepoint that cannot be rolled back, a commit refused): each
  command of the batch is applied again alone, in a transaction of its own, as without the
  writer;
- the database is unreachable: every command of the batch is answered 503
  ``database_unavailable``, saying whether it may have been applied (only a failure while
  committing leaves that open).

PostgreSQL lets transactions write side by side and locks only the rows they change (a job's
row while it changes): there every request keeps its own transaction, and no writer is made
(``for_engine``)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from flow_memory.jobs import fresh
from flow_memory.kit.deps import on_session_end, transaction
from flow_memory.kit.errors import DatabaseUnavailable
from flow_memory.kit.outage import is_database_outage

log = logging.getLogger("flow_memory.jobs.writer")

T = TypeVar("T")
Command = Callable[[Session], Any]
Queued = tuple[Command, "Future[Any]"]

MAX_BATCH = 64  # commands applied in one transaction at most
IDLE_SECONDS = 5.0  # the thread ends after this long without a command; the next starts it


class JobWriter:
    """Applies commands (``run``) in batches, on a thread of its own started when needed."""

    def __init__(
        self, factory: Callable[[], Session], *, committed: Callable[[Session], None]
    ) -> None:
        self._factory = factory
        self._committed = committed  # told each committed transaction's session
        self._queue: queue.SimpleQueue[Queued] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.commands = 0
        self.fresh = fresh.FreshJobs()  # jobs just posted, for the next batches' bids

    @classmethod
    def for_engine(
        cls,
        engine: Engine,
        factory: Callable[[], Session],
        *,
        committed: Callable[[Session], None],
    ) -> JobWriter | None:
        """A writer for a SQLite database; None for any other (see the module's docs)."""
        if engine.dialect.name != "sqlite":
            return None
        return cls(factory, committed=committed)

    def run(self, command: Callable[[Session], T]) -> T:
        """Apply ``command`` in the next batch and return what it returned, once committed;
        raise what it raised (its work rolled back)."""
        return self.submit(command).result()

    def submit(self, command: Callable[[Session], T]) -> Future[T]:
        """Queue ``command`` for the next batch: its future holds what ``run`` would give."""
        future: Future[T] = Future()
        self._queue.put((command, future))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flow-memory-job-writer", daemon=True
                )
                self._thread.start()
        return future

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # A command whose caller withdrew it (its future cancelled) is not applied.
            batch = [queued for queued in batch if queued[1].set_running_or_notify_cancel()]
            if batch:
                self._apply(batch)

    def _apply(self, batch: list[Queued]) -> None:
        self.batches += 1
        self.commands += len(batch)
        try:
            outcomes = self._together(batch)
        except DatabaseUnavailable as error:
            for _, future in batch:
                future.set_exception(error)
            return
        except Exception:
            log.exception("a batch of job commands failed; applying each alone")
            for command, future in batch:
                self._alone(command, future)
            return
        # Answered only now: a refusal may rest on what an earlier command of the batch did.
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _together(self, batch: list[Queued]) -> list[tuple[Future[Any], bool, Any]]:
        """Apply the batch in one transaction, each command in a savepoint; what each returned
        or raised (a command that raised left nothing)."""
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        with transaction(self._factory) as session:
            session.info[fresh.FRESH_KEY] = self.fresh
            on_session_end(session, lambda committed: self._tell(session, committed))
            for command, future in batch:
                savepoint = session.begin_nested()
                try:
                    value = command(session)
                    savepoint.commit()
                except Exception as error:
                    if is_database_outage(error):
                        raise
                    savepoint.rollback()
                    outcomes.append((future, False, error))
                else:
                    outcomes.append((future, True, value))
            self.fresh.stage(session)
        return outcomes

    def _alone(self, command: Command, future: Future[Any]) -> None:
        try:
            with transaction(self._factory) as session:
                session.info[fresh.FRESH_KEY] = self.fresh
                on_session_end(session, lambda committed: self._tell(session, committed))
                value = command(session)
                self.fresh.stage(session)
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(value)

    def _tell(self, session: Session, committed: bool) -> None:
        if committed:
            self.fresh.keep(session)
            self._committed(session)

"""The market writer: the one place a process's books move.

Commands queue from any thread; the writer's thread takes every command that has arrived and
applies them as one batch in one transaction: it locks the markets they name (in key order),
runs each command (a command refuses before it changes anything), writes every row the batch
decided with one ``executemany`` per table, builds the answers and commits. Each caller hears
back only after the commit: an acknowledged order is a committed order.

What can go wrong, and what the writer does:
- a command refuses (before it changed anything): it is answered, the others go on;
- a command fails after it changed something (a defect), or a refusal comes too late: the
  batch is rolled back, that command is answered with its error, and the batch runs again
  without it;
- the database breaks a deadlock, or a unique key another node took first (two reservations
  with one key): the batch is rolled back and runs again, a few times;
- the database is unreachable: every command of the batch is answered 503
  ``database_unavailable``, saying whether it may have been applied (only a failure while
  committing leaves that open).
After a rollback every book the batch held is rebuilt from the database before it is traded on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol, TypeAlias, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from flow_memory.kit.clock import Clock
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.kit.outage import database_unavailable, is_database_outage
from flow_memory.market.batch import Batch, Kept
from flow_memory.market.books import MarketBooks, MarketKey
from flow_memory.market.metrics import BatchFigures, record, tally
from flow_memory.market.persist import persist
from flow_memory.settings import Settings

log = logging.getLogger("flow_memory.market.writer")

T = TypeVar("T")

MAX_BATCH = 256
RETRIES = 8  # attempts of a batch the database rolled back (deadlock, a key taken first)


class Command(Protocol):
    """A market command (``flow_memory.market.orders``, ``reservations``, ``snapshots``)."""

    def markets(self, batch: Batch) -> Iterable[MarketKey]:
        """The markets it needs (read before any is locked; may refuse)."""
        ...

    def run(self, batch: Batch) -> Callable[[Session], Any]:
        """Decide: refuse before changing anything, or change the books and queue rows.
        Returns what builds the answer once the batch's rows are written."""
        ...


class Answer(Protocol):
    """Anything told a command's outcome once its batch has ended (a thread's future is one)."""

    def set_result(self, result: Any) -> object: ...

    def set_exception(self, exception: BaseException) -> object: ...


Waiter: TypeAlias = "Future[Any] | asyncio.Future[Any] | Answer"
Queued = tuple[Command, Waiter]
Outcome = tuple[Waiter, bool, Any]


class Withdrawn(Exception):
    """A command failed after it changed the batch: the batch runs again without it."""

    def __init__(self, item: Queued, error: BaseException) -> None:
        super().__init__(str(error))
        self.item = item
        self.error = error


class MarketWriter:
    """A single writer thread per process, started on first use."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        settings: Settings,
        clock: Clock,
        generation: Callable[[], int | None] = lambda: None,
        after_batch: Callable[[], None] | None = None,
        observe: Callable[[BatchFigures], None] = record,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock
        # What the app's route facts stand at: when it moves, what the writer kept of
        # providers is read afresh.
        self.generation = generation
        self.books = MarketBooks()
        self.kept = Kept()
        self._after_batch = after_batch  # runs once each batch's outcomes are all told
        self._observe = observe  # told each batch's figures, before its outcomes
        self._queue: queue.SimpleQueue[Queued | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Only one batch at a time, whichever thread applies it.
        self._applying = threading.Lock()
        # The writer's own connection, kept from batch to batch; dropped after any failure.
        self._connection: Connection | None = None
        self._session: Session | None = None
        self.batches = 0
        self.commands = 0
        self.retries = 0
        self._committing = False  # the running batch has begun to commit
        # The committed batch's events and how long its commit took.
        self._committed: tuple[list[tuple[Any, ...]], float] | None = None

    async def run(self, command: Command) -> Any:
        """Queue a command and wait, on this event loop, until its batch has committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submit(command, future)
        return await future

    def execute(self, command: Command, timeout: float = 60.0) -> Any:
        """Queue a command and wait, blocking this thread, until its batch has committed."""
        future: Future[Any] = Future()
        self.submit(command, future)
        return future.result(timeout)

    def submit(self, command: Command, waiter: Waiter) -> None:
        """Queue a command; ``waiter`` is told its outcome once its batch has ended."""
        self._ensure_started()
        self._queue.put((command, waiter))

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every queued command, then end the thread."""
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
            if thread.is_alive():
                log.error("the market writer did not finish in %.0f s", timeout)
                return
            self._thread = None
        self._drop_connection()
        if self.batches:
            log.info(
                "market writer stopped: %d commands in %d batches (%d retried)",
                self.commands,
                self.batches,
                self.retries,
            )

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._take_batches, name="flow-memory-market-writer", daemon=True
                )
                self._thread.start()

    def _take_batches(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stopping = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                self.apply(batch)
                if stopping:
                    return
        finally:
            self._drop_connection()

    # -- one batch ----------------------------------------------------------------------------

    def apply(self, queued: list[Queued], *, now: datetime | None = None) -> None:
        """Apply a batch and tell each command its outcome (in the calling thread: the
        writer's, or the market process's, which has no other)."""
        started = time.perf_counter()
        with self._applying:
            retries, self._committed = self.retries, None
            outcomes = self._apply(list(queued), now or self.clock.now())
            figures = self._figures(len(queued), outcomes, started, self.retries - retries)
        self._observe(figures)
        settle(outcomes)
        if self._after_batch is not None:
            self._after_batch()

    def _apply(self, live: list[Queued], now: datetime) -> list[Outcome]:
        outcomes: list[Outcome] = []
        attempt = 0
        while live:
            try:
                outcomes += self._attempt(live, outcomes, now)
                self.batches += 1
                self.commands += len(live)
                return outcomes
            except Withdrawn as withdrawn:
                command, waiter = withdrawn.item
                if not isinstance(withdrawn.error, FlowMemoryError):
                    log.error(
                        "market command %s failed; the rest of its batch runs again",
                        type(command).__name__,
                        exc_info=withdrawn.error,
                    )
                outcomes.append((waiter, False, withdrawn.error))
                live.remove(withdrawn.item)
            except Exception as error:
                attempt += 1
                # A connection the database dropped since the last batch (a restart, an idle
                # timeout) fails before anything commits: one more try takes a fresh one.
                stale = attempt == 1 and not self._committing and _disconnect(error)
                if (stale or _retryable(error)) and attempt < RETRIES:
                    self.retries += 1
                    log.info("market batch rolled back by the database (%s); retrying", error)
                    time.sleep(random.uniform(0, 0.002 * 2**attempt))
                    continue
                failure = self._failure(error)
                outcomes += [(waiter, False, failure) for _, waiter in live]
                return outcomes
        return outcomes

    def _attempt(self, live: list[Queued], outcomes: list[Outcome], now: datetime) -> list[Outcome]:
        """One transaction for the live commands; refusals are answered (and leave ``live``)
        as they come."""
        self.kept.refresh(self.generation(), now)
        session = self._kept_session()
        batch = Batch(session, self.books, self.kept, settings=self.settings, now=now)
        self._committing = False
        try:
            wanted: list[MarketKey] = []
            for item in list(live):
                try:
                    wanted.extend(item[0].markets(batch))
                except DBAPIError:
                    raise  # the database's failure, not the command's
                except FlowMemoryError as error:
                    outcomes.append((item[1], False, error))
                    live.remove(item)
                except Exception as error:
                    raise Withdrawn(item, error) from error
            batch.lock(wanted)
            answers: list[tuple[Queued, Callable[[Session], Any]]] = []
            for item in list(live):
                mark = batch.mark()
                try:
                    answers.append((item, item[0].run(batch)))
                except DBAPIError:
                    raise
                except FlowMemoryError as error:
                    if batch.mark() != mark:
                        raise Withdrawn(item, error) from error
                    outcomes.append((item[1], False, error))
                    live.remove(item)
                except Exception as error:
                    raise Withdrawn(item, error) from error
            persist(batch)
            results: list[Outcome] = []
            for item, build in answers:
                try:
                    results.append((item[1], True, build(session)))
                except DBAPIError:
                    raise
                except Exception as error:
                    raise Withdrawn(item, error) from error
            self._committing = True
            committing = time.perf_counter()
            session.commit()
            self._committed = (batch.rows.events, time.perf_counter() - committing)
        except BaseException:
            self.books.forget(list(batch.opened))
            self._drop_connection(dead=True)
            raise
        for market in batch.opened.values():
            market.state.version = market.version
        return results

    def _figures(
        self, commands: int, outcomes: list[Outcome], started: float, retries: int
    ) -> BatchFigures:
        applied = refused = 0
        for _, succeeded, value in outcomes:
            if succeeded:
                applied += 1
            elif isinstance(value, FlowMemoryError) and value.status_code < 500:
                refused += 1
        events, commit_seconds = self._committed or ([], None)
        return BatchFigures(
            commands=commands,
            applied=applied,
            refused=refused,
            failed=len(outcomes) - applied - refused,
            retries=retries,
            seconds=time.perf_counter() - started,
            commit_seconds=commit_seconds,
            **tally(events),
        )

    def _failure(self, error: Exception) -> FlowMemoryError:
        unavailable = database_unavailable(
            error,
            applied="may_have_applied" if self._committing else "not_applied",
            bind=self.factory.kw["bind"],
        )
        if unavailable is not None:
            return unavailable
        log.error("market batch failed", exc_info=error)
        return FlowMemoryError(
            "the market could not apply the request", code="internal_error", status_code=500
        )

    # -- the kept connection --------------------------------------------------------------

    def _kept_session(self) -> Session:
        session = self._session
        if session is None or self._connection is None:
            self._connection = self.factory.kw["bind"].connect()
            session = self._session = self.factory(bind=self._connection)
        return session

    def _drop_connection(self, *, dead: bool = False) -> None:
        """Close the kept session and connection; a ``dead`` one is discarded, not pooled."""
        connection, self._connection = self._connection, None
        session, self._session = self._session, None
        try:
            if session is not None:
                session.close()
            if connection is not None:
                if dead and not connection.invalidated:
                    connection.invalidate()
                connection.close()
        except Exception as error:
            if not is_database_outage(error):  # an outage is logged once, where it is met
                log.exception("closing the market writer's connection failed")


# SQLSTATEs of a transaction PostgreSQL rolled back that may succeed when run again: a
# deadlock it broke, a serialization failure, a unique key another transaction took first.
_RETRYABLE_STATES = frozenset({"40P01", "40001", "23505"})


def _retryable(error: BaseException) -> bool:
    if isinstance(error, DBAPIError):
        state = getattr(error.orig, "sqlstate", None)
        return state in _RETRYABLE_STATES
    return False


def _disconnect(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and error.connection_invalidated


def settle(outcomes: list[Outcome]) -> None:
    """Resolve the batch's waiters: thread futures at once, each event loop's futures in one
    callback on that loop (one wake-up per batch, not one per order)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        waiter = outcome[0]
        if isinstance(waiter, asyncio.Future):
            by_loop.setdefault(waiter.get_loop(), []).append(outcome)
        elif outcome[1]:
            waiter.set_result(outcome[2])
        else:
            waiter.set_exception(outcome[2])
    for loop, waiting in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, waiting)
        except RuntimeError:
            log.warning(
                "%d market answers were not delivered: their event loop closed", len(waiting)
            )


def _resolve(waiting: list[Outcome]) -> None:
    for future, succeeded, value in waiting:
        assert isinstance(future, asyncio.Future)
        if future.done():  # its caller went away
            continue
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)

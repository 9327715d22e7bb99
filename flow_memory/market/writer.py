"""Group commit for market commands: one writer thread applies queued commands in order and
commits them in batches, so many orders share one durable commit.

Each command runs inside a savepoint of the batch's transaction, so a refused command leaves
the others intact. A command's caller hears back only after the batch's commit: an
acknowledged order is a committed order.

A command run with ``deferred_only`` (placing an order) writes nothing itself: it refuses
before it changes anything, and leaves its rows to be written in bulk (``deferred``), so it
needs no savepoint. Hooks registered with ``on_command`` see ``deferring(session)`` and write
the pending rows before a command that reads or writes rows directly.

Commands of one batch share one time (``batch_now``), and may leave work to be written once
at commit (``deferred``), such as the usage records of fills: a refused command's deferred work
is dropped with its savepoint.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol, TypeAlias, TypeVar

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, sessionmaker

from flow_memory.kit.clock import Clock
from flow_memory.kit.deps import transaction
from flow_memory.kit.errors import FlowMemoryError

log = logging.getLogger("flow_memory.market.writer")

T = TypeVar("T")
Command = Callable[[Session], Any]


class Answer(Protocol):
    """Anything told a command's outcome once its batch has ended (a thread's future is one)."""

    def set_result(self, result: Any) -> object: ...

    def set_exception(self, exception: BaseException) -> object: ...


# A caller waits on a future of its own event loop (``run``); a batch applied directly (as
# tests do) may carry a thread's future, and the market process an answer to send back.
Waiter: TypeAlias = "Future[Any] | asyncio.Future[Any] | Answer"
Queued = tuple[Command, Waiter, bool]

MAX_BATCH = 256


class MarketWriter:
    """A single writer thread per process, started on first use."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self._after_batch = after_batch  # runs once each batch's outcomes are all told
        self._queue: queue.SimpleQueue[Queued | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # The writer's own database connection and session, kept from batch to batch (taking
        # a connection from the pool and giving it back, and making a session, cost more than
        # a small batch's statements); a failed batch drops them, in case the connection
        # itself failed. Each batch's session starts with nothing: closed, and no info.
        self._connection: Connection | None = None
        self._session_kept: Session | None = None
        self.batches = 0
        self.commands = 0

    async def run(self, command: Callable[[Session], T], *, deferred_only: bool = False) -> T:
        """Queue a command and wait, on this event loop, until its batch has committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.submit(command, future, deferred_only=deferred_only)
        return await future

    def submit(self, command: Command, waiter: Waiter, *, deferred_only: bool = False) -> None:
        """Queue a command; ``waiter`` is told its outcome once its batch has ended."""
        self._ensure_started()
        self._queue.put((command, waiter, deferred_only))

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every queued command, then end the thread."""
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
            if thread.is_alive():
                # Its batch still runs on the connection: leave both be (a daemon thread).
                log.error("the market writer did not finish in %.0f s", timeout)
                return
            self._thread = None
        self._drop_connection()  # batches applied by a caller's thread may have opened it
        if self.batches:
            log.info(
                "market writer stopped: %d commands in %d batches", self.commands, self.batches
            )

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="flow-memory-market-writer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        try:
            self._take_batches()
        finally:
            self._drop_connection()

    def _take_batches(self) -> None:
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

    def apply(self, batch: list[Queued]) -> None:
        """Apply a batch and tell each command its outcome: in the writer's thread, or in the
        caller's (the market process, which has no other)."""
        outcomes: list[tuple[Waiter, bool, Any]] = []
        try:
            with transaction(self._session) as session:
                session.info["market_writer"] = True
                for command, future, deferred_only in batch:
                    session.info["deferred_marks"] = _deferred_marks(session)
                    session.info["deferring"] = deferred_only
                    _start_command(session)
                    try:
                        if deferred_only:
                            outcomes.append((future, True, command(session)))
                        else:
                            with session.begin_nested():
                                outcomes.append((future, True, command(session)))
                    except Exception as error:
                        if deferred_only and not isinstance(error, FlowMemoryError):
                            raise  # no savepoint to undo it: the whole batch fails
                        _rewind_deferred(session, session.info["deferred_marks"])
                        if not isinstance(error, FlowMemoryError):
                            log.exception("market command failed")
                        # The savepoint undid the command's rows (a deferred-only command wrote
                        # none), but the state it moved in memory (a book) must follow before
                        # the next command runs.
                        _run_on_refused(session)
                        outcomes.append((future, False, error))
        except Exception as error:
            log.exception("market batch commit failed")
            outcomes = [(future, False, error) for _, future, _ in batch]
            self._drop_connection(dead=True)  # the connection itself may have failed
        else:
            self.batches += 1
            self.commands += len(batch)
        settle(outcomes)
        if self._after_batch is not None:
            self._after_batch()

    def _session(self) -> Session:
        """A session on the writer's own connection (its transaction is the batch's). The
        connection is checked first, as the pool checks one it hands out: a server may have
        dropped it since the last batch (a restart, an idle timeout)."""
        session = self._session_kept
        connection = self._connection
        if session is None or connection is None or not _alive(connection):
            self._drop_connection(dead=connection is not None)
            engine = self.factory.kw["bind"]
            self._connection = engine.connect()
            session = self._session_kept = self.factory(bind=self._connection)
        session.info.clear()
        return session

    def _drop_connection(self, *, dead: bool = False) -> None:
        """Close the kept session and connection; a ``dead`` connection is discarded, not
        given back to the pool."""
        connection, self._connection = self._connection, None
        session, self._session_kept = self._session_kept, None
        try:
            if session is not None:
                session.close()
            if connection is not None:
                if dead and not connection.invalidated:
                    connection.invalidate()
                connection.close()
        except Exception:
            log.exception("closing the market writer's connection failed")


def _alive(connection: Connection) -> bool:
    """Whether the connection still answers (a ``SELECT 1`` on its driver)."""
    if connection.invalidated or connection.closed:
        return False
    try:
        driver = connection.connection.dbapi_connection
        return driver is not None and bool(connection.dialect.do_ping(driver))
    except Exception:
        return False


def settle(outcomes: list[tuple[Any, bool, Any]]) -> None:
    """Resolve the batch's waiters: thread futures at once, each event loop's futures in one
    callback on that loop (one wake-up per batch, not one per order)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
    for outcome in outcomes:
        future = outcome[0]
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append(outcome)
        elif outcome[1]:
            future.set_result(outcome[2])
        else:
            future.set_exception(outcome[2])
    for loop, waiting in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, waiting)
        except RuntimeError:
            log.warning(
                "%d market answers were not delivered: their event loop closed", len(waiting)
            )


def _resolve(waiting: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, succeeded, value in waiting:
        if future.done():  # its caller went away
            continue
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)


def mark_books_dirty(session: Session) -> None:
    """Have every book this transaction opened rebuilt from the database after it ends."""
    session.info["books_dirty"] = True


def books_dirty(session: Session) -> bool:
    return bool(session.info.get("books_dirty"))


def writer_batch(session: Session) -> bool:
    """Whether the session is a batch of the market writer."""
    return bool(session.info.get("market_writer"))


def deferring(session: Session) -> bool:
    """Whether the running command leaves its rows to be written in bulk later."""
    return bool(session.info.get("deferring"))


def batch_now(session: Session, clock: Clock) -> datetime:
    """The time of this transaction: every command of a batch is applied at the same moment."""
    now: datetime | None = session.info.get("batch_now")
    if now is None:
        now = session.info["batch_now"] = clock.now()
    return now


def before_commit(session: Session, name: str, hook: Callable[[Session], None]) -> None:
    """Run ``hook`` once, just before the session's transaction commits (not a savepoint's)."""
    hooks: dict[str, Callable[[Session], None]] = session.info.setdefault("before_commit", {})
    hooks.setdefault(name, hook)


@event.listens_for(Session, "before_commit")  # every session's: listening per session costs more
def _run_before_commit(session: Session) -> None:
    # SQLAlchemy announces a savepoint's release as a commit too: wait for the real one.
    if "before_commit" not in session.info or session.in_nested_transaction():
        return
    hooks: dict[str, Callable[[Session], None]] = session.info.pop("before_commit")
    for hook in hooks.values():
        hook(session)


def on_refused(session: Session, name: str, hook: Callable[[Session], None]) -> None:
    """Run ``hook`` after any later command of this batch is refused and rolled back."""
    hooks: dict[str, Callable[[Session], None]] = session.info.setdefault("on_refused", {})
    hooks.setdefault(name, hook)


def on_command(session: Session, name: str, hook: Callable[[Session], None]) -> None:
    """Run ``hook`` before each later command of this batch."""
    hooks: dict[str, Callable[[Session], None]] = session.info.setdefault("on_command", {})
    hooks.setdefault(name, hook)


def _start_command(session: Session) -> None:
    for hook in session.info.get("on_command", {}).values():
        hook(session)


def _run_on_refused(session: Session) -> None:
    try:
        for hook in list(session.info.get("on_refused", {}).values()):
            hook(session)
    except Exception:
        # Rebuilding failed: let the batch fail rather than trade on a book that is not
        # what the database holds.
        mark_books_dirty(session)
        raise


def deferred(session: Session, name: str) -> list[Any]:
    """A list of work this transaction writes once, before it commits."""
    lists: dict[str, list[Any]] = session.info.setdefault("deferred", {})
    return lists.setdefault(name, [])


def keep_work_so_far(session: Session) -> bool:
    """Keep the deferred work the running command queued so far even if it is refused later,
    when it runs without a savepoint (a deferred-only command: what it wrote directly stays
    anyway). Returns whether it does: a command in a savepoint loses everything it did."""
    if not deferring(session):
        return False
    session.info["deferred_marks"] = _deferred_marks(session)
    return True


def _deferred_marks(session: Session) -> dict[str, int]:
    return {name: len(items) for name, items in session.info.get("deferred", {}).items()}


def _rewind_deferred(session: Session, marks: dict[str, int]) -> None:
    for name, items in session.info.get("deferred", {}).items():
        del items[marks.get(name, 0) :]

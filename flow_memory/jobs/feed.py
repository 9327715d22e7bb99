"""One reader of job events per server, shared by every stream it serves.

Each stream used to read ``job_events`` itself every time a commit woke it: with 20 streams
open, 20 queries (and 20 renderings of each event) per commit, most of the server's time under
load. The feed reads once per wake-up, renders each event once, keeps the latest ``KEEP``
events in memory and wakes its followers, which take what they have not sent from there. A
stream that starts (or falls) further back than the feed keeps reads its way forward from the
database, a page at a time, then follows the feed.

The feed reads as streams did (``repository.events_after``: settled events only, in delivery
order), so what it keeps is every event after ``floor`` up to ``head``, none skipped: a
follower at any position from ``floor`` on is served from memory exactly as the database would
serve it. Everything here runs on the server's event loop, the reads in its thread pool."""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from flow_memory.jobs import events, repository
from flow_memory.jobs.models import JobEvent
from flow_memory.jobs.repository import Position
from flow_memory.jobs.signal import JobSignal
from flow_memory.kit import jsonenc
from flow_memory.kit.deps import read_session
from flow_memory.kit.http import success_body

PAGE = 200  # events read at a time
KEEP = 4096  # events kept for followers; a follower further back reads the database
SETTLE_SECONDS = 0.05  # how soon to look again while an event waits to settle
IDLE_SECONDS = 15.0  # how long the reader waits for a wake-up before it looks anyway


@dataclass(frozen=True)
class FedEvent:
    """An event as streams send it: its position, what followers filter on, and its bytes."""

    position: Position
    kind: str
    model_hint: str | None
    data: bytes


def server_sent(event: JobEvent) -> bytes:
    data = jsonenc.render(success_body(events.event_read(event)))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.event_id, event.kind.encode(), data)


def read_page(factory: Callable[[], Session], position: Position) -> tuple[list[FedEvent], bool]:
    """The next page of settled events after ``position``, rendered (in the session: its rows
    expire with it), and whether an unsettled one follows."""
    with read_session(factory) as session:
        found, pending = repository.events_after(session, position, limit=PAGE)
        fed = [
            FedEvent((e.tx, e.event_id), e.kind, model_hint, server_sent(e))
            for e, model_hint in found
        ]
        return fed, pending


def _last_position(factory: Callable[[], Session]) -> Position:
    with read_session(factory) as session:
        return repository.last_position(session)


class Follower:
    """A stream following the feed: woken when events arrive, told if the feed failed or the
    server is stopping (``ended``)."""

    __slots__ = ("ended", "failure", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.failure: Exception | None = None
        self.ended = False


class JobFeed:
    """The server's reader of job events; streams ``join`` it and take events with ``after``."""

    def __init__(self, factory: Callable[[], Session], signal: JobSignal) -> None:
        self._factory = factory
        self._signal = signal
        self._kept: list[FedEvent] = []
        self._positions: list[Position] = []
        self._floor: Position | None = None  # every event after it up to the head is kept
        self._head: Position | None = None  # the last event read
        self._followers: set[Follower] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ending = False  # the server is stopping: streams that join now end at once
        self.reads = 0  # database reads the feed made (figures for benchmarks)

    def join(self) -> Follower:
        """Follow the feed from the running loop; ``leave`` when done."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests start one per client): start afresh
            self._reset()
            self._loop = loop
        follower = Follower()
        if self._ending:  # the server is stopping: the stream ends at once, no reader starts
            follower.ended = True
            return follower
        self._followers.add(follower)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return follower

    def end_streams(self) -> None:
        """The server is stopping: every following stream ends after what it has sent (its
        client reconnects where it resumes, here once the server is back or at another).
        Callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def end() -> None:
            self._ending = True
            for follower in self._followers:
                follower.ended = True
                follower.woken.set()

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: no streams left
            loop.call_soon_threadsafe(end)

    def leave(self, follower: Follower) -> None:
        self._followers.discard(follower)
        if not self._followers and self._wake is not None:
            self._wake.set()  # the reader ends

    def after(self, position: Position) -> list[FedEvent] | None:
        """The kept events after ``position``; None when events after it may be missing from
        what the feed keeps (it is further back: read the database)."""
        if self._floor is None:
            return []  # the feed has not started: it wakes its followers when it has
        if position < self._floor:
            return None
        return self._kept[bisect_right(self._positions, position) :]

    def _reset(self) -> None:
        self._ending = False
        self._kept, self._positions = [], []
        self._floor = self._head = None
        self._followers = set()
        self._task = None

    async def _run(self) -> None:
        wake = self._wake = self._signal.subscribe()
        try:
            if self._head is None:
                self._head = self._floor = await run_in_threadpool(_last_position, self._factory)
                self._notify()
            while self._followers:
                wake.clear()
                found, pending = await run_in_threadpool(read_page, self._factory, self._head)
                self.reads += 1
                if found:
                    self._keep(found)
                    self._notify()
                if len(found) == PAGE:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), SETTLE_SECONDS if pending else IDLE_SECONDS)
        except Exception as error:
            # Every follower ends with the error; the next stream starts the reader again.
            for follower in self._followers:
                follower.failure = error
            self._notify()
            self._followers = set()
            self._kept, self._positions = [], []
            self._floor = self._head = None
        finally:
            self._signal.unsubscribe(wake)
            self._wake = None
            if not self._followers:
                # With nobody following, what is kept would go stale: start from now next time.
                self._kept, self._positions = [], []
                self._floor = self._head = None

    def _keep(self, found: list[FedEvent]) -> None:
        self._kept.extend(found)
        self._positions.extend(e.position for e in found)
        self._head = found[-1].position
        if len(self._kept) > 2 * KEEP:
            dropped = len(self._kept) - KEEP
            self._floor = self._positions[dropped - 1]
            del self._kept[:dropped], self._positions[:dropped]

    def _notify(self) -> None:
        for follower in self._followers:
            follower.woken.set()

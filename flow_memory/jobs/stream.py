"""GET /inference/jobs/stream: the jobs' events as server-sent events, resumable.

Each event's ``id`` is its ``event_id``; a client that reconnects with ``Last-Event-ID`` (or
``?after=``) gets every event after that one, none twice and none skipped, across servers: the
stream delivers only settled events (``repository.events_after``) in (transaction, event id)
order. A stream that follows takes its events from the server's one reader (``feed.JobFeed``),
woken when this server commits a job change and, on PostgreSQL, when another server's is
announced; it sends a comment line every ``KEEPALIVE_SECONDS`` while nothing happens. A stream
may ask for some kinds of events only, or the events of jobs with some model hints only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from flow_memory.jobs import events, repository
from flow_memory.jobs.feed import PAGE, SETTLE_SECONDS, FedEvent, JobFeed, read_page
from flow_memory.jobs.repository import BEFORE_EVERYTHING, Position
from flow_memory.kit import jsonenc
from flow_memory.kit.errors import FlowMemoryError, Invalid
from flow_memory.kit.http import error_body

log = logging.getLogger("flow_memory.jobs.stream")

KEEPALIVE_SECONDS = 15.0
EVENT_KINDS = events.KINDS
RETRY_MILLISECONDS = 2000
HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def start_position(session: Session, *, last_event_id: str | None, after: int | None) -> Position:
    """Where a stream starts: after ``Last-Event-ID`` (a reconnect), else after ``after``
    (0: the first event), else after the last settled event (only what happens next)."""
    if last_event_id is not None:
        text = last_event_id.strip()
        if not text.isdigit() or len(text) > 19:
            raise Invalid(
                "Last-Event-ID is not an event id of this stream",
                field="last-event-id",
                code="invalid_event_id",
                hint="send back the id of the last event received, unchanged",
            )
        return _position(session, int(text), field="last-event-id")
    if after is not None:
        return BEFORE_EVERYTHING if after == 0 else _position(session, after, field="after")
    return repository.last_position(session)


def _position(session: Session, event_id: int, *, field: str) -> Position:
    found = repository.position_of(session, event_id)
    if found is None:
        raise Invalid(
            "no job event has this id",
            field=field,
            code="unknown_event_id",
            hint="reconnect without it to follow from now, or with after=0 to replay every "
            "job event",
        )
    return found


def known_kinds(kinds: list[str] | None) -> list[str] | None:
    """The kinds a stream asks for, each one a kind of job event (422 otherwise)."""
    for kind in kinds or ():
        if kind not in EVENT_KINDS:
            raise Invalid(
                "kind is not a kind of job event",
                field="kind",
                code="unknown_event_kind",
                hint="one of " + ", ".join(EVENT_KINDS),
            )
    return kinds


def filter_of(
    kinds: Collection[str] | None, model_hints: Collection[str] | None
) -> Callable[[FedEvent], bool]:
    """Which events a stream sends: of the kinds asked and of jobs with the model hints asked
    (either left out: any)."""
    kind_set = frozenset(kinds or ())
    hint_set = frozenset(model_hints or ())

    def accepts(event: FedEvent) -> bool:
        return (not kind_set or event.kind in kind_set) and (
            not hint_set or event.model_hint in hint_set
        )

    return accepts


async def job_events(
    feed: JobFeed,
    factory: Callable[[], Session],
    position: Position,
    *,
    follow: bool,
    accepts: Callable[[FedEvent], bool],
) -> AsyncIterator[bytes]:
    """The stream's bytes from ``position`` on; without ``follow`` it ends once it has sent
    what is settled now. A follower takes events from the server's feed, and reads the
    database itself only while it is further back than the feed keeps."""
    follower = feed.join() if follow else None
    try:
        yield b"retry: %d\n\n" % RETRY_MILLISECONDS
        while True:
            if follower is not None:
                follower.woken.clear()
            kept = None if follower is None else feed.after(position)
            pending = False
            if kept is None:
                try:
                    found, pending = await run_in_threadpool(read_page, factory, position)
                except Exception as error:
                    yield _error_event(error)
                    return
            else:
                found = kept
            for event in found:
                if accepts(event):
                    yield event.data
            if found:
                position = found[-1].position
            if kept is None and len(found) == PAGE:
                continue
            if follower is None:
                return
            if follower.failure is not None:
                yield _error_event(follower.failure)
                return
            if follower.ended:
                return  # the server is stopping: the client reconnects from what it has
            if kept:
                continue  # the feed may have more by now
            try:
                await asyncio.wait_for(
                    follower.woken.wait(), SETTLE_SECONDS if pending else KEEPALIVE_SECONDS
                )
            except TimeoutError:
                if not pending:
                    yield b": keep-alive\n\n"
    finally:
        if follower is not None:
            feed.leave(follower)


def _error_event(error: Exception) -> bytes:
    """The last event of a stream cut by a failure: the error body, as every route answers."""
    if isinstance(error, FlowMemoryError):
        body = error_body(error.code, error.message, error.field, error.hint)
    else:
        log.error("the job stream failed: %s", type(error).__name__)
        body = error_body("internal_error", "the server could not continue the stream")
    return b"event: error\ndata: %s\n\n" % jsonenc.render(body)

"""GET /inference/jobs/stream: the jobs' events as server-sent events, resumable.

Each event's ``id`` is its ``event_id``; a client that reconnects with ``Last-Event-ID`` (or
``?after=``) gets every event after that one, none twice and none skipped, across servers: the
stream delivers only settled events (``repository.events_after``) in (transaction, event id)
order. It waits on the job signal, woken when this server commits a job change and, on
PostgreSQL, when another server's is announced; it looks again soon while an event waits to
settle, and sends a comment line every ``KEEPALIVE_SECONDS`` while nothing happens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from flow_memory.jobs import events, repository
from flow_memory.jobs.models import JobEvent
from flow_memory.jobs.repository import BEFORE_EVERYTHING, Position
from flow_memory.jobs.signal import JobSignal
from flow_memory.kit import jsonenc
from flow_memory.kit.deps import read_session
from flow_memory.kit.errors import FlowMemoryError, Invalid
from flow_memory.kit.http import error_body, success_body

log = logging.getLogger("flow_memory.jobs.stream")

KEEPALIVE_SECONDS = 15.0
SETTLE_SECONDS = 0.05  # how soon to look again while an event waits to settle
PAGE = 200
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


def server_sent(event: JobEvent) -> bytes:
    data = jsonenc.render(success_body(events.event_read(event)))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.event_id, event.kind.encode(), data)


def _read(
    factory: Callable[[], Session], position: Position
) -> tuple[list[tuple[Position, bytes]], bool]:
    """The next page of settled events, rendered (in the session: its rows expire with it)."""
    with read_session(factory) as session:
        found, pending = repository.events_after(session, position, limit=PAGE)
        return [((e.tx, e.event_id), server_sent(e)) for e in found], pending


async def job_events(
    factory: Callable[[], Session], signal: JobSignal, position: Position, *, follow: bool
) -> AsyncIterator[bytes]:
    """The stream's bytes from ``position`` on; without ``follow`` it ends once it has sent
    what is settled now."""
    wake = signal.subscribe()
    try:
        yield b"retry: %d\n\n" % RETRY_MILLISECONDS
        while True:
            wake.clear()
            try:
                found, pending = await run_in_threadpool(_read, factory, position)
            except Exception as error:
                yield _error_event(error)
                return
            for _, data in found:
                yield data
            if found:
                position = found[-1][0]
            if len(found) == PAGE:
                continue
            if not follow:
                return
            try:
                await asyncio.wait_for(
                    wake.wait(), SETTLE_SECONDS if pending else KEEPALIVE_SECONDS
                )
            except TimeoutError:
                if not pending:
                    yield b": keep-alive\n\n"
    finally:
        signal.unsubscribe(wake)


def _error_event(error: Exception) -> bytes:
    """The last event of a stream cut by a failure: the error body, as every route answers."""
    if isinstance(error, FlowMemoryError):
        body = error_body(error.code, error.message, error.field, error.hint)
    else:
        log.error("the job stream failed: %s", type(error).__name__)
        body = error_body("internal_error", "the server could not continue the stream")
    return b"event: error\ndata: %s\n\n" % jsonenc.render(body)

"""All SQL of the job board."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    Text,
    cast,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from flow_memory.jobs import fresh
from flow_memory.jobs.domain import AWARDED, OPEN
from flow_memory.jobs.models import Job, JobBid, JobEvent, JobResult
from flow_memory.kit.db import canonical_json
from flow_memory.kit.driver import DriverQuery, bulk_insert

# A position in the order events are delivered: (transaction, event id).
Position = tuple[int, int]
BEFORE_EVERYTHING: Position = (-1, 0)


def job(session: Session, job_id: str, *, for_update: bool = False) -> Job | None:
    """A job; ``for_update`` waits for and takes its row lock (every change to a job or its
    bids holds it, so they apply one at a time). On SQLite, where a writing transaction is the
    only writer, a job the transaction holds already is as it is in the database and is not
    read again: the job writer's commands in one batch often change the same job."""
    if for_update and session.get_bind().dialect.name == "sqlite":
        return fresh.take(session, job_id) or session.get(Job, job_id)
    query = select(Job).where(Job.job_id == job_id).execution_options(populate_existing=True)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


_JOBS: Table = Job.__table__  # type: ignore[assignment]
_INSERT_JOB = bulk_insert(_JOBS)


def insert_job(session: Session, job: Job) -> None:
    """Write a new job on the driver and hold it in the session as if read back (no flush,
    no select): every post writes one. Columns left unset are written empty, or with their
    default, which the session then reads when asked."""
    state = inspect(job)
    for column in _JOBS.columns:
        if column.key not in state.dict and column.default is None:
            setattr(job, column.key, None)
    values = {key: value for key, value in state.dict.items() if key in _JOBS.columns}
    _INSERT_JOB.execute(session.connection(), [values])
    make_transient_to_detached(job)
    session.add(job)


def claim(session: Session, job_id: str, *, status: str, now: datetime) -> Job | None:
    """The job if it is still ``status`` and due at ``now``, locked; None when it is not, or
    when another transaction holds it (PostgreSQL skips it rather than wait: that server is
    acting on it). On SQLite the write lock every transaction takes serialises claims."""
    due = Job.bids_close_at if status == OPEN else Job.result_due_at
    query = (
        select(Job)
        .where(Job.job_id == job_id, Job.status == status, due <= now)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).first()


def due_jobs(session: Session, now: datetime, *, limit: int) -> list[tuple[str, str]]:
    """(job id, status) of jobs whose window has closed or whose result is overdue, soonest
    first; jobs due at the same moment by the time they were posted, then by id: one order on
    every database (it decides who wins when a bidder's capacity allows only one of them)."""
    closing = select(Job.job_id, Job.status).where(Job.status == OPEN, Job.bids_close_at <= now)
    overdue = select(Job.job_id, Job.status).where(Job.status == AWARDED, Job.result_due_at <= now)
    posted = (Job.created_at, Job.job_id)
    found = list(session.execute(closing.order_by(Job.bids_close_at, *posted).limit(limit)))
    found += session.execute(overdue.order_by(Job.result_due_at, *posted).limit(limit))
    return [(job_id, status) for job_id, status in found]


def next_due(session: Session) -> datetime | None:
    """The earliest moment some job's window closes or some awarded job's result is due."""
    closing = session.scalar(select(func.min(Job.bids_close_at)).where(Job.status == OPEN))
    overdue = session.scalar(select(func.min(Job.result_due_at)).where(Job.status == AWARDED))
    moments = [m for m in (closing, overdue) if m is not None]
    return min(moments) if moments else None


def page_jobs(
    session: Session,
    *,
    filters: Mapping[str, Any],
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Job]:
    """Jobs newest first, matching ``filters`` (status, model_hint, requester_id, price_min,
    price_max: None means any), after the cursor's row."""
    query = select(Job)
    for name in ("status", "model_hint", "requester_id"):
        if filters.get(name) is not None:
            query = query.where(getattr(Job, name) == filters[name])
    price_min: Decimal | None = filters.get("price_min")
    price_max: Decimal | None = filters.get("price_max")
    if price_min is not None:
        query = query.where(Job.max_price >= price_min)
    if price_max is not None:
        query = query.where(Job.max_price <= price_max)
    if before is not None:
        query = query.where(tuple_(Job.created_at, Job.job_id) < tuple_(*before))
    return list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.job_id.desc()).limit(limit))
    )


# -- bids -------------------------------------------------------------------------------------


def bids_of(session: Session, job_id: str) -> list[JobBid]:
    if fresh.has_no_bids(session, job_id):  # the writer's job just posted, unchanged since
        return []
    query = (
        select(JobBid)
        .where(JobBid.job_id == job_id)
        .order_by(JobBid.placed_at, JobBid.bid_id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def bid(session: Session, bid_id: str) -> JobBid | None:
    query = select(JobBid).where(JobBid.bid_id == bid_id)
    return session.scalars(query.execution_options(populate_existing=True)).first()


def bids_by_id(session: Session, bid_ids: Iterable[str]) -> dict[str, JobBid]:
    ids = sorted(set(bid_ids))
    if not ids:
        return {}
    return {b.bid_id: b for b in session.scalars(select(JobBid).where(JobBid.bid_id.in_(ids)))}


def bid_counts(session: Session, job_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    query = (
        select(JobBid.job_id, func.count())
        .where(JobBid.job_id.in_(ids), JobBid.status != "withdrawn")
        .group_by(JobBid.job_id)
    )
    return {job_id: count for job_id, count in session.execute(query)}


# -- results ----------------------------------------------------------------------------------


def result(session: Session, result_hash: str) -> JobResult | None:
    return session.get(JobResult, result_hash)


def result_of_job(session: Session, job_id: str) -> JobResult | None:
    return session.scalars(select(JobResult).where(JobResult.job_id == job_id)).first()


# -- events -----------------------------------------------------------------------------------


def _settled(session: Session) -> ColumnElement[bool]:
    """Whether an event is settled: every later reader sees it as it is. On PostgreSQL, events
    written by transactions older than the oldest one still running (whatever commits later
    has a later transaction id); on SQLite, whose writers commit one at a time, every event."""
    if session.get_bind().dialect.name != "postgresql":
        return literal(True)
    horizon = cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)
    return JobEvent.tx < horizon


_EVENTS: Table = JobEvent.__table__  # type: ignore[assignment]
# One statement per dialect. An event's tx: on PostgreSQL the writing transaction's id (as the
# row is inserted); 0 on SQLite, whose writers commit one at a time, in event id order.
_INSERT_EVENT = {
    dialect: DriverQuery(insert(_EVENTS).values(tx=tx).returning(_EVENTS.c.event_id))
    for dialect, tx in (
        ("sqlite", literal_column("0")),
        ("postgresql", cast(cast(func.pg_current_xact_id(), Text), BigInteger)),
    )
}


def insert_event(
    session: Session, *, job_id: str, kind: str, payload: Mapping[str, Any], now: datetime
) -> JobEvent:
    """Write one event; it as stored (its id, its canonical payload), built from what was
    written so an answer that shows it need not read it again. Run on the driver: every
    change to a job writes one or more."""
    dialect = session.get_bind().dialect.name
    values = {"job_id": job_id, "kind": kind, "payload": payload, "created_at": now}
    [(event_id,)] = _INSERT_EVENT[dialect].rows(session.connection(), values)
    return JobEvent(
        event_id=event_id, job_id=job_id, kind=kind, payload=canonical_json(payload), created_at=now
    )


def events_of_job(session: Session, job_id: str, *, limit: int) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.event_id)
    return list(session.scalars(query.limit(limit)))


def events_after(
    session: Session, position: Position, *, limit: int
) -> tuple[list[tuple[JobEvent, str | None]], bool]:
    """Settled events after ``position`` in delivery order, each with its job's model hint
    (None for an event whose job is gone), and whether an unsettled one follows them
    (committed, but a transaction older than its own is still running: a reader looks again
    soon, as no announcement may come when that transaction ends)."""
    query = (
        select(JobEvent, Job.model_hint, _settled(session))
        .outerjoin(Job, Job.job_id == JobEvent.job_id)
        .where(tuple_(JobEvent.tx, JobEvent.event_id) > tuple_(*position))
        .order_by(JobEvent.tx, JobEvent.event_id)
        .limit(limit)
    )
    events: list[tuple[JobEvent, str | None]] = []
    for event, model_hint, settled in session.execute(query):
        if not settled:
            return events, True
        events.append((event, model_hint))
    return events, False


def position_of(session: Session, event_id: int) -> Position | None:
    """Where the event ``event_id`` stands in delivery order (None: no such event)."""
    found = session.scalar(select(JobEvent.tx).where(JobEvent.event_id == event_id))
    return None if found is None else (found, event_id)


def last_position(session: Session) -> Position:
    """The position of the last settled event: a stream that starts there gets what follows."""
    query = (
        select(JobEvent.tx, JobEvent.event_id)
        .where(_settled(session))
        .order_by(JobEvent.tx.desc(), JobEvent.event_id.desc())
        .limit(1)
    )
    row = session.execute(query).first()
    return BEFORE_EVERYTHING if row is None else (row[0], row[1])

"""The events of jobs: every transition and every bid placed, revised or withdrawn.

Each event is a ``job_events`` row (what the stream and a job's timeline read) and a copy in the
market feed (``market_feed_events``, kinds ``job.*``), written in the transaction of the change;
on PostgreSQL the same transaction announces it on a channel of its own, ``JOBS_CHANNEL``, so
every server's streams and timers wake when it commits. Payloads say what a bidder may know:
never a prompt, never a bid's price before the award."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.jobs import fresh, repository
from flow_memory.jobs.models import Job, JobEvent
from flow_memory.kit.broadcast import announce
from flow_memory.kit.clock import isoformat_z
from flow_memory.kit.money import plain
from flow_memory.market.repository import add_event as add_feed_event

JOBS_CHANNEL = "flow_memory_jobs"
DUE_KEY = "jobs_due"  # session.info: the earliest due moment of the transaction's jobs
JOBS_TOPIC = "job"

POSTED = "job.posted"
BID_PLACED = "job.bid_placed"
BID_REVISED = "job.bid_revised"
BID_WITHDRAWN = "job.bid_withdrawn"
AWARDED = "job.awarded"
NO_SHOW = "job.no_show"
SUBMITTED = "job.submitted"
COMPLETED = "job.completed"
CANCELLED = "job.cancelled"
EXPIRED_UNAWARDED = "job.expired_unawarded"
EXPIRED_NO_SHOW = "job.expired_no_show"
# Judging a result (flow_memory.jobs.judging).
VALIDATION_OPENED = "job.validation_opened"
VALIDATORS_DRAWN = "job.validators_drawn"
VERDICT = "job.verdict"
REJECTED = "job.rejected"
DISPUTED = "job.disputed"
REJECTION_FINAL = "job.rejection_final"
# A judging event's moment its judges' (or the disputing winner's) time runs out.
_DUE_FIELDS = ("due_at", "dispute_until")
KINDS = (
    POSTED,
    BID_PLACED,
    BID_REVISED,
    BID_WITHDRAWN,
    AWARDED,
    NO_SHOW,
    SUBMITTED,
    COMPLETED,
    CANCELLED,
    EXPIRED_UNAWARDED,
    EXPIRED_NO_SHOW,
    VALIDATION_OPENED,
    VALIDATORS_DRAWN,
    VERDICT,
    REJECTED,
    DISPUTED,
    REJECTION_FINAL,
)


def record(
    session: Session, job: Job, kind: str, payload: Mapping[str, Any], *, now: datetime
) -> JobEvent:
    """Write one event of ``job`` (with its status after the change) in the session's
    transaction, copy it to the market feed and announce it to the other servers; the event
    as stored. The job's own changes need not be flushed first: they commit together."""
    if kind == POSTED:
        fresh.posted(session, job)
    else:
        fresh.changed(session, job.job_id)
    stored = _storable({"job_id": job.job_id, "status": job.status, **payload})
    event = repository.insert_event(session, job_id=job.job_id, kind=kind, payload=stored, now=now)
    add_feed_event(
        session, kind=kind, model=job.model_hint, subject_id=job.job_id, payload=stored, now=now
    )
    announce(session, JOBS_TOPIC, job.job_id, channel=JOBS_CHANNEL)
    if kind == POSTED:
        _note_due(session, job.bids_close_at)
    elif kind == AWARDED and job.result_due_at is not None:
        _note_due(session, job.result_due_at)
    else:  # judging: the timer acts when its judges' or a dispute's time runs out
        for field in _DUE_FIELDS:
            due = payload.get(field)
            if isinstance(due, datetime):
                _note_due(session, due)
    return event


def _note_due(session: Session, moment: datetime) -> None:
    """Remember the earliest moment a job of this transaction falls due, for the timer."""
    earlier = session.info.get(DUE_KEY)
    if earlier is None or moment < earlier:
        session.info[DUE_KEY] = moment


def due_of(session: Session) -> datetime | None:
    """The earliest moment a job the session's transaction posted or awarded falls due."""
    due: datetime | None = session.info.get(DUE_KEY)
    return due


def event_read(event: JobEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "kind": event.kind,
        "job_id": event.job_id,
        "payload": payload_read(event.payload),
        "created_at": event.created_at,
    }


def payload_read(value: Any, key: str = "") -> Any:
    """A stored payload as answered: amounts (stored as exact text) as JSON numbers."""
    if isinstance(value, dict):
        return {k: payload_read(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [payload_read(v, key) for v in value]
    if isinstance(value, str) and key.endswith(("price", "escrow", "paid", "score")):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


def _storable(value: Any) -> Any:
    """Amounts as exact text and times as RFC 3339 text: JSON keeps both as they are."""
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, datetime):
        return isoformat_z(value)
    return value

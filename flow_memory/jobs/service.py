"""Jobs: post one (its escrow held), find and list them, and the requester's early award and
cancel. Bids are in ``bidding``, results in ``archive``, the timer's work in ``awards``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.jobs import awards, domain, escrow, events, known_answers, repository, views
from flow_memory.jobs.models import Job, JobBid, JobEvent
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import JobCreate
from flow_memory.jobs.standing import StandingReads
from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.cursors import decode_cursor, encode_cursor
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Invalid, NotFound
from flow_memory.kit.ids import new_id


@dataclass(frozen=True)
class Posted:
    """A job just posted and its one event so far (its timeline, with no bids yet)."""

    job: Job
    event: JobEvent


def post_job(
    session: Session, *, principal: Principal, body: JobCreate, now: datetime, rules: JobRules
) -> Posted:
    """Post a job for its requester (the key's owner or an identity it acts as), holding its
    escrow on the requester's paying account."""
    ensure_may_act_as(principal, body.requester_id, field="requester_id")
    requester = body.requester_id or principal.owner_id
    if body.expires_at is not None and body.expires_at <= now:
        raise Invalid(
            "expires_at must be in the future",
            field="expires_at",
            code="expires_in_past",
            hint="send a later time, or leave expires_at out to expire when the window closes",
        )
    window_end = now + timedelta(seconds=body.bid_window_seconds)
    expires_at = body.expires_at or window_end
    bids_close_at = min(window_end, expires_at)
    asked = body.request
    if asked.prompt is not None:
        request: dict[str, Any] = {"prompt": asked.prompt}
        characters, messages = len(asked.prompt), 0
    else:
        assert asked.messages is not None
        request = {"messages": [m.model_dump() for m in asked.messages]}
        characters = sum(len(m.content) for m in asked.messages)
        messages = len(asked.messages)
    validation = body.validation
    amount = domain.escrow_amount(
        body.economics.max_price, validation.validators, validation.validator_fee
    )
    job_id = new_id("job")
    payer = escrow.paying_holder(session, requester)
    hold_id = escrow.take(
        session,
        job_id=job_id,
        payer_id=payer,
        amount=amount,
        actor_id=principal.owner_id,
        expires_at=domain.escrow_expiry(
            bids_close_at, body.deadline_seconds, rules.judging_seconds
        ),
        now=now,
    )
    job = Job(
        job_id=job_id,
        requester_id=requester,
        payer_id=payer,
        posted_by=principal.owner_id,
        status=domain.OPEN,
        model_hint=asked.model_hint,
        quality_threshold=asked.quality_threshold,
        max_tokens=asked.max_tokens,
        request=request,
        input_characters=characters,
        message_count=messages,
        max_price=body.economics.max_price,
        payment_mode=body.economics.payment_mode,
        visibility=body.visibility,
        validation={
            "mode": validation.mode,
            "validators": validation.validators,
            "validator_fee": str(validation.validator_fee),
        },
        escrow=amount,
        hold_id=hold_id,
        bid_window_seconds=body.bid_window_seconds,
        deadline_seconds=body.deadline_seconds,
        min_reputation=body.min_reputation,
        reaward_on_no_show=body.reaward_on_no_show,
        bids_close_at=bids_close_at,
        expires_at=expires_at,
        winning_bid_id=None,
        award_count=0,
        created_at=now,
        updated_at=now,
    )
    repository.insert_job(session, job)
    posted = views.request_read(job, reveal=False)
    event = events.record(
        session,
        job,
        events.POSTED,
        {
            "requester_id": job.requester_id,
            "model_hint": job.model_hint,
            "max_tokens": job.max_tokens,
            "quality_threshold": job.quality_threshold,
            "size": posted["size"],
            "max_price": job.max_price,
            "payment_mode": job.payment_mode,
            "visibility": job.visibility,
            "bids_close_at": job.bids_close_at,
            "deadline_seconds": job.deadline_seconds,
            "min_reputation": job.min_reputation,
        },
        now=now,
    )
    # A known-answer job now and then, as the known_answer_share setting asks.
    known_answers.follow_post(session, job=job, now=now, rules=rules)
    return Posted(job, event)


def find(session: Session, job_id: str, *, for_update: bool = False) -> Job:
    job = repository.job(session, job_id, for_update=for_update)
    if job is None:
        raise NotFound("job not found", field="job_id")
    return job


def requesters_job(session: Session, principal: Principal, job_id: str) -> Job:
    """The job, locked, when the caller acts for its requester; anyone else's is absent."""
    job = find(session, job_id, for_update=True)
    if not views.acts_for_requester(principal, job):
        raise NotFound("job not found", field="job_id")
    return job


def ensure_open(job: Job, *, now: datetime) -> None:
    """Refuse a change that needs the bid window open (409)."""
    if job.status != domain.OPEN:
        raise Conflict(
            f"the job is {job.status}, no longer open",
            code="job_not_open",
            field="job_id",
            hint="GET /inference/jobs/{job_id} shows where it stands",
        )
    if now >= job.bids_close_at:
        raise Conflict(
            "the job's bid window has closed",
            code="bid_window_closed",
            field="job_id",
            hint="the award follows at once, by score",
        )


def cancel(
    session: Session,
    *,
    principal: Principal,
    job_id: str,
    reason: str,
    now: datetime,
    rules: JobRules,
) -> Job:
    """The requester withdraws an open job: every live bid loses, the escrow is released."""
    job = requesters_job(session, principal, job_id)
    ensure_open(job, now=now)
    awards.end_unawarded(
        session, job, status=domain.CANCELLED, now=now, rules=rules, reason=reason or None
    )
    return job


def award_early(
    session: Session,
    *,
    principal: Principal,
    job_id: str,
    bid_id: str | None,
    now: datetime,
    rules: JobRules,
) -> JobBid:
    """The requester awards before the window closes: the bid it names, or the best score."""
    job = requesters_job(session, principal, job_id)
    ensure_open(job, now=now)
    reads = StandingReads(session)  # the named bid's standing, read once for both checks
    if bid_id is not None:
        chosen = repository.bid(session, bid_id)
        if chosen is None or chosen.job_id != job.job_id:
            raise NotFound("bid not found on this job", field="bid_id")
        if chosen.status != domain.LIVE:
            raise Conflict(f"the bid is {chosen.status}", code="bid_not_live", field="bid_id")
        why = awards.reason_against(session, job, chosen, rules=rules, reads=reads)
        if why is not None:
            raise Conflict(
                f"the bid is not eligible: {why.replace('_', ' ')}",
                code="bid_not_eligible",
                field="bid_id",
                hint="award an eligible bid, or leave bid_id out to award the best score",
            )
    winner = awards.award(session, job, now=now, rules=rules, chosen=bid_id, reads=reads)
    if winner is None:
        raise Conflict(
            "no live bid is eligible for this job",
            code="no_eligible_bid",
            field="job_id",
            hint="wait for bids, or cancel the job",
        )
    return winner


def page(
    session: Session, *, filters: dict[str, Any], limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """Jobs newest first, ``limit`` at a time, and the next page's cursor."""
    before = None if cursor is None else decode_cursor(cursor)
    rows = repository.page_jobs(session, filters=filters, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].job_id) if more and rows else None

"""What callers read of jobs and bids: the projections each may see.

A sealed job's prompt is shown to no one here (its winner reads it at /assignment); an open
job's to everyone with inference:read. Before the award a bidder sees only its own bids, the
requester every bid; once the job has been awarded everyone sees every bid with its price,
status and reason."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.jobs import domain, events, repository
from flow_memory.jobs.models import Job, JobBid, JobEvent
from flow_memory.kit.deps import Principal
from flow_memory.kit.scopes import AUDIT

TIMELINE_LIMIT = 500


def acts_for_requester(principal: Principal, job: Job) -> bool:
    return principal.may_act_as(job.requester_id)


def sees_every_bid(principal: Principal, job: Job) -> bool:
    """The requester, admins and auditors always; everyone once the job has been awarded."""
    return (
        job.award_count > 0
        or acts_for_requester(principal, job)
        or principal.is_admin
        or AUDIT in principal.scopes
    )


def request_read(job: Job, *, reveal: bool) -> dict[str, Any]:
    """The job's request: its size always, its prompt or messages when ``reveal``."""
    input_tokens = domain.estimated_input_tokens(job.input_characters)
    return {
        "model_hint": job.model_hint,
        "max_tokens": job.max_tokens,
        "quality_threshold": job.quality_threshold,
        "size": {
            "input_characters": job.input_characters,
            "messages": job.message_count,
            "estimated_input_tokens": input_tokens,
            "max_tokens": job.max_tokens,
            "estimated_tokens": input_tokens + job.max_tokens,
        },
        "prompt": job.request.get("prompt") if reveal else None,
        "messages": job.request.get("messages") if reveal else None,
    }


def job_read(job: Job, *, bid_count: int, winner: JobBid | None) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "requester_id": job.requester_id,
        "status": job.status,
        "visibility": job.visibility,
        "request": request_read(job, reveal=job.visibility == "open"),
        "economics": {
            "max_price": job.max_price,
            "payment_mode": job.payment_mode,
            "currency": "USD_CREDIT",
            "escrow": job.escrow,
            "paid": job.paid,
        },
        "validation": {
            "mode": job.validation["mode"],
            "validators": job.validation["validators"],
            "validator_fee": Decimal(job.validation["validator_fee"]),
        },
        "bid_window_seconds": job.bid_window_seconds,
        "deadline_seconds": job.deadline_seconds,
        "bids_close_at": job.bids_close_at,
        "expires_at": job.expires_at,
        "min_reputation": job.min_reputation,
        "reaward_on_no_show": job.reaward_on_no_show,
        "bid_count": bid_count,
        "award": None if winner is None else award_read(job, winner),
        "result_hash": job.result_hash,
        "cancel_reason": job.cancel_reason,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "ended_at": job.ended_at,
    }


def award_read(job: Job, winner: JobBid) -> dict[str, Any]:
    assert job.awarded_at is not None and job.result_due_at is not None
    return {
        "bid_id": winner.bid_id,
        "bidder_id": winner.bidder_id,
        "provider_id": winner.provider_id,
        "model": winner.model,
        "price": winner.price,
        "awarded_at": job.awarded_at,
        "result_due_at": job.result_due_at,
        "award_count": job.award_count,
    }


def bid_read(bid: JobBid) -> dict[str, Any]:
    return {
        "bid_id": bid.bid_id,
        "job_id": bid.job_id,
        "bidder_id": bid.bidder_id,
        "provider_id": bid.provider_id,
        "model": bid.model,
        "price": bid.price,
        "estimated_time_s": bid.estimated_time_s,
        "status": bid.status,
        "reason": bid.reason,
        "score": bid.score,
        "revision": bid.revision,
        "placed_at": bid.placed_at,
        "submitted_at": bid.submitted_at,
        "decided_at": bid.decided_at,
    }


def summary(session: Session, job: Job, bids: Sequence[JobBid] | None = None) -> dict[str, Any]:
    """The job as lists and bid answers show it."""
    if bids is None:
        bids = repository.bids_of(session, job.job_id)
    winner = next((b for b in bids if b.bid_id == job.winning_bid_id), None)
    count = sum(1 for b in bids if b.status != domain.WITHDRAWN)
    return job_read(job, bid_count=count, winner=winner)


def detail(
    session: Session,
    principal: Principal,
    job: Job,
    *,
    bids: Sequence[JobBid] | None = None,
    timeline: Sequence[JobEvent] | None = None,
) -> dict[str, Any]:
    """The job with the bids the caller may see and its timeline. ``bids`` and ``timeline``:
    all of the job's, when the caller holds them (a job it just posted), so they are not
    read again."""
    if bids is None:
        bids = repository.bids_of(session, job.job_id)
    everyone = sees_every_bid(principal, job)
    shown = [b for b in bids if everyone or principal.may_act_as(b.bidder_id)]
    if timeline is None:
        timeline = repository.events_of_job(session, job.job_id, limit=TIMELINE_LIMIT)
    return {
        **summary(session, job, bids),
        "bids": [bid_read(b) for b in shown],
        "events": [events.event_read(e) for e in timeline],
    }


def summaries(session: Session, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Jobs as a list shows them (two queries for the page, not two a job)."""
    counts = repository.bid_counts(session, [j.job_id for j in jobs])
    winners = repository.bids_by_id(session, [j.winning_bid_id for j in jobs if j.winning_bid_id])
    return [
        job_read(
            j,
            bid_count=counts.get(j.job_id, 0),
            winner=winners.get(j.winning_bid_id or ""),
        )
        for j in jobs
    ]

"""Bids: one live bid per bidder per job, placed, revised (by bidding again) or withdrawn
while the window is open. In fixed mode an eligible bid wins at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from flow_memory.jobs import awards, domain, escrow, events, outcomes, repository, service
from flow_memory.jobs.models import Job, JobBid
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.schemas import BidCreate
from flow_memory.jobs.standing import StandingReads
from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.db import transaction_memo
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.providers import service as providers


@dataclass(frozen=True)
class Placed:
    bid: JobBid
    job: Job
    created: bool  # False: the bidder's bid was revised
    bids: Sequence[JobBid] | None = None  # all of the job's, when read: the answer reuses them


def place_bid(
    session: Session,
    *,
    principal: Principal,
    job_id: str,
    body: BidCreate,
    now: datetime,
    rules: JobRules,
) -> Placed:
    """Place the bidder's bid on the job, or revise the one it has (withdrawn included).
    A bidder below the job's reputation floor is refused (409 ``below_reputation_floor``)."""
    ensure_may_act_as(principal, body.bidder_id, field="bidder_id")
    bidder = body.bidder_id or principal.owner_id
    job = service.find(session, job_id, for_update=True)
    service.ensure_open(job, now=now)
    _ensure_provider(session, principal, body.provider_id)
    if domain.names_a_model(job.model_hint) and body.model != job.model_hint:
        raise Invalid(
            "the job asks for another model",
            field="model",
            code="model_mismatch",
            hint="bid with the model the job's model_hint names",
        )
    if escrow.paying_holder(session, bidder) == job.payer_id:
        raise Conflict(
            "a requester does not bid on its own job",
            code="own_job",
            field="bidder_id",
            hint="bid as an identity that does not pay for the job",
        )
    reads = StandingReads(session)
    outcomes.ensure_may_bid(session, job, bidder_id=bidder, rules=rules, reads=reads)
    # Every bid of the job, read once under its lock: the award and the answer use them too.
    bids = repository.bids_of(session, job.job_id)
    bid = next((b for b in bids if b.bidder_id == bidder), None)
    created = bid is None
    if bid is None:
        bid = JobBid(
            bid_id=new_id("bid"),
            job_id=job.job_id,
            bidder_id=bidder,
            revision=0,
            placed_at=now,
        )
        session.add(bid)
        bids.append(bid)
        kind = events.BID_PLACED
    else:
        kind = events.BID_REVISED if bid.status == domain.LIVE else events.BID_PLACED
    bid.placed_by = principal.owner_id
    bid.provider_id = body.provider_id
    bid.model = body.model
    bid.price = body.price
    bid.estimated_time_s = body.estimated_time_s
    bid.status = domain.LIVE
    bid.reason = None
    bid.score = None
    bid.decided_at = None
    bid.revision += 1
    bid.submitted_at = now
    job.updated_at = now
    events.record(
        session,
        job,
        kind,
        {"bid_id": bid.bid_id, "bidder_id": bid.bidder_id, "revision": bid.revision},
        now=now,
    )
    if job.payment_mode == "fixed":  # the award leaves an ineligible bid live, changing nothing
        awards.award(session, job, now=now, rules=rules, chosen=bid.bid_id, bids=bids, reads=reads)
    return Placed(bid, job, created, bids)


def _ensure_provider(session: Session, principal: Principal, provider_id: str) -> None:
    """Refuse a provider the caller may not bid with (404); checked once a transaction per
    caller and provider, as a provider's owner never changes."""
    checked = transaction_memo(session, "bid_providers")
    key = (principal.owner_id, principal.is_admin, provider_id)
    if key not in checked:
        providers.get_owned(session, principal=principal, provider_id=provider_id)
        checked[key] = True


def withdraw_bid(
    session: Session, *, principal: Principal, job_id: str, bid_id: str, now: datetime
) -> Placed:
    """Withdraw the caller's bid while the window is open (withdrawing twice changes nothing)."""
    job = service.find(session, job_id, for_update=True)
    bid = repository.bid(session, bid_id)
    if bid is None or bid.job_id != job.job_id or not principal.may_act_as(bid.bidder_id):
        raise NotFound("bid not found on this job", field="bid_id")
    if bid.status == domain.WITHDRAWN:
        return Placed(bid, job, created=False)
    service.ensure_open(job, now=now)
    bid.status = domain.WITHDRAWN
    bid.reason = domain.WITHDRAWN
    bid.decided_at = now
    job.updated_at = now
    session.flush()
    events.record(
        session,
        job,
        events.BID_WITHDRAWN,
        {"bid_id": bid.bid_id, "bidder_id": bid.bidder_id},
        now=now,
    )
    return Placed(bid, job, created=False)

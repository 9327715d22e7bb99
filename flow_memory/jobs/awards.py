"""Awards and the ends of jobs: each function takes a job whose row the caller has locked,
changes it and its bids, moves its escrow and records the event, in the caller's transaction.

Used by bids (fixed mode awards at once), by the requester (an early award, a cancel) and by
the timer (a window that closed, a result that did not come).

Earned capacity holds at the award too (bids are checked when placed, but one bidder may have
live bids on many jobs): a winner whose group already holds all the jobs it has earned loses
with ``capacity_reached`` and the next best bid is decided, so fixed and auction awards, early
awards and runners-up all respect it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from flow_memory.jobs import domain, escrow, events, outcomes, repository
from flow_memory.jobs.domain import Decision, Offer, Terms
from flow_memory.jobs.models import Job, JobBid
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.standing import StandingReads

CAPACITY_REACHED = domain.CAPACITY_REACHED


def terms_of(job: Job, rules: JobRules) -> Terms:
    """What a bid on ``job`` must meet; its reputation floor is never under the exclusion
    threshold."""
    return Terms(job.max_price, job.deadline_seconds, outcomes.floor(job, rules))


def offers_of(
    session: Session, bids: Sequence[JobBid], reads: StandingReads | None = None
) -> list[Offer]:
    """The bids as the award weighs them, with their bidders' standing (``reads``: the
    command's, when it has read some already)."""
    if reads is None:
        reads = StandingReads(session)
    known = reads.standings({bid.bidder_id for bid in bids})
    return [
        Offer(b.bid_id, b.price, b.estimated_time_s, b.submitted_at, known.get(b.bidder_id))
        for b in bids
    ]


def reason_against(
    session: Session,
    job: Job,
    bid: JobBid,
    *,
    rules: JobRules,
    reads: StandingReads | None = None,
) -> str | None:
    """Why ``bid`` may not win ``job`` now, or None when it is eligible."""
    why = domain.ineligibility(terms_of(job, rules), offers_of(session, [bid], reads)[0])
    if why is None and not outcomes.may_hold_another(session, bid.bidder_id, rules=rules):
        return CAPACITY_REACHED
    return why


def decide(
    session: Session,
    job: Job,
    bids: Sequence[JobBid],
    *,
    rules: JobRules,
    chosen: str | None = None,
    reads: StandingReads | None = None,
    now: datetime,
) -> tuple[Decision, list[JobBid]]:
    """The award among ``bids`` (``domain.decide``), and the bids that lost on the way because
    their bidder's group holds all it has earned (each marked lost, ``capacity_reached``): a
    winner over capacity is dropped and the next best decided; a ``chosen`` one over capacity
    leaves no winner."""
    candidates = list(bids)
    full: list[JobBid] = []
    terms = terms_of(job, rules)
    while True:
        decision = domain.decide(terms, offers_of(session, candidates, reads), chosen=chosen)
        if decision.winner is None:
            return decision, full
        winner = next(b for b in candidates if b.bid_id == decision.winner)
        if outcomes.may_hold_another(session, winner.bidder_id, rules=rules):
            return decision, full
        _lose(winner, CAPACITY_REACHED, now=now)
        session.flush()  # bids are read again with populate_existing: keep this change
        full.append(winner)
        candidates.remove(winner)
        if chosen is not None:
            return domain.decide(terms, [], chosen=None), full


def award(
    session: Session,
    job: Job,
    *,
    now: datetime,
    rules: JobRules,
    chosen: str | None = None,
    bids: Sequence[JobBid] | None = None,
    reads: StandingReads | None = None,
) -> JobBid | None:
    """Award the job to ``chosen`` or its best-ranked live bid; every other live bid loses
    with its reason. None when no live bid is eligible (``chosen`` included): nothing changes
    but the bids whose bidders hold all they have earned, lost (``decide``). ``bids``: all of
    the job's, when the caller holds them (read under the job's lock, as changed since), so
    they are not read again; ``reads``: the command's standings."""
    if bids is None:
        bids = repository.bids_of(session, job.job_id)
    live = [b for b in bids if b.status == domain.LIVE]
    decision, full = decide(session, job, live, rules=rules, chosen=chosen, reads=reads, now=now)
    if decision.winner is None:
        return None
    others = [b for b in live if b not in full]
    return _give(session, job, others, decision, now=now, reaward=False)


def close_window(session: Session, job: Job, *, now: datetime, rules: JobRules) -> str:
    """The bid window closed: award by score, or expire the job when no bid is eligible."""
    if award(session, job, now=now, rules=rules) is not None:
        return domain.AWARDED
    end_unawarded(session, job, status=domain.EXPIRED_UNAWARDED, now=now, rules=rules)
    return domain.EXPIRED_UNAWARDED


def end_unawarded(
    session: Session,
    job: Job,
    *,
    status: str,
    now: datetime,
    rules: JobRules,
    reason: str | None = None,
) -> None:
    """End an open job without an award (``cancelled`` or ``expired_unawarded``): each live
    bid loses, for the reason it was not eligible or because the window closed, and the
    escrow is released whole."""
    domain.check_transition(job.status, status)
    live = [b for b in repository.bids_of(session, job.job_id) if b.status == domain.LIVE]
    terms = terms_of(job, rules)
    for bid, offer in zip(live, offers_of(session, live), strict=True):
        _lose(bid, domain.ineligibility(terms, offer) or domain.WINDOW_CLOSED, now=now)
    escrow.release(session, job, memo=f"the job was {status.replace('_', ' ')}", now=now)
    job.status = status
    job.cancel_reason = reason
    job.ended_at = job.updated_at = now
    session.flush()
    kind = events.CANCELLED if status == domain.CANCELLED else events.EXPIRED_UNAWARDED
    payload = {"bids": len(live)} if reason is None else {"bids": len(live), "reason": reason}
    events.record(session, job, kind, payload, now=now)


def no_show(session: Session, job: Job, *, now: datetime, rules: JobRules) -> str:
    """The winner sent no result by the deadline: its bid is marked ``no_show`` (recorded
    against its bidder, whose stake's share is slashed to the payer), then the
    runner-up is awarded with a fresh deadline if the job asks for it (and has awards left),
    else the job ends ``expired_no_show`` and its escrow is released whole."""
    bids = repository.bids_of(session, job.job_id)
    missing = next(b for b in bids if b.bid_id == job.winning_bid_id)
    missing.status = domain.NO_SHOW
    missing.decided_at = now
    events.record(
        session,
        job,
        events.NO_SHOW,
        {"bid_id": missing.bid_id, "bidder_id": missing.bidder_id},
        now=now,
    )
    if job.reaward_on_no_show and job.award_count < domain.MAX_AWARDS:
        runners_up = [b for b in bids if b.status == domain.LOST and b.reason == domain.OUTBID]
        decision, full = decide(session, job, runners_up, rules=rules, now=now)
        if decision.winner is not None:
            others = [b for b in runners_up if b not in full]
            _give(session, job, others, decision, now=now, reaward=True)
            outcomes.no_show(session, job, missing, now=now, rules=rules)
            return domain.AWARDED
    domain.check_transition(job.status, domain.EXPIRED_NO_SHOW)
    escrow.release(session, job, memo="the winner sent no result by the deadline", now=now)
    job.status = domain.EXPIRED_NO_SHOW
    job.ended_at = job.updated_at = now
    session.flush()
    events.record(session, job, events.EXPIRED_NO_SHOW, {"bid_id": missing.bid_id}, now=now)
    # Last, after the escrow's ledger rows: records are locked after ledger rows everywhere.
    outcomes.no_show(session, job, missing, now=now, rules=rules)
    return domain.EXPIRED_NO_SHOW


def _give(
    session: Session,
    job: Job,
    bids: Sequence[JobBid],
    decision: Decision,
    *,
    now: datetime,
    reaward: bool,
) -> JobBid:
    domain.check_transition(job.status, domain.AWARDED)
    winner = next(b for b in bids if b.bid_id == decision.winner)
    for bid in bids:
        bid.score = decision.scores.get(bid.bid_id)
        if bid is winner:
            bid.status, bid.reason, bid.decided_at = domain.WON, None, now
        else:
            _lose(bid, decision.reasons[bid.bid_id], now=now)
    job.status = domain.AWARDED
    job.winning_bid_id = winner.bid_id
    job.award_count += 1
    job.awarded_at = job.updated_at = now
    job.result_due_at = now + timedelta(seconds=job.deadline_seconds)
    session.flush()
    events.record(
        session,
        job,
        events.AWARDED,
        {
            "bid_id": winner.bid_id,
            "bidder_id": winner.bidder_id,
            "provider_id": winner.provider_id,
            "price": winner.price,
            "result_due_at": job.result_due_at,
            "award": job.award_count,
            "reaward": reaward,
        },
        now=now,
    )
    return winner


def _lose(bid: JobBid, reason: str, *, now: datetime) -> None:
    bid.status, bid.reason, bid.decided_at = domain.LOST, reason, now

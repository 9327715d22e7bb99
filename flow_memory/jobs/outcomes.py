"""What the job board tells reputation (``flow_memory.reputation``), in the caller's
transaction: a bid refused below the reputation floor, without the bid stake it needs or beyond
the jobs its bidder has earned to hold at once; a good completion, a late delivery, a bad
completion or a no-show and its stake slashed to the requester. ``JobRules`` carries the
settings these read, from the app's settings to the routes and the timer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.jobs.models import Job, JobBid
from flow_memory.jobs.standing import StandingReads
from flow_memory.reputation import domain as reputation
from flow_memory.reputation import service, stakes
from flow_memory.settings import Settings


@dataclass(frozen=True)
class JobRules:
    """The reputation settings the job board applies."""

    exclusion_threshold: Decimal
    half_life_days: Decimal
    slash_share: Decimal
    stake_per_slot: Decimal  # a bid needs a bid stake covering one job (0: no stake needed)
    # How long a requester reviews a result, a drawn validator answers, a winner may dispute.
    review_seconds: int = 3_600
    validator_seconds: int = 3_600
    dispute_seconds: int = 3_600
    # Hold each bidder's group to the jobs it has earned to hold at once (bid and award).
    capacity_enforced: bool = True
    # After a posted job, the chance the board also posts a known-answer job.
    known_answer_share: Decimal = Decimal(0)

    @property
    def judging_seconds(self) -> int:
        """The longest a result's judging may take: the review, a round of validators and its
        replacements, a dispute window and the dispute's validators with theirs."""
        return self.review_seconds + self.dispute_seconds + 4 * self.validator_seconds

    @classmethod
    def of(cls, settings: Settings) -> JobRules:
        return cls(
            exclusion_threshold=service.as_decimal(settings.reputation_exclusion_threshold),
            half_life_days=service.as_decimal(settings.reputation_half_life_days),
            slash_share=service.as_decimal(settings.stake_slash_share),
            stake_per_slot=service.as_decimal(settings.stake_per_job_slot),
            review_seconds=settings.validation_review_seconds,
            validator_seconds=settings.validator_answer_seconds,
            dispute_seconds=settings.dispute_window_seconds,
            capacity_enforced=settings.earned_capacity_enforced,
            known_answer_share=service.as_decimal(settings.known_answer_share),
        )


def floor(job: Job, rules: JobRules) -> Decimal:
    """The least standing a bid on ``job`` needs: the exclusion threshold or the job's floor."""
    return reputation.required_standing(job.min_reputation, rules.exclusion_threshold)


def ensure_may_bid(
    session: Session,
    job: Job,
    *,
    bidder_id: str,
    rules: JobRules,
    reads: StandingReads | None = None,
) -> None:
    """Refuse a bid from a bidder below the floor (409 ``below_reputation_floor``), one whose
    group has no bid stake covering a job (409 ``stake_required``), or one whose group holds
    as many jobs as it has earned to hold at once (409 ``capacity_reached``). The floor
    weighs the bidder's recorded standing (reputation's own source, whatever other source is
    registered), read through ``reads`` so that the award that follows reuses it. A bidder
    revising its bid is checked again, as its group may have won jobs since."""
    if reads is None:
        reads = StandingReads(session)
    has = reads.of_source(service.bidder_standings, [bidder_id])[bidder_id]
    service.ensure_above_floor(
        session,
        bidder_id=bidder_id,
        min_reputation=job.min_reputation,
        exclusion_threshold=rules.exclusion_threshold,
        standing=has,
    )
    if rules.stake_per_slot > 0 or rules.capacity_enforced:
        service.ensure_capacity(
            session,
            bidder_id=bidder_id,
            stake_per_slot=rules.stake_per_slot,
            enforce_earned=rules.capacity_enforced,
        )


def may_hold_another(session: Session, bidder_id: str, *, rules: JobRules) -> bool:
    """Whether the bidder's group may be awarded one more job now (its earned capacity, bounded
    by its stake, above the jobs it holds); always, when capacity is not enforced. The group's
    awards are serialised from here to the end of the transaction (``lock_group``), so the
    jobs held are counted after any other award to it has committed."""
    if not rules.capacity_enforced:
        return True
    service.lock_group_of(session, bidder_id)
    found = service.capacity_of(session, bidder_id, stake_per_slot=rules.stake_per_slot)
    return found.held < found.limit


def completed(
    session: Session, job: Job, winner: JobBid, *, now: datetime, rules: JobRules
) -> None:
    """The winner's result was accepted (or a dispute overturned its rejection): a good
    completion, worth its price."""
    _record(session, job, winner, reputation.COMPLETION_GOOD, now=now, rules=rules)


def delivered(
    session: Session, job: Job, winner: JobBid, *, now: datetime, rules: JobRules
) -> bool:
    """A result arrived: recorded ``late`` when after the time the winning bid promised
    (the deadline itself refuses a result). Whether it was late."""
    assert job.awarded_at is not None
    if now <= job.awarded_at + timedelta(seconds=winner.estimated_time_s):
        return False
    _record(session, job, winner, reputation.LATE, now=now, rules=rules)
    return True


def rejected(session: Session, job: Job, winner: JobBid, *, now: datetime, rules: JobRules) -> None:
    """The winner's result was finally rejected: a bad completion, and its stake's share
    slashed to the payer."""
    _slashed(session, job, winner, reputation.COMPLETION_BAD, now=now, rules=rules)


def no_show(session: Session, job: Job, missing: JobBid, *, now: datetime, rules: JobRules) -> None:
    """The winner sent no result: a no-show, and its stake's share slashed to the payer."""
    _slashed(session, job, missing, reputation.NO_SHOW, now=now, rules=rules)


def _slashed(
    session: Session, job: Job, bid: JobBid, kind: str, *, now: datetime, rules: JobRules
) -> None:
    """A failure of ``kind``: the bidder's stake's share slashed to the payer, then the outcome
    recorded. Ledger rows before reputation records, as a completion locks them: no two
    transactions wait on each other's."""
    stakes.slash(
        session,
        bidder_id=bid.bidder_id,
        job_id=job.job_id,
        payee_id=job.payer_id,
        reason=kind,
        share=rules.slash_share,
        now=now,
    )
    _record(session, job, bid, kind, now=now, rules=rules)


def _record(
    session: Session, job: Job, bid: JobBid, kind: str, *, now: datetime, rules: JobRules
) -> None:
    service.record_outcome(
        session,
        identity_id=bid.bidder_id,
        kind=kind,
        value=bid.price,
        job_id=job.job_id,
        now=now,
        half_life_days=rules.half_life_days,
    )

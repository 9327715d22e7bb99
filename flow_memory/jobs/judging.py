"""The job board's side of judging a result (``flow_memory.reputation.verdicts`` decides): the
validation opened when a result arrives, and what each decision does to the job and its escrow.

- ``accepted`` (a verdict, or the requester's silence until the review window ends) and
  ``overturned`` (the winner won its dispute): the job completes; the winner's price and each
  fee ``settlement.settlement_of`` names are paid out of the escrow, the rest released.
- ``rejected``: the job becomes ``rejected`` and its escrow stays held while the winner may
  dispute (an overturned rejection must still be paid).
- ``rejected_final`` (the dispute window closed) and ``upheld`` (the winner lost its dispute):
  the round-0 validators' fees are paid out of the escrow and the rest goes back to the
  requester; a lost dispute's fees are paid by the winner's account; the winner's bad
  completion is recorded and its bid stake slashed to the payer; the job ends.

Every step is a job event and a dry-run ledger transfer in the caller's transaction, keyed by
the job (a replayed decision moves nothing twice). Verdicts' reasons and judges' identities
stay out of events: ``GET /inference/jobs/{job_id}/validation`` shows them to those concerned."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.jobs import domain, escrow, events, outcomes, repository
from flow_memory.jobs import known_answers as board_known_answers
from flow_memory.jobs.events import (
    DISPUTED,
    REJECTED,
    REJECTION_FINAL,
    VALIDATION_OPENED,
    VALIDATORS_DRAWN,
    VERDICT,
)
from flow_memory.jobs.models import Job, JobBid
from flow_memory.jobs.outcomes import JobRules
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, InsufficientCredit
from flow_memory.kit.money import EXACT
from flow_memory.ledger import holds
from flow_memory.ledger.domain import Cause, Posting
from flow_memory.ledger.service import open_account, transfer
from flow_memory.reputation import expiry, known_answers, settlement, verdicts
from flow_memory.reputation import repository as judged
from flow_memory.reputation.models import Validation, ValidationVerdict
from flow_memory.reputation.schemas import VerdictCreate
from flow_memory.reputation.verdicts import REQUESTER, Judgement, OnDecision

DISPUTE_FEES = "job_dispute_fees"


def answer_seconds(mode: str, rules: JobRules) -> int:
    """How long the judges of a mode have: the requester's review window, or a validator's."""
    return rules.review_seconds if mode == REQUESTER else rules.validator_seconds


def open_judging(
    session: Session, job: Job, winner: JobBid, *, now: datetime, rules: JobRules
) -> Validation:
    """Open the judging of the result that just arrived, by the job's validation mode (drawing
    its validators); with a review window of 0 the requester's silence accepts at once. A
    known-answer job is judged at once by the board, as its requester
    (``known_answers.judge``)."""
    probe = known_answers.of_job(session, job.job_id)
    if probe is not None:
        return board_known_answers.judge(session, job, winner, probe, now=now, rules=rules)
    mode = job.validation["mode"]
    record = verdicts.open_validation(
        session,
        job_id=job.job_id,
        mode=mode,
        requester_id=job.requester_id,
        winner_id=winner.bidder_id,
        value=winner.price,
        validators_wanted=int(job.validation["validators"]),
        fee=Decimal(job.validation["validator_fee"]),
        now=now,
        review_seconds=answer_seconds(mode, rules),
        exclusion_threshold=rules.exclusion_threshold,
    )
    if record.mode == REQUESTER and mode != REQUESTER:
        # No validator could be drawn: the requester judges, within its review window.
        record.due_at = now + timedelta(seconds=rules.review_seconds)
        session.flush()
    drawn = judged.draws(session, job.job_id, 0)
    events.record(
        session,
        job,
        VALIDATION_OPENED,
        {"mode": record.mode, "validators": len(drawn), "due_at": record.due_at},
        now=now,
    )
    if record.mode == REQUESTER and record.due_at <= now:
        expire(session, record, now=now, rules=rules)
    return record


def expire(session: Session, record: Validation, *, now: datetime, rules: JobRules) -> bool:
    """Act on a validation whose time ran out (its row held by the caller): a silent requester
    accepts, late validators are replaced, an undisputed rejection becomes final. Whether a
    decision was taken."""
    found = expiry.expire(
        session,
        record,
        now=now,
        half_life=rules.half_life_days,
        # Replacements (or, when none answers, the requester) get a validator's time.
        review_seconds=rules.validator_seconds,
        dispute_seconds=rules.dispute_seconds,
        threshold=rules.exclusion_threshold,
        on_decision=_acting(session, now=now, rules=rules),
        requester_seconds=rules.review_seconds,
    )
    if found.missed or found.drawn or found.requester_judges:
        job = repository.job(session, record.job_id, for_update=True)
        if job is not None:
            payload: dict[str, object] = {
                "round": record.round,
                "missed": len(found.missed),
                "validators": len(found.drawn),
                "due_at": record.due_at,
            }
            if found.tie:
                payload["tie"] = True
            if found.requester_judges:  # the timeline shows whose turn it is
                payload["judge"] = REQUESTER
            events.record(session, job, VALIDATORS_DRAWN, payload, now=now)
    return found.judgement is not None


def expire_claimed(session: Session, job_id: str, *, now: datetime, rules: JobRules) -> str | None:
    """The timer's act on one validation: claim it (``claim_validation``: skipped when another
    server holds it or it is no longer due) and act on it. ``decided`` or ``waiting`` (replaced
    validators, or the requester's turn), or None when it was not claimed."""
    record = judged.claim_validation(session, job_id, now)
    if record is None:
        return None
    return "decided" if expire(session, record, now=now, rules=rules) else "waiting"


def record_verdict(
    session: Session,
    *,
    principal: Principal,
    job_id: str,
    body: VerdictCreate,
    now: datetime,
    rules: JobRules,
) -> verdicts.Recorded:
    """Record a verdict (``verdicts.record_verdict``): its event on the job's timeline, then
    what its decision, if it takes one, does to the job."""

    def noted(verdict: ValidationVerdict) -> None:
        job = repository.job(session, verdict.job_id, for_update=True)
        if job is None:
            return  # a validation of no job of the board's
        payload = {
            "round": verdict.round,
            "judge_role": verdict.judge_role,
            "decision": "accept" if verdict.accept else "reject",
            "score": verdict.score,
        }
        events.record(session, job, VERDICT, payload, now=now)

    recorded = verdicts.record_verdict(
        session,
        principal=principal,
        job_id=job_id,
        judge_id=body.judge_id,
        accept=body.decision == "accept",
        score=body.score,
        reason=body.reason,
        now=now,
        half_life_days=rules.half_life_days,
        dispute_seconds=rules.dispute_seconds,
        on_verdict=noted,
        on_decision=_acting(session, now=now, rules=rules),
    )
    if recorded.judgement is None and recorded.verdict.judge_role == "validator":
        _break_tie(session, recorded.validation, now=now, rules=rules)
    return recorded


def _break_tie(session: Session, record: Validation, *, now: datetime, rules: JobRules) -> None:
    """Every validator of the round answered and their weights tie: one more is drawn, with a
    validator's full time to answer. When none can be, the round waits until that time has
    passed and the timer finds the tie (``expiry.expire``): it draws again, and in round 0,
    when still none can be drawn, the requester's judgement decides (its silence accepts)."""
    draws = judged.draws(session, record.job_id, None)
    if any(d.status == "pending" and d.round == record.round for d in draws):
        return  # verdicts still to come
    record.due_at = now + timedelta(seconds=rules.validator_seconds)
    everyone = {d.validator_id for d in draws}
    drawn = verdicts.draw_round(
        session, record, 1, now=now, threshold=rules.exclusion_threshold, exclude=everyone
    )
    job = repository.job(session, record.job_id, for_update=True)
    if drawn and job is not None:
        payload = {
            "round": record.round,
            "missed": 0,
            "validators": len(drawn),
            "due_at": record.due_at,
            "tie": True,
        }
        events.record(session, job, VALIDATORS_DRAWN, payload, now=now)


def noted_dispute(session: Session, record: Validation, *, now: datetime) -> None:
    """The winner disputed the rejection: its event (the job stays ``rejected``), saying when
    it waits for validators (none could be drawn yet: the timer draws them at ``due_at``)."""
    job = repository.job(session, record.job_id, for_update=True)
    if job is None:
        return
    drawn = judged.draws(session, record.job_id, 1)
    payload: dict[str, object] = {"validators": len(drawn), "due_at": record.due_at}
    if not drawn:
        payload["waiting_for_validators"] = True
    events.record(session, job, DISPUTED, payload, now=now)


def _acting(session: Session, *, now: datetime, rules: JobRules) -> OnDecision:
    def acting(judgement: Judgement) -> None:
        act(session, judgement, now=now, rules=rules)

    return acting


def act(session: Session, judgement: Judgement, *, now: datetime, rules: JobRules) -> None:
    """Do what a decision asks of its job (see the module); nothing for a validation that
    judges no job of the board's, or a decision already acted on."""
    job = repository.job(session, judgement.job_id, for_update=True)
    if job is None or job.winning_bid_id is None:
        return
    winner = repository.bid(session, job.winning_bid_id)
    assert winner is not None
    if domain.after_judgement(judgement.status) == domain.COMPLETED:
        if job.status == domain.COMPLETED:
            return
        paid = settlement.settlement_of(session, judgement, price=winner.price)
        fees = {k: v for k, v in paid.from_escrow.items() if k != winner.bidder_id}
        complete(session, job, winner, decision=judgement.status, fees=fees, now=now, rules=rules)
        return
    if judgement.status == "rejected":
        if job.status == domain.REJECTED:
            return
        domain.check_transition(job.status, domain.REJECTED)
        job.status = domain.REJECTED
        job.updated_at = now
        session.flush()
        record = verdicts.judged(session, job.job_id)
        payload = {
            "bid_id": winner.bid_id,
            "bidder_id": winner.bidder_id,
            "score": judgement.score,
            "dispute_until": record.due_at,
        }
        events.record(session, job, REJECTED, payload, now=now)
        return
    if job.ended_at is None:
        reject_finally(session, job, winner, judgement, now=now, rules=rules)


def complete(
    session: Session,
    job: Job,
    winner: JobBid,
    *,
    decision: str,
    fees: Mapping[str, Decimal],
    now: datetime,
    rules: JobRules,
) -> None:
    """Pay the winner its price and each validator its fee out of the escrow, release the
    rest, end the job, and record the winner's good completion."""
    domain.check_transition(job.status, domain.COMPLETED)
    _settle(session, job, {winner.bidder_id: winner.price, **fees}, now=now)
    job.status = domain.COMPLETED
    job.paid = winner.price
    job.ended_at = job.updated_at = now
    session.flush()
    payload = {
        "bid_id": winner.bid_id,
        "bidder_id": winner.bidder_id,
        "price": winner.price,
        "decision": decision,
        "fees_paid": _total(fees),
    }
    events.record(session, job, events.COMPLETED, payload, now=now)
    # After the escrow's ledger rows: records are locked after ledger rows everywhere.
    outcomes.completed(session, job, winner, now=now, rules=rules)


def reject_finally(
    session: Session,
    job: Job,
    winner: JobBid,
    judgement: Judgement,
    *,
    now: datetime,
    rules: JobRules,
) -> None:
    """End a rejected job: validators' fees out of the escrow and the rest back to the
    requester, a lost dispute's fees from the winner, its stake slashed, a bad completion."""
    if job.status != domain.REJECTED:
        raise Conflict(
            f"a job that is {job.status} cannot end rejected", code="job_state", field="job_id"
        )
    paid = settlement.settlement_of(session, judgement, price=winner.price)
    _settle(session, job, paid.from_escrow, now=now)
    unpaid = not _winner_pays(session, job, winner, paid.winner_pays, now=now)
    outcomes.rejected(session, job, winner, now=now, rules=rules)
    slashed = judged.slashes_of_job(session, identity_id=winner.bidder_id, job_id=job.job_id)
    job.ended_at = job.updated_at = now
    session.flush()
    payload = {
        "bid_id": winner.bid_id,
        "bidder_id": winner.bidder_id,
        "decision": judgement.status,
        # Amounts under names ending in "paid": events answer those as JSON numbers.
        "fees_paid": _total(paid.from_escrow),
        "dispute_fees_paid": Decimal(0) if unpaid else _total(paid.winner_pays),
        "dispute_fees_unpaid": unpaid,
        "slash_paid": _total({s.slash_id: s.amount for s in slashed}),
    }
    events.record(session, job, REJECTION_FINAL, payload, now=now)


def _settle(session: Session, job: Job, payouts: Mapping[str, Decimal], *, now: datetime) -> None:
    """Settle the escrow: each identity's amount to its paying account, the rest released
    (all of it, when nobody is paid)."""
    if not payouts:
        escrow.release(session, job, memo="the job's result was rejected", now=now)
        return
    credits: dict[str, Decimal] = {}
    for identity_id, amount in sorted(payouts.items()):
        payee = open_account(session, holder_id=escrow.paying_holder(session, identity_id), now=now)
        credits[payee.account_id] = EXACT.add(credits.get(payee.account_id, Decimal(0)), amount)
    settled = holds.settle(
        session,
        hold_id=job.hold_id,
        credits=[Posting(account_id, amount) for account_id, amount in credits.items()],
        cause=Cause(escrow.PAYMENT, job.job_id, memo="a job's payment to its winner and judges"),
        now=now,
    )
    if settled.status != "settled":  # released before (it outlived its expiry): pay nothing
        raise Conflict("the job's escrow is no longer held", code="escrow_released", field="job_id")


def _winner_pays(
    session: Session, job: Job, winner: JobBid, fees: Mapping[str, Decimal], *, now: datetime
) -> bool:
    """The winner's account pays a lost dispute's fees; False when it is enforced and cannot
    cover them (then nobody is paid them, and the event says so)."""
    if not fees:
        return True
    payer = open_account(
        session, holder_id=escrow.paying_holder(session, winner.bidder_id), now=now
    )
    postings = [Posting(payer.account_id, -_total(fees))]
    for validator_id, fee in sorted(fees.items()):
        payee = open_account(
            session, holder_id=escrow.paying_holder(session, validator_id), now=now
        )
        postings.append(Posting(payee.account_id, fee))
    try:
        with session.begin_nested():
            transfer(
                session,
                key=f"job:{job.job_id}:dispute_fees",
                postings=postings,
                cause=Cause(DISPUTE_FEES, job.job_id, memo="a lost dispute's validator fees"),
                now=now,
            )
    except InsufficientCredit:
        return False
    return True


def _total(amounts: Mapping[str, Decimal]) -> Decimal:
    return sum(amounts.values(), Decimal(0))

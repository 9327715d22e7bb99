"""Judging a job's result: the validation the job board opens when a result arrives, verdicts
(the requester's, or drawn validators'), their decision, and the winner's dispute of a
rejection, decided by fresh validators. Every function writes in the caller's transaction and
returns what the board must act on (a ``Judgement``): pay or not, who earned a fee, who bears
a dispute's fees (the caller's ``on_decision`` acts on it in the same transaction, before the
outcomes it implies are recorded: ledger rows are locked before reputation records). Outcomes
that follow from a decision are recorded here: the winner's completion (accepted), dispute won
or lost, and each validator's agreement with the consensus.

Rounds: 0 judges the result; 1 judges the dispute. A validation is ``open`` until round 0 is
decided (``accepted`` or ``rejected``); a rejection may be ``disputed`` until the dispute
window ends, and the dispute ends ``overturned`` (the winner won) or ``upheld``."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Forbidden, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.reputation import domain, draw, repository, service, stakes, validators
from flow_memory.reputation.models import (
    Validation,
    ValidationDispute,
    ValidationDraw,
    ValidationVerdict,
)

REQUESTER = "requester"
RANDOM_VALIDATOR = "random_validator"
CONSENSUS = "consensus"
# Validators drawn for a dispute, at least.
DISPUTE_VALIDATORS = 3


@dataclass(frozen=True)
class Judgement:
    """A decision the job board acts on. ``status``: ``accepted`` or ``rejected`` (round 0),
    ``overturned`` or ``upheld`` (a dispute). ``paid_validators`` answered in time and earn
    their fee from the job's escrow; a dispute's fees are borne by ``fees_borne_by``
    (``requester`` when the winner won it, ``winner`` when it lost)."""

    job_id: str
    status: str
    score: Decimal | None
    paid_validators: tuple[str, ...]
    far: tuple[str, ...]
    fees_borne_by: str | None = None


JudgementHandler = Callable[[Session, Judgement, datetime], None]
# What a caller does with a decision in its transaction (the job board pays or rejects), before
# the outcomes it implies are recorded: ledger rows are locked before reputation records.
OnDecision = Callable[[Judgement], None]
_HANDLERS: list[JudgementHandler] = []


def register_judgement_handler(handler: JudgementHandler) -> None:
    """Have ``handler`` act on every decision, in the transaction that took it: the job board
    registers the one that completes, pays or rejects the job (registering twice adds once)."""
    if handler not in _HANDLERS:
        _HANDLERS.append(handler)


def unregister_judgement_handler(handler: JudgementHandler) -> None:
    if handler in _HANDLERS:
        _HANDLERS.remove(handler)


def announce(session: Session, judgement: Judgement, now: datetime) -> Judgement:
    """Hand a decision to every registered handler; the decision."""
    for handler in list(_HANDLERS):
        handler(session, judgement, now)
    return judgement


# -- opening ----------------------------------------------------------------------------------


def open_validation(
    session: Session,
    *,
    job_id: str,
    mode: str,
    requester_id: str,
    winner_id: str,
    value: Decimal,
    validators_wanted: int,
    fee: Decimal,
    now: datetime,
    review_seconds: int,
    exclusion_threshold: float | Decimal,
) -> Validation:
    """Open the judging of a job's result (once: a replay answers the first). Validator modes
    draw their validators now (``random_validator`` one, ``consensus`` as many as the job
    asks, at least 1); when none can be drawn, the requester judges instead."""
    found = repository.validation(session, job_id, for_update=True)
    if found is not None:
        return found
    count = 0 if mode == REQUESTER else 1 if mode == RANDOM_VALIDATOR else max(validators_wanted, 1)
    record = Validation(
        job_id=job_id,
        mode=mode,
        requester_id=requester_id,
        winner_id=winner_id,
        value=value,
        validators=count,
        fee=fee,
        status="open",
        round=0,
        score=None,
        opened_at=now,
        due_at=now + timedelta(seconds=review_seconds),
        decided_at=None,
    )
    session.add(record)
    session.flush()
    if count and not draw_round(session, record, count, now=now, threshold=exclusion_threshold):
        record.mode = REQUESTER
        record.validators = 0
        session.flush()
    return record


def draw_round(
    session: Session,
    record: Validation,
    count: int,
    *,
    now: datetime,
    threshold: float | Decimal,
    exclude: Collection[str] = (),
) -> list[str]:
    drawn = validators.draw_for_job(
        session,
        job_id=record.job_id,
        requester_id=record.requester_id,
        winner_id=record.winner_id,
        count=count,
        exclusion_threshold=threshold,
        round_=record.round,
        exclude=exclude,
    )
    for validator_id in drawn:
        session.add(
            ValidationDraw(
                draw_id=new_id("draw"),
                job_id=record.job_id,
                validator_id=validator_id,
                round=record.round,
                status="pending",
                drawn_at=now,
                due_at=record.due_at,
            )
        )
    session.flush()
    return drawn


# -- verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    verdict: ValidationVerdict
    validation: Validation
    judgement: Judgement | None  # None: the round waits for more verdicts


def record_verdict(
    session: Session,
    *,
    principal: Principal,
    job_id: str,
    judge_id: str | None,
    accept: bool,
    score: Decimal,
    reason: str,
    now: datetime,
    half_life_days: float | Decimal,
    dispute_seconds: int,
    on_verdict: Callable[[ValidationVerdict], None] | None = None,
    on_decision: OnDecision | None = None,
) -> Recorded:
    """Record a verdict of the requester (requester mode) or of a validator drawn for the
    current round, in time (``on_verdict`` told of it); decide the round once it is complete
    (``on_decision`` told of the decision before its outcomes are recorded)."""
    ensure_may_act_as(principal, judge_id, field="judge_id")
    judge = judge_id or principal.owner_id
    record = judged(session, job_id, for_update=True)
    if record.status not in ("open", "disputed"):
        raise Conflict(
            f"the job's result is {record.status}: it takes no verdict",
            code="verdict_closed",
            field="job_id",
        )
    draws = repository.draws(session, job_id, record.round)
    role = "validator"
    if record.mode == REQUESTER and record.round == 0:
        if judge != record.requester_id:
            raise Forbidden(
                "only the job's requester judges this result",
                code="not_a_judge",
                field="judge_id",
                hint="the job's validation mode is requester",
            )
        role = "requester"
    if repository.verdict(session, job_id, judge, record.round) is not None:
        raise Conflict(
            "this judge's verdict on this job is recorded; verdicts never change",
            code="verdict_recorded",
            field="judge_id",
        )
    if role == "validator" and judge not in {
        d.validator_id for d in draws if d.status == "pending"
    }:
        raise Forbidden(
            "this identity was not drawn to judge this job, or its time to answer passed",
            code="not_a_judge",
            field="judge_id",
            hint="validators are drawn by the server; one that does not answer in time is replaced",
        )
    if now >= record.due_at:
        raise Conflict("the time for verdicts has passed", code="verdict_late", field="job_id")
    verdict = ValidationVerdict(
        verdict_id=new_id("verdict"),
        job_id=job_id,
        judge_id=judge,
        judge_role=role,
        round=record.round,
        accept=accept,
        score=score,
        reason=reason,
        created_at=now,
    )
    session.add(verdict)
    for row in draws:
        if row.validator_id == judge:
            row.status = "answered"
    session.flush()
    if on_verdict is not None:
        on_verdict(verdict)
    judgement = None
    if role == "requester" or all(d.status != "pending" for d in draws):
        judgement = decide(
            session,
            record,
            now=now,
            half_life=half_life_days,
            dispute_seconds=dispute_seconds,
            on_decision=on_decision,
        )
    return Recorded(verdict, record, judgement)


def decide(
    session: Session,
    record: Validation,
    *,
    now: datetime,
    half_life: float | Decimal,
    dispute_seconds: int,
    on_decision: OnDecision | None = None,
) -> Judgement | None:
    verdicts = repository.verdicts(session, record.job_id, record.round)
    ids = [v.judge_id for v in verdicts]
    standing = service.standings(session, ids, domain.VALIDATOR)
    staked = repository.staked(session, ids, stakes.VALIDATE)
    votes = [
        draw.Vote(
            v.judge_id,
            v.accept,
            v.score,
            standing[v.judge_id],
            # The requester's single verdict weighs as a unit stake.
            staked.get(v.judge_id, Decimal(1) if v.judge_role == "requester" else Decimal(0)),
        )
        for v in verdicts
    ]
    found = draw.consensus(votes)
    if found.accept is None:
        return None  # a tie: the job board draws another validator (``jobs.judging``)
    paid = tuple(sorted(v.judge_id for v in verdicts if v.judge_role == "validator"))
    # The outcomes the decision implies, recorded once the caller has acted on it.
    implied: list[tuple[str, str]] = []
    if len(votes) > 1:
        for v in verdicts:
            far = v.judge_id in found.far
            implied.append(
                (v.judge_id, domain.VALIDATOR_DISAGREED if far else domain.VALIDATOR_AGREED)
            )
    record.score = found.score
    record.decided_at = now
    if record.round == 0:
        record.status = "accepted" if found.accept else "rejected"
        if found.accept:
            implied.append((record.winner_id, domain.COMPLETION_GOOD))
        else:
            record.due_at = now + timedelta(seconds=dispute_seconds)
        judgement = Judgement(record.job_id, record.status, found.score, paid, found.far)
    else:
        record.status = "overturned" if found.accept else "upheld"
        dispute = session.get(ValidationDispute, record.job_id)
        assert dispute is not None
        dispute.status = "won" if found.accept else "lost"
        dispute.decided_at = now
        implied.append(
            (record.winner_id, domain.DISPUTE_WON if found.accept else domain.DISPUTE_LOST)
        )
        if found.accept:  # the first round's rejecters were wrong
            for v in repository.verdicts(session, record.job_id, 0):
                if v.judge_role == "validator" and not v.accept:
                    implied.append((v.judge_id, domain.VALIDATOR_DISAGREED))
        judgement = Judgement(
            record.job_id,
            record.status,
            found.score,
            paid,
            found.far,
            fees_borne_by="requester" if found.accept else "winner",
        )
    session.flush()
    announce(session, judgement, now)
    if on_decision is not None:
        on_decision(judgement)
    for identity_id, kind in implied:
        _outcome(session, identity_id, kind, record, now=now, half_life=half_life)
    session.flush()
    return judgement


def _outcome(
    session: Session,
    identity_id: str,
    kind: str,
    record: Validation,
    *,
    now: datetime,
    half_life: float | Decimal,
) -> None:
    service.record_outcome(
        session,
        identity_id=identity_id,
        kind=kind,
        value=record.value,
        now=now,
        half_life_days=half_life,
        job_id=record.job_id,
    )


# -- reading ----------------------------------------------------------------------------------


def judged(session: Session, job_id: str, *, for_update: bool = False) -> Validation:
    """The job's validation, or 404 when no result of it is being judged."""
    record = repository.validation(session, job_id, for_update=for_update)
    if record is None:
        raise NotFound("no result of this job is being judged", field="job_id")
    return record

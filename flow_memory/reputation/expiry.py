"""What happens when a validation's time runs out; the job board's timer calls ``expire_due``.

- A requester who stays silent until the review window ends accepts.
- A drawn validator who has not answered is ``missed``: its validator standing falls
  (``validator_no_answer``) and a replacement is drawn with a fresh due time. When none can be
  drawn, the verdicts given decide; with none given, the requester judges (round 0) or the
  dispute waits for the next look (round 1).
- A tie among the verdicts given (the weights for and against equal) draws one more validator
  to break it. When none can be drawn, a tie in round 0 falls back to the requester's
  judgement: the validation turns to requester mode with the requester's review window, the
  requester's verdict decides (its weight tips the tied ones) and its silence accepts. A tie in
  a dispute waits for a validator, drawn at the next look.
- A dispute opened when no validator could be drawn waits for them: each look draws what it
  can, until the round has its validators. One that no validator could hear for
  ``UNHEARD_WAITS`` answer times ends ``unheard``: the rejection stands, final, as if it had not
  been disputed (no validator was paid, so nobody bears fees). The job's escrow lasts the whole
  judging with a margin (``jobs.domain.escrow_expiry``): a dispute never outlives it.
- A rejection whose dispute window closed undisputed is final (``rejected_final``): the winner's
  record shows a bad completion, and the board settles the job (its stake is slashed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.reputation import domain, repository, service
from flow_memory.reputation.models import Validation, ValidationDispute
from flow_memory.reputation.verdicts import (
    DISPUTE_VALIDATORS,
    REQUESTER,
    Judgement,
    OnDecision,
    announce,
    decide,
    draw_round,
)

# A dispute no validator could hear for this many validator answer times ends ``unheard``.
UNHEARD_WAITS = 3


@dataclass(frozen=True)
class Expired:
    """What running out of time did to one validation: the decision taken (None: it waits on),
    the validators who missed their time, and those drawn to replace them."""

    judgement: Judgement | None
    missed: tuple[str, ...] = ()
    drawn: tuple[str, ...] = ()
    tie: bool = False  # the verdicts given tie (``drawn`` breaks it, else the requester judges)
    requester_judges: bool = False  # round 0 turned to the requester (no validator answers)


def expire_due(
    session: Session,
    *,
    now: datetime,
    half_life_days: float | Decimal,
    review_seconds: int,
    dispute_seconds: int,
    exclusion_threshold: float | Decimal,
    limit: int = 200,
    on_decision: OnDecision | None = None,
) -> list[Judgement]:
    """Handle up to ``limit`` validations whose time ran out; the decisions taken."""
    decided: list[Judgement] = []
    for record in repository.due_validations(session, now, limit=limit):
        found = expire(
            session,
            record,
            now=now,
            half_life=half_life_days,
            review_seconds=review_seconds,
            dispute_seconds=dispute_seconds,
            threshold=exclusion_threshold,
            on_decision=on_decision,
        )
        if found.judgement is not None:
            decided.append(found.judgement)
    return decided


def expire(
    session: Session,
    record: Validation,
    *,
    now: datetime,
    half_life: float | Decimal,
    review_seconds: int,
    dispute_seconds: int,
    threshold: float | Decimal,
    on_decision: OnDecision | None = None,
    requester_seconds: int | None = None,
) -> Expired:
    """Act on one validation whose time ran out (the caller holds its row): see the module.
    ``review_seconds`` is the time a replacement has; ``requester_seconds`` the time the
    requester has when round 0 falls back to it (``review_seconds`` when None); ``on_decision``
    is told of a decision before the outcomes it implies are recorded."""
    final = record.status == "rejected"
    if final or (record.mode == REQUESTER and record.round == 0):
        record.status = "rejected_final" if final else "accepted"
        if not final:
            record.decided_at = now
        session.flush()
        judgement = announce(
            session,
            Judgement(record.job_id, record.status, record.score if final else None, (), ()),
            now,
        )
        if on_decision is not None:
            on_decision(judgement)
        kind = domain.COMPLETION_BAD if final else domain.COMPLETION_GOOD
        _outcome(session, record, kind, now=now, half_life=half_life)
        session.flush()
        return Expired(judgement)
    draws = repository.draws(session, record.job_id, record.round)
    missed = [d for d in draws if d.status == "pending"]
    for row in missed:
        row.status = "missed"
    session.flush()
    gone = tuple(d.validator_id for d in missed)
    record.due_at = now + timedelta(seconds=review_seconds)
    everyone = {d.validator_id for d in repository.draws(session, record.job_id, None)}
    # Replacements for the missed; a dispute still without validators draws its whole round.
    wanted = len(missed) or (max(record.validators, DISPUTE_VALIDATORS) if not draws else 0)
    drawn = (
        draw_round(session, record, wanted, now=now, threshold=threshold, exclude=everyone)
        if wanted
        else []
    )
    if record.status == "disputed" and not draws and not drawn:
        dispute = session.get(ValidationDispute, record.job_id)
        waited = timedelta(seconds=review_seconds) * UNHEARD_WAITS
        if dispute is not None and now >= dispute.opened_at + waited:
            dispute.status, dispute.decided_at = "unheard", now
            record.status = "rejected"  # the rejection stands: final, as when undisputed
            return expire(
                session,
                record,
                now=now,
                half_life=half_life,
                review_seconds=review_seconds,
                dispute_seconds=dispute_seconds,
                threshold=threshold,
                on_decision=on_decision,
                requester_seconds=requester_seconds,
            )
    decided = None
    tie = False
    if not drawn and repository.verdicts(session, record.job_id, record.round):
        decided = decide(
            session,
            record,
            now=now,
            half_life=half_life,
            dispute_seconds=dispute_seconds,
            on_decision=on_decision,
        )
        tie = decided is None
        if tie:  # one more validator breaks it
            drawn = draw_round(session, record, 1, now=now, threshold=threshold, exclude=everyone)
    requester_judges = not drawn and decided is None and record.round == 0
    if requester_judges:
        # No validator answers, or the answers tie and none is left to break it: the
        # requester judges, within its review window.
        record.mode = REQUESTER
        wait = review_seconds if requester_seconds is None else requester_seconds
        record.due_at = now + timedelta(seconds=wait)
    # After any decision's ledger rows: reputation records are locked after ledger rows.
    for row in missed:
        service.record_outcome(
            session,
            identity_id=row.validator_id,
            kind=domain.VALIDATOR_NO_ANSWER,
            value=record.value,
            now=now,
            half_life_days=half_life,
            job_id=record.job_id,
        )
    session.flush()
    return Expired(decided, gone, tuple(drawn), tie=tie, requester_judges=requester_judges)


def _outcome(
    session: Session, record: Validation, kind: str, *, now: datetime, half_life: float | Decimal
) -> None:
    service.record_outcome(
        session,
        identity_id=record.winner_id,
        kind=kind,
        value=record.value,
        now=now,
        half_life_days=half_life,
        job_id=record.job_id,
    )

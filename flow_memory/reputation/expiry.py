"""What happens when a validation's time runs out; the job board's timer calls ``expire_due``.

- A requester who stays silent until the review window ends accepts.
- A drawn validator who has not answered is ``missed``: its validator standing falls
  (``validator_no_answer``) and a replacement is drawn with a fresh due time. When none can be
  drawn, the verdicts given decide; with none given, the requester judges (round 0) or the
  dispute waits for the next look (round 1).
- A rejection whose dispute window closed undisputed is final (``rejected_final``): the winner's
  record shows a bad completion, and the board settles the job (its stake is slashed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.reputation import domain, repository, service
from flow_memory.reputation.models import Validation
from flow_memory.reputation.verdicts import REQUESTER, Judgement, announce, decide, draw_round


def expire_due(
    session: Session,
    *,
    now: datetime,
    half_life_days: float | Decimal,
    review_seconds: int,
    dispute_seconds: int,
    exclusion_threshold: float | Decimal,
    limit: int = 200,
) -> list[Judgement]:
    """Handle up to ``limit`` validations whose time ran out; the decisions taken."""
    decided: list[Judgement] = []
    for record in repository.due_validations(session, now, limit=limit):
        judgement = _expire(
            session,
            record,
            now=now,
            half_life=half_life_days,
            review_seconds=review_seconds,
            dispute_seconds=dispute_seconds,
            threshold=exclusion_threshold,
        )
        if judgement is not None:
            decided.append(judgement)
    return decided


def _expire(
    session: Session,
    record: Validation,
    *,
    now: datetime,
    half_life: float | Decimal,
    review_seconds: int,
    dispute_seconds: int,
    threshold: float | Decimal,
) -> Judgement | None:
    if record.status == "rejected":
        record.status = "rejected_final"
        _outcome(session, record, domain.COMPLETION_BAD, now=now, half_life=half_life)
        session.flush()
        return announce(session, Judgement(record.job_id, record.status, record.score, (), ()), now)
    draws = repository.draws(session, record.job_id, record.round)
    if record.mode == REQUESTER and record.round == 0:
        record.status = "accepted"
        record.decided_at = now
        _outcome(session, record, domain.COMPLETION_GOOD, now=now, half_life=half_life)
        session.flush()
        return announce(session, Judgement(record.job_id, record.status, None, (), ()), now)
    missed = [d for d in draws if d.status == "pending"]
    for row in missed:
        row.status = "missed"
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
    record.due_at = now + timedelta(seconds=review_seconds)
    everyone = {d.validator_id for d in repository.draws(session, record.job_id, None)}
    if missed and draw_round(
        session, record, len(missed), now=now, threshold=threshold, exclude=everyone
    ):
        return None
    if repository.verdicts(session, record.job_id, record.round):
        judgement = decide(
            session, record, now=now, half_life=half_life, dispute_seconds=dispute_seconds
        )
        if judgement is not None:
            return judgement
    if record.round == 0:
        record.mode = REQUESTER  # no validator answers: the requester judges
    session.flush()
    return None


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

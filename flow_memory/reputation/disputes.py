"""Disputes: the winner of a job contests a rejection within the dispute window, and fresh
validators (none who judged the job before) decide it by consensus in round 1; the verdicts
go through ``verdicts.record_verdict`` like any other."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, NotFound
from flow_memory.reputation import repository
from flow_memory.reputation.models import Validation, ValidationDispute
from flow_memory.reputation.verdicts import DISPUTE_VALIDATORS, draw_round, judged


def open_dispute(
    session: Session,
    *,
    principal: Principal,
    job_id: str,
    reason: str,
    now: datetime,
    review_seconds: int,
    exclusion_threshold: float | Decimal,
) -> tuple[ValidationDispute, Validation]:
    """The winner disputes a rejection within the dispute window: fresh validators (none who
    judged the job before) are drawn to decide it by consensus. When none can be drawn now the
    dispute is opened all the same and waits for them: the timer draws at each look
    (``expiry.expire``), and the job's ``job.disputed`` event says it waits."""
    record = judged(session, job_id, for_update=True)
    if not principal.may_act_as(record.winner_id):
        raise NotFound("no result of this job of yours is being judged", field="job_id")
    if session.get(ValidationDispute, job_id) is not None:
        raise Conflict(
            "the job's rejection is disputed already", code="already_disputed", field="job_id"
        )
    if record.status != "rejected":
        raise Conflict(
            f"the job's result is {record.status}: only a rejection is disputed",
            code="not_rejected",
            field="job_id",
        )
    if now >= record.due_at:
        raise Conflict(
            "the dispute window has closed", code="dispute_window_closed", field="job_id"
        )
    before = {d.validator_id for d in repository.draws(session, job_id, None)}
    record.round = 1
    record.due_at = now + timedelta(seconds=review_seconds)
    count = max(record.validators, DISPUTE_VALIDATORS)
    draw_round(session, record, count, now=now, threshold=exclusion_threshold, exclude=before)
    dispute = ValidationDispute(
        job_id=job_id,
        winner_id=record.winner_id,
        reason=reason,
        status="open",
        opened_at=now,
        decided_at=None,
    )
    session.add(dispute)
    record.status = "disputed"
    session.flush()
    return dispute, record

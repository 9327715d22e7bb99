"""A job's escrow: a ledger hold on the requester's paying account, taken when the job is
posted and closed by exactly one transition: settled to the winner on completion (the rest
released), or released whole when the job is cancelled or expires. Each step is keyed by the
job, so a replayed step moves nothing twice."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.identities.payers import payer_of
from flow_memory.jobs.models import Job
from flow_memory.kit.errors import Conflict, InsufficientCredit
from flow_memory.ledger import holds
from flow_memory.ledger.domain import Cause, Posting
from flow_memory.ledger.service import open_account

ESCROW = "job_escrow"
PAYMENT = "job_payment"
RELEASE = "job_release"


def paying_holder(session: Session, identity_id: str) -> str:
    """Whose account pays for, and earns from, what ``identity_id`` does on the board."""
    return payer_of(session, identity_id)


def take(
    session: Session,
    *,
    job_id: str,
    payer_id: str,
    amount: Decimal,
    actor_id: str,
    expires_at: datetime,
    now: datetime,
) -> str:
    """Hold ``amount`` on the payer's account (opened on first need); the hold's id. An
    enforced account that cannot cover it refuses the job: 402 ``insufficient_credit``."""
    account = open_account(session, holder_id=payer_id, now=now)
    try:
        held = holds.hold_on(
            session,
            key=f"job:{job_id}:escrow",
            account=account,
            amount=amount,
            cause=Cause(ESCROW, job_id, actor_id=actor_id, memo="a job's escrow"),
            expires_at=expires_at,
            now=now,
        )
    except InsufficientCredit:
        raise InsufficientCredit(
            "the requester's available credit does not cover the job's escrow (max_price plus "
            "validator fees)",
            field="economics.max_price",
            hint="lower economics.max_price or the validator fees, wait for held credits to be "
            "released, or ask an operator for a grant (POST /inference/ledger/grants)",
        ) from None
    return held.hold.hold_id


def pay(session: Session, job: Job, *, bidder_id: str, price: Decimal, now: datetime) -> None:
    """Settle the escrow: ``price`` to the winner's paying account, the rest back."""
    payee = open_account(session, holder_id=paying_holder(session, bidder_id), now=now)
    settled = holds.settle(
        session,
        hold_id=job.hold_id,
        credits=[Posting(payee.account_id, price)],
        cause=Cause(PAYMENT, job.job_id, memo="a job's payment to its winner"),
        now=now,
    )
    if settled.status != "settled":  # released before (it outlived its expiry): pay nothing
        raise Conflict("the job's escrow is no longer held", code="escrow_released", field="job_id")


def release(session: Session, job: Job, *, memo: str, now: datetime) -> None:
    """Give the whole escrow back to the requester's paying account."""
    holds.release(
        session, hold_id=job.hold_id, cause=Cause(RELEASE, job.job_id, memo=memo), now=now
    )

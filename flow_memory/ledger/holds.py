"""Holds: credits set aside for an action under way, then settled, partly settled or released.

A hold moves credits from a main account to its hold account (so ``available`` drops while
``balance`` stays), settling moves them on to whoever earned them, releasing moves them back.
Each step is a transfer keyed by the hold's key and the step, so replaying a step moves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.kit.db import transaction_memo
from flow_memory.kit.errors import Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.kit.money import EXACT
from flow_memory.ledger import repository, rows
from flow_memory.ledger.domain import Cause, Posting
from flow_memory.ledger.models import LedgerAccount, LedgerHold
from flow_memory.ledger.service import find_account, transfer


@dataclass(frozen=True)
class HoldResult:
    hold: LedgerHold
    replayed: bool


def remaining(hold: LedgerHold) -> Decimal:
    """What the hold still holds."""
    return EXACT.subtract(hold.amount, EXACT.add(hold.settled, hold.released))


def hold(
    session: Session,
    *,
    key: str,
    account_id: str,
    amount: Decimal,
    cause: Cause,
    expires_at: datetime,
    now: datetime,
) -> HoldResult:
    """Set ``amount`` aside on a main account for the action ``cause`` until ``expires_at``;
    an enforced account that cannot cover it refuses with 402 ``insufficient_credit``."""
    _ensure_holdable(amount, expires_at, now)  # refused before the account is looked for
    account = find_account(session, account_id)
    return hold_on(
        session,
        key=key,
        account=account,
        amount=amount,
        cause=cause,
        expires_at=expires_at,
        now=now,
    )


def hold_on(
    session: Session,
    *,
    key: str,
    account: LedgerAccount,
    amount: Decimal,
    cause: Cause,
    expires_at: datetime,
    now: datetime,
) -> HoldResult:
    """``hold`` on a main account the caller has loaded already (``open_account`` gives it),
    so it is not read again."""
    _ensure_holdable(amount, expires_at, now)
    assert account.role == "main"
    known = transaction_memo(session, "hold_accounts")
    hold_account: LedgerAccount | None = known.get(account.account_id)
    if hold_account is None:
        hold_account = known[account.account_id] = repository.hold_account(
            session, account.account_id
        )
    assert hold_account is not None
    moved = transfer(
        session,
        key=f"{key}:hold",
        postings=[Posting(account.account_id, -amount), Posting(hold_account.account_id, amount)],
        cause=cause,
        now=now,
        accounts=[account, hold_account],
    )
    if moved.replayed:
        found = repository.hold_by_key(session, key)
        if found is not None:
            return HoldResult(found, replayed=True)
    row = {
        "hold_id": new_id("hold"),
        "idempotency_key": key,
        "account_id": account.account_id,
        "hold_account_id": hold_account.account_id,
        "amount": amount,
        "settled": Decimal(0),
        "released": Decimal(0),
        "status": "open",
        "cause_kind": cause.kind,
        "cause_id": cause.id,
        "expires_at": expires_at,
        "created_at": now,
    }
    rows.insert_hold(session, row)
    return HoldResult(LedgerHold(**row), replayed=False)


def _ensure_holdable(amount: Decimal, expires_at: datetime, now: datetime) -> None:
    if amount <= 0:
        raise Invalid("a hold's amount must be above zero", field="amount")
    if expires_at <= now:
        raise Invalid("a hold must expire in the future", field="expires_at")


def settle(
    session: Session,
    *,
    hold_id: str,
    credits: Sequence[Posting],
    cause: Cause,
    now: datetime,
) -> LedgerHold:
    """Pay ``credits`` (positive postings to whoever earned them) out of the hold and release
    what is left of it. Settling less than is held is a partial settlement; settling more
    draws the difference from the main account (refused, 402, if it is enforced and short).
    A settled or released hold is answered as it is: nothing moves twice."""
    record = _open_hold(session, hold_id)
    if record.status != "open":
        return record
    amount = sum((c.amount for c in credits), Decimal(0))
    if amount <= 0 or any(c.amount <= 0 for c in credits):
        raise Invalid("a settlement pays positive amounts", field="credits")
    # Settling moves credits twice (the payment, then the rest back): lock every balance both
    # movements touch at once, in account order, so that two settlements whose payers and
    # payees cross never each hold one of the other's balances between their movements.
    repository.balances(
        session,
        [record.hold_account_id, record.account_id, *(c.account_id for c in credits)],
        for_update=True,
    )
    held = remaining(record)
    from_hold = min(held, amount)
    takes = [Posting(record.hold_account_id, -from_hold)]
    if amount > held:
        takes.append(Posting(record.account_id, -EXACT.subtract(amount, held)))
    transfer(
        session,
        key=f"{record.idempotency_key}:settle",
        postings=[*takes, *credits],
        cause=cause,
        now=now,
    )
    record.settled = EXACT.add(record.settled, from_hold)
    _give_back(session, record, cause, now)
    record.status = "settled"
    record.closed_at = now
    session.flush()
    return record


def release(session: Session, *, hold_id: str, cause: Cause, now: datetime) -> LedgerHold:
    """Give everything the hold still holds back to its account (nothing, if it is closed)."""
    record = _open_hold(session, hold_id)
    if record.status != "open":
        return record
    _give_back(session, record, cause, now)
    record.status = "released"
    record.closed_at = now
    session.flush()
    return record


def release_expired(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Release up to ``limit`` open holds whose expiry has passed; how many were."""
    expired = repository.expired_holds(session, now, limit=limit)
    for record in expired:
        release(
            session,
            hold_id=record.hold_id,
            cause=Cause("hold_expired", record.cause_id, memo="the hold expired"),
            now=now,
        )
    return len(expired)


def _open_hold(session: Session, hold_id: str) -> LedgerHold:
    record = repository.hold(session, hold_id, for_update=True)
    if record is None:
        raise NotFound("hold not found", field="hold_id")
    return record


def _give_back(session: Session, record: LedgerHold, cause: Cause, now: datetime) -> None:
    rest = remaining(record)
    if rest <= 0:
        return
    transfer(
        session,
        key=f"{record.idempotency_key}:release",
        postings=[Posting(record.hold_account_id, -rest), Posting(record.account_id, rest)],
        cause=cause,
        now=now,
    )
    record.released = EXACT.add(record.released, rest)

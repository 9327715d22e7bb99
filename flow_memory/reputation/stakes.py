"""Stakes: credits an identity sets aside, as a ledger hold on its paying account, to bid
(``bid``) or to validate (``validate``); withdrawn by releasing the hold, slashed by paying a
share of it to a wronged requester. Every movement is a dry-run ledger transfer in the
caller's transaction, keyed by the stake and the step, so a replay moves nothing twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from sqlalchemy.orm import Session

from flow_memory.identities.payers import payer_of
from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, InsufficientCredit, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.kit.money import EXACT
from flow_memory.kit.scopes import AUDIT
from flow_memory.ledger import holds
from flow_memory.ledger.domain import Cause, Posting
from flow_memory.ledger.service import open_account
from flow_memory.reputation import domain, repository, service
from flow_memory.reputation.models import ReputationSlash, ReputationStake

BID = "bid"
VALIDATE = "validate"
# A stake's hold outlives any job: the ledger's sweep releases holds past their expiry, and a
# stake is released only by its withdrawal.
STAKE_HOLD = timedelta(days=3650)
_STORED = Decimal(1).scaleb(-18)


def place_stake(
    session: Session,
    *,
    principal: Principal,
    identity_id: str | None,
    amount: Decimal,
    purpose: str,
    now: datetime,
) -> ReputationStake:
    """Stake ``amount`` for the identity (the key's owner when None), held on its paying
    account: a bound agent's operator's. An enforced account short of it is 402."""
    ensure_may_act_as(principal, identity_id, field="identity_id")
    identity = identity_id or principal.owner_id
    stake = ReputationStake(
        stake_id=new_id("stake"),
        identity_id=identity,
        purpose=purpose,
        payer_id=payer_of(session, identity),
        placed_by=principal.owner_id,
        amount=amount,
        slashed=Decimal(0),
        slashes=0,
        status="active",
        created_at=now,
        updated_at=now,
        withdrawn_at=None,
    )
    stake.hold_id = _hold(session, stake, amount, actor_id=principal.owner_id, now=now)
    session.add(stake)
    session.flush()
    service.forget_capacities(session)
    return stake


def _hold(
    session: Session, stake: ReputationStake, amount: Decimal, *, actor_id: str, now: datetime
) -> str:
    account = open_account(session, holder_id=stake.payer_id, now=now)
    try:
        held = holds.hold_on(
            session,
            key=f"stake:{stake.stake_id}:{stake.slashes}",
            account=account,
            amount=amount,
            cause=Cause(
                "stake", stake.stake_id, actor_id=actor_id, memo=f"a {stake.purpose} stake"
            ),
            expires_at=now + STAKE_HOLD,
            now=now,
        )
    except InsufficientCredit:
        raise InsufficientCredit(
            "the paying account's available credit does not cover the stake",
            field="amount",
            hint="stake less, wait for held credits to be released, or ask an operator for a "
            "grant (POST /inference/ledger/grants)",
        ) from None
    return held.hold.hold_id


def visible_stake(
    session: Session, principal: Principal, stake_id: str, *, for_update: bool = False
) -> ReputationStake:
    """A stake its identity (or who acts as it) may see; absent to anyone else."""
    stake = repository.stake(session, stake_id, for_update=for_update)
    if stake is None or not (principal.may_act_as(stake.identity_id) or AUDIT in principal.scopes):
        raise NotFound("stake not found", field="stake_id")
    return stake


def withdraw_stake(
    session: Session,
    *,
    principal: Principal,
    stake_id: str,
    stake_per_slot: float | Decimal,
    now: datetime,
) -> ReputationStake:
    """Release a bid stake back to its account (withdrawing twice changes nothing). Refused
    while the rest would not cover the jobs its group holds (409 ``stake_in_use``)."""
    stake = visible_stake(session, principal, stake_id, for_update=True)
    if not principal.may_act_as(stake.identity_id):
        raise NotFound("stake not found", field="stake_id")
    if stake.status == "withdrawn":
        return stake
    if stake.purpose == VALIDATE:
        raise Conflict(
            "a validator's stake is withdrawn with the validator",
            code="validator_stake",
            field="stake_id",
            hint=f"POST /inference/validators/{stake.identity_id}/withdraw",
        )
    found = service.capacity_of(session, stake.identity_id, stake_per_slot=stake_per_slot)
    rest = EXACT.subtract(found.stake, stake.amount)
    covered = domain.stake_slots(rest, service.as_decimal(stake_per_slot))
    if found.held > 0 and covered is not None and covered < found.held:
        raise Conflict(
            f"the identity's group holds {found.held} jobs; without this stake the rest covers "
            f"{covered}",
            code="stake_in_use",
            field="stake_id",
            hint="withdraw it once those jobs have ended",
        )
    release_stake(session, stake, memo="the stake was withdrawn", now=now)
    return stake


def release_stake(session: Session, stake: ReputationStake, *, memo: str, now: datetime) -> None:
    """Give a stake's hold back to its account and mark it withdrawn."""
    holds.release(
        session,
        hold_id=stake.hold_id,
        cause=Cause("stake_release", stake.stake_id, memo=memo),
        now=now,
    )
    stake.status = "withdrawn"
    stake.withdrawn_at = stake.updated_at = now
    session.flush()
    service.forget_capacities(session)


def slash_share(amount: Decimal, share: float | Decimal) -> Decimal:
    """What slashing ``share`` of a stake of ``amount`` takes: rounded down, never above it."""
    taken = EXACT.multiply(amount, service.as_decimal(share)).quantize(
        _STORED, rounding=ROUND_DOWN, context=EXACT
    )
    return min(max(taken, Decimal(0)), amount)


def slash(
    session: Session,
    *,
    bidder_id: str,
    job_id: str,
    payee_id: str,
    reason: str,
    share: float | Decimal,
    now: datetime,
) -> list[ReputationSlash]:
    """Pay ``share`` of each active bid stake of the bidder's group (a bound agent's: its
    operator's and its fellow agents') to ``payee_id``'s account (the job's payer), for a bad
    completion or a no-show on ``job_id``; the rest of each stake is held again. Once per
    stake and job: calling again for the job takes nothing more."""
    found = service.capacity_of(session, bidder_id, stake_per_slot=0)
    payee = open_account(session, holder_id=payee_id, now=now)
    taken: list[ReputationSlash] = []
    for stake in repository.active_stakes(session, found.members, BID, for_update=True):
        done = repository.slash_of(session, stake_id=stake.stake_id, job_id=job_id)
        if done is not None:
            taken.append(done)
            continue
        amount = slash_share(stake.amount, share)
        if amount <= 0:
            continue
        holds.settle(
            session,
            hold_id=stake.hold_id,
            credits=[Posting(payee.account_id, amount)],
            cause=Cause(
                "stake_slash", job_id, memo=f"a stake slashed for {reason.replace('_', ' ')}"
            ),
            now=now,
        )
        record = ReputationSlash(
            slash_id=new_id("slash"),
            stake_id=stake.stake_id,
            identity_id=stake.identity_id,
            job_id=job_id,
            payee_id=payee_id,
            reason=reason,
            amount=amount,
            created_at=now,
        )
        session.add(record)
        stake.slashes += 1
        stake.slashed = EXACT.add(stake.slashed, amount)
        stake.amount = EXACT.subtract(stake.amount, amount)
        stake.updated_at = now
        if stake.amount > 0:
            stake.hold_id = _hold(session, stake, stake.amount, actor_id=payee_id, now=now)
        else:
            stake.status = "withdrawn"
            stake.withdrawn_at = now
        session.flush()
        taken.append(record)
    service.forget_capacities(session)
    return taken


def stake_read(stake: ReputationStake) -> dict[str, object]:
    return {
        "stake_id": stake.stake_id,
        "identity_id": stake.identity_id,
        "purpose": stake.purpose,
        "payer_id": stake.payer_id,
        "hold_id": stake.hold_id,
        "amount": stake.amount,
        "slashed": stake.slashed,
        "slashes": stake.slashes,
        "status": stake.status,
        "created_at": stake.created_at,
        "withdrawn_at": stake.withdrawn_at,
    }


def stakes_page(
    session: Session, *, principal: Principal, identity_id: str | None, limit: int
) -> list[ReputationStake]:
    """The stakes of an identity the caller acts as (auditors: anyone's), newest first."""
    identity = identity_id or principal.owner_id
    if AUDIT not in principal.scopes:
        ensure_may_act_as(principal, identity_id, field="identity_id")
    return repository.stakes_of(session, identity, limit=limit)


def slash_read(record: ReputationSlash) -> dict[str, object]:
    return {
        "slash_id": record.slash_id,
        "stake_id": record.stake_id,
        "identity_id": record.identity_id,
        "job_id": record.job_id,
        "payee_id": record.payee_id,
        "reason": record.reason,
        "amount": record.amount,
        "created_at": record.created_at,
    }

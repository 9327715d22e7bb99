"""Validators: identities that opt in, with a ``validate`` stake, to judge other identities'
results; drawn by ``draw`` weighted by validator standing and stake."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, NotFound
from flow_memory.reputation import draw, repository, service, stakes
from flow_memory.reputation.domain import VALIDATOR
from flow_memory.reputation.models import Validator

# The most validators a draw considers (the oldest opted in first).
MAX_POOL = 10_000


def join(
    session: Session,
    *,
    principal: Principal,
    identity_id: str | None,
    stake: Decimal,
    exclusion_threshold: float | Decimal,
    now: datetime,
) -> Validator:
    """Opt the identity in as a validator, its stake held on its paying account. Refused for
    an identity already in (409 ``already_validator``) or whose validator standing is below the
    exclusion threshold (409 ``below_reputation_floor``)."""
    ensure_may_act_as(principal, identity_id, field="identity_id")
    identity = identity_id or principal.owner_id
    found = repository.validator(session, identity, for_update=True)
    if found is not None and found.status == "active":
        raise Conflict(
            "the identity is a validator already",
            code="already_validator",
            field="identity_id",
            hint=f"withdraw first (POST /inference/validators/{identity}/withdraw) to change "
            "its stake",
        )
    needed = service.as_decimal(exclusion_threshold)
    has = service.standings(session, [identity], VALIDATOR)[identity]
    if has < needed:
        raise Conflict(
            f"the identity's validator standing {has} is below the {needed} validators need",
            code="below_reputation_floor",
            field="identity_id",
        )
    held = stakes.place_stake(
        session,
        principal=principal,
        identity_id=identity,
        amount=stake,
        purpose=stakes.VALIDATE,
        now=now,
    )
    if found is None:
        found = Validator(identity_id=identity)
        session.add(found)
    found.owner_id = service.owner_of(session, identity)
    found.stake_id = held.stake_id
    found.status = "active"
    found.joined_at = now
    found.withdrawn_at = None
    session.flush()
    return found


def withdraw(
    session: Session, *, principal: Principal, identity_id: str, now: datetime
) -> Validator:
    """Opt out: the validator's stake is released (withdrawing twice changes nothing)."""
    found = repository.validator(session, identity_id, for_update=True)
    if found is None or not principal.may_act_as(identity_id):
        raise NotFound("validator not found", field="identity_id")
    if found.status == "withdrawn":
        return found
    stake = repository.stake(session, found.stake_id, for_update=True)
    if stake is not None and stake.status == "active":
        stakes.release_stake(session, stake, memo="the validator withdrew", now=now)
    found.status = "withdrawn"
    found.withdrawn_at = now
    session.flush()
    return found


def validator_reads(session: Session, rows: list[Validator]) -> list[dict[str, Any]]:
    """Validators as listed: standing, stake and what their record is made of."""
    ids = [row.identity_id for row in rows]
    standing = service.standings(session, ids, VALIDATOR)
    staked = repository.staked(session, ids, stakes.VALIDATE)
    records = repository.records(session, ids, VALIDATOR)
    return [
        {
            "identity_id": row.identity_id,
            "status": row.status,
            "standing": standing[row.identity_id],
            "stake": staked.get(row.identity_id, Decimal(0)),
            "verdicts": 0 if row.identity_id not in records else records[row.identity_id].outcomes,
            "joined_at": row.joined_at,
            "withdrawn_at": row.withdrawn_at,
        }
        for row in rows
    ]


def draw_for_job(
    session: Session,
    *,
    job_id: str,
    requester_id: str,
    winner_id: str,
    count: int,
    exclusion_threshold: float | Decimal,
    round_: int = 0,
    exclude: Collection[str] = (),
) -> list[str]:
    """Draw ``count`` validators for a job's result (``draw.draw``), seeded by the job and the
    round (0 first; a replacement or a dispute takes the next), so any server draws the same."""
    rows = repository.active_validators(session, limit=MAX_POOL)
    ids = [row.identity_id for row in rows]
    standing = service.standings(session, ids, VALIDATOR)
    staked = repository.staked(session, ids, stakes.VALIDATE)
    pool = [
        draw.Candidate(
            row.identity_id,
            row.owner_id,
            standing[row.identity_id],
            staked.get(row.identity_id, Decimal(0)),
        )
        for row in rows
    ]
    parties = {requester_id, winner_id}
    return draw.draw(
        pool,
        count=count,
        seed=f"{job_id}:{round_}",
        parties=parties,
        owners={service.owner_of(session, party) for party in parties},
        threshold=service.as_decimal(exclusion_threshold),
        exclude=exclude,
    )

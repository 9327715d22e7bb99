"""All SQL of reputation: outcomes, records, stakes, slashes, validators, and the jobs an
identity holds now (read from the job board's tables)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from flow_memory.identities.models import AgentIdentity
from flow_memory.jobs.models import Job, JobBid
from flow_memory.reputation.models import (
    ReputationOutcome,
    ReputationRecord,
    ReputationSlash,
    ReputationStake,
    Validation,
    ValidationDraw,
    ValidationVerdict,
    Validator,
)

# The states in which a job is held by its winner: awarded and waiting for its result, or
# submitted and waiting for its judgement.
HELD_STATES = ("awarded", "submitted")


def insert_ignoring_conflicts(
    session: Session, model: type[Any], rows: Sequence[Mapping[str, Any]], on: Sequence[str]
) -> None:
    """Insert ``rows``, skipping those whose ``on`` columns another row already holds (one
    committed meanwhile by another transaction included: PostgreSQL waits for it)."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).values(list(rows)).on_conflict_do_nothing(index_elements=on)
    session.execute(statement)


# -- identities -------------------------------------------------------------------------------


def identities(session: Session, ids: Collection[str]) -> dict[str, AgentIdentity]:
    if not ids:
        return {}
    query = select(AgentIdentity).where(AgentIdentity.agent_id.in_(sorted(ids)))
    return {a.agent_id: a for a in session.scalars(query)}


# -- outcomes and records ---------------------------------------------------------------------


def outcome_of_job(
    session: Session, *, job_id: str, identity_id: str, kind: str
) -> ReputationOutcome | None:
    o = ReputationOutcome
    query = select(o).where(o.job_id == job_id, o.identity_id == identity_id, o.kind == kind)
    return session.scalars(query).first()


def record_for_update(session: Session, identity_id: str, role: str) -> ReputationRecord | None:
    r = ReputationRecord
    query = select(r).where(r.identity_id == identity_id, r.role == role).with_for_update()
    return session.scalars(query).first()


def records(session: Session, ids: Collection[str], role: str) -> dict[str, ReputationRecord]:
    if not ids:
        return {}
    r = ReputationRecord
    query = select(r).where(r.identity_id.in_(sorted(ids)), r.role == role)
    return {row.identity_id: row for row in session.scalars(query)}


def history(
    session: Session,
    *,
    identity_id: str,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[ReputationOutcome]:
    """The identity's outcomes, and for an operator its bound agents', newest first."""
    o = ReputationOutcome
    query = select(o).where(or_(o.identity_id == identity_id, o.operator_id == identity_id))
    if before is not None:
        when, outcome_id = before
        query = query.where(
            or_(o.recorded_at < when, and_(o.recorded_at == when, o.outcome_id < outcome_id))
        )
    return list(
        session.scalars(query.order_by(o.recorded_at.desc(), o.outcome_id.desc()).limit(limit))
    )


def outcomes_of(session: Session, identity_id: str, role: str) -> list[ReputationOutcome]:
    """Every outcome that counts for the identity in ``role``, oldest first."""
    o = ReputationOutcome
    query = select(o).where(
        or_(o.identity_id == identity_id, o.operator_id == identity_id), o.role == role
    )
    return list(session.scalars(query.order_by(o.recorded_at, o.outcome_id)))


# -- stakes, slashes, validators --------------------------------------------------------------


def stake(session: Session, stake_id: str, *, for_update: bool = False) -> ReputationStake | None:
    query = select(ReputationStake).where(ReputationStake.stake_id == stake_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def active_stakes(
    session: Session, ids: Collection[str], purpose: str, *, for_update: bool = False
) -> list[ReputationStake]:
    if not ids:
        return []
    s = ReputationStake
    query = select(s).where(s.identity_id.in_(sorted(ids)), s.purpose == purpose)
    query = query.where(s.status == "active").order_by(s.created_at, s.stake_id)
    if for_update:
        query = query.with_for_update()
    return list(session.scalars(query))


def staked(session: Session, ids: Collection[str], purpose: str) -> dict[str, Decimal]:
    """Each identity's active stakes of ``purpose``, summed (identities without any absent)."""
    found: dict[str, Decimal] = {}
    for row in active_stakes(session, ids, purpose):
        found[row.identity_id] = found.get(row.identity_id, Decimal(0)) + row.amount
    return found


def stakes_of(session: Session, identity_id: str, *, limit: int) -> list[ReputationStake]:
    s = ReputationStake
    query = select(s).where(s.identity_id == identity_id)
    return list(
        session.scalars(query.order_by(s.created_at.desc(), s.stake_id.desc()).limit(limit))
    )


def slash_of(session: Session, *, stake_id: str, job_id: str) -> ReputationSlash | None:
    s = ReputationSlash
    return session.scalars(select(s).where(s.stake_id == stake_id, s.job_id == job_id)).first()


def slashes_of_job(session: Session, *, identity_id: str, job_id: str) -> list[ReputationSlash]:
    s = ReputationSlash
    query = select(s).where(s.identity_id == identity_id, s.job_id == job_id)
    return list(session.scalars(query))


def validator(session: Session, identity_id: str, *, for_update: bool = False) -> Validator | None:
    query = select(Validator).where(Validator.identity_id == identity_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def active_validators(session: Session, *, limit: int) -> list[Validator]:
    v = Validator
    query = select(v).where(v.status == "active").order_by(v.joined_at, v.identity_id)
    return list(session.scalars(query.limit(limit)))


# -- validations ---------------------------------------------------------------------------


def validation(session: Session, job_id: str, *, for_update: bool = False) -> Validation | None:
    query = select(Validation).where(Validation.job_id == job_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def draws(session: Session, job_id: str, round_: int | None) -> list[ValidationDraw]:
    d = ValidationDraw
    query = select(d).where(d.job_id == job_id)
    if round_ is not None:
        query = query.where(d.round == round_)
    return list(session.scalars(query.order_by(d.drawn_at, d.draw_id)))


def verdicts(session: Session, job_id: str, round_: int) -> list[ValidationVerdict]:
    v = ValidationVerdict
    query = select(v).where(v.job_id == job_id, v.round == round_)
    return list(session.scalars(query.order_by(v.created_at, v.verdict_id)))


def verdict(session: Session, job_id: str, judge_id: str, round_: int) -> ValidationVerdict | None:
    v = ValidationVerdict
    query = select(v).where(v.job_id == job_id, v.judge_id == judge_id, v.round == round_)
    return session.scalars(query).first()


# -- jobs held --------------------------------------------------------------------------------


def lock_group(session: Session, head: str) -> None:
    """Serialise awards to one identity's group until the transaction ends, so that two
    awards on different jobs (each under its own job's lock) never both count the jobs held
    before the other's. PostgreSQL: a transaction-level advisory lock keyed by the group's
    head; SQLite runs one writer at a time and needs none."""
    if session.get_bind().dialect.name == "postgresql":
        key = func.hashtextextended(f"flow_memory.capacity:{head}", 0)
        session.execute(select(func.pg_advisory_xact_lock(key)))


def jobs_held(session: Session, ids: Collection[str]) -> int:
    """How many jobs the identities hold now: won and not yet ended."""
    if not ids:
        return 0
    query = (
        select(func.count())
        .select_from(Job)
        .join(JobBid, JobBid.bid_id == Job.winning_bid_id)
        .where(Job.status.in_(HELD_STATES), JobBid.bidder_id.in_(sorted(ids)))
    )
    return int(session.scalar(query) or 0)


_WAITING = ("open", "disputed", "rejected")  # a validation whose time may run out


def due_validation_ids(session: Session, now: datetime, *, limit: int) -> list[str]:
    """The job ids of validations whose time ran out, soonest first (nothing locked)."""
    v = Validation
    query = select(v.job_id).where(v.status.in_(_WAITING), v.due_at <= now)
    return list(session.scalars(query.order_by(v.due_at, v.job_id).limit(limit)))


def claim_validation(session: Session, job_id: str, now: datetime) -> Validation | None:
    """The validation if its time still ran out at ``now``, locked; None when it has not, or
    when another transaction holds it (PostgreSQL skips it rather than wait: that server is
    acting on it). On SQLite the write lock every transaction takes serialises claims."""
    v = Validation
    query = (
        select(v)
        .where(v.job_id == job_id, v.status.in_(_WAITING), v.due_at <= now)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).first()


def due_validations(session: Session, now: datetime, *, limit: int) -> list[Validation]:
    """Validations whose time ran out (verdicts, or a dispute window), claimed for this
    transaction: rows another server holds are skipped, so each is handled once."""
    v = Validation
    query = (
        select(v)
        .where(v.status.in_(_WAITING), v.due_at <= now)
        .order_by(v.due_at, v.job_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def next_validation_due(session: Session) -> datetime | None:
    """The earliest moment some validation's time runs out (verdicts, or a dispute window)."""
    v = Validation
    query = select(func.min(v.due_at)).where(v.status.in_(_WAITING))
    found: datetime | None = session.scalar(query)
    return found

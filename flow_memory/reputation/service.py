"""Reputation's use cases: record an outcome, read standings (the job board's award reads them
through ``flow_memory.jobs.standing``), refuse a bid below the floor or beyond earned capacity,
and an identity's page. Every function writes in the caller's transaction; nothing commits.

Bound and free: a bound agent's outcome counts for the agent and for its operator (one
outcome row naming both; both records change), and the board reads a bound agent's standing as
the lower of its own and its operator's, so a fresh instance never washes its operator's
record. A free agent's record is its own: no route resets, moves or deletes a record or an
outcome, and a free agent's outcomes never count for its creator."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.identities.payers import payers_of
from flow_memory.jobs.standing import forget_standings, register_standing_source
from flow_memory.kit.cursors import decode_cursor, encode_cursor
from flow_memory.kit.db import transaction_memo
from flow_memory.kit.errors import Conflict, Invalid
from flow_memory.kit.ids import new_ordered_id
from flow_memory.reputation import domain, known_answers, repository
from flow_memory.reputation import rows as bid_reads
from flow_memory.reputation.domain import BIDDER, VALIDATOR
from flow_memory.reputation.models import ReputationOutcome, ReputationRecord


def as_decimal(setting: float | Decimal) -> Decimal:
    """A setting (a float as the environment gives it) as the decimal it was written as."""
    return setting if isinstance(setting, Decimal) else Decimal(repr(setting))


# -- who stands behind an identity ------------------------------------------------------------


def operators_of(session: Session, ids: Collection[str]) -> dict[str, str]:
    """The operator of each bound agent among ``ids`` (identities not bound are absent): the
    account that pays for a bound agent is its operator's (``payer_of``, read once)."""
    return {i: payer for i, payer in payers_of(session, ids).items() if payer != i}


def owner_of(session: Session, identity_id: str) -> str:
    """Who stands behind an identity: a bound agent's operator, a free agent's creator, an
    owner itself. Validators are never drawn from the owner of the requester or the winner."""
    agent = repository.identities(session, [identity_id]).get(identity_id)
    return identity_id if agent is None else agent.creator_id


# -- recording --------------------------------------------------------------------------------


_ON_KNOWN_ANSWERS = {
    domain.COMPLETION_GOOD: domain.KNOWN_ANSWER_PASS,
    domain.COMPLETION_BAD: domain.KNOWN_ANSWER_FAIL,
}


@dataclass(frozen=True)
class Recorded:
    outcome: ReputationOutcome
    replayed: bool  # the job board recorded this outcome of this job before: nothing changed


def record_outcome(
    session: Session,
    *,
    identity_id: str,
    kind: str,
    value: Decimal,
    now: datetime,
    half_life_days: float | Decimal,
    job_id: str | None = None,
) -> Recorded:
    """Record one outcome of ``identity_id`` (a kind of ``domain.KINDS``) on a job worth
    ``value`` credits, in the caller's transaction: its row, and its record (and a bound
    agent's operator's) updated. Once per identity, kind and job: a replay changes nothing.
    A completion of a known-answer job is recorded as its pass or fail."""
    if (
        job_id is not None
        and kind in _ON_KNOWN_ANSWERS
        and known_answers.is_probe_job(session, job_id)
    ):
        kind = _ON_KNOWN_ANSWERS[kind]  # a known-answer job ends as a pass or a fail instead
    effect = domain.KINDS.get(kind)
    if effect is None:
        raise Invalid(f"no outcome kind {kind!r}", field="kind")
    if job_id is not None:
        found = repository.outcome_of_job(
            session, job_id=job_id, identity_id=identity_id, kind=kind
        )
        if found is not None:
            return Recorded(found, replayed=True)
    operator = operators_of(session, [identity_id]).get(identity_id)
    good, bad = domain.weight(kind, value)
    outcome = ReputationOutcome(
        outcome_id=new_ordered_id("rep", now),
        identity_id=identity_id,
        operator_id=operator,
        role=effect.role,
        kind=kind,
        job_id=job_id,
        value=value,
        good=good,
        bad=bad,
        recorded_at=now,
    )
    session.add(outcome)
    session.flush()
    forget_standings(session)
    forget_capacities(session)
    half_life = as_decimal(half_life_days)
    # Records are locked in identity order, so two outcomes never wait on each other's.
    for subject in sorted({identity_id} | ({operator} if operator else set())):
        _add_to_record(
            session, subject, effect.role, kind, good=good, bad=bad, at=now, half_life=half_life
        )
    return Recorded(outcome, replayed=False)


def _add_to_record(
    session: Session,
    identity_id: str,
    role: str,
    kind: str,
    *,
    good: Decimal,
    bad: Decimal,
    at: datetime,
    half_life: Decimal,
) -> None:
    repository.insert_ignoring_conflicts(
        session,
        ReputationRecord,
        [
            {
                "identity_id": identity_id,
                "role": role,
                "good": Decimal(0),
                "bad": Decimal(0),
                "latest_at": at,
                "points": 0,
                "counts": {},
                "outcomes": 0,
            }
        ],
        on=("identity_id", "role"),
    )
    row = repository.record_for_update(session, identity_id, role)
    assert row is not None
    was = domain.Record(row.good, row.bad, row.latest_at)
    now_is = domain.add(was, good=good, bad=bad, at=at, half_life_days=half_life)
    assert now_is.latest is not None
    row.good, row.bad, row.latest_at = now_is.good, now_is.bad, now_is.latest
    row.points = domain.next_points(row.points, kind)
    row.counts = {**row.counts, kind: int(row.counts.get(kind, 0)) + 1}
    row.outcomes += 1
    session.flush()


# -- standing ---------------------------------------------------------------------------------


def scores(session: Session, ids: Collection[str], role: str) -> dict[str, Decimal]:
    """Each identity's own score in ``role`` (the prior for one without a record)."""
    found = bid_reads.records(session, ids, role)
    return {
        i: domain.PRIOR if i not in found else domain.score(found[i].good, found[i].bad)
        for i in ids
    }


def standings(session: Session, ids: Collection[str], role: str = BIDDER) -> dict[str, Decimal]:
    """Each identity's standing as the board reads it: its score, a bound agent's gated by its
    operator's (``domain.gated``)."""
    operators = operators_of(session, ids)
    own = scores(session, set(ids) | set(operators.values()), role)
    return {i: domain.gated(own[i], own[operators[i]] if i in operators else None) for i in ids}


def bidder_standings(session: Session, bidder_ids: Collection[str]) -> Mapping[str, Decimal]:
    """The standing source the job board's award reads: every bidder's, new ones at the prior."""
    return standings(session, bidder_ids, BIDDER)


register_standing_source(bidder_standings)


def ensure_above_floor(
    session: Session,
    *,
    bidder_id: str,
    min_reputation: Decimal | None,
    exclusion_threshold: float | Decimal,
    standing: Decimal | None = None,
) -> Decimal:
    """Refuse a bid from a bidder below the exclusion threshold or the job's floor (409
    ``below_reputation_floor``, naming the standing needed); the bidder's standing.
    ``standing``: the bidder's as ``bidder_standings`` gave it, when the caller has read it in
    this transaction already and recorded no outcome since."""
    needed = domain.required_standing(min_reputation, as_decimal(exclusion_threshold))
    has = standings(session, [bidder_id])[bidder_id] if standing is None else standing
    if has < needed:
        raise Conflict(
            f"the bidder's standing {has} is below the {needed} this job needs",
            code="below_reputation_floor",
            field="bidder_id",
            hint="standing rises with good completions (GET /inference/reputation/{identity_id} "
            "shows it); bid on jobs without a min_reputation above it",
        )
    return has


# -- earned capacity --------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """What an identity's group (a bound agent's operator and its bound agents, or a free
    agent or an owner and its own bound agents) may hold at once, and holds now."""

    head: str  # whose record earns it
    members: tuple[str, ...]
    points: int
    stake: Decimal
    earned: int
    covered: int | None  # None: stakes bound nothing
    limit: int
    count_held: Callable[[], int] = field(repr=False, compare=False)

    @cached_property
    def held(self) -> int:
        """Jobs the group holds now: counted when first asked (a bid when capacity is not
        enforced needs only the stake)."""
        return self.count_held()


_GROUPS = "capacity_groups"  # transaction memo: identity -> (head, members, points, stake)


def forget_capacities(session: Session) -> None:
    """What the transaction read of groups' points and stakes is stale: an outcome was
    recorded, or a stake placed, slashed or released."""
    transaction_memo(session, _GROUPS).clear()


def capacity_of(session: Session, identity_id: str, *, stake_per_slot: float | Decimal) -> Capacity:
    """Jobs the identity's group has earned to hold at once, bounded by its bid stakes. The
    group, its points and its stake are read once a transaction (a bid is checked, then
    awarded); the jobs it holds are counted afresh each time, when asked."""
    groups = transaction_memo(session, _GROUPS)
    known = groups.get(identity_id)
    if known is None:
        head = operators_of(session, [identity_id]).get(identity_id, identity_id)
        members = tuple(sorted({head, identity_id, *bid_reads.bound_agents_of(session, head)}))
        record = bid_reads.records(session, [head], BIDDER).get(head)
        points = 0 if record is None else record.points
        stake = sum(bid_reads.staked(session, members, "bid").values(), Decimal(0))
        known = groups[identity_id] = (head, members, points, stake)
    head, members, points, stake = known
    per_slot = as_decimal(stake_per_slot)
    return Capacity(
        head=head,
        members=members,
        points=points,
        stake=stake,
        earned=domain.earned_slots(points),
        covered=domain.stake_slots(stake, per_slot),
        limit=domain.capacity(points, stake, per_slot),
        count_held=lambda: repository.jobs_held(session, members),
    )


def lock_group_of(session: Session, identity_id: str) -> None:
    """Serialise awards to the identity's group to the end of the transaction (once a
    transaction per group)."""
    head = operators_of(session, [identity_id]).get(identity_id, identity_id)
    locked = transaction_memo(session, "capacity_locks")
    if head not in locked:
        repository.lock_group(session, head)
        locked[head] = True


def ensure_capacity(
    session: Session,
    *,
    bidder_id: str,
    stake_per_slot: float | Decimal,
    enforce_earned: bool = True,
) -> Capacity:
    """Refuse a bid whose bidder's group has no bid stake covering one job (409
    ``stake_required``, naming the stake needed; never when ``stake_per_slot`` is 0), or that
    would hold more jobs than the group has earned, bounded by its stake (409
    ``capacity_reached``, with the figures; only when ``enforce_earned``)."""
    found = capacity_of(session, bidder_id, stake_per_slot=stake_per_slot)
    per_slot = as_decimal(stake_per_slot)
    if found.covered == 0:
        raise Conflict(
            f"bidding needs an active bid stake of at least {per_slot} credits (each job held "
            f"at once needs {per_slot}); the bidder's group has {found.stake} staked",
            code="stake_required",
            field="bidder_id",
            hint=f"stake first: POST /inference/stakes with an amount of at least {per_slot}",
        )
    if enforce_earned and found.held >= found.limit:
        covers = "no bound" if found.covered is None else str(found.covered)
        raise Conflict(
            f"the bidder's group holds {found.held} jobs at once, its limit: it has earned "
            f"{found.earned} and its stake of {found.stake} covers {covers}",
            code="capacity_reached",
            field="bidder_id",
            hint="bid again once a job held has ended; good completions earn more at once "
            "(GET /inference/reputation/{identity_id} shows the figures), and a larger stake "
            "covers more",
        )
    return found


# -- reading ----------------------------------------------------------------------------------


def reputation_read(
    session: Session,
    *,
    identity_id: str,
    stake_per_slot: float | Decimal,
    half_life_days: float | Decimal,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """An identity's page: its score and components per role, earned capacity, history."""
    agent = repository.identities(session, [identity_id]).get(identity_id)
    operator = agent.creator_id if agent is not None and agent.kind == "bound" else None
    roles = {}
    for role in (BIDDER, VALIDATOR):
        record = repository.records(session, [identity_id], role).get(identity_id)
        roles[role] = _role_read(record, role)
    roles[BIDDER]["standing"] = standings(session, [identity_id])[identity_id]
    found = capacity_of(session, identity_id, stake_per_slot=stake_per_slot)
    roles[BIDDER]["capacity"] = {
        "counted_for": found.head,
        "points": found.points,
        "earned": found.earned,
        "stake": found.stake,
        "stake_covers": found.covered,
        "limit": found.limit,
        "held": found.held,
    }
    staked = repository.staked(session, [identity_id], "validate")
    validator = repository.validator(session, identity_id)
    roles[VALIDATOR]["stake"] = staked.get(identity_id, Decimal(0))
    roles[VALIDATOR]["opted_in"] = validator is not None and validator.status == "active"
    before = None if cursor is None else decode_cursor(cursor)
    rows = repository.history(session, identity_id=identity_id, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "identity_id": identity_id,
        "identity_kind": "owner" if agent is None else agent.kind,
        "operator_id": operator,
        "formula": "(good + 1) / (good + bad + 2)",
        "prior": domain.PRIOR,
        "half_life_days": as_decimal(half_life_days),
        "bidder": roles[BIDDER],
        "validator": roles[VALIDATOR],
        "history": [outcome_read(o) for o in rows],
        "next_cursor": (
            encode_cursor(rows[-1].recorded_at, rows[-1].outcome_id) if more and rows else None
        ),
    }


def _role_read(record: ReputationRecord | None, role: str) -> dict[str, Any]:
    if record is None:
        return {
            "score": domain.PRIOR,
            "good": Decimal(0),
            "bad": Decimal(0),
            "outcomes": 0,
            "latest_at": None,
            "components": domain.components({}, role),
        }
    return {
        "score": domain.score(record.good, record.bad),
        "good": record.good,
        "bad": record.bad,
        "outcomes": record.outcomes,
        "latest_at": record.latest_at,
        "components": domain.components(record.counts, role),
    }


def outcome_read(outcome: ReputationOutcome) -> dict[str, Any]:
    return {
        "outcome_id": outcome.outcome_id,
        "identity_id": outcome.identity_id,
        "operator_id": outcome.operator_id,
        "role": outcome.role,
        "kind": outcome.kind,
        "job_id": outcome.job_id,
        "value": outcome.value,
        "good": outcome.good,
        "bad": outcome.bad,
        "recorded_at": outcome.recorded_at,
    }

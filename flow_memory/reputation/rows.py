"""The reads every bid makes of reputation, run on the driver (``flow_memory.kit.driver``): a
bidder's record (for its standing and its points), its group's bid stakes and an operator's
bound agents. Each is a plain query compiled once per number of identities asked about; the
ORM's reads of the same rows cost the job writer more than the queries themselves, on every
bid. What they answer is what the ORM's reads would: amounts through the column's own type."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from flow_memory.identities.models import AgentIdentity
from flow_memory.kit.db import Money
from flow_memory.kit.driver import DriverQuery
from flow_memory.reputation.models import ReputationRecord, ReputationStake

_RECORDS_TABLE: Table = ReputationRecord.__table__  # type: ignore[assignment]
_STAKES_TABLE: Table = ReputationStake.__table__  # type: ignore[assignment]
_AGENTS_TABLE: Table = AgentIdentity.__table__  # type: ignore[assignment]
_MONEY = Money()


@dataclass(frozen=True)
class Figures:
    """What a bid reads of an identity's record in one role."""

    good: Decimal
    bad: Decimal
    points: int


def _ids(count: int) -> list[object]:
    return [bindparam(f"i{n}") for n in range(count)]


def _named(ids: list[str]) -> dict[str, str]:
    return {f"i{n}": identity for n, identity in enumerate(ids)}


_RECORDS: dict[int, DriverQuery] = {}


def records(session: Session, ids: Collection[str], role: str) -> dict[str, Figures]:
    """The figures of the identities' records in ``role`` (those without one absent)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = _RECORDS.get(len(wanted))
    if query is None:
        t = _RECORDS_TABLE.c
        query = _RECORDS[len(wanted)] = DriverQuery(
            select(t.identity_id, t.good, t.bad, t.points).where(
                t.identity_id.in_(_ids(len(wanted))), t.role == bindparam("role")
            )
        )
    connection = session.connection()
    dialect = connection.dialect
    money = _MONEY.process_result_value
    return {
        identity: Figures(
            money(good, dialect) or Decimal(0), money(bad, dialect) or Decimal(0), int(points)
        )
        for identity, good, bad, points in query.rows(connection, {**_named(wanted), "role": role})
    }


_STAKED: dict[int, DriverQuery] = {}


def staked(session: Session, ids: Collection[str], purpose: str) -> dict[str, Decimal]:
    """Each identity's active stakes of ``purpose``, summed (identities without any absent)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = _STAKED.get(len(wanted))
    if query is None:
        t = _STAKES_TABLE.c
        query = _STAKED[len(wanted)] = DriverQuery(
            select(t.identity_id, t.amount).where(
                t.identity_id.in_(_ids(len(wanted))),
                t.purpose == bindparam("purpose"),
                t.status == bindparam("status"),
            )
        )
    connection = session.connection()
    dialect = connection.dialect
    found: dict[str, Decimal] = {}
    named = {**_named(wanted), "purpose": purpose, "status": "active"}
    for identity, amount in query.rows(connection, named):
        found[identity] = found.get(identity, Decimal(0)) + (
            _MONEY.process_result_value(amount, dialect) or Decimal(0)
        )
    return found


_BOUND = DriverQuery(
    select(_AGENTS_TABLE.c.agent_id).where(
        _AGENTS_TABLE.c.creator_id == bindparam("operator_id"),
        _AGENTS_TABLE.c.kind == bindparam("kind"),
    )
)


def bound_agents_of(session: Session, operator_id: str) -> list[str]:
    """The bound agents ``operator_id`` operates."""
    rows = _BOUND.rows(session.connection(), {"operator_id": operator_id, "kind": "bound"})
    return [agent_id for (agent_id,) in rows]

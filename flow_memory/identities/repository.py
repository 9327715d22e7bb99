"""All SQL of agent identities (and the counts their profiles show)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from flow_memory.identities.models import AgentIdentity
from flow_memory.keys.models import ApiKey
from flow_memory.usage.models import UsageRecord


def get(session: Session, agent_id: str, *, for_update: bool = False) -> AgentIdentity | None:
    query = select(AgentIdentity).where(AgentIdentity.agent_id == agent_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def operated_by(session: Session, owner_id: str) -> list[str]:
    """The active identities ``owner_id`` may act as: its bound agents, and the free agents it
    created that hold no key of their own yet."""
    a = AgentIdentity
    query = select(a.agent_id).where(
        a.creator_id == owner_id,
        a.status == "active",
        or_(a.kind == "bound", a.keyed_at.is_(None)),
    )
    return list(session.scalars(query))


def self_keyed(session: Session) -> list[str]:
    """Every free agent that holds keys of its own (suspended ones too)."""
    a = AgentIdentity
    return list(
        session.scalars(select(a.agent_id).where(a.kind == "free", a.keyed_at.is_not(None)))
    )


def page(
    session: Session,
    *,
    filters: dict[str, Any],
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[AgentIdentity]:
    """Identities matching ``filters``, newest first."""
    a = AgentIdentity
    query = select(a)
    for name in ("kind", "status", "creator_id"):
        if filters.get(name) is not None:
            query = query.where(getattr(a, name) == filters[name])
    if before is not None:
        when, agent_id = before
        query = query.where(
            or_(a.created_at < when, and_(a.created_at == when, a.agent_id < agent_id))
        )
    return list(
        session.scalars(query.order_by(a.created_at.desc(), a.agent_id.desc()).limit(limit))
    )


def usage_counts(session: Session, agent_id: str) -> tuple[int, int]:
    """(records, units consumed) of the usage records naming the agent."""
    u = UsageRecord
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(u.actual_units), 0)).where(
            u.agent_id == agent_id
        )
    ).one()
    return int(row[0]), int(row[1])


def usage_counts_of(session: Session, agent_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``usage_counts`` of each agent, in one query (agents with no records left out)."""
    if not agent_ids:
        return {}
    u = UsageRecord
    rows = session.execute(
        select(u.agent_id, func.count(), func.coalesce(func.sum(u.actual_units), 0))
        .where(u.agent_id.in_(list(agent_ids)))
        .group_by(u.agent_id)
    )
    return {
        agent_id: (int(records), int(units))
        for agent_id, records, units in rows
        if agent_id is not None
    }


def units_by_day(session: Session, agent_id: str, since: datetime) -> dict[date, int]:
    u = UsageRecord
    query = select(u.created_at, u.actual_units).where(
        u.agent_id == agent_id, u.created_at >= since
    )
    days: dict[date, int] = {}
    for when, units in session.execute(query):
        days[when.date()] = days.get(when.date(), 0) + int(units)
    return days


def active_keys(session: Session, agent_id: str) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.owner_id == agent_id, ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def active_key_counts(session: Session, owner_ids: Sequence[str]) -> dict[str, int]:
    """How many unrevoked keys each owner holds, in one query (owners with none left out)."""
    if not owner_ids:
        return {}
    query = (
        select(ApiKey.owner_id, func.count())
        .where(ApiKey.owner_id.in_(list(owner_ids)), ApiKey.revoked_at.is_(None))
        .group_by(ApiKey.owner_id)
    )
    return {owner_id: int(count) for owner_id, count in session.execute(query)}


def many(session: Session, agent_ids: Sequence[str]) -> dict[str, AgentIdentity]:
    if not agent_ids:
        return {}
    query = select(AgentIdentity).where(AgentIdentity.agent_id.in_(list(agent_ids)))
    return {a.agent_id: a for a in session.scalars(query)}

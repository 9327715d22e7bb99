"""Register, list, key and suspend agent identities; who may act as them.

What an owner controls is read with its key and cached with it (``KEY_CACHE``), so every change
here that alters who may act as an identity clears that cache once committed (and tells every
other server on a PostgreSQL database to clear theirs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from flow_memory.identities import repository
from flow_memory.identities.models import AgentIdentity
from flow_memory.identities.schemas import AgentCreate, AgentKeyCreate
from flow_memory.keys.service import KEY_CACHE, IssuedKey, create_key, revoke_key
from flow_memory.kit.actors import (
    ensure_may_act_as,
    register_identity_source,
    register_self_governed_source,
)
from flow_memory.kit.broadcast import KEY_REVOKED, announce
from flow_memory.kit.cursors import decode_cursor, encode_cursor
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Forbidden, Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.kit.scopes import ADMIN, AUDIT
from flow_memory.ledger import service as ledger
from flow_memory.reputation import service as reputation
from flow_memory.reputation.domain import BIDDER, VALIDATOR


def _operated(session: Session, *, owner_id: str, key_id: str) -> Iterable[str]:
    return repository.operated_by(session, owner_id)


def _self_governed(session: Session) -> Iterable[str]:
    return repository.self_keyed(session)


register_identity_source(_operated)
register_self_governed_source(_self_governed)


def _keys_change_after_commit(session: Session) -> None:
    """Who may act as whom changed: forget every cached key now and once committed, here and
    on every other server (a revoke's announcement without a key id clears them all)."""
    KEY_CACHE.clear()
    event.listen(session, "after_commit", lambda _: KEY_CACHE.clear(), once=True)
    announce(session, KEY_REVOKED)


def register(
    session: Session, *, principal: Principal, body: AgentCreate, now: datetime
) -> AgentIdentity:
    """Register an identity for the key's owner (or the owner ``owner_id`` names) and open its
    ledger account: a free agent's is always enforced."""
    ensure_may_act_as(principal, body.owner_id, field="owner_id")
    agent = AgentIdentity(
        agent_id=new_id("agent"),
        kind=body.kind,
        display_name=body.display_name,
        description=body.description,
        values=list(body.values),
        memory_ref=body.memory_ref,
        models=list(body.models),
        profile=body.profile.model_dump(),
        creator_id=body.owner_id or principal.owner_id,
        status="active",
        keyed_at=None,
        suspended_at=None,
        suspend_reason=None,
        created_at=now,
    )
    session.add(agent)
    session.flush()
    ledger.open_account(
        session,
        holder_id=agent.agent_id,
        holder_kind="agent",
        enforcement="always" if agent.kind == "free" else "off",
        now=now,
    )
    _keys_change_after_commit(session)
    return agent


def find(session: Session, agent_id: str, *, for_update: bool = False) -> AgentIdentity:
    agent = repository.get(session, agent_id, for_update=for_update)
    if agent is None:
        raise NotFound("agent identity not found", field="agent_id")
    return agent


def issue_key(
    session: Session, *, principal: Principal, agent_id: str, body: AgentKeyCreate, now: datetime
) -> IssuedKey:
    """A key of a free agent's own (its secret shown once). Its creator may issue the first;
    from then on only the agent's own keys may issue more."""
    agent = find(session, agent_id, for_update=True)
    ensure_may_act_as(principal, agent.agent_id, field="agent_id")
    if agent.kind != "free":
        raise Conflict(
            "only a free agent holds keys of its own",
            code="agent_is_bound",
            field="agent_id",
            hint="a bound agent acts through its operator's keys",
        )
    if agent.status != "active":
        raise Conflict("the agent is suspended", code="agent_suspended", field="agent_id")
    wanted = set(body.scopes)
    if ADMIN in wanted:
        raise Invalid("an agent's key never holds inference:admin", field="scopes")
    lacking = sorted(wanted - principal.scopes) if not principal.is_admin else []
    if lacking:
        raise Forbidden(
            f"the issuing key lacks {', '.join(lacking)}",
            field="scopes",
            code="scope_not_held",
            hint="an issued key's scopes are among the issuing key's own",
        )
    issued = create_key(
        session, owner_id=agent.agent_id, scopes=wanted, label=body.label or "", now=now
    )
    if agent.keyed_at is None:
        agent.keyed_at = now
        session.flush()
        _keys_change_after_commit(session)
    return issued


def suspend(session: Session, *, agent_id: str, reason: str, now: datetime) -> AgentIdentity:
    """Suspend an identity: its keys are revoked, and no owner acts as it any more."""
    agent = find(session, agent_id, for_update=True)
    if agent.status == "suspended":
        raise Conflict("the agent is already suspended", code="agent_suspended")
    agent.status = "suspended"
    agent.suspended_at = now
    agent.suspend_reason = reason
    for key in repository.active_keys(session, agent.agent_id):
        revoke_key(session, key_id=key.key_id, now=now)
    session.flush()
    _keys_change_after_commit(session)
    return agent


# -- reading --------------------------------------------------------------------------------


def sees_private(principal: Principal, agent: AgentIdentity) -> bool:
    """The agent itself, the owner who operates it, admins and auditors see its private fields
    (its memory reference, its metabolism)."""
    operates = agent.creator_id == principal.owner_id and agent.status == "active"
    return (
        principal.is_admin
        or AUDIT in principal.scopes
        or agent.agent_id == principal.owner_id
        or (operates and (agent.kind == "bound" or agent.keyed_at is None))
    )


def agent_read(session: Session, principal: Principal, agent: AgentIdentity) -> dict[str, Any]:
    return agents_read(session, principal, [agent])[0]


def agents_read(
    session: Session, principal: Principal, agents: Sequence[AgentIdentity]
) -> list[dict[str, Any]]:
    """Agents as answered, their activity, accounts and standings read for all at once: a
    page of agents costs a few queries, not a few per agent."""
    ids = [agent.agent_id for agent in agents]
    usage = repository.usage_counts_of(session, ids)
    keys = repository.active_key_counts(session, ids)
    accounts = {a.holder_id: a.account_id for a in ledger.accounts_of(session, ids)}
    standing = {role: reputation.standings(session, ids, role) for role in (BIDDER, VALIDATOR)}
    return [
        {
            "agent_id": agent.agent_id,
            "kind": agent.kind,
            "display_name": agent.display_name,
            "description": agent.description,
            "values": agent.values,
            "models": agent.models,
            "profile": agent.profile,
            "operator_id": agent.creator_id if agent.kind == "bound" else None,
            "memory_ref": agent.memory_ref if sees_private(principal, agent) else None,
            "status": agent.status,
            "self_keyed": agent.keyed_at is not None,
            "account_id": accounts.get(agent.agent_id),
            "created_at": agent.created_at,
            "suspended_at": agent.suspended_at,
            "activity": {
                "usage_records": usage.get(agent.agent_id, (0, 0))[0],
                "units_consumed": usage.get(agent.agent_id, (0, 0))[1],
                "active_keys": keys.get(agent.agent_id, 0),
            },
            "standing": {role: standing[role][agent.agent_id] for role in standing},
        }
        for agent in agents
    ]


@dataclass(frozen=True)
class AgentPage:
    agents: list[AgentIdentity]
    next_cursor: str | None


def page_agents(
    session: Session, *, filters: dict[str, Any], limit: int, cursor: str | None
) -> AgentPage:
    """Identities newest first, ``limit`` at a time."""
    before = None if cursor is None else decode_cursor(cursor)
    rows = repository.page(session, filters=filters, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AgentPage(
        rows, encode_cursor(rows[-1].created_at, rows[-1].agent_id) if more and rows else None
    )

"""Routes of agent identities: register, list, profile, keys, suspend and metabolism."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from flow_memory.identities import service
from flow_memory.identities.metabolism import metabolism
from flow_memory.identities.schemas import (
    AgentCreate,
    AgentKeyCreate,
    AgentKeyResponse,
    AgentKind,
    AgentListResponse,
    AgentResponse,
    AgentStatus,
    AgentSuspend,
    MetabolismResponse,
)
from flow_memory.kit.cursors import CURSOR_PATTERN
from flow_memory.kit.deps import ClockDep, Principal, ReadSessionDep, SessionDep, require_scopes
from flow_memory.kit.errors import NotFound
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, Identifier
from flow_memory.kit.scopes import ADMIN, BUY, READ, SELL

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/agents",
    tags=["agents"],
    responses=ERROR_RESPONSES,
)


@router.post(
    "",
    status_code=201,
    response_model=AgentResponse,
    name="agents",
    summary="Register an agent identity, bound (operated by the key's owner) or free",
)
def register_agent(
    body: AgentCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(BUY, SELL))],
) -> FlowJSONResponse:
    agent = service.register(session, principal=principal, body=body, now=clock.now())
    return respond({"agent": service.agent_read(session, principal, agent)}, status_code=201)


@router.get(
    "",
    response_model=AgentListResponse,
    name="agents",
    summary="List agent identities, newest first, with a cursor",
)
def list_agents(
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
    kind: Annotated[AgentKind | None, Query()] = None,
    status: Annotated[AgentStatus | None, Query()] = None,
    operator_id: Annotated[
        Identifier | None, Query(description="Agents this owner registered")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description="next_cursor of the previous page, unchanged; any other is refused "
            "(422 invalid_cursor)",
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
    ] = None,
) -> FlowJSONResponse:
    filters = {"kind": kind, "status": status, "creator_id": operator_id}
    page = service.page_agents(session, filters=filters, limit=limit, cursor=cursor)
    reads = service.agents_read(session, principal, page.agents)
    return respond({"agents": reads, "count": len(reads), "next_cursor": page.next_cursor})


@router.get(
    "/{agent_id}",
    response_model=AgentResponse,
    name="agentProfile",
    summary="An agent's public profile: kind, operator, values, activity",
)
def get_agent(
    agent_id: str,
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
) -> FlowJSONResponse:
    agent = service.find(session, agent_id)
    return respond({"agent": service.agent_read(session, principal, agent)})


@router.post(
    "/{agent_id}/keys",
    status_code=201,
    response_model=AgentKeyResponse,
    name="agentKeys",
    summary="Issue a key to a free agent (shown once); from its first key on, only its own "
    "keys act as it",
)
def issue_agent_key(
    agent_id: str,
    body: AgentKeyCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(BUY, SELL))],
) -> FlowJSONResponse:
    issued = service.issue_key(
        session, principal=principal, agent_id=agent_id, body=body, now=clock.now()
    )
    agent = service.find(session, agent_id)
    record = issued.record
    key = {
        "key_id": record.key_id,
        "owner_id": record.owner_id,
        "scopes": record.scopes,
        "label": record.label,
        "secret": issued.secret,
        "created_at": record.created_at,
    }
    return respond(
        {"key": key, "agent": service.agent_read(session, principal, agent)}, status_code=201
    )


@router.post(
    "/{agent_id}/suspend",
    response_model=AgentResponse,
    name="agentSuspend",
    summary="Suspend an agent (admins): its keys are revoked and no one acts as it",
)
def suspend_agent(
    agent_id: str,
    body: AgentSuspend,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(ADMIN))],
) -> FlowJSONResponse:
    agent = service.suspend(session, agent_id=agent_id, reason=body.reason, now=clock.now())
    return respond({"agent": service.agent_read(session, principal, agent)})


@router.get(
    "/{agent_id}/metabolism",
    response_model=MetabolismResponse,
    name="agentMetabolism",
    summary="Credits earned and spent a day, units consumed, balance and runway",
)
def agent_metabolism(
    agent_id: str,
    session: ReadSessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> FlowJSONResponse:
    agent = service.find(session, agent_id)
    if not service.sees_private(principal, agent):
        raise NotFound("agent identity not found", field="agent_id")
    return respond({"metabolism": metabolism(session, agent, days=days, now=clock.now())})

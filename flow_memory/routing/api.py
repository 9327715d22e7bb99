"""Routes for quote and route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    require_scopes,
)
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES
from flow_memory.kit.scopes import PLAN
from flow_memory.routing import service
from flow_memory.routing.facts import RouteFacts
from flow_memory.routing.schemas import PolicyRequest, QuoteResponse, RouteResponse

router = APIRouter(
    route_class=ExactJSONRoute, prefix="/inference", tags=["routing"], responses=ERROR_RESPONSES
)
Planner = Annotated[Principal, Depends(require_scopes(PLAN))]


async def route_facts(request: Request) -> RouteFacts:
    """The app's recently read provider offers."""
    facts: RouteFacts = request.app.state.route_facts
    return facts


RouteFactsDep = Annotated[RouteFacts, Depends(route_facts)]


@router.post(
    "/quote",
    response_model=QuoteResponse,
    name="quote",
    summary="Candidate quotes and rejected routes under a policy",
)
def quote(
    body: PolicyRequest,
    session: ReadSessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    facts: RouteFactsDep,
    principal: Planner,
) -> FlowJSONResponse:
    ensure_may_act_as(principal, body.agent_id, field="agent_id")
    evaluation = service.quote(session, body=body, settings=settings, now=clock.now(), facts=facts)
    return respond(
        {
            "model": body.model,
            "unit_type": body.unit_type,
            "estimated_units": body.estimated_units,
            "quotes": [service.quote_read(q, body.estimated_units) for q in evaluation.quotes],
            "quote_count": len(evaluation.quotes),
            "eligible_count": evaluation.eligible_count,
            **service.rejections_read(evaluation),
            "warnings": evaluation.warnings,
            "suggested_models": evaluation.suggested_models,
        }
    )


@router.post(
    "/route",
    response_model=RouteResponse,
    name="route",
    summary="Select a route under a policy and record it",
)
def route(
    body: PolicyRequest,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    facts: RouteFactsDep,
    principal: Planner,
) -> FlowJSONResponse:
    ensure_may_act_as(principal, body.agent_id, field="agent_id")
    evaluation, record, fallbacks = service.select_route(
        session, principal=principal, body=body, settings=settings, now=clock.now(), facts=facts
    )
    selected = evaluation.quotes[0] if record is not None else None
    return respond(
        {
            "decision": "selected" if record is not None else "no_valid_inference_route",
            "route": None
            if record is None
            else {
                "route_id": record.route_id,
                "agent_id": record.agent_id,
                "workspace_id": record.workspace_id,
                "task_id": record.task_id,
                "goal_id": record.goal_id,
                "model": record.model,
                "unit_type": record.unit_type,
                "estimated_units": record.estimated_units,
                "provider_id": record.provider_id,
                "unit_price": record.unit_price,
                "estimated_cost": record.estimated_cost,
                "discount_bps": record.discount_bps,
                "created_at": record.created_at,
                "expires_at": record.expires_at,
            },
            "selected_quote": None
            if selected is None
            else service.quote_read(selected, body.estimated_units),
            "fallbacks": [service.quote_read(q, body.estimated_units) for q in fallbacks],
            "eligible_count": evaluation.eligible_count,
            **service.rejections_read(evaluation),
            "warnings": evaluation.warnings,
            "suggested_models": evaluation.suggested_models,
        }
    )

"""Routes for operator-set list prices (the reference for discounts and savings)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    require_scopes,
)
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, Identifier
from flow_memory.kit.scopes import ADMIN, READ
from flow_memory.pricing import service
from flow_memory.pricing.models import ListPrice
from flow_memory.pricing.schemas import ListPriceResponse, ListPriceSet, ListPricesResponse
from flow_memory.providers.schemas import UnitType
from flow_memory.routing.facts import clear_after_commit

router = APIRouter(
    route_class=ExactJSONRoute, prefix="/inference", tags=["list prices"], responses=ERROR_RESPONSES
)


def _read(row: ListPrice) -> dict[str, Any]:
    return {
        "model": row.model,
        "unit_type": row.unit_type,
        "unit_price": row.unit_price,
        "set_by": row.set_by,
        "note": row.note,
        "updated_at": row.updated_at,
    }


@router.get(
    "/list-prices",
    response_model=ListPricesResponse,
    name="listPrices",
    summary="Operator-set list prices (they outrank catalog reference prices)",
)
def list_prices(
    session: ReadSessionDep, _principal: Annotated[Principal, Depends(require_scopes(READ))]
) -> FlowJSONResponse:
    rows = service.list_prices(session)
    return respond({"list_prices": [_read(r) for r in rows], "count": len(rows)})


@router.put(
    "/list-prices",
    response_model=ListPriceResponse,
    name="setListPrice",
    summary="Set the list price of a model's unit (admin)",
)
def set_list_price(
    body: ListPriceSet,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(ADMIN))],
) -> FlowJSONResponse:
    row = service.set_list_price(
        session,
        model=body.model,
        unit_type=body.unit_type,
        unit_price=body.unit_price,
        set_by=principal.owner_id,
        note=body.note,
        now=clock.now(),
    )
    # Reference prices are kept with providers' offers (quotes, the market writer).
    clear_after_commit(request.app.state.route_facts, session)
    return respond({"list_price": _read(row)})


@router.delete(
    "/list-prices",
    response_model=ListPriceResponse,
    name="removeListPrice",
    summary="Remove a list price; catalogs' reference prices apply again (admin)",
)
def remove_list_price(
    request: Request,
    session: SessionDep,
    _principal: Annotated[Principal, Depends(require_scopes(ADMIN))],
    model: Annotated[Identifier, Query()],
    unit_type: Annotated[UnitType, Query()] = "token",
) -> FlowJSONResponse:
    row = service.remove_list_price(session, model=model, unit_type=unit_type)
    clear_after_commit(request.app.state.route_facts, session)
    return respond({"list_price": _read(row)})

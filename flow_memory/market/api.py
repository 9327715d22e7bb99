"""Routes for orders, cancels, depth and reservations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from flow_memory.kit.deps import Principal, require_scopes
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, Identifier
from flow_memory.kit.scopes import BUY, READ, SELL
from flow_memory.market.gateway import Market
from flow_memory.market.orders import CancelOrder, PlaceOrder, ReadDepth
from flow_memory.market.reservations import Reserve
from flow_memory.market.schemas import (
    DepthResponse,
    OrderCancel,
    OrderCreate,
    OrderResponse,
    ReservationCreate,
    ReservationResponse,
)
from flow_memory.providers.schemas import UnitType

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/market",
    tags=["market"],
    responses=ERROR_RESPONSES,
)


TRADER_SCOPES = (BUY, SELL)
authorize_trader = require_scopes(*TRADER_SCOPES)
Trader = Annotated[Principal, Depends(authorize_trader)]


async def get_market(request: Request) -> Market:
    market: Market = request.app.state.market
    return market


MarketDep = Annotated[Market, Depends(get_market)]


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderResponse,
    name="marketOrders",
    summary="Create a dry-run bid or ask order",
)
async def create_order(body: OrderCreate, market: MarketDep, principal: Trader) -> FlowJSONResponse:
    return respond(await market.run(PlaceOrder(principal, body)), status_code=201)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderResponse,
    name="marketOrderCancel",
    summary="Cancel an active dry-run order",
)
async def cancel_order(
    order_id: Annotated[str, Path(max_length=64)],
    body: OrderCancel,
    market: MarketDep,
    principal: Trader,
) -> FlowJSONResponse:
    return respond(await market.run(CancelOrder(principal, order_id, body)))


@router.get(
    "/depth",
    response_model=DepthResponse,
    name="marketDepth",
    summary="Bid/ask depth, spread, recent fills and active reservations",
)
async def market_depth(
    model: Annotated[Identifier, Query()],
    unit_type: Annotated[UnitType, Query()],
    market: MarketDep,
    _principal: Annotated[Principal, Depends(require_scopes(READ))],
    levels: Annotated[int, Query(ge=1, le=200)] = 50,
) -> FlowJSONResponse:
    return respond(await market.run(ReadDepth(model, unit_type, levels)))


@router.post(
    "/reservations",
    status_code=201,
    response_model=ReservationResponse,
    name="marketReservations",
    summary="Hold capacity without funds movement",
    responses={
        200: {
            "model": ReservationResponse,
            "description": "Idempotent replay of an earlier reservation",
        }
    },
)
async def create_reservation(
    body: ReservationCreate,
    market: MarketDep,
    principal: Annotated[Principal, Depends(require_scopes(BUY))],
) -> FlowJSONResponse:
    answer, replay = await market.run(Reserve(principal, body))
    return respond(answer, status_code=200 if replay else 201)

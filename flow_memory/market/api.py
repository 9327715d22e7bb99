"""Routes for orders, cancels, depth and reservations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

from flow_memory.kit.clock import Clock
from flow_memory.kit.deps import ClockDep, Principal, SessionDep, SettingsDep, require_scopes
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES, Identifier
from flow_memory.kit.scopes import BUY, READ, SELL
from flow_memory.market import reservations, service
from flow_memory.market.models import MarketFill, MarketOrder, Reservation, ReservationHold
from flow_memory.market.schemas import (
    DepthResponse,
    OrderCancel,
    OrderCreate,
    OrderResponse,
    ReservationCreate,
    ReservationResponse,
)
from flow_memory.market.service import (
    MarketRegistry,
    MarketsDep,
    PlacedFill,
    PlacedOrder,
    WriterDep,
)
from flow_memory.market.writer import MarketWriter, batch_now
from flow_memory.providers.schemas import UnitType
from flow_memory.settings import Settings

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/market",
    tags=["market"],
    responses=ERROR_RESPONSES,
)


TRADER_SCOPES = (BUY, SELL)
authorize_trader = require_scopes(*TRADER_SCOPES)
Trader = Annotated[Principal, Depends(authorize_trader)]


def fill_read(fill: MarketFill | PlacedFill) -> dict[str, Any]:
    return {
        "fill_id": fill.fill_id,
        "bid_order_id": fill.bid_order_id,
        "ask_order_id": fill.ask_order_id,
        "provider_id": fill.provider_id,
        "units": fill.units,
        "unit_price": fill.unit_price,
        "created_at": fill.created_at,
    }


def order_read(order: MarketOrder | PlacedOrder) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "side": order.side,
        "model": order.model,
        "unit_type": order.unit_type,
        "owner_id": order.owner_id,
        "buyer_id": order.buyer_id,
        "provider_id": order.provider_id,
        "units": order.units,
        "filled_units": order.units - order.remaining_units,
        "remaining_units": order.remaining_units,
        "limit_unit_price": order.limit_unit_price,
        "currency": order.currency,
        "min_fill_units": order.min_fill_units,
        "time_in_force": order.time_in_force,
        "status": order.status,
        "source": order.source,
        "metadata": dict(order.metadata_),
        "expires_at": order.expires_at,
        "cancel_reason": order.cancel_reason,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderResponse,
    name="marketOrders",
    summary="Create a dry-run bid or ask order",
)
async def create_order(
    body: OrderCreate,
    clock: ClockDep,
    settings: SettingsDep,
    markets: MarketsDep,
    writer: WriterDep,
    principal: Trader,
) -> FlowJSONResponse:
    placed = await place(
        body, principal, clock=clock, settings=settings, markets=markets, writer=writer
    )
    return respond(placed, status_code=201)


async def place(
    body: OrderCreate,
    principal: Principal,
    *,
    clock: Clock,
    settings: Settings,
    markets: MarketRegistry,
    writer: MarketWriter,
) -> dict[str, Any]:
    """Place an order through the market writer; the order and its fills, once its batch has
    committed (the route and the order edge each render them)."""

    def command(session: Session) -> dict[str, Any]:
        order, fills = service.place_order(
            session,
            markets,
            principal=principal,
            body=body,
            settings=settings,
            now=batch_now(session, clock),
        )
        return {"order": order_read(order), "fills": [fill_read(f) for f in fills]}

    return await writer.run(command, deferred_only=True)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderResponse,
    name="marketOrderCancel",
    summary="Cancel an active dry-run order",
)
async def cancel_order(
    order_id: Annotated[str, Path(max_length=64)],
    body: OrderCancel,
    clock: ClockDep,
    settings: SettingsDep,
    markets: MarketsDep,
    writer: WriterDep,
    principal: Trader,
) -> FlowJSONResponse:
    def command(session: Session) -> dict[str, Any]:
        order = service.cancel_order(
            session,
            markets,
            principal=principal,
            order_id=order_id,
            body=body,
            settings=settings,
            now=batch_now(session, clock),
        )
        fills = service.order_fills(session, order.order_id)
        return {"order": order_read(order), "fills": [fill_read(f) for f in fills]}

    return respond(await writer.run(command))


@router.get(
    "/depth",
    response_model=DepthResponse,
    name="marketDepth",
    summary="Bid/ask depth, spread, recent fills and active reservations",
)
def market_depth(
    model: Annotated[Identifier, Query()],
    unit_type: Annotated[UnitType, Query()],
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    markets: MarketsDep,
    _principal: Annotated[Principal, Depends(require_scopes(READ))],
    levels: Annotated[int, Query(ge=1, le=200)] = 50,
) -> FlowJSONResponse:
    view = service.market_depth(
        session,
        markets,
        model=model,
        unit_type=unit_type,
        levels=levels,
        settings=settings,
        now=clock.now(),
    )
    fills = [fill_read(f) for f in view.recent_fills]
    crossed = (
        view.best_bid is not None and view.best_ask is not None and view.best_bid >= view.best_ask
    )
    return respond(
        {
            "model": model,
            "unit_type": unit_type,
            "bids": view.bids,
            "asks": view.asks,
            "spread": {"best_bid": view.best_bid, "best_ask": view.best_ask, "crossed": crossed},
            "last_fill": fills[0] if fills else None,
            "recent_fills": fills,
            "active_reservations": {"count": view.reservation_count, "held_units": view.held_units},
        }
    )


def reservation_read(reservation: Reservation, holds: list[ReservationHold]) -> dict[str, Any]:
    return {
        "reservation_id": reservation.reservation_id,
        "buyer_id": reservation.buyer_id,
        "model": reservation.model,
        "unit_type": reservation.unit_type,
        "provider_id": reservation.provider_id,
        "requested_units": reservation.requested_units,
        "held_units": reservation.held_units,
        "max_unit_price": reservation.max_unit_price,
        "status": reservation.status,
        "expires_at": reservation.expires_at,
        "created_at": reservation.created_at,
        "idempotency_key": reservation.idempotency_key,
        "matched_orders": [
            {
                "order_id": h.order_id,
                "provider_id": h.provider_id,
                "units": h.units,
                "unit_price": h.unit_price,
            }
            for h in holds
        ],
    }


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
def create_reservation(
    body: ReservationCreate,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    markets: MarketsDep,
    principal: Annotated[Principal, Depends(require_scopes(BUY))],
) -> FlowJSONResponse:
    reservation, holds, replay = reservations.create_reservation(
        session, markets, principal=principal, body=body, settings=settings, now=clock.now()
    )
    read = reservation_read(reservation, holds)
    return respond(
        {
            "reservation_id": reservation.reservation_id,
            "held_units": reservation.held_units,
            "expires_at": reservation.expires_at,
            "matched_orders": read["matched_orders"],
            "reservation": read,
            "idempotent_replay": replay,
        },
        status_code=200 if replay else 201,
    )

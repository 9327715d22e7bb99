"""The market's book-touching commands, and where they run.

Orders and cancels are applied by the market writer (``flow_memory.market.writer``): in this
process (``LocalMarket``) or in a process of its own (``flow_memory.market.process``), so that
the writer and the request path stop sharing one interpreter lock. Each command returns what
its route renders, ready for the wire: the same whichever process ran it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from flow_memory.kit.clock import Clock
from flow_memory.kit.deps import Principal, transaction
from flow_memory.market import reservations, service
from flow_memory.market.models import MarketFill, MarketOrder, Reservation, ReservationHold
from flow_memory.market.schemas import OrderCancel, OrderCreate, ReservationCreate
from flow_memory.market.service import MarketRegistry, PlacedFill, PlacedOrder
from flow_memory.market.writer import MarketWriter, batch_now
from flow_memory.settings import Settings

T = TypeVar("T")


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


def depth_read(view: service.DepthView, model: str, unit_type: str) -> dict[str, Any]:
    fills = [fill_read(f) for f in view.recent_fills]
    crossed = (
        view.best_bid is not None and view.best_ask is not None and view.best_bid >= view.best_ask
    )
    return {
        "model": model,
        "unit_type": unit_type,
        "bids": view.bids,
        "asks": view.asks,
        "spread": {"best_bid": view.best_bid, "best_ask": view.best_ask, "crossed": crossed},
        "last_fill": fills[0] if fills else None,
        "recent_fills": fills,
        "active_reservations": {"count": view.reservation_count, "held_units": view.held_units},
    }


class Context(Protocol):
    """What a market command runs with: the process's books, settings and clock."""

    markets: MarketRegistry
    settings: Settings
    clock: Clock


def placing(context: Context, principal: Principal, body: OrderCreate) -> Callable[[Session], Any]:
    """Place an order: the order and its fills, once its batch has committed."""

    def command(session: Session) -> dict[str, Any]:
        order, fills = service.place_order(
            session,
            context.markets,
            principal=principal,
            body=body,
            settings=context.settings,
            now=batch_now(session, context.clock),
        )
        return {"order": order_read(order), "fills": [fill_read(f) for f in fills]}

    return command


def cancelling(
    context: Context, principal: Principal, order_id: str, body: OrderCancel
) -> Callable[[Session], Any]:
    """Cancel an order: the order and every fill it had."""

    def command(session: Session) -> dict[str, Any]:
        order = service.cancel_order(
            session,
            context.markets,
            principal=principal,
            order_id=order_id,
            body=body,
            settings=context.settings,
            now=batch_now(session, context.clock),
        )
        fills = service.order_fills(session, order.order_id)
        return {"order": order_read(order), "fills": [fill_read(f) for f in fills]}

    return command


def reading_depth(
    context: Context, model: str, unit_type: str, levels: int
) -> Callable[[Session], Any]:
    """The book's price levels, spread, recent fills and active reservations."""

    def command(session: Session) -> dict[str, Any]:
        view = service.market_depth(
            session,
            context.markets,
            model=model,
            unit_type=unit_type,
            levels=levels,
            settings=context.settings,
            now=batch_now(session, context.clock),
        )
        return depth_read(view, model, unit_type)

    return command


def reserving(
    context: Context, principal: Principal, body: ReservationCreate
) -> Callable[[Session], Any]:
    """Hold capacity: the reservation's answer, and whether it replays an earlier one."""

    def command(session: Session) -> tuple[dict[str, Any], bool]:
        reservation, holds, replay = reservations.create_reservation(
            session,
            context.markets,
            principal=principal,
            body=body,
            settings=context.settings,
            now=batch_now(session, context.clock),
        )
        return reservation_answer(reservation, holds, replay), replay

    return command


def reservation_answer(
    reservation: Reservation, holds: list[ReservationHold], replay: bool
) -> dict[str, Any]:
    read = reservation_read(reservation, holds)
    return {
        "reservation_id": reservation.reservation_id,
        "held_units": reservation.held_units,
        "expires_at": reservation.expires_at,
        "matched_orders": read["matched_orders"],
        "reservation": read,
        "idempotent_replay": replay,
    }


class Market(Protocol):
    """Where the book-touching commands run: ``LocalMarket``, or ``MarketProcess``
    (``flow_memory.market.process``)."""

    async def place(self, principal: Principal, body: OrderCreate) -> dict[str, Any]: ...

    async def cancel(
        self, principal: Principal, order_id: str, body: OrderCancel
    ) -> dict[str, Any]: ...

    async def depth(self, model: str, unit_type: str, levels: int) -> dict[str, Any]: ...

    async def reserve(
        self, principal: Principal, body: ReservationCreate
    ) -> tuple[dict[str, Any], bool]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LocalMarket:
    """The market writer in this process: its thread applies orders and cancels to the books
    this process keeps; depth reads and reservations run in transactions of their own, on
    worker threads."""

    def __init__(
        self, writer: MarketWriter, markets: MarketRegistry, settings: Settings, clock: Clock
    ) -> None:
        self.writer = writer
        self.markets = markets
        self.settings = settings
        self.clock = clock

    async def place(self, principal: Principal, body: OrderCreate) -> dict[str, Any]:
        result: dict[str, Any] = await self.writer.run(
            placing(self, principal, body), deferred_only=True
        )
        return result

    async def cancel(
        self, principal: Principal, order_id: str, body: OrderCancel
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.writer.run(cancelling(self, principal, order_id, body))
        return result

    async def depth(self, model: str, unit_type: str, levels: int) -> dict[str, Any]:
        return await self._in_transaction(reading_depth(self, model, unit_type, levels))

    async def reserve(
        self, principal: Principal, body: ReservationCreate
    ) -> tuple[dict[str, Any], bool]:
        return await self._in_transaction(reserving(self, principal, body))

    async def _in_transaction(self, command: Callable[[Session], T]) -> T:
        """Run a command in a transaction of its own, on a worker thread."""

        def run() -> T:
            with transaction(self.writer.factory) as session:
                return command(session)

        return await run_in_threadpool(run)

    def start(self) -> None:
        """Nothing to start: the writer's thread starts with its first command."""

    def stop(self) -> None:
        self.writer.stop()

"""What a market command writes, as plain rows built by pure functions.

A command decides with the book and leaves its rows in a ``Pending`` set; the writer writes
the whole batch's rows at once, one ``executemany`` per table (``flow_memory.market.persist``).
Row tuples hold their tables' columns in the tables' own order. No database or web imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.money import plain
from flow_memory.market.books import MarketKey, Party
from flow_memory.market.orderbook import Fill
from flow_memory.usage.service import UsageInput


@dataclass(slots=True)
class PlacedOrder:
    """An order row as placed (the fields, names and column order of ``MarketOrder``)."""

    order_id: str
    model: str
    unit_type: str
    side: str
    owner_id: str
    buyer_id: str | None
    provider_id: str | None
    units: int
    remaining_units: int
    limit_unit_price: Decimal
    currency: str
    min_fill_units: int
    time_in_force: str
    status: str
    sequence: int
    source: str
    routing_policy: dict[str, Any]
    metadata_: dict[str, Any]
    expires_at: datetime | None
    cancel_reason: str | None
    cancelled_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int  # its market's version when it was last written


@dataclass(slots=True)
class PlacedFill:
    """A fill row (the fields, names and column order of ``MarketFill``)."""

    fill_id: str
    model: str
    unit_type: str
    bid_order_id: str
    ask_order_id: str
    taker_order_id: str
    buyer_owner_id: str
    buyer_id: str | None
    seller_owner_id: str
    provider_id: str | None
    units: int
    unit_price: Decimal
    created_at: datetime


@dataclass(slots=True)
class PlacedReservation:
    """A reservation row (the fields, names and column order of ``Reservation``)."""

    reservation_id: str
    owner_id: str
    buyer_id: str
    model: str
    unit_type: str
    provider_id: str | None
    requested_units: int
    held_units: int
    max_unit_price: Decimal
    hold_seconds: int
    allow_partial: bool
    idempotency_key: str
    request_fingerprint: str
    status: str
    expires_at: datetime
    created_at: datetime
    released_at: datetime | None
    version: int  # its market's version when it was last written


@dataclass(slots=True)
class PlacedHold:
    """A reservation hold row (the fields, names and column order of ``ReservationHold``)."""

    reservation_id: str
    order_id: str
    units: int
    unit_price: Decimal
    provider_id: str | None


def _row_of(cls: type) -> Any:
    return attrgetter(*(f.name for f in fields(cls)))


order_row = _row_of(PlacedOrder)
fill_row = _row_of(PlacedFill)
reservation_row = _row_of(PlacedReservation)
hold_row = _row_of(PlacedHold)


@dataclass
class Pending:
    """The rows a batch of market commands writes, in the order they are written."""

    orders: list[tuple[Any, ...]] = field(default_factory=list)
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    # Column values to set per order id, merged (a later change of a column wins).
    order_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    reservations: list[tuple[Any, ...]] = field(default_factory=list)
    holds: list[tuple[Any, ...]] = field(default_factory=list)
    reservation_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[Any, ...]] = field(default_factory=list)  # ``event`` rows
    usage: list[UsageInput] = field(default_factory=list)

    def update_order(self, order_id: str, now: datetime, *, version: int, **values: Any) -> None:
        """Set an order's columns; ``version`` is its market's version once the batch is
        written (``OpenMarket.next_version``), which other writers reload the order by."""
        self.order_updates.setdefault(order_id, {}).update(values, updated_at=now, version=version)

    def size(self) -> int:
        return (
            len(self.orders)
            + len(self.fills)
            + len(self.order_updates)
            + len(self.reservations)
            + len(self.reservation_updates)
            + len(self.events)
        )


def event(
    kind: str, subject_id: str, market: MarketKey | None, now: datetime, payload: dict[str, Any]
) -> tuple[Any, ...]:
    """A feed event's row: kind, model, unit type, subject, payload, time."""
    model, unit_type = market if market is not None else (None, None)
    return (kind, model, unit_type, subject_id, payload, now)


def fill_rows(
    market: MarketKey, fills: list[Fill], parties: dict[str, Party], now: datetime
) -> list[PlacedFill]:
    """The fills' rows: each names the bid's buyer and the ask's seller."""
    model, unit_type = market
    rows = []
    for fill in fills:
        bid, ask = parties[fill.bid_order_id], parties[fill.ask_order_id]
        rows.append(
            PlacedFill(
                fill_id=new_ordered_id("fill", now),
                model=model,
                unit_type=unit_type,
                bid_order_id=bid.order_id,
                ask_order_id=ask.order_id,
                taker_order_id=fill.taker_order_id,
                buyer_owner_id=bid.owner_id,
                buyer_id=bid.buyer_id,
                seller_owner_id=ask.owner_id,
                provider_id=ask.provider_id,
                units=fill.units,
                unit_price=fill.unit_price,
                created_at=now,
            )
        )
    return rows


def fill_event(fill: PlacedFill, now: datetime) -> tuple[Any, ...]:
    return event(
        "fill",
        fill.fill_id,
        (fill.model, fill.unit_type),
        now,
        {
            "bid_order_id": fill.bid_order_id,
            "ask_order_id": fill.ask_order_id,
            "provider_id": fill.provider_id,
            "units": fill.units,
            "unit_price": plain(fill.unit_price),
        },
    )


# What a bid's metadata may name for its usage records, with the longest value kept.
_ATTRIBUTION = {
    "workspace_id": 128,
    "task_id": 128,
    "goal_id": 128,
    "route_id": 40,
    "reservation_id": 40,
}


def _named_in(metadata: dict[str, Any]) -> dict[str, str | None]:
    """What a bid's metadata names for its usage records (text of a fitting length only)."""
    return {
        name: value if isinstance(value, str) and 0 < len(value) <= limit else None
        for name, limit in _ATTRIBUTION.items()
        for value in [metadata.get(name)]
    }


_NAMED_NONE: dict[str, str | None] = dict.fromkeys(_ATTRIBUTION)


def fill_usage(fill: PlacedFill, bid: Party, reference_unit_price: Decimal | None) -> UsageInput:
    """A fill is usage bought by the bid: priced at the fill, estimated at the bid's limit,
    attributed to the bid's buyer and to what the bid's metadata names."""
    named = _named_in(bid.metadata) if bid.metadata else _NAMED_NONE
    return UsageInput(
        source="market_fill",
        decision="market_fill",
        owner_id=fill.buyer_owner_id,
        seller_owner_id=fill.seller_owner_id,
        model=fill.model,
        unit_type=fill.unit_type,
        provider_id=fill.provider_id or "",
        estimated_units=fill.units,
        actual_units=fill.units,
        unit_price=fill.unit_price,
        estimated_unit_price=bid.limit_unit_price,
        reference_unit_price=reference_unit_price,
        agent_id=bid.buyer_id,
        order_id=bid.order_id,
        fill_id=fill.fill_id,
        workspace_id=named["workspace_id"],
        task_id=named["task_id"],
        goal_id=named["goal_id"],
        route_id=named["route_id"],
        reservation_id=named["reservation_id"],
    )


def order_read(order: Any) -> dict[str, Any]:
    """An order's answer (a ``PlacedOrder`` or a stored row)."""
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


def fill_read(fill: Any) -> dict[str, Any]:
    """A fill's answer (a ``PlacedFill`` or a stored row)."""
    return {
        "fill_id": fill.fill_id,
        "bid_order_id": fill.bid_order_id,
        "ask_order_id": fill.ask_order_id,
        "provider_id": fill.provider_id,
        "units": fill.units,
        "unit_price": fill.unit_price,
        "created_at": fill.created_at,
    }

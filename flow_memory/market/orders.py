"""Orders, cancels and depth: market commands a writer applies in batches.

Each command names the markets it needs (the batch locks them all before any command runs),
then ``run`` decides: it refuses before it changes anything, moves the book, and leaves its
rows in the batch. What it returns builds its answer once the batch's rows are written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Forbidden, NotFound
from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.money import plain
from flow_memory.kit.scopes import BUY, SELL
from flow_memory.market import repository
from flow_memory.market.batch import Batch, OpenMarket
from flow_memory.market.books import SNAPSHOT_SOURCE, MarketKey, Party
from flow_memory.market.capacity import check_ask_capacity
from flow_memory.market.orderbook import Order
from flow_memory.market.rows import (
    PlacedFill,
    PlacedOrder,
    event,
    fill_read,
    order_read,
    order_row,
)
from flow_memory.market.schemas import OrderCancel, OrderCreate
from flow_memory.providers import service as providers_service
from flow_memory.routing import service as routing
from flow_memory.routing.suggest import name_list

Answer = Callable[[Session], Any]


@dataclass
class PlaceOrder:
    """Place an order: answers the order and the fills it made."""

    principal: Principal
    body: OrderCreate

    def markets(self, batch: Batch) -> list[MarketKey]:
        return [(self.body.model, self.body.unit_type)]

    def run(self, batch: Batch) -> Answer:
        order, fills = place_order(batch, principal=self.principal, body=self.body)
        answer = {
            "order": order_read(order),
            "fills": [fill_read(f) for f in fills],
            "warnings": order_warnings(batch, self.body),
        }
        return lambda _session: answer


def order_warnings(batch: Batch, body: OrderCreate) -> list[str]:
    """What a placed order's answer warns of: a bid on a market no provider's catalog lists
    rests as demand only (kept: demand for what is not offered yet is worth recording)."""
    if body.side != "bid" or batch.listed((body.model, body.unit_type)):
        return []
    suggested = routing.suggest_models(batch.session, body.model)
    near = f"; listed models with similar names: {name_list(suggested)}" if suggested else ""
    return [
        "no provider's catalog lists this model in this unit type: the bid rests as demand "
        f"only, and no ask can fill it until a provider offers it{near}"
    ]


def place_order(
    batch: Batch,
    *,
    principal: Principal,
    body: OrderCreate,
    source: str = "api",
    expires_at: datetime | None = None,
) -> tuple[PlacedOrder, list[PlacedFill]]:
    """Check, match and queue one order's rows; its fills are recorded in the same batch."""
    seller: tuple[str, str] | None = None  # (provider, owner)
    if body.side == "bid":
        _require(principal, BUY, "a bid")
    else:
        _require(principal, SELL, "an ask")
    ensure_may_act_as(principal, body.buyer_id, field="buyer_id")
    if body.side == "ask":
        seller = _owned_provider(batch, principal, body.provider_id or "")
    market = batch.market((body.model, body.unit_type))
    state, now = market.state, batch.now
    manual = seller is not None and source != SNAPSHOT_SOURCE
    if manual:
        assert seller is not None
        check_ask_capacity(
            available=batch.published(seller[0]).get(market.key),
            offered=state.manual_units.get(seller[0], 0),
            units=body.units,
        )
    # Nothing refuses from here on.
    sequence = market.take_sequence()
    order_id = new_ordered_id("ord", now)
    owner_id = principal.owner_id if seller is None else seller[1]
    provider_id = None if seller is None else seller[0]
    incoming = Order(
        order_id=order_id,
        side=body.side,
        owner_id=owner_id,
        limit_unit_price=body.limit_unit_price,
        units=body.units,
        min_fill_units=body.min_fill_units,
        time_in_force=body.time_in_force,
        provider_id=provider_id,
        expires_at=None if expires_at is None else expires_at.timestamp(),
    )
    if manual:
        assert provider_id is not None
        _shrink_snapshot_asks(batch, market, provider_id, body.units)
    result = market.changing().submit(incoming, sequence=sequence)
    row = PlacedOrder(
        order_id=order_id,
        model=body.model,
        unit_type=body.unit_type,
        side=body.side,
        owner_id=owner_id,
        buyer_id=(body.buyer_id or principal.owner_id) if body.side == "bid" else None,
        provider_id=provider_id,
        units=body.units,
        remaining_units=result.order.remaining,
        limit_unit_price=body.limit_unit_price,
        currency=body.currency,
        min_fill_units=body.min_fill_units,
        time_in_force=body.time_in_force,
        status=result.order.status,
        sequence=sequence,
        source=source,
        routing_policy=body.routing_policy.model_dump() if body.routing_policy else {},
        metadata_=dict(body.metadata),
        expires_at=expires_at,
        cancel_reason=None,
        cancelled_by=None,
        created_at=now,
        updated_at=now,
        version=market.next_version,
    )
    party = Party(
        order_id,
        owner_id,
        row.buyer_id,
        provider_id,
        body.limit_unit_price,
        row.metadata_,
        source,
    )
    if order_id in market.book.orders:
        state.rest(party, row.remaining_units)
    batch.rows.orders.append(order_row(row))
    batch.rows.events.append(
        event(
            "order_placed",
            order_id,
            market.key,
            now,
            {
                "side": body.side,
                "units": body.units,
                "limit_unit_price": plain(body.limit_unit_price),
                "time_in_force": body.time_in_force,
                "status": row.status,
                "source": source,
            },
        )
    )
    fills = batch.record_fills(market, result.fills, incoming=party)
    return row, fills


def _require(principal: Principal, scope: str, what: str) -> None:
    if not principal.is_admin and scope not in principal.scopes:
        raise Forbidden(
            f"{what} needs the scope {scope}", field="scope", hint=f"use a key with {scope}"
        )


def _owned_provider(batch: Batch, principal: Principal, provider_id: str) -> tuple[str, str]:
    """The caller's provider and its owner (looked up once per writer: a provider is never
    deleted and its owner never changes)."""
    owners = batch.books.owners
    owner = owners.get(provider_id)
    if owner is None or not principal.can_see(owner):
        provider = providers_service.get_owned(
            batch.session, principal=principal, provider_id=provider_id
        )
        owner = owners[provider.provider_id] = provider.owner_id
    return provider_id, owner


def _shrink_snapshot_asks(batch: Batch, market: OpenMarket, provider_id: str, units: int) -> None:
    """A manual ask draws on the same published capacity as the snapshot ask: shrink it."""
    book, now = market.book, batch.now
    for order_id in market.state.live_snapshot_asks(provider_id):
        if units == 0:
            return
        taken = book.reduce(order_id, units)
        if taken == 0:
            continue
        units -= taken
        resting = book.orders.get(order_id)
        if resting is not None:
            batch.rows.update_order(
                order_id, now, version=market.next_version, remaining_units=resting.remaining
            )
        else:
            batch.rows.update_order(
                order_id,
                now,
                version=market.next_version,
                remaining_units=0,
                status="cancelled",
                cancel_reason="capacity_committed_to_manual_ask",
                cancelled_by=provider_id,
            )


@dataclass
class CancelOrder:
    """Cancel a resting order: answers the order and every fill it had."""

    principal: Principal
    order_id: str
    body: OrderCancel
    _market: MarketKey | None = field(default=None, repr=False)

    def markets(self, batch: Batch) -> list[MarketKey]:
        ensure_may_act_as(self.principal, self.body.requested_by, field="requested_by")
        found = repository.order_market(batch.session, self.order_id)
        if found is None or not self.principal.can_see(found[0]):
            raise NotFound("order not found", field="order_id")
        self._market = (found[1], found[2])
        return [self._market]

    def run(self, batch: Batch) -> Answer:
        assert self._market is not None
        market = batch.market(self._market)
        order_id, now = self.order_id, batch.now
        order = market.book.orders.get(order_id)
        if order is None:
            raise Conflict(
                f"the order is {_status(batch, order_id)} and cannot be cancelled",
                code="order_not_cancellable",
                field="order_id",
                hint="only open or partially filled orders can be cancelled",
            )
        market.changing().cancel(order_id)
        market.state.ended(order)
        batch.rows.update_order(
            order_id,
            now,
            version=market.next_version,
            status="cancelled",
            cancel_reason=self.body.cancel_reason,
            cancelled_by=self.body.requested_by or self.principal.owner_id,
        )
        batch.rows.events.append(
            event(
                "order_cancelled",
                order_id,
                market.key,
                now,
                {"cancel_reason": self.body.cancel_reason, "remaining_units": order.remaining},
            )
        )
        return self._answer

    def _answer(self, session: Session) -> dict[str, Any]:
        stored = repository.order_row(session, self.order_id)
        fills = repository.fills_of(session, self.order_id)
        return {"order": order_read(stored), "fills": [fill_read(f) for f in fills], "warnings": []}


def _status(batch: Batch, order_id: str) -> str:
    """An order's status that is not resting: as this batch changed it, else as stored."""
    changed = batch.rows.order_updates.get(order_id, {}).get("status")
    if changed is not None:
        return str(changed)
    stored = repository.order_row(batch.session, order_id)
    return "unknown" if stored is None else str(stored.status)


@dataclass
class ReadDepth:
    """The book's price levels, spread, recent fills and active reservations."""

    model: str
    unit_type: str
    levels: int

    def markets(self, batch: Batch) -> list[MarketKey]:
        return [(self.model, self.unit_type)]

    def run(self, batch: Batch) -> Answer:
        market = batch.market((self.model, self.unit_type))

        def answer(session: Session) -> dict[str, Any]:
            return depth_read(session, market, self.levels)

        return answer


def depth_read(session: Session, market: OpenMarket, levels: int) -> dict[str, Any]:
    model, unit_type = market.key
    bids = [_level(b) for b in market.book.depth("bid", levels)]
    asks = [_level(a) for a in market.book.depth("ask", levels)]
    best_bid = bids[0]["unit_price"] if bids else None
    best_ask = asks[0]["unit_price"] if asks else None
    fills = [fill_read(f) for f in repository.recent_fills(session, model, unit_type, 20)]
    count, held = repository.reservation_summary(session, model, unit_type)
    return {
        "model": model,
        "unit_type": unit_type,
        "bids": bids,
        "asks": asks,
        "spread": {
            "best_bid": best_bid,
            "best_ask": best_ask,
            "crossed": best_bid is not None and best_ask is not None and best_bid >= best_ask,
        },
        "last_fill": fills[0] if fills else None,
        "recent_fills": fills,
        "active_reservations": {"count": count, "held_units": held},
    }


def _level(level: Any) -> dict[str, Any]:
    return {
        "unit_price": level.unit_price,
        "available_units": level.available_units,
        "order_count": level.order_count,
    }

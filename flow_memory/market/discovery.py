"""Read models for marketplace discovery: listings, model detail, feed, profiles, manifest."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.market.models import FeedEvent, MarketFill, MarketOrder, Reservation
from flow_memory.market.repository import ACTIVE
from flow_memory.providers.models import CapacityEntry, CatalogEntry, Provider


@dataclass
class MarketSummary:
    model: str
    unit_type: str
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    bid_units: int = 0
    ask_units: int = 0
    bid_orders: int = 0
    ask_orders: int = 0
    providers: set[str] = field(default_factory=set)
    last_fill_price: Decimal | None = None
    last_fill_at: datetime | None = None
    catalogued: bool = False  # some provider's catalog lists the model in this unit type

    @property
    def demand_only(self) -> bool:
        """Bids on a model no provider's catalog lists (in this unit type) and no ask: demand
        for what is not offered yet."""
        return not self.catalogued and self.ask_orders == 0

    def read(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "unit_type": self.unit_type,
            "best_bid": self.best_bid,
            "best_ask": self.best_ask,
            "bid_units": self.bid_units,
            "ask_units": self.ask_units,
            "bid_orders": self.bid_orders,
            "ask_orders": self.ask_orders,
            "provider_count": len(self.providers),
            "last_fill_price": self.last_fill_price,
            "last_fill_at": self.last_fill_at,
            "demand_only": self.demand_only,
        }


def market_summaries(session: Session, model: str | None = None) -> list[MarketSummary]:
    """One summary per (model, unit_type) with resting orders, catalog offers or fills."""
    summaries: dict[tuple[str, str], MarketSummary] = {}

    def summary(m: str, u: str) -> MarketSummary:
        return summaries.setdefault((m, u), MarketSummary(m, u))

    orders = select(
        MarketOrder.model,
        MarketOrder.unit_type,
        MarketOrder.side,
        MarketOrder.remaining_units,
        MarketOrder.limit_unit_price,
        MarketOrder.provider_id,
    ).where(MarketOrder.status.in_(ACTIVE))
    catalog = select(CatalogEntry.model, CatalogEntry.unit_types, CatalogEntry.provider_id)
    fills = select(
        MarketFill.model, MarketFill.unit_type, MarketFill.unit_price, MarketFill.created_at
    ).order_by(MarketFill.created_at)
    if model is not None:
        orders = orders.where(MarketOrder.model == model)
        catalog = catalog.where(CatalogEntry.model == model)
        fills = fills.where(MarketFill.model == model)
    for m, u, side, remaining, price, provider_id in session.execute(orders):
        s = summary(m, u)
        if side == "bid":
            s.bid_units += remaining
            s.bid_orders += 1
            s.best_bid = price if s.best_bid is None else max(s.best_bid, price)
        else:
            s.ask_units += remaining
            s.ask_orders += 1
            s.best_ask = price if s.best_ask is None else min(s.best_ask, price)
            if provider_id:
                s.providers.add(provider_id)
    for m, unit_types, provider_id in session.execute(catalog):
        for u in unit_types:
            listed = summary(m, u)
            listed.providers.add(provider_id)
            listed.catalogued = True
    for m, u, price, at in session.execute(fills):
        s = summary(m, u)
        s.last_fill_price, s.last_fill_at = price, at
    return [summaries[k] for k in sorted(summaries)]


def model_offers(session: Session, model: str) -> list[dict[str, Any]]:
    """The providers whose catalog lists ``model``, with their published capacity."""
    rows = session.execute(
        select(CatalogEntry, Provider)
        .join(Provider, Provider.provider_id == CatalogEntry.provider_id)
        .where(CatalogEntry.model == model)
        .order_by(Provider.provider_id)
    ).all()
    capacity: dict[str, list[CapacityEntry]] = defaultdict(list)
    for entry in session.scalars(select(CapacityEntry).where(CapacityEntry.model == model)):
        capacity[entry.provider_id].append(entry)
    return [
        {
            "provider_id": provider.provider_id,
            "provider_name": provider.provider_name,
            "compatible_api": entry.compatible_api,
            "unit_types": list(entry.unit_types),
            "context_window": entry.context_window,
            "tool_calling": entry.tool_calling,
            "capacity": [
                {
                    "unit_type": c.unit_type,
                    "available_units": c.available_units,
                    "ask_unit_price": c.ask_unit_price,
                    "min_order_units": c.min_order_units,
                    "quality_score": c.quality_score,
                    "reliability_score": c.reliability_score,
                    "expires_at": c.expires_at,
                }
                for c in sorted(capacity[provider.provider_id], key=lambda c: c.unit_type)
            ],
        }
        for entry, provider in rows
    ]


def feed_page(
    session: Session,
    *,
    after: int,
    before: int | None,
    newest_first: bool,
    limit: int,
    kind: str | None,
    model: str | None,
) -> tuple[list[FeedEvent], int | None]:
    """Events with ids between ``after`` and ``before`` (both excluded), and the cursor of the
    next page: the last event's id when more follow in the same order."""
    query = select(FeedEvent).where(FeedEvent.event_id > after)
    if before is not None:
        query = query.where(FeedEvent.event_id < before)
    if kind is not None:
        query = query.where(FeedEvent.kind == kind)
    if model is not None:
        query = query.where(FeedEvent.model == model)
    order = FeedEvent.event_id.desc() if newest_first else FeedEvent.event_id.asc()
    events = list(session.scalars(query.order_by(order).limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    return events, (events[-1].event_id if more and events else None)


def _volume(fills: list[MarketFill]) -> dict[str, Any]:
    return {
        "fill_count": len(fills),
        "filled_units": sum(f.units for f in fills),
        "notional": sum((f.unit_price * f.units for f in fills), Decimal(0)),
        "models": sorted({f.model for f in fills}),
        "last_fill_at": max((f.created_at for f in fills), default=None),
    }


def buyer_profile(session: Session, buyer_id: str) -> dict[str, Any] | None:
    """A buyer is known by the orders, fills or reservations recorded under its buyer_id."""
    orders = list(session.scalars(select(MarketOrder).where(MarketOrder.buyer_id == buyer_id)))
    fills = list(session.scalars(select(MarketFill).where(MarketFill.buyer_id == buyer_id)))
    reservations = list(
        session.scalars(select(Reservation).where(Reservation.buyer_id == buyer_id))
    )
    if not orders and not fills and not reservations:
        return None
    by_status: dict[str, int] = defaultdict(int)
    for order in orders:
        by_status[order.status] += 1
    return {
        "buyer_id": buyer_id,
        "order_count": len(orders),
        "orders_by_status": dict(sorted(by_status.items())),
        "reservation_count": len(reservations),
        "held_units": sum(r.held_units for r in reservations if r.status == "active"),
        **_volume(fills),
    }


def seller_profile(session: Session, seller_id: str) -> dict[str, Any] | None:
    """A seller is a provider (by provider_id) or a provider owner (by owner_id)."""
    providers = list(
        session.scalars(
            select(Provider).where(
                (Provider.provider_id == seller_id) | (Provider.owner_id == seller_id)
            )
        )
    )
    if not providers:
        return None
    ids = [p.provider_id for p in providers]
    fills = list(session.scalars(select(MarketFill).where(MarketFill.provider_id.in_(ids))))
    capacity = list(
        session.scalars(select(CapacityEntry).where(CapacityEntry.provider_id.in_(ids)))
    )
    asks = list(
        session.scalars(
            select(MarketOrder).where(
                MarketOrder.provider_id.in_(ids), MarketOrder.status.in_(ACTIVE)
            )
        )
    )
    scores = [c.reliability_score for c in capacity]
    qualities = [c.quality_score for c in capacity]
    return {
        "seller_id": seller_id,
        "provider_ids": ids,
        "provider_count": len(ids),
        "open_ask_count": len(asks),
        "open_ask_units": sum(a.remaining_units for a in asks),
        "published_units": sum(c.available_units for c in capacity),
        "reliability_score": round(sum(scores) / len(scores), 4) if scores else None,
        "quality_score": round(sum(qualities) / len(qualities), 4) if qualities else None,
        **_volume(fills),
    }

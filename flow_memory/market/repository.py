"""All SQL for the market: markets, orders, fills, reservations and the feed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flow_memory.market.models import (
    FeedEvent,
    Market,
    MarketFill,
    MarketOrder,
    Reservation,
    ReservationHold,
)

ACTIVE = ("open", "partially_filled")


def lock_market(session: Session, model: str, unit_type: str, *, now: datetime) -> Market:
    """Fetch the market row under a row lock, creating it on first use."""
    query = select(Market).where(Market.model == model, Market.unit_type == unit_type)
    market = session.scalars(query.with_for_update()).first()
    if market is None:
        market = Market(
            model=model, unit_type=unit_type, version=0, next_sequence=1, created_at=now
        )
        session.add(market)
        session.flush()
    return market


def active_orders(session: Session, model: str, unit_type: str) -> list[MarketOrder]:
    return list(
        session.scalars(
            select(MarketOrder)
            .where(
                MarketOrder.model == model,
                MarketOrder.unit_type == unit_type,
                MarketOrder.status.in_(ACTIVE),
            )
            .order_by(MarketOrder.sequence)
        )
    )


def orders_by_id(session: Session, order_ids: Iterable[str]) -> dict[str, MarketOrder]:
    ids = list(order_ids)
    if not ids:
        return {}
    return {
        o.order_id: o
        for o in session.scalars(select(MarketOrder).where(MarketOrder.order_id.in_(ids)))
    }


def get_order(session: Session, order_id: str) -> MarketOrder | None:
    return session.get(MarketOrder, order_id)


def active_holds(session: Session, model: str, unit_type: str) -> list[ReservationHold]:
    return list(
        session.scalars(
            select(ReservationHold)
            .join(Reservation)
            .where(
                Reservation.model == model,
                Reservation.unit_type == unit_type,
                Reservation.status == "active",
            )
        )
    )


def due_reservations(
    session: Session, model: str, unit_type: str, now: datetime
) -> list[Reservation]:
    return list(
        session.scalars(
            select(Reservation).where(
                Reservation.model == model,
                Reservation.unit_type == unit_type,
                Reservation.status == "active",
                Reservation.expires_at <= now,
            )
        )
    )


def holds_of(session: Session, reservation_id: str) -> list[ReservationHold]:
    return list(
        session.scalars(
            select(ReservationHold)
            .where(ReservationHold.reservation_id == reservation_id)
            .order_by(ReservationHold.unit_price, ReservationHold.order_id)
        )
    )


def reservation_by_key(session: Session, owner_id: str, key: str) -> Reservation | None:
    return session.scalars(
        select(Reservation).where(
            Reservation.owner_id == owner_id, Reservation.idempotency_key == key
        )
    ).first()


def reservation_summary(session: Session, model: str, unit_type: str) -> tuple[int, int]:
    count, held = session.execute(
        select(func.count(), func.coalesce(func.sum(Reservation.held_units), 0)).where(
            Reservation.model == model,
            Reservation.unit_type == unit_type,
            Reservation.status == "active",
        )
    ).one()
    return int(count), int(held)


def recent_fills(session: Session, model: str, unit_type: str, limit: int) -> list[MarketFill]:
    return list(
        session.scalars(
            select(MarketFill)
            .where(MarketFill.model == model, MarketFill.unit_type == unit_type)
            .order_by(MarketFill.created_at.desc(), MarketFill.fill_id.desc())
            .limit(limit)
        )
    )


def fills_of(session: Session, order_id: str) -> list[MarketFill]:
    return list(
        session.scalars(
            select(MarketFill)
            .where((MarketFill.bid_order_id == order_id) | (MarketFill.ask_order_id == order_id))
            .order_by(MarketFill.created_at, MarketFill.fill_id)
        )
    )


def snapshot_asks(session: Session, provider_id: str) -> list[MarketOrder]:
    return list(
        session.scalars(
            select(MarketOrder).where(
                MarketOrder.provider_id == provider_id,
                MarketOrder.source == "provider_capacity_snapshot",
                MarketOrder.status.in_(ACTIVE),
            )
        )
    )


def manual_ask_units(session: Session, provider_id: str, model: str, unit_type: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(MarketOrder.remaining_units), 0)).where(
            MarketOrder.provider_id == provider_id,
            MarketOrder.model == model,
            MarketOrder.unit_type == unit_type,
            MarketOrder.side == "ask",
            MarketOrder.source != "provider_capacity_snapshot",
            MarketOrder.status.in_(ACTIVE),
        )
    )
    return int(total or 0)


def add_event(
    session: Session,
    *,
    kind: str,
    subject_id: str,
    now: datetime,
    model: str | None = None,
    unit_type: str | None = None,
    payload: dict[str, Any],
) -> None:
    session.add(
        FeedEvent(
            kind=kind,
            model=model,
            unit_type=unit_type,
            subject_id=subject_id,
            payload=payload,
            created_at=now,
        )
    )

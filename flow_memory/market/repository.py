"""All SQL for the market: markets, orders, fills, reservations and the feed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from flow_memory.kit.db import BulkWrite, DriverQuery, bulk_insert, dialect_inserts
from flow_memory.market.models import (
    FeedEvent,
    Market,
    MarketFill,
    MarketOrder,
    Reservation,
    ReservationHold,
)
from flow_memory.market.writer import before_commit, deferred

ACTIVE = ("open", "partially_filled")


@dataclass(slots=True)
class MarketRow:
    """A market's row: its lock, and the version and next sequence of its book."""

    model: str
    unit_type: str
    version: int
    next_sequence: int


_MARKETS: Table = Market.__table__  # type: ignore[assignment]
# Built once: a statement object reused keeps its cache key, which is costly to compute.
# Run on the driver directly (once per market batch: SQLAlchemy's execution path costs more
# than the query).
_LOCK_MARKET = DriverQuery(
    select(_MARKETS.c.version, _MARKETS.c.next_sequence)
    .where(
        _MARKETS.c.model == bindparam("model"),
        _MARKETS.c.unit_type == bindparam("unit_type"),
    )
    .with_for_update()
)
_CREATE_MARKET = {
    dialect: statement.on_conflict_do_nothing()
    for dialect, statement in dialect_inserts(_MARKETS).items()
}
_SAVE_MARKET = DriverQuery(
    update(_MARKETS)
    .where(
        _MARKETS.c.model == bindparam("b_model"),
        _MARKETS.c.unit_type == bindparam("b_unit_type"),
    )
    .values(version=bindparam("b_version"), next_sequence=bindparam("b_next_sequence"))
)


def lock_market(session: Session, model: str, unit_type: str, *, now: datetime) -> MarketRow:
    """Fetch the market row under a row lock, creating it on first use."""
    key = {"model": model, "unit_type": unit_type}
    connection = session.connection()
    found = _LOCK_MARKET.rows(connection, key)
    if not found:
        # Two writers may create it at once (PostgreSQL): the loser's insert does nothing.
        create = _CREATE_MARKET[connection.dialect.name]
        connection.execute(create, {**key, "version": 0, "next_sequence": 1, "created_at": now})
        found = _LOCK_MARKET.rows(connection, key)
    ((version, next_sequence),) = found
    return MarketRow(model, unit_type, version, next_sequence)


def save_market_counters(
    session: Session, market: MarketRow, *, version: int, next_sequence: int
) -> None:
    """Write a market's version and next sequence (the row itself may be unchanged)."""
    if (version, next_sequence) == (market.version, market.next_sequence):
        return
    _SAVE_MARKET.rows(
        session.connection(),
        {
            "b_model": market.model,
            "b_unit_type": market.unit_type,
            "b_version": version,
            "b_next_sequence": next_sequence,
        },
    )
    market.version, market.next_sequence = version, next_sequence


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


def next_reservation_expiry(
    session: Session, model: str, unit_type: str, *, after: datetime
) -> datetime | None:
    """When the market's next active reservation expires (after ``after``), if any."""
    return session.scalar(
        select(func.min(Reservation.expires_at)).where(
            Reservation.model == model,
            Reservation.unit_type == unit_type,
            Reservation.status == "active",
            Reservation.expires_at > after,
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


_MANUAL_ASK_UNITS = select(func.coalesce(func.sum(MarketOrder.remaining_units), 0)).where(
    MarketOrder.provider_id == bindparam("provider_id"),
    MarketOrder.model == bindparam("model"),
    MarketOrder.unit_type == bindparam("unit_type"),
    MarketOrder.side == "ask",
    MarketOrder.source != "provider_capacity_snapshot",
    MarketOrder.status.in_(ACTIVE),
)


def manual_ask_units(session: Session, provider_id: str, model: str, unit_type: str) -> int:
    # Built once: a statement object reused keeps its cache key, which is costly to compute.
    total = session.scalar(
        _MANUAL_ASK_UNITS, {"provider_id": provider_id, "model": model, "unit_type": unit_type}
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
    add_events(session, [(kind, model, unit_type, subject_id, payload, now)])


# -- the order path's bulk writes (Core statements: no unit of work per row) -----------------
# New rows go straight to the transaction's connection: the session's own execution path
# (autoflush, ORM events) costs more than the insert, and no pending object depends on them.

_ORDERS: Table = MarketOrder.__table__  # type: ignore[assignment]
_FILLS: Table = MarketFill.__table__  # type: ignore[assignment]
_EVENTS: Table = FeedEvent.__table__  # type: ignore[assignment]
# The order path's statements are built once (see manual_ask_units).
_INSERT_ORDER = bulk_insert(_ORDERS)
_INSERT_FILLS = bulk_insert(_FILLS)
_INSERT_EVENTS = bulk_insert(_EVENTS)
# The rows of the order path are tuples of values in these orders (the tables' own).
ORDER_COLUMNS: tuple[str, ...] = tuple(_ORDERS.columns.keys())
FILL_COLUMNS: tuple[str, ...] = tuple(_FILLS.columns.keys())
# A feed event: its id is the database's.
EVENT_COLUMNS = ("kind", "model", "unit_type", "subject_id", "payload", "created_at")
_ORDER_PARTIES = select(
    _ORDERS.c.order_id,
    _ORDERS.c.owner_id,
    _ORDERS.c.buyer_id,
    _ORDERS.c.provider_id,
    _ORDERS.c.limit_unit_price,
    _ORDERS.c.metadata,
    _ORDERS.c.source,
).where(_ORDERS.c.order_id.in_(bindparam("order_ids", expanding=True)))


def insert_orders(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Insert order rows: tuples of values in ``ORDER_COLUMNS`` order."""
    _INSERT_ORDER.execute_rows(session.connection(), ORDER_COLUMNS, rows)


def insert_fills(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Insert fill rows: tuples of values in ``FILL_COLUMNS`` order."""
    _INSERT_FILLS.execute_rows(session.connection(), FILL_COLUMNS, rows)


def add_events(session: Session, events: list[tuple[Any, ...]]) -> None:
    """Queue feed events (tuples of values in ``EVENT_COLUMNS`` order); the transaction writes
    all of them in order, just before it commits (nothing reads the feed inside the
    transaction that writes it)."""
    if not events:
        return
    deferred(session, "feed_events").extend(events)
    before_commit(session, "feed_events", _write_events)


def _write_events(session: Session) -> None:
    events = deferred(session, "feed_events")
    _INSERT_EVENTS.execute_rows(session.connection(), EVENT_COLUMNS, events)
    events.clear()


def order_parties(session: Session, order_ids: Iterable[str]) -> dict[str, Row[*tuple[Any, ...]]]:
    """What a fill needs of each order (owner, buyer, provider, price, metadata, source), by
    id."""
    ids = list(order_ids)
    if not ids:
        return {}
    return {row.order_id: row for row in session.execute(_ORDER_PARTIES, {"order_ids": ids})}


def set_order_values(session: Session, changes: dict[str, dict[str, Any]]) -> None:
    """Set columns per order id (by column name), one statement per set of columns, keeping
    loaded order objects current."""
    identity_map = session.identity_map
    loaded = [
        obj
        for order_id in (changes if len(identity_map) else ())
        if (obj := identity_map.get(identity_key(MarketOrder, order_id))) is not None
    ]
    if any(obj in session.dirty for obj in loaded):
        session.flush()  # their pending changes come first
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for order_id, values in changes.items():
        columns = tuple(values)
        by_columns.setdefault(columns, []).append((*values.values(), order_id))
    for columns, rows in by_columns.items():
        statement, names = _order_update(columns)
        statement.execute_rows(session.connection(), names, rows)
    for obj in loaded:
        session.expire(obj)


def _order_update(columns: tuple[str, ...]) -> tuple[BulkWrite, tuple[str, ...]]:
    """The update of these columns by order id, and its parameters' names (the columns', then
    the order id's)."""
    found = _ORDER_UPDATES.get(columns)
    if found is None:
        statement = BulkWrite(
            update(_ORDERS)
            .where(_ORDERS.c.order_id == bindparam("b_order_id"))
            .values({name: bindparam(f"b_{name}") for name in columns})
        )
        names = (*(f"b_{name}" for name in columns), "b_order_id")
        found = _ORDER_UPDATES[columns] = (statement, names)
    return found


_ORDER_UPDATES: dict[tuple[str, ...], tuple[BulkWrite, tuple[str, ...]]] = {}


def snapshot_ask_lines(session: Session, provider_id: str) -> list[tuple[str, str, str, bool]]:
    """The provider's active snapshot asks: ``(order_id, model, unit_type, retired)``."""
    query = select(
        _ORDERS.c.order_id, _ORDERS.c.model, _ORDERS.c.unit_type, _ORDERS.c.metadata
    ).where(
        _ORDERS.c.provider_id == provider_id,
        _ORDERS.c.source == "provider_capacity_snapshot",
        _ORDERS.c.status.in_(ACTIVE),
    )
    return [
        (r.order_id, r.model, r.unit_type, bool(r.metadata.get("retired")))
        for r in session.execute(query)
    ]

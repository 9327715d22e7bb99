"""All SQL for the market: markets, orders, fills, reservations and the feed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from flow_memory.kit.driver import BulkWrite, DriverQuery, bulk_insert, dialect_inserts
from flow_memory.market.models import (
    FeedEvent,
    Market,
    MarketFill,
    MarketOrder,
    Reservation,
    ReservationHold,
)

ACTIVE = ("open", "partially_filled")


@dataclass(slots=True)
class MarketRow:
    """A market's row: its lock, and the version and next sequence of its book."""

    model: str
    unit_type: str
    version: int
    next_sequence: int


_MARKETS: Table = Market.__table__  # type: ignore[assignment]
_ORDERS: Table = MarketOrder.__table__  # type: ignore[assignment]
_FILLS: Table = MarketFill.__table__  # type: ignore[assignment]
_EVENTS: Table = FeedEvent.__table__  # type: ignore[assignment]
_RESERVATIONS: Table = Reservation.__table__  # type: ignore[assignment]
_HOLDS: Table = ReservationHold.__table__  # type: ignore[assignment]

# Statements are built once: a statement object reused keeps its cache key, which is costly
# to compute. The market lock runs on the driver directly, once per market a batch holds.
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
_SAVE_MARKETS = BulkWrite(
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


def save_markets(session: Session, counters: Sequence[tuple[str, str, int, int]]) -> None:
    """Write markets' ``(model, unit_type, version, next_sequence)``."""
    _SAVE_MARKETS.execute_rows(
        session.connection(), ("b_model", "b_unit_type", "b_version", "b_next_sequence"), counters
    )


_BOOK_COLUMNS = (
    _ORDERS.c.order_id,
    _ORDERS.c.side,
    _ORDERS.c.owner_id,
    _ORDERS.c.buyer_id,
    _ORDERS.c.provider_id,
    _ORDERS.c.units,
    _ORDERS.c.remaining_units,
    _ORDERS.c.limit_unit_price,
    _ORDERS.c.min_fill_units,
    _ORDERS.c.time_in_force,
    _ORDERS.c.status,
    _ORDERS.c.sequence,
    _ORDERS.c.source,
    _ORDERS.c.metadata,
    _ORDERS.c.expires_at,
)
_ACTIVE_ORDERS = (
    select(*_BOOK_COLUMNS)
    .where(
        _ORDERS.c.model == bindparam("model"),
        _ORDERS.c.unit_type == bindparam("unit_type"),
        _ORDERS.c.status.in_(ACTIVE),
    )
    .order_by(_ORDERS.c.sequence)
)


def active_orders(session: Session, model: str, unit_type: str) -> list[Row[Any]]:
    """The market's resting orders, oldest first."""
    return list(session.execute(_ACTIVE_ORDERS, {"model": model, "unit_type": unit_type}))


_CHANGED_ORDERS = select(*_BOOK_COLUMNS).where(
    _ORDERS.c.model == bindparam("model"),
    _ORDERS.c.unit_type == bindparam("unit_type"),
    _ORDERS.c.version > bindparam("since"),
)
_CHANGED_RESERVATIONS = (
    select(_RESERVATIONS.c.reservation_id)
    .where(
        _RESERVATIONS.c.model == bindparam("model"),
        _RESERVATIONS.c.unit_type == bindparam("unit_type"),
        _RESERVATIONS.c.version > bindparam("since"),
    )
    .limit(1)
)


def changed_orders(session: Session, model: str, unit_type: str, since: int) -> list[Row[Any]]:
    """The market's orders written after its version ``since``, as they are now."""
    key = {"model": model, "unit_type": unit_type, "since": since}
    return list(session.execute(_CHANGED_ORDERS, key))


def reservations_changed(session: Session, model: str, unit_type: str, since: int) -> bool:
    """Whether a reservation of the market was written after its version ``since``."""
    key = {"model": model, "unit_type": unit_type, "since": since}
    return session.execute(_CHANGED_RESERVATIONS, key).first() is not None


def active_holds(session: Session, model: str, unit_type: str) -> list[tuple[str, int]]:
    """``(order id, units)`` of every hold of the market's active reservations."""
    query = (
        select(_HOLDS.c.order_id, _HOLDS.c.units)
        .join(_RESERVATIONS, _RESERVATIONS.c.reservation_id == _HOLDS.c.reservation_id)
        .where(
            _RESERVATIONS.c.model == model,
            _RESERVATIONS.c.unit_type == unit_type,
            _RESERVATIONS.c.status == "active",
        )
    )
    return [(order_id, units) for order_id, units in session.execute(query)]


def order_market(session: Session, order_id: str) -> tuple[str, str, str] | None:
    """An order's ``(owner, model, unit_type)``, if it exists."""
    row = session.execute(
        select(_ORDERS.c.owner_id, _ORDERS.c.model, _ORDERS.c.unit_type).where(
            _ORDERS.c.order_id == order_id
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def order_row(session: Session, order_id: str) -> Row[Any] | None:
    """An order as stored (columns by name; ``metadata_`` is the column ``metadata``)."""
    columns = [c.label("metadata_") if c.key == "metadata" else c for c in _ORDERS.columns]
    return session.execute(select(*columns).where(_ORDERS.c.order_id == order_id)).first()


def due_reservations(
    session: Session, model: str, unit_type: str, now: datetime
) -> list[tuple[str, str, int]]:
    """``(reservation id, order id, units)`` of every hold of the market's active reservations
    due to expire (a reservation without holds gives one line with no order)."""
    query = (
        select(_RESERVATIONS.c.reservation_id, _HOLDS.c.order_id, _HOLDS.c.units)
        .outerjoin(_HOLDS, _HOLDS.c.reservation_id == _RESERVATIONS.c.reservation_id)
        .where(
            _RESERVATIONS.c.model == model,
            _RESERVATIONS.c.unit_type == unit_type,
            _RESERVATIONS.c.status == "active",
            _RESERVATIONS.c.expires_at <= now,
        )
    )
    return [(r, o, u) for r, o, u in session.execute(query)]


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


def snapshot_ask_markets(session: Session, provider_id: str) -> set[tuple[str, str]]:
    """The markets where the provider has active snapshot asks."""
    query = select(_ORDERS.c.model, _ORDERS.c.unit_type).where(
        _ORDERS.c.provider_id == provider_id,
        _ORDERS.c.source == "provider_capacity_snapshot",
        _ORDERS.c.status.in_(ACTIVE),
    )
    return {(model, unit_type) for model, unit_type in session.execute(query)}


# -- bulk writes: one executemany per table for a whole batch --------------------------------

_INSERT_ORDERS = bulk_insert(_ORDERS)
_INSERT_FILLS = bulk_insert(_FILLS)
_INSERT_EVENTS = bulk_insert(_EVENTS)
_INSERT_RESERVATIONS = bulk_insert(_RESERVATIONS)
_INSERT_HOLDS = bulk_insert(_HOLDS)
# Row tuples hold these columns in this order (the tables' own; a feed event's id is the
# database's).
ORDER_COLUMNS: tuple[str, ...] = tuple(_ORDERS.columns.keys())
FILL_COLUMNS: tuple[str, ...] = tuple(_FILLS.columns.keys())
RESERVATION_COLUMNS: tuple[str, ...] = tuple(_RESERVATIONS.columns.keys())
HOLD_COLUMNS: tuple[str, ...] = tuple(_HOLDS.columns.keys())
EVENT_COLUMNS = ("kind", "model", "unit_type", "subject_id", "payload", "created_at")


def insert_orders(session: Session, rows: list[tuple[Any, ...]]) -> None:
    _INSERT_ORDERS.execute_rows(session.connection(), ORDER_COLUMNS, rows)


def insert_fills(session: Session, rows: list[tuple[Any, ...]]) -> None:
    _INSERT_FILLS.execute_rows(session.connection(), FILL_COLUMNS, rows)


def insert_reservations(session: Session, rows: list[tuple[Any, ...]]) -> None:
    _INSERT_RESERVATIONS.execute_rows(session.connection(), RESERVATION_COLUMNS, rows)


def insert_holds(session: Session, rows: list[tuple[Any, ...]]) -> None:
    _INSERT_HOLDS.execute_rows(session.connection(), HOLD_COLUMNS, rows)


def insert_events(session: Session, rows: list[tuple[Any, ...]]) -> None:
    _INSERT_EVENTS.execute_rows(session.connection(), EVENT_COLUMNS, rows)


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
    """Write one feed event now."""
    insert_events(session, [(kind, model, unit_type, subject_id, payload, now)])


def update_orders(session: Session, changes: dict[str, dict[str, Any]]) -> None:
    """Set columns per order id, one statement per set of columns."""
    _update_by_id(session, _ORDERS, "order_id", changes)


def update_reservations(session: Session, changes: dict[str, dict[str, Any]]) -> None:
    """Set columns per reservation id, one statement per set of columns."""
    _update_by_id(session, _RESERVATIONS, "reservation_id", changes)


def _update_by_id(
    session: Session, table: Table, id_column: str, changes: dict[str, dict[str, Any]]
) -> None:
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row_id, values in changes.items():
        by_columns.setdefault(tuple(values), []).append((*values.values(), row_id))
    for columns, rows in by_columns.items():
        statement, names = _update(table, id_column, columns)
        statement.execute_rows(session.connection(), names, rows)


_UPDATES: dict[tuple[str, tuple[str, ...]], tuple[BulkWrite, tuple[str, ...]]] = {}


def _update(
    table: Table, id_column: str, columns: tuple[str, ...]
) -> tuple[BulkWrite, tuple[str, ...]]:
    """The update of these columns by id, and its parameters' names (the columns', then the
    id's)."""
    key = (table.name, columns)
    found = _UPDATES.get(key)
    if found is None:
        statement = BulkWrite(
            update(table)
            .where(table.c[id_column] == bindparam(f"b_{id_column}"))
            .values({name: bindparam(f"b_{name}") for name in columns})
        )
        names = (*(f"b_{name}" for name in columns), f"b_{id_column}")
        found = _UPDATES[key] = (statement, names)
    return found

"""BulkWrite stores exactly what SQLAlchemy's own insert and update store, on the test
database (SQLite, or PostgreSQL when FLOW_MEMORY_TEST_DATABASE_URL is set)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Table, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from flow_memory.kit.driver import BulkWrite, DriverQuery, bulk_insert
from flow_memory.market.models import FeedEvent, MarketOrder

ORDERS: Table = MarketOrder.__table__  # type: ignore[assignment]
EVENTS: Table = FeedEvent.__table__  # type: ignore[assignment]
WHEN = datetime(2026, 11, 22, 20, 0, 0, 123456, tzinfo=UTC)


def order(order_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "order_id": order_id,
        "model": "m",
        "unit_type": "token",
        "side": "ask",
        "owner_id": "seller",
        "buyer_id": None,
        "provider_id": "prov_1",
        "units": 1000,
        "remaining_units": 400,
        "limit_unit_price": Decimal("0.00000075"),
        "currency": "USD_CREDIT",
        "min_fill_units": 1,
        "time_in_force": "gtc",
        "status": "partially_filled",
        "sequence": 7,
        "source": "api",
        "routing_policy": {},
        "metadata": {"z": [1, "two", None], "a": {"nested": True}},
        "expires_at": None,
        "cancel_reason": None,
        "cancelled_by": None,
        "created_at": WHEN,
        "updated_at": WHEN + timedelta(hours=2),
        "version": 3,
    }
    return row | values


def stored(app: FastAPI, table: Table, key: str, ids: list[str]) -> list[tuple[Any, ...]]:
    """The rows as the driver gives them back: text, numbers and JSON as stored."""
    names = ", ".join(c.name for c in table.columns)
    with app.state.engine.connect() as connection:
        rows = connection.execute(text(f"SELECT {names} FROM {table.name} ORDER BY {key}"))
        return [tuple(row) for row in rows if row[0] in ids]


def test_rows_are_stored_as_sqlalchemy_stores_them(app: FastAPI) -> None:
    mine = [
        order("ord_bulk_1"),
        order("ord_bulk_2", expires_at=WHEN, limit_unit_price=Decimal("12.5"), metadata={}),
    ]
    theirs = [row | {"order_id": row["order_id"].replace("bulk", "core")} for row in mine]
    with app.state.session_factory.begin() as session:
        bulk_insert(ORDERS).execute(session.connection(), mine)
        session.connection().execute(insert(ORDERS), theirs)
    bulk = stored(app, ORDERS, "order_id", ["ord_bulk_1", "ord_bulk_2"])
    core = stored(app, ORDERS, "order_id", ["ord_core_1", "ord_core_2"])
    assert len(bulk) == 2
    assert [row[1:] for row in bulk] == [row[1:] for row in core]
    with app.state.session_factory() as session:
        first, second = (session.get(MarketOrder, f"ord_bulk_{n}") for n in (1, 2))
        assert first is not None and second is not None
        assert first.metadata_ == mine[0]["metadata"]
        assert (second.limit_unit_price, second.expires_at) == (Decimal("12.5"), WHEN)


def test_rows_given_as_tuples_in_any_order_are_stored_as_sqlalchemy_stores_them(
    app: FastAPI,
) -> None:
    rows = [
        order("ord_tuple_1"),
        order("ord_tuple_2", expires_at=WHEN, limit_unit_price=Decimal("3.25"), metadata={}),
    ]
    in_table_order = tuple(ORDERS.columns.keys())
    shuffled = tuple(reversed(in_table_order))  # not the statement's order: taken apart by name
    core = [row | {"order_id": row["order_id"].replace("tuple", "core")} for row in rows]
    swapped = [row | {"order_id": row["order_id"].replace("tuple", "swap")} for row in rows]
    with app.state.session_factory.begin() as session:
        connection = session.connection()
        bulk_insert(ORDERS).execute_rows(
            connection, in_table_order, [tuple(row[n] for n in in_table_order) for row in rows]
        )
        bulk_insert(ORDERS).execute_rows(
            connection, shuffled, [tuple(row[n] for n in shuffled) for row in swapped]
        )
        bulk_insert(ORDERS).execute_rows(connection, shuffled, [])
        connection.execute(insert(ORDERS), core)
    expected = [row[1:] for row in stored(app, ORDERS, "order_id", ["ord_core_1", "ord_core_2"])]
    assert len(expected) == 2
    for kind in ("tuple", "swap"):
        ids = [f"ord_{kind}_1", f"ord_{kind}_2"]
        assert [row[1:] for row in stored(app, ORDERS, "order_id", ids)] == expected
    with app.state.engine.connect() as connection:
        nulls = connection.execute(
            text(
                "SELECT count(*) FROM market_orders WHERE order_id = 'ord_tuple_1' "
                "AND buyer_id IS NULL AND expires_at IS NULL AND cancel_reason IS NULL"
            )
        ).scalar_one()
    assert nulls == 1  # a null is stored as SQL's NULL, on the driver path as on SQLAlchemy's


def test_update_rows_given_as_tuples_name_their_values(app: FastAPI) -> None:
    with app.state.session_factory.begin() as session:
        session.connection().execute(insert(ORDERS), [order("ord_tup_upd")])
    statement = BulkWrite(
        update(ORDERS)
        .where(ORDERS.c.order_id == bindparam("b_order_id"))
        .values(status=bindparam("b_status"), remaining_units=bindparam("b_remaining_units"))
    )
    later = ("b_order_id", "b_remaining_units", "b_status")
    with app.state.session_factory.begin() as session:
        statement.execute_rows(session.connection(), later, [("ord_tup_upd", 0, "filled")])
    with app.state.session_factory() as session:
        row = session.get(MarketOrder, "ord_tup_upd")
        assert row is not None
        assert (row.remaining_units, row.status) == (0, "filled")


def test_a_table_with_an_identity_key_takes_the_rows_without_it(app: FastAPI) -> None:
    events = [
        {
            "kind": "fill",
            "model": "m",
            "unit_type": "token",
            "subject_id": f"fill_{n}",
            "payload": {"units": n, "unit_price": "0.1"},
            "created_at": WHEN,
        }
        for n in range(3)
    ]
    with app.state.session_factory.begin() as session:
        session.execute(delete(FeedEvent))
        bulk_insert(EVENTS).execute(session.connection(), events)
        bulk_insert(EVENTS).execute(session.connection(), [])
    with app.state.session_factory() as session:
        rows = session.scalars(select(FeedEvent).order_by(FeedEvent.event_id)).all()
        assert [(r.subject_id, r.payload, r.created_at) for r in rows] == [
            (f"fill_{n}", {"units": n, "unit_price": "0.1"}, WHEN) for n in range(3)
        ]


def test_updates_are_stored_as_sqlalchemy_stores_them(app: FastAPI) -> None:
    with app.state.session_factory.begin() as session:
        session.connection().execute(insert(ORDERS), [order("ord_upd_bulk"), order("ord_upd_core")])
    statement = (
        update(ORDERS)
        .where(ORDERS.c.order_id == bindparam("b_order_id"))
        .values(
            remaining_units=bindparam("b_remaining_units"),
            updated_at=bindparam("b_updated_at"),
            limit_unit_price=bindparam("b_price"),
        )
    )
    later = WHEN + timedelta(days=1, microseconds=7)
    change = {"b_remaining_units": 0, "b_updated_at": later, "b_price": Decimal("0.5")}
    with app.state.session_factory.begin() as session:
        BulkWrite(statement).execute(
            session.connection(), [{**change, "b_order_id": "ord_upd_bulk"}]
        )
        session.connection().execute(statement, [{**change, "b_order_id": "ord_upd_core"}])
    [bulk] = stored(app, ORDERS, "order_id", ["ord_upd_bulk"])
    [core] = stored(app, ORDERS, "order_id", ["ord_upd_core"])
    assert bulk[1:] == core[1:]
    with app.state.session_factory() as session:
        row = session.get(MarketOrder, "ord_upd_bulk")
        assert row is not None
        assert (row.remaining_units, row.updated_at, row.limit_unit_price) == (
            0,
            later,
            Decimal("0.5"),
        )


def test_a_refused_row_is_reported_as_sqlalchemy_reports_it(app: FastAPI) -> None:
    writer = bulk_insert(ORDERS)
    with app.state.engine.connect() as connection:
        writer.execute(connection, [order("ord_bulk_twice")])
        with pytest.raises(IntegrityError):
            writer.execute(connection, [order("ord_bulk_twice")])
        connection.rollback()
    # The rows went in the connection's transaction (begun as SQLAlchemy begins one), and the
    # rollback took them back.
    assert stored(app, ORDERS, "order_id", ["ord_bulk_twice"]) == []


def test_a_driver_query_reads_by_named_parameters(app: FastAPI) -> None:
    query = DriverQuery(
        select(ORDERS.c.order_id, ORDERS.c.units).where(ORDERS.c.owner_id == bindparam("owner"))
    )
    with app.state.engine.begin() as connection:
        bulk_insert(ORDERS).execute(
            connection,
            [order("ord_bulk_q1", owner_id="q-owner"), order("ord_bulk_q2", units=7)],
        )
        assert query.rows(connection, {"owner": "q-owner"}) == [("ord_bulk_q1", 1000)]
        assert query.rows(connection, {"owner": "nobody"}) == []
        with pytest.raises(ValueError):
            query.rows(connection, {"someone": "q-owner"})
        connection.execute(delete(ORDERS).where(ORDERS.c.order_id.like("ord_bulk_q%")))

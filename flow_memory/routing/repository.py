"""All SQL for quotes and routes: column-only reads of one market's candidates."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Select, String, bindparam, func, select, type_coerce
from sqlalchemy.orm import Session, aliased

from flow_memory.credentials.models import CredentialRef
from flow_memory.kit.money import exact
from flow_memory.market.models import Market, MarketOrder, Reservation, ReservationHold
from flow_memory.market.repository import ACTIVE
from flow_memory.pricing.models import ListPrice
from flow_memory.providers.models import CapacityEntry, CatalogEntry, Provider


class ProviderLine(NamedTuple):
    """A provider whose catalog lists the model, with what its health and the policy need."""

    provider_id: str
    provider_name: str
    unit_types: list[str]
    reference_unit_prices: dict[str, Any]
    provider_credential_ref: str
    routes_disabled: bool
    paired_at: datetime | None
    last_heartbeat_at: datetime | None
    catalog_published_at: datetime | None
    capacity_published_at: datetime | None
    credential_status: str | None  # None: the reference row is missing
    credential_ref: str | None
    allowed_models: list[str] | None
    quality_score: float | None
    reliability_score: float | None
    capacity_latest_expiry: datetime | None
    reported_status: str | None


@cache
def _provider_lines_query() -> Select[*tuple[Any, ...]]:
    """Built once: constructing the statement costs more than running it."""
    any_line = aliased(CapacityEntry)
    latest_expiry = (
        select(func.max(any_line.expires_at))
        .where(any_line.provider_id == CatalogEntry.provider_id)
        .scalar_subquery()
    )
    return (
        select(
            CatalogEntry.provider_id,
            Provider.provider_name,
            type_coerce(CatalogEntry.unit_types, String),
            type_coerce(CatalogEntry.reference_unit_prices, String),
            Provider.credential_ref,
            Provider.routes_disabled,
            type_coerce(Provider.paired_at, String),
            type_coerce(Provider.last_heartbeat_at, String),
            type_coerce(Provider.catalog_published_at, String),
            type_coerce(Provider.capacity_published_at, String),
            CredentialRef.status,
            CredentialRef.credential_ref,
            type_coerce(CredentialRef.allowed_models, String),
            CapacityEntry.quality_score,
            CapacityEntry.reliability_score,
            type_coerce(latest_expiry, String),
            Provider.reported_status,
        )
        .join(Provider, Provider.provider_id == CatalogEntry.provider_id)
        .outerjoin(CredentialRef, CredentialRef.credential_ref_id == Provider.credential_ref_id)
        .outerjoin(
            CapacityEntry,
            (CapacityEntry.provider_id == CatalogEntry.provider_id)
            & (CapacityEntry.model == CatalogEntry.model)
            & (CapacityEntry.unit_type == bindparam("unit_type")),
        )
        .where(CatalogEntry.model == bindparam("model"))
        .order_by(CatalogEntry.provider_id)
    )


def provider_lines(session: Session, *, model: str, unit_type: str) -> list[ProviderLine]:
    """Every provider whose catalog lists ``model``, in provider id order, in one query."""
    # Times and JSON documents are read as stored and converted here: the column types'
    # general-purpose converters cost more than the rest of the row. JSON documents are
    # decoded once per distinct text, as providers mostly share them.
    documents: dict[str, Any] = {}

    def document(raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw  # a driver that decodes JSON itself (PostgreSQL)
        value = documents.get(raw)
        if value is None:
            value = documents[raw] = json.loads(raw)
        return value

    rows = session.connection().execute(
        _provider_lines_query(), {"model": model, "unit_type": unit_type}
    )
    return [
        ProviderLine(
            row[0],
            row[1],
            document(row[2]),
            document(row[3]),
            row[4],
            row[5],
            _moment(row[6]),
            _moment(row[7]),
            _moment(row[8]),
            _moment(row[9]),
            row[10],
            row[11],
            document(row[12]),
            row[13],
            row[14],
            _moment(row[15]),
            row[16],
        )
        for row in rows
    ]


def _moment(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime: SQLite keeps naive UTC text, PostgreSQL's
    driver returns aware datetimes."""
    if value is None:
        return None
    if isinstance(value, str):
        # Parsing the offset is several times cheaper than datetime.replace(tzinfo=...).
        return datetime.fromisoformat(value + "+00:00")
    moment: datetime = value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resting_asks(
    session: Session, *, model: str, unit_type: str
) -> Iterator[tuple[str, str, Decimal, int]]:
    """The book's resting asks, oldest first (time priority): provider id, order id, unit price
    and remaining units.

    Rows are read as plain tuples on the session's connection (no ORM row handling), and each
    stored price is converted once: a deep book repeats few prices, and the conversion would
    otherwise be most of the cost of a row."""
    query = (
        select(
            MarketOrder.provider_id,
            MarketOrder.order_id,
            type_coerce(MarketOrder.limit_unit_price, String),
            MarketOrder.remaining_units,
        )
        .where(
            MarketOrder.model == model,
            MarketOrder.unit_type == unit_type,
            MarketOrder.side == "ask",
            MarketOrder.status.in_(ACTIVE),
            MarketOrder.provider_id.is_not(None),
        )
        .order_by(MarketOrder.sequence)
    )
    prices: dict[Any, Decimal] = {}
    for provider_id, order_id, stored, remaining in session.connection().execute(query):
        price = prices.get(stored)
        if price is None:
            price = prices[stored] = exact(Decimal(str(stored)))
        yield provider_id or "", order_id, price, remaining


@cache
def _market_version_query() -> Select[*tuple[Any, ...]]:
    return select(Market.version, type_coerce(Market.created_at, String)).where(
        Market.model == bindparam("model"), Market.unit_type == bindparam("unit_type")
    )


def market_version(session: Session, *, model: str, unit_type: str) -> tuple[Any, ...] | None:
    """What identifies the committed state of a market's book: its version, and when its row
    was made (a market recreated after a reset starts its versions again); None: no market."""
    row = (
        session.connection()
        .execute(_market_version_query(), {"model": model, "unit_type": unit_type})
        .first()
    )
    return None if row is None else tuple(row)


@cache
def _held_units_query() -> Select[*tuple[Any, ...]]:
    return (
        select(ReservationHold.order_id, func.sum(ReservationHold.units))
        .join(Reservation)
        .where(
            Reservation.status == "active",
            Reservation.expires_at > bindparam("now", type_=Reservation.expires_at.type),
            Reservation.model == bindparam("model"),
            Reservation.unit_type == bindparam("unit_type"),
        )
        .group_by(ReservationHold.order_id)
    )


def held_units(session: Session, *, model: str, unit_type: str, now: datetime) -> dict[str, int]:
    """Units held by live reservations, per ask."""
    rows = session.connection().execute(
        _held_units_query(), {"model": model, "unit_type": unit_type, "now": now}
    )
    return {order_id: int(units) for order_id, units in rows}


@cache
def _list_price_query() -> Select[*tuple[Any, ...]]:
    return select(ListPrice.unit_price).where(
        ListPrice.model == bindparam("model"), ListPrice.unit_type == bindparam("unit_type")
    )


def list_price(session: Session, *, model: str, unit_type: str) -> Decimal | None:
    """The operator's list price for the market, if set (column-only: no ORM row)."""
    price: Decimal | None = (
        session.connection()
        .execute(_list_price_query(), {"model": model, "unit_type": unit_type})
        .scalar()
    )
    return price


def listed_models(session: Session, *, compatible_apis: Collection[str] | None = None) -> list[str]:
    """Every model some provider's catalog lists (for one of ``compatible_apis``, when given),
    by name."""
    query = select(CatalogEntry.model).distinct().order_by(CatalogEntry.model)
    if compatible_apis is not None:
        query = query.where(CatalogEntry.compatible_api.in_(sorted(compatible_apis)))
    return list(session.scalars(query))


def catalog_apis(session: Session, *, model: str) -> set[str]:
    """The API styles the catalogs that list ``model`` declare for it (empty: nobody lists
    it)."""
    query = select(CatalogEntry.compatible_api).where(CatalogEntry.model == model).distinct()
    return set(session.scalars(query))


def catalog_lists(session: Session, *, model: str, unit_type: str) -> bool:
    """Whether some provider's catalog lists ``model`` in ``unit_type``."""
    query = select(type_coerce(CatalogEntry.unit_types, String)).where(CatalogEntry.model == model)
    for raw in session.connection().execute(query).scalars():
        unit_types = json.loads(raw) if isinstance(raw, str) else raw
        if unit_type in unit_types:
            return True
    return False

"""Reference unit prices: the operator's list price first, then each provider's catalog.

Discounts (quotes, routes) and savings (usage records) are measured against the price this
module returns; where it returns None, no discount is shown and no savings are invented."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.kit.errors import NotFound
from flow_memory.kit.money import exact
from flow_memory.pricing.models import ListPrice
from flow_memory.providers.models import CatalogEntry


def list_prices(session: Session) -> list[ListPrice]:
    return list(session.scalars(select(ListPrice).order_by(ListPrice.model, ListPrice.unit_type)))


def list_price(session: Session, model: str, unit_type: str) -> Decimal | None:
    row = session.get(ListPrice, (model, unit_type))
    return row.unit_price if row is not None else None


def set_list_price(
    session: Session,
    *,
    model: str,
    unit_type: str,
    unit_price: Decimal,
    set_by: str,
    note: str,
    now: datetime,
) -> ListPrice:
    row = session.get(ListPrice, (model, unit_type))
    if row is None:
        row = ListPrice(model=model, unit_type=unit_type)
        session.add(row)
    row.unit_price = exact(unit_price)
    row.set_by = set_by
    row.note = note
    row.updated_at = now
    session.flush()
    return row


def remove_list_price(session: Session, *, model: str, unit_type: str) -> ListPrice:
    row = session.get(ListPrice, (model, unit_type))
    if row is None:
        raise NotFound(
            "no list price is set for this model and unit",
            hint="GET /inference/list-prices shows the prices that are set",
        )
    session.delete(row)
    session.flush()
    return row


def catalog_reference(entry: CatalogEntry | None, unit_type: str) -> Decimal | None:
    if entry is None:
        return None
    return reference_from_catalog(entry.reference_unit_prices, unit_type)


def reference_from_catalog(prices: Mapping[str, Any], unit_type: str) -> Decimal | None:
    """A catalog's reference price for ``unit_type`` (its ``reference_unit_prices`` field)."""
    value = prices.get(unit_type)
    return Decimal(str(value)) if value is not None else None


def reference_prices(
    session: Session, *, model: str, unit_type: str, provider_ids: Iterable[str]
) -> dict[str, Decimal | None]:
    """The reference price per provider: the list price when set, else the provider's catalog."""
    wanted = set(provider_ids)
    listed = list_price(session, model, unit_type)
    if listed is not None:
        return dict.fromkeys(wanted, listed)
    entries = session.scalars(
        select(CatalogEntry).where(
            CatalogEntry.model == model, CatalogEntry.provider_id.in_(wanted)
        )
    )
    found = {e.provider_id: catalog_reference(e, unit_type) for e in entries}
    return {p: found.get(p) for p in wanted}

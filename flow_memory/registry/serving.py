"""Who serves a registry model now: the providers whose catalog names one of its versions,
each judged as routing judges it (health and credential), with the capacity it publishes, and
the depth that adds up to. Read for the model's registry page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.providers.models import CapacityEntry, CatalogEntry, Provider
from flow_memory.registry.models import RegistryEntry, RegistryVersion
from flow_memory.routing import repository as routing_repository
from flow_memory.routing.service import provider_offers
from flow_memory.settings import Settings

LISTED_AT_MOST = 100  # providers listed on a page; the depth counts every one


@dataclass(frozen=True)
class Serving:
    provider_id: str
    provider_name: str
    model: str
    version: str
    unit_type: str
    route_gate: str
    ask_unit_price: Decimal | None
    available_units: int
    serving_now: bool


def servers(
    session: Session, entry: RegistryEntry, *, settings: Settings, now: datetime
) -> list[Serving]:
    """Every (provider, unit type) whose catalog names a version of ``entry`` that is not
    yanked. Serving now: routing would send it calls (its gate is ``eligible``) and it
    publishes unexpired capacity with units left. A few queries: the catalog entries, their
    capacity, and each market's gates once per name the model is listed under."""
    versions = select(RegistryVersion.version_id).where(
        RegistryVersion.entry_id == entry.entry_id, RegistryVersion.status != "yanked"
    )
    named = session.execute(
        select(CatalogEntry, Provider.provider_name)
        .join(Provider, Provider.provider_id == CatalogEntry.provider_id)
        .where(CatalogEntry.registry_version_id.in_(versions))
        .order_by(CatalogEntry.provider_id, CatalogEntry.model)
    ).all()
    found: list[Serving] = []
    gates: dict[tuple[str, str], dict[str, str]] = {}
    capacities = _capacities(session, [catalog for catalog, _ in named], now=now)
    for catalog, provider_name in named:
        for unit_type in catalog.unit_types:
            market = (catalog.model, unit_type)
            if market not in gates:  # once per name the model is listed under
                gates[market] = _gates(session, *market, settings=settings, now=now)
            capacity = capacities.get((catalog.provider_id, catalog.model, unit_type))
            gate = gates[market].get(catalog.provider_id, "blocked")
            units = 0 if capacity is None else capacity.available_units
            found.append(
                Serving(
                    provider_id=catalog.provider_id,
                    provider_name=provider_name,
                    model=catalog.model,
                    version=catalog.registry_version or "",
                    unit_type=unit_type,
                    route_gate=gate,
                    ask_unit_price=None if capacity is None else capacity.ask_unit_price,
                    available_units=units,
                    serving_now=gate == "eligible" and units > 0,
                )
            )
    found.sort(key=_order)
    return found


def _order(serving: Serving) -> tuple[bool, bool, Decimal, str]:
    """Serving now first, then the cheapest ask, then the provider id."""
    ask = serving.ask_unit_price
    return (not serving.serving_now, ask is None, ask or Decimal(0), serving.provider_id)


def _capacities(
    session: Session, catalog: Sequence[CatalogEntry], *, now: datetime
) -> dict[tuple[str, str, str], CapacityEntry]:
    """The live (unexpired) capacity of the catalog entries' providers and models, by
    (provider, model, unit type), in one query."""
    if not catalog:
        return {}
    rows = session.scalars(
        select(CapacityEntry).where(
            CapacityEntry.provider_id.in_({c.provider_id for c in catalog}),
            CapacityEntry.model.in_({c.model for c in catalog}),
            CapacityEntry.expires_at > now,
        )
    )
    return {(c.provider_id, c.model, c.unit_type): c for c in rows}


def _gates(
    session: Session, model: str, unit_type: str, *, settings: Settings, now: datetime
) -> dict[str, str]:
    listed = routing_repository.list_price(session, model=model, unit_type=unit_type)
    offers = provider_offers(
        session, model=model, unit_type=unit_type, listed=listed, settings=settings, now=now
    )
    return {offer.provider_id: offer.route_gate for offer in offers}


def depth(found: Sequence[Serving]) -> list[dict[str, Any]]:
    """Per unit type, over the providers serving now: how many, their units, the best ask."""
    by_unit: dict[str, list[Serving]] = {}
    for serving in found:
        if serving.serving_now:
            by_unit.setdefault(serving.unit_type, []).append(serving)
    return [
        {
            "unit_type": unit_type,
            "providers": len({s.provider_id for s in rows}),
            "available_units": sum(s.available_units for s in rows),
            "best_ask_unit_price": min(
                (s.ask_unit_price for s in rows if s.ask_unit_price is not None), default=None
            ),
        }
        for unit_type, rows in sorted(by_unit.items())
    ]


def page_part(
    session: Session, entry: RegistryEntry, *, settings: Settings, now: datetime
) -> dict[str, Any]:
    """The model page's ``served_by`` (at most ``LISTED_AT_MOST``), its count, and ``depth``."""
    found = servers(session, entry, settings=settings, now=now)
    return {
        "served_by": [vars(s) for s in found[:LISTED_AT_MOST]],
        "served_by_count": len(found),
        "depth": depth(found),
    }

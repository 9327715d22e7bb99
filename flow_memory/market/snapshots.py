"""A provider's capacity snapshot becomes its resting asks: one ask per published inventory
line, replacing the previous snapshot's asks (held units stay on the old ask until their holds
end)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal
from flow_memory.kit.money import plain
from flow_memory.kit.scopes import SELL
from flow_memory.market import repository
from flow_memory.market.schemas import OrderCreate
from flow_memory.market.service import (
    SNAPSHOT_SOURCE,
    MarketRegistry,
    mark_cancelled,
    open_market,
    place_order,
)
from flow_memory.providers import service as providers_service
from flow_memory.providers.models import CapacityEntry, Provider
from flow_memory.providers.schemas import ProviderCapacity
from flow_memory.settings import Settings


def publish_capacity(
    session: Session,
    markets: MarketRegistry,
    *,
    principal: Principal,
    provider_id: str,
    body: ProviderCapacity,
    settings: Settings,
    now: datetime,
) -> tuple[Provider, list[CapacityEntry]]:
    """Record a capacity snapshot and turn it into the provider's resting asks."""
    provider, entries = providers_service.publish_capacity(
        session, principal=principal, provider_id=provider_id, body=body, now=now
    )
    sync_capacity_asks(
        session, markets, provider=provider, entries=entries, settings=settings, now=now
    )
    return provider, entries


def sync_capacity_asks(
    session: Session,
    markets: MarketRegistry,
    *,
    provider: Provider,
    entries: list[CapacityEntry],
    settings: Settings,
    now: datetime,
) -> None:
    """Replace the provider's snapshot asks with one ask per published inventory line."""
    owner = Principal(
        key_id="capacity-snapshot", owner_id=provider.owner_id, scopes=frozenset({SELL})
    )
    still_held: dict[tuple[str, str], int] = defaultdict(int)
    for previous in repository.snapshot_asks(session, provider.provider_id):
        market = open_market(
            session,
            markets,
            model=previous.model,
            unit_type=previous.unit_type,
            settings=settings,
            now=now,
        )
        resting = market.book.orders.get(previous.order_id)
        held = resting.held if resting is not None else 0
        if held:
            # Reservations hold part of it: keep exactly the held units until they end.
            taken = market.changing().reduce(previous.order_id, previous.remaining_units - held)
            previous.remaining_units -= taken
            previous.metadata_ = {**previous.metadata_, "retired": True}
            previous.updated_at = now
            still_held[(previous.model, previous.unit_type)] += held
        else:
            market.changing().cancel(previous.order_id)
            mark_cancelled(previous, "replaced_by_capacity_snapshot", provider.provider_id, now)
        market.bump()
    for entry in entries:
        units = (
            entry.available_units
            - repository.manual_ask_units(
                session, provider.provider_id, entry.model, entry.unit_type
            )
            - still_held[(entry.model, entry.unit_type)]
        )
        if units <= 0:
            continue
        place_order(
            session,
            markets,
            principal=owner,
            settings=settings,
            now=now,
            source=SNAPSHOT_SOURCE,
            expires_at=entry.expires_at,
            body=OrderCreate(
                side="ask",
                provider_id=provider.provider_id,
                model=entry.model,
                unit_type=entry.unit_type,
                units=units,
                limit_unit_price=entry.ask_unit_price,
                min_fill_units=min(entry.min_order_units, units),
                metadata={"source": SNAPSHOT_SOURCE},
            ),
        )
    repository.add_event(
        session,
        kind="capacity_published",
        subject_id=provider.provider_id,
        now=now,
        payload={
            "provider_id": provider.provider_id,
            "lines": [
                {
                    "model": e.model,
                    "unit_type": e.unit_type,
                    "available_units": e.available_units,
                    "ask_unit_price": plain(e.ask_unit_price),
                }
                for e in entries
            ],
        },
    )

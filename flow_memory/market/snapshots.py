"""A provider's capacity snapshot becomes its resting asks: one ask per published inventory
line, replacing the previous snapshot's asks (``flow_memory.market.capacity`` has the rule).

Publishing is a market command like an order: the writer that keeps the books records the
snapshot and moves the asks in one batch, so no other process keeps a book of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flow_memory.kit.broadcast import ROUTES, announce
from flow_memory.kit.deps import Principal
from flow_memory.kit.money import plain
from flow_memory.kit.scopes import SELL
from flow_memory.market import repository
from flow_memory.market.batch import Batch
from flow_memory.market.books import SNAPSHOT_SOURCE, MarketKey
from flow_memory.market.capacity import (
    PublishedLine,
    RestingSnapshotAsk,
    SnapshotPlan,
    plan_snapshot,
)
from flow_memory.market.orders import Answer, place_order
from flow_memory.market.rows import event
from flow_memory.market.schemas import OrderCreate
from flow_memory.providers import service as providers_service
from flow_memory.providers.models import CapacityEntry, Provider
from flow_memory.providers.schemas import ProviderCapacity


@dataclass
class PublishCapacity:
    """Record a capacity snapshot and turn it into the provider's resting asks."""

    principal: Principal
    provider_id: str
    body: ProviderCapacity

    def markets(self, batch: Batch) -> set[MarketKey]:
        published = {(item.model, item.unit_type) for item in self.body.inventory}
        return published | repository.snapshot_ask_markets(batch.session, self.provider_id)

    def run(self, batch: Batch) -> Answer:
        session, now = batch.session, batch.now
        provider, entries = providers_service.check_capacity(
            session,
            principal=self.principal,
            provider_id=self.provider_id,
            body=self.body,
            now=now,
        )
        # Nothing refuses from here on.
        batch.writes += 1
        providers_service.record_capacity(session, provider, entries, body=self.body, now=now)
        announce(session, ROUTES)  # quotes on every server show it once it commits
        sync_capacity_asks(batch, provider=provider, entries=entries)
        answer = capacity_read(provider, entries)
        return lambda _session: answer


def sync_capacity_asks(batch: Batch, *, provider: Provider, entries: list[CapacityEntry]) -> None:
    """Replace the provider's snapshot asks with one ask per published inventory line."""
    provider_id, now = provider.provider_id, batch.now
    # The markets of its snapshot asks were locked up front; so were any an earlier command of
    # this batch gave it, and those of the new lines.
    for key in repository.snapshot_ask_markets(batch.session, provider_id):
        batch.market(key)
    lines = {(e.model, e.unit_type): e for e in entries}
    for key in lines:
        batch.market(key)
    previous: list[RestingSnapshotAsk] = []
    manual: dict[MarketKey, int] = {}
    for key, market in batch.opened.items():
        parties = market.state.parties
        for order in market.book.orders.values():
            if order.provider_id == provider_id and parties[order.order_id].source == (
                SNAPSHOT_SOURCE
            ):
                previous.append(
                    RestingSnapshotAsk(order.order_id, key, order.remaining, order.held)
                )
        units = market.state.manual_units.get(provider_id, 0)
        if units:
            manual[key] = units
    plan = plan_snapshot(
        previous,
        [PublishedLine(key, entry.available_units) for key, entry in lines.items()],
        manual,
    )
    _replace_asks(batch, provider_id, plan, {ask.order_id: ask.market for ask in previous})
    seller = Principal(
        key_id="capacity-snapshot", owner_id=provider.owner_id, scopes=frozenset({SELL})
    )
    for line, units in plan.offer:
        entry = lines[line.market]
        place_order(
            batch,
            principal=seller,
            source=SNAPSHOT_SOURCE,
            expires_at=entry.expires_at,
            body=OrderCreate(
                side="ask",
                provider_id=provider_id,
                model=entry.model,
                unit_type=entry.unit_type,
                units=units,
                limit_unit_price=entry.ask_unit_price,
                min_fill_units=min(entry.min_order_units, units),
                metadata={"source": SNAPSHOT_SOURCE},
            ),
        )
    batch.kept.capacity.pop(provider_id, None)
    batch.rows.events.append(
        event(
            "capacity_published",
            provider_id,
            None,
            now,
            {
                "provider_id": provider_id,
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
    )


def _replace_asks(
    batch: Batch, provider_id: str, plan: SnapshotPlan, markets: dict[str, MarketKey]
) -> None:
    now = batch.now
    for order_id in plan.cancel:
        market = batch.opened[markets[order_id]]
        market.changing().cancel(order_id)
        batch.rows.update_order(
            order_id,
            now,
            version=market.next_version,
            status="cancelled",
            cancel_reason="replaced_by_capacity_snapshot",
            cancelled_by=provider_id,
        )
    for order_id, units in plan.retire:
        market = batch.opened[markets[order_id]]
        book = market.changing()
        if units:
            book.reduce(order_id, units)
            batch.rows.update_order(
                order_id,
                now,
                version=market.next_version,
                remaining_units=book.orders[order_id].remaining,
            )
        party = market.state.parties[order_id]
        if not party.retired:
            market.state.retire(order_id)
            batch.rows.update_order(
                order_id,
                now,
                version=market.next_version,
                metadata={**party.metadata, "retired": True},
            )


def capacity_read(provider: Provider, entries: list[CapacityEntry]) -> dict[str, Any]:
    return {
        "provider_id": provider.provider_id,
        "capacity_version": provider.capacity_version,
        "inventory": [
            {
                "model": e.model,
                "unit_type": e.unit_type,
                "available_units": e.available_units,
                "ask_unit_price": e.ask_unit_price,
                "min_order_units": e.min_order_units,
                "quality_score": e.quality_score,
                "reliability_score": e.reliability_score,
                "expires_at": e.expires_at,
            }
            for e in entries
        ],
        "total_available_units": sum(e.available_units for e in entries),
    }

"""One batch of market commands: the markets it holds, the rows it will write.

A batch runs in one database transaction. Before any command runs, the batch locks every
market its commands name, in key order (SQLite's write lock is the whole database's;
PostgreSQL's is the market row's, held until the batch commits), and brings each book up to
date: rebuilt from the database when the market row's version moved (another process wrote),
then settled (expiries due, trades a provider becoming routable again allows). Commands then
decide on the books and leave their rows in ``rows``; the writer writes them all once the last
command has run (``flow_memory.market.persist``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.market import repository
from flow_memory.market.books import BookState, MarketBooks, MarketKey, Party
from flow_memory.market.orderbook import Fill, Order, OrderBook
from flow_memory.market.reservations import expire_due
from flow_memory.market.rows import (
    Pending,
    PlacedFill,
    event,
    fill_event,
    fill_row,
    fill_rows,
    fill_usage,
)
from flow_memory.pricing import service as pricing
from flow_memory.providers import repository as providers_repository
from flow_memory.providers import service as providers_service
from flow_memory.routing import repository as routing_repository
from flow_memory.routing.facts import FRESH_SECONDS
from flow_memory.settings import Settings


class Kept:
    """What a writer read of providers (route gates, published capacity, reference prices),
    kept from batch to batch for at most ``FRESH_SECONDS`` of real time and of the market's
    clock, as quotes keep offers (``flow_memory.routing.facts``). Forgotten sooner when the
    app forgets route facts (its generation moves: on PostgreSQL also when another server
    announces a change), and published capacity when this writer publishes or another
    process's write moved a book."""

    def __init__(
        self,
        fresh_seconds: float = FRESH_SECONDS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fresh_seconds = fresh_seconds
        self._monotonic = monotonic
        self._generation: int | None = None
        self._read_at = 0.0
        self._derived_at: datetime | None = None
        self.gates: dict[str, str] = {}
        self.capacity: dict[str, dict[MarketKey, int]] = {}
        self.references: dict[tuple[str, str, str], Decimal | None] = {}
        self.listed: dict[MarketKey, bool] = {}

    def refresh(self, generation: int | None, now: datetime) -> None:
        """Keep what was read only while it is fresh at ``now`` and ``generation`` holds."""
        derived = self._derived_at
        if (
            generation != self._generation
            or derived is None
            or not timedelta(0) <= now - derived <= timedelta(seconds=self._fresh_seconds)
            or self._monotonic() - self._read_at > self._fresh_seconds
        ):
            self.clear()
            self._generation = generation
            self._derived_at = now
            self._read_at = self._monotonic()

    def clear(self) -> None:
        self._derived_at = None
        self.gates.clear()
        self.capacity.clear()
        self.references.clear()
        self.listed.clear()


@dataclass
class OpenMarket:
    """A market this batch holds: its book and the counters written back to its row."""

    key: MarketKey
    state: BookState
    version: int  # the row's, as locked
    next_sequence: int
    changed: bool = False  # the book moved in this batch: its version is bumped once

    @property
    def book(self) -> OrderBook:
        return self.state.book

    def changing(self) -> OrderBook:
        """The book, for a command about to move it."""
        self.changed = True
        return self.state.book

    @property
    def next_version(self) -> int:
        """The version its row gets when the batch is written (if the book moved)."""
        return self.version + 1

    def take_sequence(self) -> int:
        sequence = self.next_sequence
        self.next_sequence += 1
        return sequence


class Batch:
    """What a batch's commands decide with, and the rows they leave."""

    def __init__(
        self,
        session: Session,
        books: MarketBooks,
        kept: Kept,
        *,
        settings: Settings,
        now: datetime,
    ) -> None:
        self.session = session
        self.books = books
        self.kept = kept
        self.settings = settings
        self.now = now
        self.opened: dict[MarketKey, OpenMarket] = {}
        self.rows = Pending()
        self.writes = 0  # writes a command made beside ``rows`` (ORM rows of its own)
        # Reservations made in this batch, not written yet: (owner, key) -> fingerprint.
        self.reserved_keys: dict[tuple[str, str], str] = {}

    # -- markets ----------------------------------------------------------------------------

    def lock(self, keys: Iterable[MarketKey]) -> None:
        """Hold these markets for the batch, in key order (so two batches never wait on each
        other's markets in a cycle)."""
        for key in sorted(set(keys) - self.opened.keys()):
            self._open(key)

    def market(self, key: MarketKey) -> OpenMarket:
        """A market the batch holds; one not locked up front is locked now (a deadlock this
        may cause on PostgreSQL is broken by the database and the batch is retried)."""
        market = self.opened.get(key)
        return market if market is not None else self._open(key)

    def mark(self) -> tuple[int, int, int]:
        """Where the batch stands: compare with a later mark to see if anything changed."""
        moved = sum(1 for market in self.opened.values() if market.changed)
        return moved, self.rows.size(), self.writes

    def _open(self, key: MarketKey) -> OpenMarket:
        row = repository.lock_market(self.session, *key, now=self.now)
        state = self.books.state(key)
        if state.version != row.version:
            # Another writer moved the book: read what it changed, or the whole book.
            if not (0 <= state.version < row.version and reload(self.session, state)):
                rebuild(self.session, state)
            state.version = row.version
            # It may have published capacity: read it afresh. (Route gates it changed are
            # announced to this server at once on PostgreSQL, and read afresh within the
            # second on SQLite.)
            self.kept.capacity.clear()
        market = self.opened[key] = OpenMarket(key, state, row.version, row.next_sequence)
        self._settle(market)
        return market

    def _settle(self, market: OpenMarket) -> None:
        """Gates, due expiries, and trades a provider that became routable again allows."""
        book = market.book
        self.read_gates(_ask_providers(book))
        book.set_routable(self.routable)
        expire_due(self, market)
        expired = book.expire(self.now.timestamp())
        if expired:
            market.changed = True
            for order in expired:
                market.state.ended(order)
                self.rows.update_order(
                    order.order_id, self.now, version=market.next_version, status="expired"
                )
                self.rows.events.append(
                    event(
                        "order_expired",
                        order.order_id,
                        market.key,
                        self.now,
                        {"side": order.side, "remaining_units": order.remaining},
                    )
                )
        crossed = book.uncross()
        if crossed:
            market.changed = True
            self.record_fills(market, crossed)

    # -- what the writer keeps --------------------------------------------------------------

    def read_gates(self, provider_ids: Iterable[str]) -> None:
        gates = self.kept.gates
        missing = [p for p in provider_ids if p not in gates]
        if missing:
            found = providers_service.route_gates(
                self.session, missing, settings=self.settings, now=self.now
            )
            for provider_id in missing:
                gates[provider_id] = found.get(provider_id, "")

    def routable(self, provider_id: str | None) -> bool:
        """Whether an ask of this provider may trade (the book asks while it matches)."""
        if provider_id is None:
            return True
        gate = self.kept.gates.get(provider_id)
        if gate is None:
            self.read_gates([provider_id])
            gate = self.kept.gates[provider_id]
        return gate == "eligible"

    def published(self, provider_id: str) -> dict[MarketKey, int]:
        """The provider's published capacity per market."""
        capacity = self.kept.capacity.get(provider_id)
        if capacity is None:
            capacity = self.kept.capacity[provider_id] = {
                (c.model, c.unit_type): c.available_units
                for c in providers_repository.capacity(self.session, provider_id)
            }
        return capacity

    def listed(self, market: MarketKey) -> bool:
        """Whether some provider's catalog lists the market's model in its unit type."""
        found = self.kept.listed.get(market)
        if found is None:
            model, unit_type = market
            found = self.kept.listed[market] = routing_repository.catalog_lists(
                self.session, model=model, unit_type=unit_type
            )
        return found

    def reference_prices(
        self, market: MarketKey, provider_ids: set[str]
    ) -> dict[str, Decimal | None]:
        model, unit_type = market
        known = self.kept.references
        missing = {p for p in provider_ids if (model, unit_type, p) not in known}
        if missing:
            found = pricing.reference_prices(
                self.session, model=model, unit_type=unit_type, provider_ids=missing
            )
            for provider_id in missing:
                known[(model, unit_type, provider_id)] = found.get(provider_id)
        return {p: known[(model, unit_type, p)] for p in provider_ids}

    # -- fills ------------------------------------------------------------------------------

    def record_fills(
        self,
        market: MarketKey | OpenMarket,
        fills: list[Fill],
        *,
        incoming: Party | None = None,
    ) -> list[PlacedFill]:
        """Queue the fills' rows, events and usage, and each resting order's new state
        (``incoming``, the order that just traded, writes its own row)."""
        if not fills:
            return []
        market = market if isinstance(market, OpenMarket) else self.opened[market]
        state, now, rows = market.state, self.now, self.rows
        parties = state.parties
        if incoming is not None:
            parties = {**parties, incoming.order_id: incoming}
        placed = fill_rows(market.key, fills, parties, now)
        incoming_id = incoming.order_id if incoming is not None else None
        resting = {f.bid_order_id for f in fills} | {f.ask_order_id for f in fills}
        resting.discard(incoming_id or "")
        book_orders = market.book.orders
        for order_id in resting:
            left = book_orders.get(order_id)
            if left is not None:
                rows.update_order(
                    order_id,
                    now,
                    version=market.next_version,
                    remaining_units=left.remaining,
                    status="partially_filled",
                )
            else:
                rows.update_order(
                    order_id, now, version=market.next_version, remaining_units=0, status="filled"
                )
        for fill in fills:
            if fill.ask_order_id != incoming_id:
                state.traded(fill.ask_order_id, fill.units)
        references = self.reference_prices(
            market.key, {f.provider_id for f in placed if f.provider_id}
        )
        for row in placed:
            rows.fills.append(fill_row(row))
            rows.events.append(fill_event(row, now))
            rows.usage.append(
                fill_usage(row, parties[row.bid_order_id], references.get(row.provider_id or ""))
            )
        state.trim()
        return placed


def _ask_providers(book: OrderBook) -> set[str]:
    return {o.provider_id for o in book.orders.values() if o.provider_id is not None}


def rebuild(session: Session, state: BookState) -> None:
    """Load the book, and what the writer keeps beside it, from the database."""
    model, unit_type = state.book.model, state.book.unit_type
    state.book = OrderBook(model, unit_type)
    state.parties = {}
    state.manual_units = {}
    state.snapshot_asks = {}
    state.holds_quiet_until = None
    for row in repository.active_orders(session, model, unit_type):
        _rest_row(state, row)
    for order_id, units in repository.active_holds(session, model, unit_type):
        state.book.restore_hold(order_id, units)


def reload(session: Session, state: BookState) -> bool:
    """Bring the book up to date with the orders written since its version; False (and
    nothing changed) when a reservation was written since too: then it must be rebuilt."""
    model, unit_type = state.book.model, state.book.unit_type
    if repository.reservations_changed(session, model, unit_type, state.version):
        return False
    book = state.book
    for row in repository.changed_orders(session, model, unit_type, state.version):
        held = 0
        known = book.orders.get(row.order_id)
        if known is not None:
            held = known.held  # holds change only with reservations, which did not
            book.cancel(row.order_id)
            state.ended(known)
        if row.status in repository.ACTIVE:
            _rest_row(state, row)
            if held:
                book.restore_hold(row.order_id, held)
    return True


def _rest_row(state: BookState, row: Any) -> None:
    """Put a stored resting order back in the book, with its party."""
    party = Party(
        row.order_id,
        row.owner_id,
        row.buyer_id,
        row.provider_id,
        row.limit_unit_price,
        dict(row.metadata),
        row.source,
        retired=bool(row.metadata.get("retired")),
    )
    state.book.restore(
        Order(
            order_id=row.order_id,
            side=row.side,
            owner_id=row.owner_id,
            limit_unit_price=row.limit_unit_price,
            units=row.units,
            min_fill_units=row.min_fill_units,
            time_in_force=row.time_in_force,
            provider_id=row.provider_id,
            expires_at=None if row.expires_at is None else row.expires_at.timestamp(),
            sequence=row.sequence,
            remaining=row.remaining_units,
            status=row.status,
        )
    )
    state.rest(party, row.remaining_units)

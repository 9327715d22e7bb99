"""The books a market writer keeps in memory, one per (model, unit_type), with what fills and
capacity checks need of their resting orders.

Only the writer's thread touches them: a process has one writer, and the writer is the only
place a book moves. A book is a cache of what the database holds: its ``version`` is the
market row's version it matches, and -1 says it must be rebuilt before it is traded on. No
database or web imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from flow_memory.market.orderbook import Order, OrderBook

SNAPSHOT_SOURCE = "provider_capacity_snapshot"

MarketKey = tuple[str, str]  # (model, unit_type)


@dataclass(frozen=True, slots=True)
class Party:
    """What a fill needs of one of its orders, and what capacity checks need of an ask."""

    order_id: str
    owner_id: str
    buyer_id: str | None
    provider_id: str | None
    limit_unit_price: Decimal
    metadata: dict[str, Any]
    source: str  # api, or provider_capacity_snapshot
    retired: bool = False  # a replaced snapshot ask that lives on only for its holds

    @property
    def manual_ask(self) -> bool:
        return self.provider_id is not None and self.source != SNAPSHOT_SOURCE


@dataclass
class BookState:
    """One market's book and what the writer knows beside it."""

    book: OrderBook
    version: int = -1  # the market row's version the book matches; -1: rebuild it
    # Every resting order's party (orders that left the book stay until the next trim).
    parties: dict[str, Party] = field(default_factory=dict)
    # Units of each provider's resting manual asks (remaining, held included).
    manual_units: dict[str, int] = field(default_factory=dict)
    # Each provider's live (not retired) snapshot asks; ended ones are skipped when read.
    snapshot_asks: dict[str, list[str]] = field(default_factory=dict)
    # No active reservation of this market expires before this (None: look it up).
    holds_quiet_until: datetime | None = None

    def rest(self, party: Party, units: int) -> None:
        """Record a new order that rests in the book with ``units`` remaining."""
        self.parties[party.order_id] = party
        if party.provider_id is None:
            return
        if party.manual_ask:
            self.manual_units[party.provider_id] = (
                self.manual_units.get(party.provider_id, 0) + units
            )
        elif not party.retired:
            listed = self.snapshot_asks.setdefault(party.provider_id, [])
            if party.order_id not in listed:
                listed.append(party.order_id)

    def traded(self, ask_order_id: str, units: int) -> None:
        """An ask sold ``units``."""
        self._take_manual(ask_order_id, units)

    def ended(self, order: Order) -> None:
        """A resting order left the book with ``order.remaining`` unsold (cancel, expiry)."""
        self._take_manual(order.order_id, order.remaining)

    def retire(self, order_id: str) -> None:
        party = self.parties.get(order_id)
        if party is not None:
            self.parties[order_id] = Party(
                party.order_id,
                party.owner_id,
                party.buyer_id,
                party.provider_id,
                party.limit_unit_price,
                party.metadata,
                party.source,
                retired=True,
            )

    def live_snapshot_asks(self, provider_id: str) -> list[str]:
        """The provider's resting snapshot asks that are not retired, oldest first."""
        orders, parties = self.book.orders, self.parties
        live = [
            order_id
            for order_id in self.snapshot_asks.get(provider_id, ())
            if order_id in orders and not parties[order_id].retired
        ]
        self.snapshot_asks[provider_id] = live
        return live

    def trim(self) -> None:
        """Forget parties of orders that left the book, once they outnumber the resting."""
        if len(self.parties) > 2 * len(self.book.orders) + 64:
            orders = self.book.orders
            self.parties = {i: p for i, p in self.parties.items() if i in orders}

    def _take_manual(self, order_id: str, units: int) -> None:
        party = self.parties.get(order_id)
        if party is not None and party.manual_ask and units:
            assert party.provider_id is not None
            self.manual_units[party.provider_id] -= units


class MarketBooks:
    """The books of one writer, and provider owners it has looked up."""

    def __init__(self) -> None:
        self._states: dict[MarketKey, BookState] = {}
        # Provider id -> owner: a provider is never deleted and never changes owner.
        self.owners: dict[str, str] = {}

    def state(self, key: MarketKey) -> BookState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = BookState(OrderBook(*key))
        return state

    def forget(self, keys: list[MarketKey] | None = None) -> None:
        """Have these books (every book when None) rebuilt before they are traded on again."""
        for key in self._states if keys is None else keys:
            state = self._states.get(key)
            if state is not None:
                state.version = -1

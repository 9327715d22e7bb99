"""Market use cases: place and cancel orders, and depth (reservations and capacity-snapshot
asks are in their own modules, on the same books).

Each market's book lives in memory (``MarketRegistry``) and is the cache of what the database
holds. A command takes the market's in-process lock and its row lock, reloads the book when the
row's version moved (another process wrote), applies the command to the book, writes the
effects, and bumps the version; the request's commit releases the lock, and a rollback marks
the book for a rebuild. So an order is acknowledged only after its effects are committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal, on_session_end
from flow_memory.kit.errors import Conflict, Forbidden, Invalid, NotFound
from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.money import plain
from flow_memory.kit.scopes import BUY, SELL
from flow_memory.market import repository
from flow_memory.market.models import (
    MarketFill,
    MarketOrder,
    Reservation,
)
from flow_memory.market.orderbook import Fill, Order, OrderBook
from flow_memory.market.schemas import OrderCancel, OrderCreate
from flow_memory.market.writer import (
    before_commit,
    books_dirty,
    deferred,
    deferring,
    keep_work_so_far,
    on_command,
    on_refused,
    writer_batch,
)
from flow_memory.pricing import service as pricing
from flow_memory.providers import repository as providers_repository
from flow_memory.providers import service as providers_service
from flow_memory.routing.facts import RouteFacts
from flow_memory.settings import Settings
from flow_memory.usage import service as usage

SNAPSHOT_SOURCE = "provider_capacity_snapshot"
LOCK_TIMEOUT_SECONDS = 10.0
# With no reservation active, how long a book goes before it looks for due ones again (a
# reservation made meanwhile by this process forgets that; one by another process rebuilds).
QUIET_HOLDS_CHECK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class _Party:
    """What a fill needs of one of its orders."""

    order_id: str
    owner_id: str
    buyer_id: str | None
    provider_id: str | None
    limit_unit_price: Decimal
    metadata: dict[str, Any]
    source: str  # api, or provider_capacity_snapshot


@dataclass
class _Kept:
    """What the market writer read of providers (route gates, published capacity, snapshot
    asks, reference prices), kept for its next batches while still fresh, as quotes keep
    offers (``flow_memory.routing.facts``): at most a second, and dropped after any committed
    change in this process that may move them (the route facts' generation moves with
    credential, enrollment, catalog, capacity and list-price changes) and when another
    process's write makes a book rebuild. Every other transaction reads them afresh."""

    facts: RouteFacts  # whose generation they were read at
    stamp: tuple[int, float]
    derived_at: datetime
    gates: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # by market
    lookups: dict[str, dict[Any, Any]] = field(default_factory=dict)  # by ``_per_transaction``


# The per-transaction lookups the writer keeps between batches (``_Kept``).
_KEPT_LOOKUPS = frozenset({"capacity", "snapshot_asks", "reference_prices"})


@dataclass
class BookState:
    book: OrderBook
    version: int = -1  # -1: must be rebuilt from the database
    lock: threading.Lock = field(default_factory=threading.Lock)
    # What fills need of the resting orders, so a fill reads no order row back; it may also
    # hold orders that have left the book, until the next trim.
    parties: dict[str, _Party] = field(default_factory=dict)
    # No active reservation of this market expires before this time (None: not known). Every
    # reservation is made and expired under the market's lock, which forgets it.
    holds_quiet_until: datetime | None = None
    # Units offered by each provider's manual asks in this book (``_manual_ask_units``).
    manual_ask_units: dict[str, int] = field(default_factory=dict)

    def rest(self, party: _Party) -> None:
        self.parties[party.order_id] = party

    def trim(self) -> None:
        if len(self.parties) > 2 * len(self.book.orders) + 64:
            orders = self.book.orders
            self.parties = {i: p for i, p in self.parties.items() if i in orders}


class MarketRegistry:
    """The in-memory books of this process, one per (model, unit_type)."""

    def __init__(self, route_facts: Callable[[], RouteFacts] | None = None) -> None:
        # The app's route facts: their generation moves whenever a committed change may move a
        # provider's route gate, and the market writer's kept gates are dropped with it.
        self.route_facts = route_facts
        self._states: dict[tuple[str, str], BookState] = {}
        self._guard = threading.Lock()
        # Provider id -> owner: a provider is never deleted and never changes owner.
        self.owners: dict[str, str] = {}
        self.kept: _Kept | None = None  # the market writer's, between its batches

    def state(self, model: str, unit_type: str) -> BookState:
        key = (model, unit_type)
        state = self._states.get(key)
        if state is None:
            with self._guard:
                state = self._states.setdefault(key, BookState(OrderBook(model, unit_type)))
        return state


async def get_markets(request: Request) -> MarketRegistry:
    markets: MarketRegistry = request.app.state.markets
    return markets


MarketsDep = Annotated[MarketRegistry, Depends(get_markets)]


@dataclass
class OpenMarket:
    """A market held for the rest of this transaction.

    Its version and next sequence are counted here and written to the market row once, just
    before the transaction commits: an ORM update of the row per command costs more than the
    command. (A refused command's numbers are not given back; a gap in them is harmless.)"""

    state: BookState
    row: repository.MarketRow
    version: int = 0
    next_sequence: int = 1
    opened_at: datetime | None = None
    routable: Callable[[str | None], bool] | None = None
    changed: bool = False  # the book moved in the current command

    @property
    def book(self) -> OrderBook:
        return self.state.book

    def changing(self) -> OrderBook:
        """The book, for a command about to move it."""
        self.changed = True
        return self.state.book

    def bump(self) -> None:
        self.version += 1
        self.state.version = self.version

    def take_sequence(self) -> int:
        """The next order's place in time."""
        sequence = self.next_sequence
        self.next_sequence += 1
        return sequence


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def open_market(
    session: Session,
    markets: MarketRegistry,
    *,
    model: str,
    unit_type: str,
    settings: Settings,
    now: datetime,
) -> OpenMarket:
    """Lock a market for this transaction, bring its book up to date and apply expiries.

    A transaction that already holds the market gets it again (locks are not re-entered)."""
    opened: dict[tuple[str, str], OpenMarket] = session.info.setdefault("open_markets", {})
    held = opened.get((model, unit_type))
    if held is not None:
        return held
    # The database lock comes first (SQLite's write lock, PostgreSQL's row lock on the market),
    # then this process's lock on the book: every path takes them in that order, so a request
    # and the market writer can never hold one each while waiting for the other.
    row = repository.lock_market(session, model, unit_type, now=now)
    state = markets.state(model, unit_type)
    if not state.lock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
        raise Conflict(
            f"the {model}/{unit_type} market is busy",
            code="market_busy",
            hint="retry the request",
        )

    by_writer = writer_batch(session)

    def release(committed: bool) -> None:
        opened.pop((model, unit_type), None)
        if not committed or books_dirty(session):
            state.version = -1
        if not by_writer:
            state.holds_quiet_until = None  # it may have made or expired a reservation
            state.manual_ask_units.clear()
            # It may have published capacity: the writer reads afresh once it gets the lock
            # (before this transaction's own route-facts clear, which runs after this).
            markets.kept = None
        state.lock.release()

    on_session_end(session, release)
    if state.version != row.version:
        _rebuild(session, state, model, unit_type)
        state.version = row.version
        markets.kept = None  # another process wrote: read what it may have changed afresh
    market = OpenMarket(state, row, row.version, row.next_sequence, opened_at=now)
    opened[(model, unit_type)] = market
    # What the writer kept is judged afresh now that this market's locks are held: a change
    # committed while it waited for them must show.
    session.info.pop("kept", None)
    before_commit(session, "open_markets", _write_open_markets)
    on_refused(session, "market_books", _resync_books)
    on_command(session, "market_books", _forget_changes)
    on_command(session, "order_writes", _write_before_direct_command)
    gates = _route_gates(session, markets, state, settings=settings, now=now)

    session_open = True

    def close_gates(_: bool) -> None:
        nonlocal session_open
        session_open = False  # the book may outlive the session: never query it afterwards

    on_session_end(session, close_gates)

    def routable(provider_id: str | None) -> bool:
        # A provider with nothing resting when the market opened may sell later in the same
        # transaction (the writer's batch): look its gate up then.
        gate = gates.get(provider_id or "")
        if gate is None and provider_id is not None and session_open:
            found = providers_service.route_gates(
                session, [provider_id], settings=settings, now=now
            )
            gate = gates[provider_id] = found.get(provider_id, "")
        return gate == "eligible"

    market.routable = routable
    _settle_book(session, market, now)
    return market


def _route_gates(
    session: Session,
    markets: MarketRegistry,
    state: BookState,
    *,
    settings: Settings,
    now: datetime,
) -> dict[str, str]:
    """The route gates of the providers resting in the book (kept by the market writer)."""
    kept = _writer_kept(session, markets, now)
    key = (state.book.model, state.book.unit_type)
    if kept is not None and key in kept.gates:
        return kept.gates[key]
    gates = providers_service.route_gates(
        session, _ask_providers(state.book), settings=settings, now=now
    )
    if kept is not None:
        kept.gates[key] = gates
    return gates


def _writer_kept(session: Session, markets: MarketRegistry, now: datetime) -> _Kept | None:
    """The market writer's kept lookups, still fresh for this batch (None outside the writer)."""
    if not writer_batch(session) or markets.route_facts is None:
        return None
    checked: _Kept | None = session.info.get("kept")
    if checked is not None:
        return checked
    facts = markets.route_facts()
    kept = markets.kept
    if (
        kept is None
        or kept.facts is not facts
        or not facts.still_fresh(kept.stamp, derived_at=kept.derived_at, now=now)
    ):
        # The stamp comes before any read: a change committed during the reads drops them.
        kept = markets.kept = _Kept(facts, facts.stamp(), now)
    session.info["kept"] = kept
    return kept


def _settle_book(session: Session, market: OpenMarket, now: datetime) -> None:
    """Apply the route gates, due expiries, and trades a gate change left possible."""
    market.book.set_routable(market.routable)
    _apply_expiries(session, market, now)
    # A provider that became routable again may leave bids and asks crossed: trade them now.
    crossed = market.book.uncross()
    if crossed:
        market.changed = True
        _record_fills(session, market, crossed, now=now)
        market.bump()


def _forget_changes(session: Session) -> None:
    for market in session.info.get("open_markets", {}).values():
        market.changed = False


def _resync_books(session: Session) -> None:
    """After a refused command (its rows rolled back to a savepoint), rebuild every book it
    moved from the database, so the rest of the batch trades on what is recorded."""
    opened: dict[tuple[str, str], OpenMarket] = session.info.get("open_markets", {})
    write_order_rows(session)  # the earlier commands' rows: the rebuild reads them
    for market in opened.values():
        if market.changed:
            _rebuild(session, market.state, market.row.model, market.row.unit_type)
            _settle_book(session, market, market.opened_at or datetime.now(UTC))
        market.changed = False


def _write_open_markets(session: Session) -> None:
    """Write each open market's version and next sequence to its row."""
    opened: dict[tuple[str, str], OpenMarket] = session.info.get("open_markets", {})
    for market in opened.values():
        repository.save_market_counters(
            session,
            market.row,
            version=market.version,
            next_sequence=market.next_sequence,
        )


def _rebuild(session: Session, state: BookState, model: str, unit_type: str) -> None:
    """Load the book (and what fills need of its orders) from the database."""
    book = OrderBook(model, unit_type)
    parties: dict[str, _Party] = {}
    for row in repository.active_orders(session, model, unit_type):
        parties[row.order_id] = _Party(
            row.order_id,
            row.owner_id,
            row.buyer_id,
            row.provider_id,
            row.limit_unit_price,
            dict(row.metadata_),
            row.source,
        )
        book.restore(
            Order(
                order_id=row.order_id,
                side=row.side,  # type: ignore[arg-type]
                owner_id=row.owner_id,
                limit_unit_price=row.limit_unit_price,
                units=row.units,
                min_fill_units=row.min_fill_units,
                time_in_force=row.time_in_force,  # type: ignore[arg-type]
                provider_id=row.provider_id,
                expires_at=_epoch(row.expires_at),
                sequence=row.sequence,
                remaining=row.remaining_units,
                status=row.status,  # type: ignore[arg-type]
            )
        )
    for hold in repository.active_holds(session, model, unit_type):
        book.restore_hold(hold.order_id, hold.units)
    state.book = book
    state.parties = parties
    state.holds_quiet_until = None
    state.manual_ask_units = {}


def _ask_providers(book: OrderBook) -> set[str]:
    return {o.provider_id for o in book.orders.values() if o.provider_id is not None}


def _apply_expiries(session: Session, market: OpenMarket, now: datetime) -> None:
    changed = False
    for reservation in _due_reservations(session, market, now):
        holds = repository.holds_of(session, reservation.reservation_id)
        for hold in holds:
            market.changing().release(hold.order_id, hold.units)
        _cancel_retired_snapshot_asks(session, market, [h.order_id for h in holds], now)
        reservation.status = "expired"
        reservation.released_at = now
        changed = True
    expired = market.book.expire(now.timestamp())
    if expired:
        market.changed = True
        market.state.manual_ask_units.clear()
        rows = repository.orders_by_id(session, (o.order_id for o in expired))
        for order in expired:
            row = rows[order.order_id]
            row.status = "expired"
            row.updated_at = now
            repository.add_event(
                session,
                kind="order_expired",
                subject_id=row.order_id,
                model=row.model,
                unit_type=row.unit_type,
                now=now,
                payload={"side": row.side, "remaining_units": row.remaining_units},
            )
        changed = True
    if changed:
        market.bump()
        session.flush()  # later queries in this transaction must see the expiries


def _due_reservations(session: Session, market: OpenMarket, now: datetime) -> list[Reservation]:
    """The market's active reservations due to expire, read only when one may be due."""
    state, model, unit_type = market.state, market.row.model, market.row.unit_type
    if state.holds_quiet_until is not None and now < state.holds_quiet_until:
        return []
    due = repository.due_reservations(session, model, unit_type, now)
    following = repository.next_reservation_expiry(session, model, unit_type, after=now)
    state.holds_quiet_until = following or now + QUIET_HOLDS_CHECK
    return due


def _cancel_retired_snapshot_asks(
    session: Session, market: OpenMarket, order_ids: list[str], now: datetime
) -> None:
    """A replaced snapshot ask lived on only for its holds; once they end, so does it."""
    for row in repository.orders_by_id(session, order_ids).values():
        if row.metadata_.get("retired") and row.status in repository.ACTIVE:
            market.changing().cancel(row.order_id)
            mark_cancelled(row, "replaced_by_capacity_snapshot", row.provider_id, now)


def mark_cancelled(row: MarketOrder, reason: str, by: str | None, now: datetime) -> None:
    row.status = "cancelled"
    row.cancel_reason = reason
    row.cancelled_by = by
    row.updated_at = now


def _shrink_snapshot_asks(
    session: Session, market: OpenMarket, provider_id: str, units: int, now: datetime
) -> None:
    """A manual ask draws on the same published capacity as the snapshot ask: shrink it."""
    # Snapshot asks change only when a snapshot is published, never inside a batch of orders,
    # so one look per transaction serves every ask of a batch; the book has their sizes.
    lines = _per_transaction(session, "snapshot_asks")
    if provider_id not in lines:
        lines[provider_id] = repository.snapshot_ask_lines(session, provider_id)
    for order_id, model, unit_type, retired in lines[provider_id]:
        if units == 0:
            return
        if model != market.row.model or unit_type != market.row.unit_type or retired:
            continue
        taken = market.changing().reduce(order_id, units)
        if taken == 0:
            continue
        units -= taken
        resting = market.book.orders.get(order_id)
        if resting is not None:
            _update_order(session, order_id, now, remaining_units=resting.remaining)
        else:
            _update_order(
                session,
                order_id,
                now,
                remaining_units=0,
                status="cancelled",
                cancel_reason="capacity_committed_to_manual_ask",
                cancelled_by=provider_id,
            )


# -- the order path's rows: written in bulk -------------------------------------------------
#
# Placing an order in the writer's batch reads no order row and writes none itself: the rows it
# makes (the order, its fills, the new states of the orders it traded with) are queued here and
# written together, once per run of orders: before a command that reads rows directly (a
# cancel), before a refused command's book is rebuilt, and before the batch commits. Outside
# the writer (a capacity snapshot, a reservation) they are written at the end of each step.


def _update_order(session: Session, order_id: str, now: datetime, **values: Any) -> None:
    deferred(session, "order_updates").append((order_id, {**values, "updated_at": now}))


def _rows_queued(session: Session) -> None:
    """The step queued rows: write them now, unless the running command defers them."""
    if deferring(session):
        before_commit(session, "order_writes", write_order_rows)
    else:
        write_order_rows(session)


def write_order_rows(session: Session) -> None:
    """Write the queued order rows: new orders, then fills, then changed orders."""
    inserts: list[tuple[Any, ...]] = deferred(session, "order_inserts")
    fill_rows: list[tuple[Any, ...]] = deferred(session, "fill_inserts")
    updates: list[tuple[str, dict[str, Any]]] = deferred(session, "order_updates")
    if inserts:
        repository.insert_orders(session, inserts)
        inserts.clear()
    if fill_rows:
        repository.insert_fills(session, fill_rows)
        fill_rows.clear()
    if updates:
        merged: dict[str, dict[str, Any]] = {}
        for order_id, values in updates:
            merged.setdefault(order_id, {}).update(values)
        repository.set_order_values(session, merged)
        updates.clear()


def _write_before_direct_command(session: Session) -> None:
    if not deferring(session):
        write_order_rows(session)


def _per_transaction(session: Session, name: str) -> dict[Any, Any]:
    """A cache that lives as long as the session's transaction; the market writer keeps some
    for its next batches (``_Kept``)."""
    kept: _Kept | None = session.info.get("kept")
    if kept is not None and name in _KEPT_LOOKUPS:
        return kept.lookups.setdefault(name, {})
    caches: dict[str, dict[Any, Any]] = session.info.setdefault("market_caches", {})
    return caches.setdefault(name, {})


# -- orders ---------------------------------------------------------------------------------


def place_order(
    session: Session,
    markets: MarketRegistry,
    *,
    principal: Principal,
    body: OrderCreate,
    settings: Settings,
    now: datetime,
    source: str = "api",
    expires_at: datetime | None = None,
) -> tuple[PlacedOrder, list[PlacedFill]]:
    """Validate, match and record one order; fills are written in the same transaction."""
    provider: _Seller | None = None
    if body.side == "bid":
        _require(principal, BUY, "a bid")
    else:
        _require(principal, SELL, "an ask")
        provider = _owned_provider(session, markets, principal, body.provider_id or "")
    market = open_market(
        session, markets, model=body.model, unit_type=body.unit_type, settings=settings, now=now
    )
    # What opening the market settled (expiries, trades a gate change allowed) is the market's,
    # not this order's: a refusal from here on leaves it be, when nothing can roll it back.
    if keep_work_so_far(session):
        market.changed = False
    if provider is not None and source != SNAPSHOT_SOURCE:
        _check_ask_capacity(session, market, provider, body)
    sequence = market.take_sequence()
    order_id = new_ordered_id("ord", now)
    incoming = Order(
        order_id=order_id,
        side=body.side,
        owner_id=principal.owner_id if provider is None else provider.owner_id,
        limit_unit_price=body.limit_unit_price,
        units=body.units,
        min_fill_units=body.min_fill_units,
        time_in_force=body.time_in_force,
        provider_id=provider.provider_id if provider else None,
        expires_at=_epoch(expires_at),
    )
    if provider is not None and source != SNAPSHOT_SOURCE:
        _shrink_snapshot_asks(session, market, provider.provider_id, body.units, now)
    result = market.changing().submit(incoming, sequence=sequence)
    # The order path writes through Core statements: an ORM unit of work per row costs more
    # than everything else the order does.
    row = PlacedOrder(
        order_id=order_id,
        model=body.model,
        unit_type=body.unit_type,
        side=body.side,
        owner_id=incoming.owner_id,
        buyer_id=(body.buyer_id or principal.owner_id) if body.side == "bid" else None,
        provider_id=incoming.provider_id,
        units=body.units,
        remaining_units=result.order.remaining,
        limit_unit_price=body.limit_unit_price,
        currency=body.currency,
        min_fill_units=body.min_fill_units,
        time_in_force=body.time_in_force,
        status=result.order.status,
        sequence=sequence,
        source=source,
        routing_policy=body.routing_policy.model_dump() if body.routing_policy else {},
        metadata_=dict(body.metadata),
        expires_at=expires_at,
        cancel_reason=None,
        cancelled_by=None,
        created_at=now,
        updated_at=now,
    )
    deferred(session, "order_inserts").append(_ORDER_ROW(row))
    market.state.rest(
        _Party(
            order_id,
            row.owner_id,
            row.buyer_id,
            row.provider_id,
            row.limit_unit_price,
            row.metadata_,
            source,
        )
    )
    events = [
        _event(
            "order_placed",
            order_id,
            market,
            now,
            {
                "side": body.side,
                "units": body.units,
                "limit_unit_price": plain(body.limit_unit_price),
                "time_in_force": body.time_in_force,
                "status": row.status,
                "source": source,
            },
        )
    ]
    fills = _record_fills(session, market, result.fills, now=now, taker=row, events=events)
    if provider is not None and source != SNAPSHOT_SOURCE and order_id in market.book.orders:
        # The capacity check counted the provider's asks before this one rested.
        market.state.manual_ask_units[provider.provider_id] += row.remaining_units
    market.bump()
    _rows_queued(session)
    return row, fills


def _event(
    kind: str, subject_id: str, market: OpenMarket, now: datetime, payload: dict[str, Any]
) -> tuple[Any, ...]:
    """A feed event's row (``repository.EVENT_COLUMNS``)."""
    return (kind, market.row.model, market.row.unit_type, subject_id, payload, now)


def _require(principal: Principal, scope: str, what: str) -> None:
    if not principal.is_admin and scope not in principal.scopes:
        raise Forbidden(
            f"{what} needs the scope {scope}", field="scope", hint=f"use a key with {scope}"
        )


@dataclass(frozen=True, slots=True)
class _Seller:
    """The provider an ask sells for."""

    provider_id: str
    owner_id: str


def _owned_provider(
    session: Session, markets: MarketRegistry, principal: Principal, provider_id: str
) -> _Seller:
    """The caller's provider, looked up once per process (a provider is never deleted and its
    owner never changes)."""
    owner = markets.owners.get(provider_id)
    if owner is None or not principal.can_see(owner):
        provider = providers_service.get_owned(
            session, principal=principal, provider_id=provider_id
        )
        owner = markets.owners[provider.provider_id] = provider.owner_id
    return _Seller(provider_id, owner)


def _check_ask_capacity(
    session: Session, market: OpenMarket, provider: _Seller, body: OrderCreate
) -> None:
    # Published capacity changes only with a snapshot, never inside a batch of orders.
    published = _per_transaction(session, "capacity")
    capacity = published.get(provider.provider_id)
    if capacity is None:
        capacity = published[provider.provider_id] = {
            (c.model, c.unit_type): c.available_units
            for c in providers_repository.capacity(session, provider.provider_id)
        }
    available = capacity.get((body.model, body.unit_type))
    if available is None:
        raise Invalid(
            f"provider {provider.provider_id} publishes no capacity for "
            f"{body.model}/{body.unit_type}",
            field="model",
            code="capacity_not_published",
            hint="publish capacity for this model and unit first",
        )
    committed = _manual_ask_units(market, provider.provider_id)
    if committed + body.units > available:
        raise Invalid(
            f"the ask offers {body.units} units but only "
            f"{max(0, available - committed)} of the published "
            f"{available} are not already offered",
            field="units",
            code="capacity_exceeded",
            hint="lower units or publish more capacity",
        )


def _manual_ask_units(market: OpenMarket, provider_id: str) -> int:
    """The units the provider's manual (not snapshot) asks offer in this book: counted from
    the book once, then kept as asks rest and trade (a cancel or an expiry counts again)."""
    counted = market.state.manual_ask_units
    units = counted.get(provider_id)
    if units is None:
        parties = market.state.parties
        units = counted[provider_id] = sum(
            order.remaining
            for order in market.book.orders.values()
            if order.provider_id == provider_id
            and order.side == "ask"
            and parties[order.order_id].source != SNAPSHOT_SOURCE
        )
    return units


@dataclass(slots=True)
class PlacedOrder:
    """An order row as written by ``place_order`` (the fields and names of ``MarketOrder``)."""

    order_id: str
    model: str
    unit_type: str
    side: str
    owner_id: str
    buyer_id: str | None
    provider_id: str | None
    units: int
    remaining_units: int
    limit_unit_price: Decimal
    currency: str
    min_fill_units: int
    time_in_force: str
    status: str
    sequence: int
    source: str
    routing_policy: dict[str, Any]
    metadata_: dict[str, Any]
    expires_at: datetime | None
    cancel_reason: str | None
    cancelled_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class PlacedFill:
    """A fill row as written by the order path (the fields and names of ``MarketFill``)."""

    fill_id: str
    model: str
    unit_type: str
    bid_order_id: str
    ask_order_id: str
    taker_order_id: str
    buyer_owner_id: str
    buyer_id: str | None
    seller_owner_id: str
    provider_id: str | None
    units: int
    unit_price: Decimal
    created_at: datetime


# A placed order's and fill's row, as the repository inserts them: their fields are the
# tables' columns, in the same order (``metadata_`` is the column ``metadata``).
_ORDER_FIELDS = tuple(f.name for f in fields(PlacedOrder))
_FILL_FIELDS = tuple(f.name for f in fields(PlacedFill))
_ORDER_ROW = attrgetter(*_ORDER_FIELDS)
_FILL_ROW = attrgetter(*_FILL_FIELDS)


def _record_fills(
    session: Session,
    market: OpenMarket,
    fills: list[Fill],
    *,
    now: datetime,
    taker: PlacedOrder | None = None,
    events: list[tuple[Any, ...]] | None = None,
) -> list[PlacedFill]:
    """Write fills and their feed events (after ``events``), and bring every other order of
    each fill up to the book's state (``taker``'s row was just built from it)."""
    events = [] if events is None else events
    if not fills:
        repository.add_events(session, events)
        return []
    book = market.book
    synced = taker.order_id if taker is not None else None
    others = {f.bid_order_id for f in fills} | {f.ask_order_id for f in fills}
    others.discard(synced or "")
    known = market.state.parties
    parties = {order_id: known[order_id] for order_id in others if order_id in known}
    if len(parties) < len(others):
        write_order_rows(session)  # not expected: every resting order is known
        for order_id, r in repository.order_parties(session, others - parties.keys()).items():
            parties[order_id] = _Party(
                order_id,
                r.owner_id,
                r.buyer_id,
                r.provider_id,
                r.limit_unit_price,
                r.metadata,
                r.source,
            )
    if taker is not None:
        parties[taker.order_id] = known[taker.order_id]  # place_order rested it first
    # An order still in the book rests with what is left; one that left it was filled.
    for order_id in others:
        resting = book.orders.get(order_id)
        if resting is not None:
            _update_order(
                session,
                order_id,
                now,
                remaining_units=resting.remaining,
                status="partially_filled",
            )
        else:
            _update_order(session, order_id, now, remaining_units=0, status="filled")
    rows: list[PlacedFill] = []
    offered = market.state.manual_ask_units
    for fill in fills:
        bid, ask = parties[fill.bid_order_id], parties[fill.ask_order_id]
        if ask.order_id != synced and ask.source != SNAPSHOT_SOURCE and ask.provider_id in offered:
            offered[ask.provider_id] -= fill.units  # a resting manual ask traded
        row = PlacedFill(
            fill_id=new_ordered_id("fill", now),
            model=market.row.model,
            unit_type=market.row.unit_type,
            bid_order_id=bid.order_id,
            ask_order_id=ask.order_id,
            taker_order_id=fill.taker_order_id,
            buyer_owner_id=bid.owner_id,
            buyer_id=bid.buyer_id,
            seller_owner_id=ask.owner_id,
            provider_id=ask.provider_id,
            units=fill.units,
            unit_price=fill.unit_price,
            created_at=now,
        )
        rows.append(row)
        events.append(
            _event(
                "fill",
                row.fill_id,
                market,
                now,
                {
                    "bid_order_id": bid.order_id,
                    "ask_order_id": ask.order_id,
                    "provider_id": ask.provider_id,
                    "units": fill.units,
                    "unit_price": plain(fill.unit_price),
                },
            )
        )
    deferred(session, "fill_inserts").extend(map(_FILL_ROW, rows))
    repository.add_events(session, events)
    _record_fill_usage(session, rows, parties, now=now)
    market.state.trim()
    _rows_queued(session)
    return rows


# What a bid's metadata may name for its usage records, with the longest value kept.
_ATTRIBUTION = {
    "workspace_id": 128,
    "task_id": 128,
    "goal_id": 128,
    "route_id": 40,
    "reservation_id": 40,
}


_NAMES_NONE = dict.fromkeys(_ATTRIBUTION)


def _named_in(metadata: dict[str, Any]) -> dict[str, str | None]:
    """What a bid's metadata names for its usage records (text of a fitting length only)."""
    return {
        name: value if isinstance(value, str) and 0 < len(value) <= limit else None
        for name, limit in _ATTRIBUTION.items()
        for value in [metadata.get(name)]
    }


def _record_fill_usage(
    session: Session,
    fills: list[PlacedFill],
    orders: dict[str, _Party],
    *,
    now: datetime,
) -> None:
    """Each fill is usage bought by the bid: priced at the fill, estimated at the bid's limit,
    attributed to the bid's buyer and to what the bid's metadata names.

    The records are written once per transaction, just before it commits (one rollup update
    for a whole batch of orders instead of one per order)."""
    first = fills[0]
    references = _reference_prices(
        session, first.model, first.unit_type, {f.provider_id for f in fills if f.provider_id}
    )
    items = []
    for fill in fills:
        bid = orders[fill.bid_order_id]
        named = _named_in(bid.metadata) if bid.metadata else _NAMES_NONE
        items.append(
            usage.UsageInput(
                source="market_fill",
                decision="market_fill",
                owner_id=fill.buyer_owner_id,
                seller_owner_id=fill.seller_owner_id,
                model=fill.model,
                unit_type=fill.unit_type,
                provider_id=fill.provider_id or "",
                estimated_units=fill.units,
                actual_units=fill.units,
                unit_price=fill.unit_price,
                estimated_unit_price=bid.limit_unit_price,
                reference_unit_price=references.get(fill.provider_id or ""),
                agent_id=bid.buyer_id,
                order_id=bid.order_id,
                fill_id=fill.fill_id,
                workspace_id=named["workspace_id"],
                task_id=named["task_id"],
                goal_id=named["goal_id"],
                route_id=named["route_id"],
                reservation_id=named["reservation_id"],
            )
        )
    deferred(session, "fill_usage").extend((now, item) for item in items)
    before_commit(session, "fill_usage", _write_fill_usage)


def _reference_prices(
    session: Session, model: str, unit_type: str, provider_ids: set[str]
) -> dict[str, Decimal | None]:
    """Reference prices, looked up once per transaction (list prices and catalogs are not
    written inside a batch of orders)."""
    known = _per_transaction(session, "reference_prices")
    missing = {p for p in provider_ids if (model, unit_type, p) not in known}
    if missing:
        found = pricing.reference_prices(
            session, model=model, unit_type=unit_type, provider_ids=missing
        )
        for provider_id in missing:
            known[(model, unit_type, provider_id)] = found.get(provider_id)
    return {p: known[(model, unit_type, p)] for p in provider_ids}


def _write_fill_usage(session: Session) -> None:
    """Record the transaction's deferred fill usage, one call per distinct time."""
    pending: list[tuple[datetime, usage.UsageInput]] = deferred(session, "fill_usage")
    by_time: dict[datetime, list[usage.UsageInput]] = {}
    for now, item in pending:
        by_time.setdefault(now, []).append(item)
    pending.clear()
    for now, items in by_time.items():
        usage.record_usage(session, items, now=now)


def cancel_order(
    session: Session,
    markets: MarketRegistry,
    *,
    principal: Principal,
    order_id: str,
    body: OrderCancel,
    settings: Settings,
    now: datetime,
) -> MarketOrder:
    row = repository.get_order(session, order_id)
    if row is None or not principal.can_see(row.owner_id):
        raise NotFound(f"order {order_id} not found", field="order_id")
    market = open_market(
        session, markets, model=row.model, unit_type=row.unit_type, settings=settings, now=now
    )
    session.refresh(row)
    if row.status not in repository.ACTIVE:
        raise Conflict(
            f"order {order_id} is {row.status} and cannot be cancelled",
            code="order_not_cancellable",
            field="order_id",
            hint="only open or partially filled orders can be cancelled",
        )
    market.changing().cancel(order_id)
    market.state.manual_ask_units.pop(row.provider_id or "", None)  # counted again when asked
    row.status = "cancelled"
    row.cancel_reason = body.cancel_reason
    row.cancelled_by = body.requested_by or principal.owner_id
    row.updated_at = now
    repository.add_event(
        session,
        kind="order_cancelled",
        subject_id=order_id,
        model=row.model,
        unit_type=row.unit_type,
        now=now,
        payload={"cancel_reason": body.cancel_reason, "remaining_units": row.remaining_units},
    )
    market.bump()
    return row


def order_fills(session: Session, order_id: str) -> list[MarketFill]:
    return repository.fills_of(session, order_id)


# -- depth ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthView:
    bids: list[dict[str, Any]]
    asks: list[dict[str, Any]]
    best_bid: Decimal | None
    best_ask: Decimal | None
    recent_fills: list[MarketFill]
    reservation_count: int
    held_units: int


def market_depth(
    session: Session,
    markets: MarketRegistry,
    *,
    model: str,
    unit_type: str,
    levels: int,
    settings: Settings,
    now: datetime,
) -> DepthView:
    market = open_market(
        session, markets, model=model, unit_type=unit_type, settings=settings, now=now
    )
    bids = market.book.depth("bid", levels)
    asks = market.book.depth("ask", levels)
    count, held = repository.reservation_summary(session, model, unit_type)
    return DepthView(
        bids=[
            {
                "unit_price": b.unit_price,
                "available_units": b.available_units,
                "order_count": b.order_count,
            }
            for b in bids
        ],
        asks=[
            {
                "unit_price": a.unit_price,
                "available_units": a.available_units,
                "order_count": a.order_count,
            }
            for a in asks
        ],
        best_bid=bids[0].unit_price if bids else None,
        best_ask=asks[0].unit_price if asks else None,
        recent_fills=repository.recent_fills(session, model, unit_type, 20),
        reservation_count=count,
        held_units=held,
    )

"""A pure in-memory order book per (model, unit_type): price-time priority, partial fills,
gtc/ioc/fok, min_fill_units, cancels and holds for reservations.

No database or web imports. Fills happen at the resting (earlier) order's price. Asks of
providers that are not routable stay in depth but never match or get held.

The fill rule, used everywhere: a bid and an ask can trade when the ask's provider is routable,
the bid's limit is at or above the ask's, and the size, the smaller of what each can still trade
(an ask's remaining less its held units), is at least ``min(min_fill_units, that amount)`` for
both orders. An incoming order repeatedly trades with the first resting order in priority (best
price, then lowest sequence) that it can trade with, until none is left.

``cancel`` and ``expire`` never leave a bid and an ask that can trade resting side by side,
and neither does ``submit``, except that a resting order with ``min_fill_units`` above 1 that
it leaves partly filled may now accept smaller fills. Changes the book cannot see or that
return no fills (a provider becoming routable again, ``hold``, ``release``, ``restore``) can
leave such a pair too. So the caller runs ``uncross()`` after each command and records the
fills it returns, each naming its own taker and maker; when the best bid is below the best ask
that costs one comparison.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Final, Literal, NamedTuple

Side = Literal["bid", "ask"]
TimeInForce = Literal["gtc", "ioc", "fok"]
OrderStatus = Literal["open", "partially_filled", "filled", "cancelled", "expired"]

_ENDED: Final = frozenset({"filled", "cancelled", "expired"})
# A level rewrites its queue without ended entries once they are this many and at least half of
# it, so heavy cancel traffic behind a long-lived order cannot grow memory without bound.
_COMPACT_MIN_DEAD: Final = 32
# The expiry heap is rebuilt without stale entries once it outgrows the resting orders by this.
_EXPIRY_SLACK: Final = 1024
# Closed price levels each side keeps for reuse (see _Side.spare).
_SPARE_LEVELS: Final = 256
_sequence_of = attrgetter("sequence")
# Building a NamedTuple through tuple.__new__ skips its Python-level __new__: half the cost.
_new_tuple: Final = tuple.__new__


@dataclass(eq=False, slots=True)
class Order:
    """A resting or incoming order; ``remaining`` and ``held`` change as the book works."""

    order_id: str
    side: Side
    owner_id: str
    limit_unit_price: Decimal
    units: int
    min_fill_units: int = 1
    time_in_force: TimeInForce = "gtc"
    provider_id: str | None = None
    expires_at: float | None = None  # seconds since the epoch; None: never
    sequence: int = 0
    remaining: int = 0
    held: int = 0
    status: OrderStatus = "open"

    def __post_init__(self) -> None:
        if self.units <= 0:
            raise ValueError("units must be positive")
        if self.limit_unit_price <= 0:
            raise ValueError("limit_unit_price must be positive")
        if self.min_fill_units < 1:
            raise ValueError("min_fill_units must be at least 1")
        if self.remaining == 0 and self.status == "open":
            self.remaining = self.units

    @property
    def available(self) -> int:
        """Units that can still trade: remaining less what reservations hold."""
        return self.remaining - self.held

    @property
    def active(self) -> bool:
        return self.status in ("open", "partially_filled") and self.remaining > 0


class Fill(NamedTuple):
    """One trade between a taker and the resting order it met, at the maker's price."""

    # A NamedTuple rather than a frozen dataclass: it is built on the hot path, and a frozen
    # dataclass's __init__ costs several times more.
    taker_order_id: str
    maker_order_id: str
    bid_order_id: str
    ask_order_id: str
    units: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class Hold:
    order_id: str
    units: int
    unit_price: Decimal
    provider_id: str | None


@dataclass(frozen=True, slots=True)
class PriceLevel:
    unit_price: Decimal
    available_units: int
    order_count: int


class Result(NamedTuple):
    """What one command did: the taker's final state and the fills it made."""

    # A NamedTuple built with ``_new_tuple`` on the hot path, like ``Fill``: one per command.
    order: Order
    fills: list[Fill]


class _Level:
    """Resting orders at one price, oldest first; ended entries leave the queue lazily."""

    __slots__ = ("available", "count", "dead", "key", "price", "queue")

    def __init__(self, price: Decimal, key: Decimal) -> None:
        self.price = price
        self.key = key
        self.queue: deque[Order] = deque()
        self.count = 0  # resting orders in the queue
        self.available = 0  # their remaining units less held ones
        self.dead = 0  # ended orders still in the queue

    def drop_ended_front(self) -> None:
        queue = self.queue
        while queue and queue[0].status in _ENDED:
            queue.popleft()
            self.dead -= 1

    def compact_if_sparse(self) -> None:
        if self.dead >= _COMPACT_MIN_DEAD and 2 * self.dead >= len(self.queue):
            self.queue = deque([o for o in self.queue if o.status not in _ENDED])
            self.dead = 0


class _Side:
    """One side of the book: price levels, best first."""

    __slots__ = ("by_price", "keys", "levels", "negate", "spare")

    def __init__(self, side: Side) -> None:
        self.negate = side == "bid"
        self.by_price: dict[Decimal, _Level] = {}
        # Closed levels kept for reuse: sweeps empty the best prices and new orders soon
        # rest there again, so reusing a level saves building one (and its key).
        self.spare: dict[Decimal, _Level] = {}
        # Sort keys ascending (bids negate the price) so index 0 is always the best level;
        # ``levels`` runs parallel to ``keys``.
        self.keys: list[Decimal] = []
        self.levels: list[_Level] = []

    def add(self, order: Order) -> None:
        price = order.limit_unit_price
        level = self.by_price.get(price)
        if level is None:
            level = self.spare.pop(price, None)
            if level is None:
                level = _Level(price, -price if self.negate else price)
            self.by_price[price] = level
            key = level.key
            keys = self.keys
            # Sweeps empty the best levels and new orders refill them, so a new best is common.
            index = 0 if not keys or key < keys[0] else bisect_left(keys, key)
            keys.insert(index, key)
            self.levels.insert(index, level)
        queue = level.queue
        if queue and queue[-1].sequence > order.sequence:
            # Only ``restore`` can bring an older order; keep time priority regardless.
            queue.insert(bisect_left(queue, order.sequence, key=_sequence_of), order)
        else:
            queue.append(order)
        level.count += 1
        level.available += order.remaining - order.held

    def close(self, level: _Level) -> None:
        keys = self.keys
        index = 0 if keys[0] == level.key else bisect_left(keys, level.key)
        del keys[index]
        del self.levels[index]
        del self.by_price[level.price]
        self.retire(level)

    def retire(self, level: _Level) -> None:
        """Keep a closed level (it holds only ended orders) for reuse at its price."""
        spare = self.spare
        if len(spare) >= _SPARE_LEVELS:
            spare.clear()
        level.queue.clear()
        level.dead = level.available = 0
        spare[level.price] = level

    def settle(self, order: Order, level: _Level) -> None:
        """Tidy the level after ``order`` in it ended (its totals are already adjusted)."""
        if level.count == 0:
            self.close(level)
        elif level.queue[0] is order:
            level.queue.popleft()
            level.drop_ended_front()
        else:
            level.dead += 1
            level.compact_if_sparse()


def _tradeable(bid: Order, ask: Order) -> int:
    """Units the pair can trade under the fill rule (routing and price already checked)."""
    bid_available = bid.remaining - bid.held
    ask_available = ask.remaining - ask.held
    size = bid_available if bid_available < ask_available else ask_available
    if size <= 0:
        return 0
    if size < min(bid.min_fill_units, bid_available) or size < min(
        ask.min_fill_units, ask_available
    ):
        return 0
    return size


class OrderBook:
    """The book for one (model, unit_type)."""

    def __init__(
        self, model: str, unit_type: str, routable: Callable[[str | None], bool] | None = None
    ) -> None:
        self.model = model
        self.unit_type = unit_type
        self.bids = _Side("bid")
        self.asks = _Side("ask")
        self.orders: dict[str, Order] = {}
        self._sequence = 0
        self._expiries: list[tuple[float, int, str]] = []
        self._routable = routable

    # -- commands ---------------------------------------------------------------------------

    def set_routable(self, routable: Callable[[str | None], bool] | None) -> None:
        """Replace the predicate that says whether an ask's provider can trade now."""
        self._routable = routable

    def submit(self, order: Order, *, sequence: int | None = None) -> Result:
        """Match an incoming order, then rest it (gtc) or end it (ioc, fok).

        ``sequence`` is the order's recorded place in time; without it the book numbers it.
        """
        orders = self.orders
        order_id = order.order_id
        if order_id in orders:
            raise ValueError(f"duplicate order id {order_id}")
        remaining = order.remaining
        if order.status != "open" or remaining != order.units or order.held:
            raise ValueError("only fresh orders can be submitted")
        if sequence is None:
            sequence = self._sequence + 1
        elif sequence <= self._sequence:
            raise ValueError("sequence must be above every earlier order's")
        self._sequence = order.sequence = sequence
        fills: list[Fill] = []
        result: Result = _new_tuple(Result, (order, fills))
        price = order.limit_unit_price
        time_in_force = order.time_in_force
        # Most orders rest without touching the other side: one comparison tells, and the
        # resting below is _rest inlined, since this is the busiest path of the book.
        crosses = False
        if order.side == "bid":
            side = self.bids
            opposite = self.asks.levels
            if opposite and opposite[0].price <= price:
                crosses = True
        else:
            side = self.asks
            opposite = self.bids.levels
            if opposite and opposite[0].price >= price:
                crosses = True
        if not crosses:
            if time_in_force != "gtc":
                order.status = "expired"
                return result
            orders[order_id] = order
            level = side.by_price.get(price)
            if level is None:
                side.add(order)
            else:
                # A new order is later than every resting one, so it joins at the back.
                level.queue.append(order)
                level.count += 1
                level.available += remaining
            if order.expires_at is not None:
                self._push_expiry(order.expires_at, order)
            return result
        if time_in_force == "fok" and self._fillable(order) < order.units:
            order.status = "expired"
            return result
        self._match(order, fills)
        if order.remaining == 0:
            order.status = "filled"
        elif time_in_force == "gtc":
            if fills:
                order.status = "partially_filled"
            self._rest(order)
        else:
            order.status = "expired"
        return result

    def restore(self, order: Order) -> None:
        """Put a recorded resting order back without matching (used when rebuilding)."""
        if order.order_id in self.orders:
            raise ValueError(f"duplicate order id {order.order_id}")
        if not 0 <= order.held <= order.remaining:
            raise ValueError("held units must be between 0 and remaining")
        if order.sequence <= 0:
            self._sequence += 1
            order.sequence = self._sequence
        self._sequence = max(self._sequence, order.sequence)
        if order.active:
            self._rest(order)

    def restore_hold(self, order_id: str, units: int) -> None:
        """Put a recorded hold back on a restored ask (used when rebuilding)."""
        order = self.orders.get(order_id)
        if order is None:
            return
        if units <= 0 or units > order.remaining - order.held:
            raise ValueError("a hold must be positive and within the ask's available units")
        order.held += units
        side = self.bids if order.side == "bid" else self.asks
        side.by_price[order.limit_unit_price].available -= units

    def cancel(self, order_id: str) -> Order | None:
        """Cancel a resting order; None when it is not resting (filled, ended or unknown)."""
        order = self.orders.pop(order_id, None)
        if order is None:
            return None
        side = self.bids if order.side == "bid" else self.asks
        level = side.by_price[order.limit_unit_price]
        level.count -= 1
        level.available -= order.remaining - order.held
        order.status = "cancelled"
        order.held = 0
        # side.settle, inlined for the second busiest path.
        if level.count == 0:
            side.close(level)
        elif level.queue[0] is order:
            level.queue.popleft()
            level.drop_ended_front()
        else:
            level.dead += 1
            if level.dead >= _COMPACT_MIN_DEAD:
                level.compact_if_sparse()
        return order

    def reduce(self, order_id: str, units: int) -> int:
        """Take up to ``units`` unheld units off a resting order, keeping its time priority.

        Returns the units taken; an order left with nothing is cancelled."""
        if units <= 0:
            raise ValueError("units must be positive")
        order = self.orders.get(order_id)
        if order is None:
            return 0
        taken = min(units, order.remaining - order.held)
        if taken == 0:
            return 0
        if taken == order.remaining:
            self.cancel(order_id)
            return taken
        side = self.bids if order.side == "bid" else self.asks
        order.remaining -= taken
        side.by_price[order.limit_unit_price].available -= taken
        return taken

    def expire(self, now: float) -> list[Order]:
        """End every resting order whose expiry is at or before ``now``."""
        ended: list[Order] = []
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, sequence, order_id = heapq.heappop(expiries)
            order = self.orders.get(order_id)
            # A stale entry (the order ended, or its id came back on a newer order) is skipped.
            if order is not None and order.sequence == sequence:
                self._end(order, "expired")
                ended.append(order)
        return ended

    def hold(
        self,
        units: int,
        max_unit_price: Decimal,
        *,
        provider_id: str | None = None,
        allow_partial: bool = True,
        min_units: int = 1,
    ) -> list[Hold]:
        """Hold up to ``units`` from routable asks at or below ``max_unit_price``."""
        if units <= 0:
            raise ValueError("units must be positive")
        routable = self._routable
        candidates: list[tuple[Order, _Level, int]] = []
        wanted = units
        for level in self.asks.levels:
            if wanted == 0 or level.price > max_unit_price:
                break
            if level.available <= 0:
                continue
            for order in level.queue:
                if wanted == 0:
                    break
                if order.status in _ENDED:
                    continue
                if provider_id is not None and order.provider_id != provider_id:
                    continue
                available = order.remaining - order.held
                if available <= 0 or (routable is not None and not routable(order.provider_id)):
                    continue
                take = min(wanted, available)
                candidates.append((order, level, take))
                wanted -= take
        taken = units - wanted
        if taken == 0 or (not allow_partial and wanted > 0) or taken < min_units:
            return []
        holds = []
        for order, level, take in candidates:
            order.held += take
            level.available -= take
            holds.append(Hold(order.order_id, take, order.limit_unit_price, order.provider_id))
        return holds

    def release(self, order_id: str, units: int) -> None:
        """Give held units back to an ask (the hold expired or was released)."""
        if units <= 0:
            raise ValueError("units must be positive")
        order = self.orders.get(order_id)
        if order is None:
            return
        released = min(units, order.held)
        order.held -= released
        side = self.bids if order.side == "bid" else self.asks
        side.by_price[order.limit_unit_price].available += released

    def uncross(self) -> list[Fill]:
        """Trade resting bids and asks that can trade, e.g. after a provider is routable again.

        Pairs are taken best bid first, then the best ask it can trade with; the later order
        of the pair is the taker and the fill is at the earlier one's price.
        """
        fills: list[Fill] = []
        while True:
            pair = self._first_tradeable_pair()
            if pair is None:
                return fills
            bid, ask, size = pair
            taker, maker = (bid, ask) if bid.sequence > ask.sequence else (ask, bid)
            fills.append(
                Fill(
                    taker.order_id,
                    maker.order_id,
                    bid.order_id,
                    ask.order_id,
                    size,
                    maker.limit_unit_price,
                )
            )
            self._take(bid, size)
            self._take(ask, size)

    # -- queries ----------------------------------------------------------------------------

    def depth(self, side: Side, limit: int = 50) -> list[PriceLevel]:
        """Price levels best first: units not held, and how many orders rest there."""
        book = self.bids if side == "bid" else self.asks
        return [
            PriceLevel(level.price, level.available, level.count)
            for level in book.levels[: max(limit, 0)]
        ]

    def best(self, side: Side) -> Decimal | None:
        """The best resting price on one side, routable or not."""
        levels = (self.bids if side == "bid" else self.asks).levels
        return levels[0].price if levels else None

    # -- internals --------------------------------------------------------------------------

    def _rest(self, order: Order) -> None:
        self.orders[order.order_id] = order
        (self.bids if order.side == "bid" else self.asks).add(order)
        if order.expires_at is not None:
            self._push_expiry(order.expires_at, order)

    def _push_expiry(self, expires_at: float, order: Order) -> None:
        expiries = self._expiries
        if len(expiries) > 2 * len(self.orders) + _EXPIRY_SLACK:
            orders = self.orders
            expiries[:] = [
                entry
                for entry in expiries
                if (live := orders.get(entry[2])) is not None and live.sequence == entry[1]
            ]
            heapq.heapify(expiries)
        heapq.heappush(expiries, (expires_at, order.sequence, order.order_id))

    def _end(self, order: Order, status: OrderStatus) -> None:
        side = self.bids if order.side == "bid" else self.asks
        level = side.by_price[order.limit_unit_price]
        level.count -= 1
        level.available -= order.remaining - order.held
        order.status = status
        order.held = 0
        del self.orders[order.order_id]
        side.settle(order, level)

    def _take(self, order: Order, size: int) -> None:
        """Take ``size`` units off a resting order outside ``_match``."""
        side = self.bids if order.side == "bid" else self.asks
        level = side.by_price[order.limit_unit_price]
        order.remaining -= size
        level.available -= size
        if order.remaining:
            order.status = "partially_filled"
            return
        order.status = "filled"
        order.held = 0
        level.count -= 1
        del self.orders[order.order_id]
        side.settle(order, level)

    def _first_tradeable_pair(self) -> tuple[Order, Order, int] | None:
        bid_levels, ask_levels = self.bids.levels, self.asks.levels
        if not bid_levels or not ask_levels or bid_levels[0].price < ask_levels[0].price:
            return None
        routable = self._routable
        lowest_ask = ask_levels[0].price
        for bid_level in bid_levels:
            if bid_level.price < lowest_ask:
                return None
            for bid in bid_level.queue:
                if bid.status in _ENDED:
                    continue
                for ask_level in ask_levels:
                    if ask_level.price > bid_level.price:
                        break
                    if ask_level.available <= 0:
                        continue
                    for ask in ask_level.queue:
                        if ask.status in _ENDED or (
                            routable is not None and not routable(ask.provider_id)
                        ):
                            continue
                        size = _tradeable(bid, ask)
                        if size:
                            return bid, ask, size
        return None

    def _fillable(self, incoming: Order) -> int:
        """Units ``_match`` would fill, without changing anything (for fok)."""
        if incoming.side == "bid":
            book, bound = self.asks, incoming.limit_unit_price
            routable = self._routable
        else:
            book, bound = self.bids, -incoming.limit_unit_price
            routable = None
            if self._routable is not None and not self._routable(incoming.provider_id):
                return 0
        least = incoming.min_fill_units
        remaining = incoming.remaining
        used: set[int] = set()  # resting orders this dry run has filled completely
        restart = True
        while restart and remaining:
            restart = blocked = False
            for level in book.levels:
                if level.key > bound or not remaining:
                    break
                for resting in level.queue:
                    if resting.status in _ENDED or id(resting) in used:
                        continue
                    available = resting.remaining - resting.held
                    if available <= 0 or (
                        routable is not None and not routable(resting.provider_id)
                    ):
                        continue
                    size = remaining if remaining < available else available
                    if size < (least if least < remaining else remaining):
                        blocked = True
                        continue
                    if size < min(resting.min_fill_units, available):
                        continue
                    remaining -= size
                    if size == available:
                        used.add(id(resting))
                    if not remaining:
                        break
                    if blocked:
                        restart = True
                        break
                if restart:
                    break
        return incoming.remaining - remaining

    def _match(self, taker: Order, fills: list[Fill]) -> None:
        """Fill ``taker`` against the opposite side, as the fill rule in the module says."""
        # The busiest loop of the book: attributes and globals are read into locals once.
        if taker.side == "bid":
            book, bound, taker_is_bid = self.asks, taker.limit_unit_price, True
            routable = self._routable
        else:
            # Bid keys are negated prices: a bid level crosses this ask when key <= -limit.
            book, bound, taker_is_bid = self.bids, -taker.limit_unit_price, False
            routable = None
            if self._routable is not None and not self._routable(taker.provider_id):
                return
        keys, levels, by_price = book.keys, book.levels, book.by_price
        taker_id = taker.order_id
        least = taker.min_fill_units
        remaining = taker.remaining
        orders = self.orders
        ended = _ENDED
        record = fills.append
        new = _new_tuple
        # A resting order skipped because the fill would be below the taker's own minimum can
        # become tradeable once the taker has less left; after the next fill, start over.
        blocked = restart = False
        index = 0
        while remaining and index < len(keys):
            if keys[index] > bound:
                break
            level = levels[index]
            price = level.price
            queue = level.queue
            taken = 0
            position = 0
            while position < len(queue):
                resting = queue[position]
                if resting.status in ended:
                    if position == 0:
                        queue.popleft()
                        level.dead -= 1
                    else:
                        position += 1
                    continue
                available = resting.remaining - resting.held
                if available <= 0 or (routable is not None and not routable(resting.provider_id)):
                    position += 1
                    continue
                size = remaining if remaining < available else available
                # A minimum of 1 never blocks a fill: skip the comparison in the common case.
                if least > 1 and size < (least if least < remaining else remaining):
                    blocked = True
                    position += 1
                    continue
                resting_least = resting.min_fill_units
                if resting_least > 1 and size < (
                    resting_least if resting_least < available else available
                ):
                    position += 1
                    continue
                remaining -= size
                taken += size
                resting_id = resting.order_id
                if taker_is_bid:
                    record(new(Fill, (taker_id, resting_id, taker_id, resting_id, size, price)))
                else:
                    record(new(Fill, (taker_id, resting_id, resting_id, taker_id, size, price)))
                if size == resting.remaining:
                    resting.remaining = 0
                    resting.status = "filled"
                    del orders[resting_id]
                    level.count -= 1
                    if position == 0:
                        queue.popleft()
                    else:
                        level.dead += 1
                        position += 1
                else:
                    resting.remaining -= size
                    resting.status = "partially_filled"
                    position += 1
                if not remaining:
                    break
                if blocked:
                    restart = True
                    break
            if level.count == 0:
                del keys[index], levels[index], by_price[price]
                book.retire(level)
            else:
                level.available -= taken
                if queue and queue[0].status in ended:
                    level.drop_ended_front()
                if level.dead >= _COMPACT_MIN_DEAD:
                    level.compact_if_sparse()
                index += 1
            if restart:
                blocked = restart = False
                index = 0
        taker.remaining = remaining

"""The pure order book: one class per behaviour, then properties over random command sequences.

The properties, checked after every command of a random sequence (submits of bids and asks,
cancels, holds, releases, routability changes, the clock moving on):

(a) units are conserved: every order's units equal its remaining units plus the units of its
    fills, and the units bought equal the units sold;
(b) price-time priority: each fill's maker is, at that moment, the first order on its side in
    priority (best price, then lowest sequence) that the taker can trade with under the fill
    rule, and the fill is as large as that pair allows; a better or earlier order is passed over
    only when it cannot trade (unroutable, nothing available, or the min-fill rule);
(c) no fill is outside either limit: the price is the maker's limit, at or below the bid's and
    at or above the ask's, and the maker is the earlier order;
(d) no bid and ask that can trade rest side by side. Precisely: for every resting bid and every
    resting ask whose provider is routable, with units available and a limit at or below the
    bid's, the fill rule refuses the pair (the size, the smaller of the two amounts available,
    is below min(min_fill_units, amount available) for one of them). When every order has
    min_fill_units 1 that reads: no routable ask with units available is priced at or below a
    resting bid. ``submit``, ``cancel`` and ``expire`` keep (d) on their own, except that a
    submit that leaves a resting order with min_fill_units above 1 partly filled lets that order
    accept smaller fills; there, as after ``hold``, ``release`` and a routability change, the
    caller runs ``uncross()``, whose fills must obey (b) and (c) too. The state machine runs
    it after every command, as the service does, and requires it to trade nothing after a
    cancel, an expiry, a hold on asks whose min_fill_units is 1, or a submit that left no
    resting order with a larger minimum partly filled.
Also: held units never exceed remaining ones, depth and best agree with the orders, and the
book keeps exactly the resting orders. A separate property runs one submit against many small
restored books, to reach min-fill and routability cases more often than random sequences do.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from flow_memory.market.orderbook import Fill, Hold, Order, OrderBook, PriceLevel

D = Decimal


def bid(order_id: str, price: str, units: int, **overrides: Any) -> Order:
    fields = {"owner_id": "buyer"} | overrides
    return Order(order_id, "bid", limit_unit_price=D(price), units=units, **fields)


def ask(order_id: str, price: str, units: int, **overrides: Any) -> Order:
    fields = {"owner_id": "seller", "provider_id": "prov_a"} | overrides
    return Order(order_id, "ask", limit_unit_price=D(price), units=units, **fields)


def book_with(*orders: Order, routable: Callable[[str | None], bool] | None = None) -> OrderBook:
    book = OrderBook("model-x", "token", routable=routable)
    for order in orders:
        book.submit(order)
    return book


def trades(fills: Iterable[Fill]) -> list[tuple[str, int, Decimal]]:
    return [(f.maker_order_id, f.units, f.unit_price) for f in fills]


# -- examples -------------------------------------------------------------------------------


class TestPriceTimePriority:
    def test_better_price_fills_first(self) -> None:
        book = book_with(ask("a1", "1.02", 5), ask("a2", "1.00", 5), ask("a3", "1.01", 5))
        result = book.submit(bid("b1", "1.05", 12))
        assert trades(result.fills) == [
            ("a2", 5, D("1.00")),
            ("a3", 5, D("1.01")),
            ("a1", 2, D("1.02")),
        ]

    def test_equal_price_fills_oldest_first(self) -> None:
        book = book_with(ask("a1", "1.00", 3), ask("a2", "1.00", 3), ask("a3", "1.00", 3))
        result = book.submit(bid("b1", "1.00", 4))
        assert trades(result.fills) == [("a1", 3, D("1.00")), ("a2", 1, D("1.00"))]
        assert book.orders["a2"].remaining == 2
        # The partly filled order keeps its place at the front.
        assert trades(book.submit(bid("b2", "1.00", 1)).fills) == [("a2", 1, D("1.00"))]

    def test_incoming_ask_takes_the_highest_bid_first(self) -> None:
        book = book_with(bid("b1", "0.98", 5), bid("b2", "1.00", 5), bid("b3", "0.99", 5))
        result = book.submit(ask("a1", "0.95", 8))
        assert trades(result.fills) == [("b2", 5, D("1.00")), ("b3", 3, D("0.99"))]
        assert [(f.bid_order_id, f.ask_order_id, f.taker_order_id) for f in result.fills] == [
            ("b2", "a1", "a1"),
            ("b3", "a1", "a1"),
        ]

    def test_stops_at_the_limit(self) -> None:
        book = book_with(ask("a1", "1.00", 2), ask("a2", "1.10", 2))
        result = book.submit(bid("b1", "1.05", 5))
        assert trades(result.fills) == [("a1", 2, D("1.00"))]
        assert result.order.remaining == 3
        assert book.best("bid") == D("1.05")
        assert book.best("ask") == D("1.10")


class TestFillPrice:
    def test_a_bid_pays_the_resting_ask_price(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        assert book.submit(bid("b1", "1.50", 5)).fills[0].unit_price == D("1.00")

    def test_an_ask_gets_the_resting_bid_price(self) -> None:
        book = book_with(bid("b1", "1.50", 5))
        assert book.submit(ask("a1", "1.00", 5)).fills[0].unit_price == D("1.50")


class TestPartialFills:
    def test_incoming_rests_its_remainder(self) -> None:
        book = book_with(ask("a1", "1.00", 3))
        result = book.submit(bid("b1", "1.00", 10))
        assert result.order.status == "partially_filled"
        assert result.order.remaining == 7
        assert book.orders == {"b1": result.order}
        assert book.depth("bid") == [PriceLevel(D("1.00"), 7, 1)]
        assert book.depth("ask") == []

    def test_resting_order_keeps_what_is_left(self) -> None:
        book = book_with(ask("a1", "1.00", 10))
        result = book.submit(bid("b1", "1.00", 4))
        assert result.order.status == "filled"
        assert book.orders["a1"].status == "partially_filled"
        assert book.depth("ask") == [PriceLevel(D("1.00"), 6, 1)]


class TestTimeInForce:
    def test_gtc_rests(self) -> None:
        book = book_with()
        result = book.submit(bid("b1", "1.00", 5, time_in_force="gtc"))
        assert result.order.status == "open"
        assert "b1" in book.orders

    def test_ioc_ends_its_remainder_as_expired(self) -> None:
        book = book_with(ask("a1", "1.00", 3))
        result = book.submit(bid("b1", "1.00", 5, time_in_force="ioc"))
        assert trades(result.fills) == [("a1", 3, D("1.00"))]
        assert (result.order.status, result.order.remaining) == ("expired", 2)
        assert book.orders == {}

    def test_ioc_that_fills_completely_is_filled(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        assert book.submit(bid("b1", "1.00", 5, time_in_force="ioc")).order.status == "filled"

    def test_fok_fills_fully_across_levels(self) -> None:
        book = book_with(ask("a1", "1.00", 3), ask("a2", "1.01", 3))
        result = book.submit(bid("b1", "1.01", 6, time_in_force="fok"))
        assert result.order.status == "filled"
        assert sum(f.units for f in result.fills) == 6

    def test_fok_that_cannot_fill_fully_does_nothing(self) -> None:
        book = book_with(ask("a1", "1.00", 3), ask("a2", "1.01", 3))
        result = book.submit(bid("b1", "1.01", 7, time_in_force="fok"))
        assert (result.order.status, result.fills) == ("expired", [])
        assert result.order.remaining == 7
        assert book.depth("ask") == [PriceLevel(D("1.00"), 3, 1), PriceLevel(D("1.01"), 3, 1)]

    def test_fok_counts_only_liquidity_it_may_take(self) -> None:
        down = {"prov_down"}
        book = book_with(
            ask("a1", "1.00", 5, provider_id="prov_down"),
            ask("a2", "1.00", 5, min_fill_units=5),
            routable=lambda provider_id: provider_id not in down,
        )
        # 5 routable units rest, tradeable only 5 at a time; the unroutable 5 do not count.
        assert book.submit(bid("b1", "1.00", 3, time_in_force="fok")).fills == []
        assert book.submit(bid("b2", "1.00", 6, time_in_force="fok")).fills == []
        assert trades(book.submit(bid("b3", "1.00", 5, time_in_force="fok")).fills) == [
            ("a2", 5, D("1.00"))
        ]

    def test_fok_does_not_count_units_a_resting_minimum_refuses(self) -> None:
        book = book_with(ask("a1", "1.00", 3), ask("a2", "1.00", 5, min_fill_units=5))
        # 8 units rest, but after a1's 3 the bid needs 3 more and a2 only trades 5 at once.
        result = book.submit(bid("b1", "1.00", 6, time_in_force="fok"))
        assert (result.order.status, result.fills) == ("expired", [])
        assert book.orders["a1"].remaining == 3


class TestMinFillUnits:
    def test_incoming_minimum_skips_smaller_resting_orders(self) -> None:
        book = book_with(ask("a1", "1.00", 2), ask("a2", "1.01", 5))
        result = book.submit(bid("b1", "1.01", 5, min_fill_units=4))
        assert trades(result.fills) == [("a2", 5, D("1.01"))]
        assert book.orders["a1"].remaining == 2

    def test_resting_minimum_refuses_a_smaller_incoming_order(self) -> None:
        book = book_with(ask("a1", "1.00", 10, min_fill_units=5))
        result = book.submit(bid("b1", "1.00", 3))
        assert result.fills == []
        assert result.order.status == "open"

    def test_the_last_units_may_be_fewer_than_the_minimum(self) -> None:
        book = book_with(ask("a1", "1.00", 10, min_fill_units=4))
        assert trades(book.submit(bid("b1", "1.00", 7)).fills) == [("a1", 7, D("1.00"))]
        # Only 3 are left, so a fill of 3 is allowed although the minimum is 4.
        assert trades(book.submit(bid("b2", "1.00", 3)).fills) == [("a1", 3, D("1.00"))]

    def test_a_skipped_order_is_taken_once_the_taker_has_less_left(self) -> None:
        book = book_with(ask("a1", "1.00", 3), ask("a2", "1.01", 8))
        # 3 units at 1.00 are below the bid's minimum of 5 at first; after 8 at 1.01 only 2
        # remain to buy, so a1 becomes acceptable and the better price is used.
        result = book.submit(bid("b1", "1.01", 10, min_fill_units=5))
        assert trades(result.fills) == [("a2", 8, D("1.01")), ("a1", 2, D("1.00"))]
        assert result.order.status == "filled"

    def test_minimum_above_units_means_all_at_once(self) -> None:
        book = book_with(ask("a1", "1.00", 2), ask("a2", "1.00", 2))
        result = book.submit(bid("b1", "1.00", 3, min_fill_units=10))
        assert result.fills == []


class TestCancel:
    def test_cancel_takes_the_order_out_of_depth(self) -> None:
        book = book_with(bid("b1", "1.00", 5), bid("b2", "1.00", 5))
        cancelled = book.cancel("b1")
        assert cancelled is not None
        assert cancelled.status == "cancelled"
        assert book.depth("bid") == [PriceLevel(D("1.00"), 5, 1)]
        assert "b1" not in book.orders

    def test_cancelled_orders_do_not_match(self) -> None:
        book = book_with(ask("a1", "1.00", 5), ask("a2", "1.00", 5), ask("a3", "1.00", 5))
        book.cancel("a2")
        result = book.submit(bid("b1", "1.00", 15))
        assert trades(result.fills) == [("a1", 5, D("1.00")), ("a3", 5, D("1.00"))]

    def test_cancel_of_an_unknown_or_finished_order_is_none(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        book.submit(bid("b1", "1.00", 5))
        assert book.cancel("a1") is None
        assert book.cancel("nope") is None

    def test_last_order_of_a_level_removes_the_level(self) -> None:
        book = book_with(ask("a1", "1.00", 5), ask("a2", "1.01", 5))
        book.cancel("a1")
        assert book.best("ask") == D("1.01")
        assert book.depth("ask") == [PriceLevel(D("1.01"), 5, 1)]
        assert book.submit(bid("b1", "1.00", 5)).fills == []
        assert book.best("bid") == D("1.00")

    def test_heavy_cancels_behind_a_resting_order_keep_the_queue_small(self) -> None:
        book = book_with(ask("front", "1.00", 5))
        for n in range(5_000):
            book.submit(ask(f"a{n}", "1.00", 1))
            book.cancel(f"a{n}")
        queue = book.asks.by_price[D("1.00")].queue
        assert len(queue) < 100
        assert book.depth("ask") == [PriceLevel(D("1.00"), 5, 1)]

    def test_emptied_levels_do_not_pile_up(self) -> None:
        book = book_with(ask("front", "1.00", 5))
        for n in range(5_000):
            book.submit(ask(f"a{n}", f"{2 + n / 100:.2f}", 1))
            book.cancel(f"a{n}")
        assert len(book.asks.levels) < 200
        assert book.depth("ask") == [PriceLevel(D("1.00"), 5, 1)]


class TestReusedLevels:
    """A price level emptied by a sweep or a cancel is kept and reused at the same price."""

    def test_a_swept_level_comes_back_empty_with_time_priority(self) -> None:
        book = book_with(ask("a1", "1.00", 5), ask("a2", "1.00", 5), ask("a3", "1.00", 5))
        book.cancel("a3")  # an ended entry behind the live ones
        assert trades(book.submit(bid("b1", "1.00", 10)).fills) == [
            ("a1", 5, D("1.00")),
            ("a2", 5, D("1.00")),
        ]
        assert book.depth("ask") == []
        book.submit(ask("a4", "1.00", 2))
        book.submit(ask("a5", "1.00", 3))
        assert book.depth("ask") == [PriceLevel(D("1.00"), 5, 2)]
        assert trades(book.submit(bid("b2", "1.00", 5)).fills) == [
            ("a4", 2, D("1.00")),
            ("a5", 3, D("1.00")),
        ]

    def test_a_cancelled_level_comes_back_with_fresh_totals(self) -> None:
        book = book_with(bid("b1", "2.00", 4), bid("b2", "1.00", 1))
        book.cancel("b1")
        assert book.best("bid") == D("1.00")
        book.submit(bid("b3", "2.00", 7))
        assert book.depth("bid") == [PriceLevel(D("2.00"), 7, 1), PriceLevel(D("1.00"), 1, 1)]

    def test_many_closed_levels_do_not_pile_up(self) -> None:
        book = OrderBook("model-x", "token")
        for n in range(1000):
            book.submit(ask(f"a{n}", f"{1 + n / 100:.2f}", 1))
            book.cancel(f"a{n}")
        assert len(book.asks.spare) <= 256
        assert book.depth("ask") == [] and book.orders == {}


class TestHolds:
    def test_hold_takes_the_cheapest_asks(self) -> None:
        book = book_with(ask("a1", "1.01", 5), ask("a2", "1.00", 3))
        holds = book.hold(6, D("1.05"))
        assert holds == [Hold("a2", 3, D("1.00"), "prov_a"), Hold("a1", 3, D("1.01"), "prov_a")]
        assert book.depth("ask") == [PriceLevel(D("1.00"), 0, 1), PriceLevel(D("1.01"), 2, 1)]

    def test_held_units_cannot_be_matched(self) -> None:
        book = book_with(ask("a1", "1.00", 5), ask("a2", "1.00", 5))
        book.hold(4, D("1.00"))
        result = book.submit(bid("b1", "1.00", 10))
        assert trades(result.fills) == [("a1", 1, D("1.00")), ("a2", 5, D("1.00"))]
        assert book.orders["a1"].remaining == 4
        assert book.orders["a1"].held == 4

    def test_released_units_trade_again(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        book.hold(5, D("1.00"))
        assert book.submit(bid("b1", "1.00", 5, time_in_force="ioc")).fills == []
        book.release("a1", 2)
        assert trades(book.submit(bid("b2", "1.00", 5, time_in_force="ioc")).fills) == [
            ("a1", 2, D("1.00"))
        ]

    def test_release_returns_no_more_than_is_held(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        book.hold(2, D("1.00"))
        book.release("a1", 10)
        assert book.orders["a1"].held == 0
        assert book.depth("ask") == [PriceLevel(D("1.00"), 5, 1)]

    def test_hold_respects_price_provider_and_all_or_nothing(self) -> None:
        book = book_with(ask("a1", "1.00", 3), ask("a2", "1.00", 3, provider_id="prov_b"))
        assert book.hold(3, D("0.99")) == []
        assert book.hold(7, D("1.00"), allow_partial=False) == []
        assert book.hold(5, D("1.00"), min_units=7) == []
        assert book.hold(5, D("1.00"), provider_id="prov_b") == [Hold("a2", 3, D("1.00"), "prov_b")]
        assert book.orders["a1"].held == 0

    def test_release_that_uncovers_a_crossing_bid_trades_on_uncross(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        book.hold(5, D("1.00"))
        book.submit(bid("b1", "1.02", 3))
        book.release("a1", 5)
        fills = book.uncross()
        # The ask rested first, so it is the maker and sets the price.
        assert [(f.taker_order_id, f.maker_order_id, f.units, f.unit_price) for f in fills] == [
            ("b1", "a1", 3, D("1.00"))
        ]
        assert book.uncross() == []

    def test_cancel_clears_held_units(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        book.hold(5, D("1.00"))
        cancelled = book.cancel("a1")
        assert cancelled is not None
        assert cancelled.held == 0


class TestRoutability:
    def test_unroutable_asks_show_in_depth_but_do_not_match(self) -> None:
        down = {"prov_down"}
        book = book_with(
            ask("a1", "1.00", 5, provider_id="prov_down"),
            ask("a2", "1.01", 5),
            routable=lambda provider_id: provider_id not in down,
        )
        assert book.best("ask") == D("1.00")
        assert book.depth("ask")[0] == PriceLevel(D("1.00"), 5, 1)
        result = book.submit(bid("b1", "1.05", 8))
        assert trades(result.fills) == [("a2", 5, D("1.01"))]
        assert book.orders["a1"].remaining == 5

    def test_unroutable_asks_are_not_held(self) -> None:
        book = book_with(
            ask("a1", "1.00", 5, provider_id="prov_down"),
            routable=lambda provider_id: provider_id != "prov_down",
        )
        assert book.hold(5, D("2.00")) == []

    def test_an_unroutable_incoming_ask_rests_without_matching(self) -> None:
        book = book_with(bid("b1", "1.00", 5), routable=lambda provider_id: False)
        result = book.submit(ask("a1", "0.90", 5))
        assert result.fills == []
        assert book.best("ask") == D("0.90")

    def test_a_provider_routable_again_trades_on_uncross(self) -> None:
        down = {"prov_a"}
        book = book_with(ask("a1", "1.00", 5), routable=lambda provider_id: provider_id not in down)
        book.submit(bid("b1", "1.10", 2))
        book.submit(bid("b2", "1.20", 2))
        assert book.uncross() == []
        down.clear()
        fills = book.uncross()
        assert [(f.bid_order_id, f.units, f.unit_price) for f in fills] == [
            ("b2", 2, D("1.00")),
            ("b1", 2, D("1.00")),
        ]

    def test_set_routable_replaces_the_predicate(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        book.set_routable(lambda provider_id: False)
        assert book.submit(bid("b1", "1.00", 5, time_in_force="ioc")).fills == []
        book.set_routable(None)
        assert book.submit(bid("b2", "1.00", 5, time_in_force="ioc")).order.status == "filled"


class TestExpiry:
    def test_expire_ends_orders_due_at_or_before_now(self) -> None:
        book = book_with(
            bid("b1", "1.00", 5, expires_at=10.0),
            bid("b2", "1.00", 5, expires_at=20.0),
            bid("b3", "1.00", 5),
        )
        assert book.expire(9.9) == []
        assert [o.order_id for o in book.expire(10.0)] == ["b1"]
        assert book.orders["b2"].status == "open"
        assert [o.order_id for o in book.expire(100.0)] == ["b2"]
        assert set(book.orders) == {"b3"}
        assert book.depth("bid") == [PriceLevel(D("1.00"), 5, 1)]

    def test_expired_orders_do_not_match(self) -> None:
        book = book_with(ask("a1", "1.00", 5, expires_at=10.0))
        expired = book.expire(10.0)
        assert expired[0].status == "expired"
        assert book.submit(bid("b1", "1.00", 5)).fills == []

    def test_cancelled_and_filled_orders_are_not_reported(self) -> None:
        book = book_with(
            ask("a1", "1.00", 5, expires_at=10.0), ask("a2", "1.00", 5, expires_at=10.0)
        )
        book.cancel("a1")
        book.submit(bid("b1", "1.00", 5))
        assert book.expire(10.0) == []

    def test_an_old_expiry_does_not_end_a_new_order_with_the_same_id(self) -> None:
        book = book_with(ask("a1", "1.00", 5, expires_at=10.0))
        book.cancel("a1")
        book.submit(ask("a1", "1.00", 5, expires_at=50.0))
        assert book.expire(10.0) == []
        assert "a1" in book.orders


class TestSequenceAndRestore:
    def test_submit_takes_a_recorded_sequence(self) -> None:
        book = OrderBook("model-x", "token")
        assert book.submit(bid("b1", "1.00", 5), sequence=40).order.sequence == 40
        assert book.submit(bid("b2", "1.00", 5)).order.sequence == 41
        with pytest.raises(ValueError, match="sequence"):
            book.submit(bid("b3", "1.00", 5), sequence=41)

    def test_restore_keeps_time_priority_whatever_the_order_of_calls(self) -> None:
        book = OrderBook("model-x", "token")
        book.restore(ask("a2", "1.00", 5, sequence=7))
        book.restore(ask("a1", "1.00", 5, sequence=3))
        result = book.submit(bid("b1", "1.00", 5))
        assert result.order.sequence == 8
        assert trades(result.fills) == [("a1", 5, D("1.00"))]

    def test_restored_holds_show_in_depth_and_block_matching(self) -> None:
        book = OrderBook("model-x", "token")
        book.restore(ask("a1", "1.00", 10, sequence=1, remaining=6, status="partially_filled"))
        book.restore_hold("a1", 4)
        assert book.depth("ask") == [PriceLevel(D("1.00"), 2, 1)]
        assert trades(book.submit(bid("b1", "1.00", 5)).fills) == [("a1", 2, D("1.00"))]
        with pytest.raises(ValueError):
            book.restore_hold("a1", 1)

    def test_ended_orders_are_not_restored(self) -> None:
        book = OrderBook("model-x", "token")
        book.restore(ask("a1", "1.00", 5, sequence=4, status="cancelled"))
        assert book.orders == {}
        assert book.submit(bid("b1", "1.00", 5)).order.sequence == 5


class TestValidation:
    @pytest.mark.parametrize(
        ("price", "units", "min_fill"), [("1.00", 0, 1), ("0", 5, 1), ("-1", 5, 1), ("1.00", 5, 0)]
    )
    def test_bad_orders_are_refused(self, price: str, units: int, min_fill: int) -> None:
        with pytest.raises(ValueError):
            bid("b1", price, units, min_fill_units=min_fill)

    def test_duplicate_resting_id_is_refused(self) -> None:
        book = book_with(bid("b1", "1.00", 5))
        with pytest.raises(ValueError, match="duplicate"):
            book.submit(bid("b1", "1.00", 5))

    def test_an_order_is_submitted_once(self) -> None:
        book = book_with()
        order = bid("b1", "1.00", 5, time_in_force="ioc")
        book.submit(order)
        with pytest.raises(ValueError, match="fresh"):
            book.submit(order)

    def test_holds_and_releases_need_positive_units(self) -> None:
        book = book_with(ask("a1", "1.00", 5))
        with pytest.raises(ValueError):
            book.hold(0, D("1.00"))
        with pytest.raises(ValueError):
            book.release("a1", -3)


# -- properties over random command sequences ----------------------------------------------

PRICES = [D("1.00"), D("1.01"), D("1.02"), D("1.03"), D("1.05")]
PROVIDERS = ["prov_a", "prov_b", "prov_c"]


@dataclass
class Record:
    """The test's own view of one order, kept apart from the engine's objects."""

    order_id: str
    side: str
    price: Decimal
    units: int
    min_fill: int
    tif: str
    provider_id: str | None
    expires_at: float | None
    sequence: int
    remaining: int
    held: int = 0
    status: str = "open"

    @property
    def available(self) -> int:
        return self.remaining - self.held

    @property
    def resting(self) -> bool:
        return self.status in ("open", "partially_filled")


def priority(record: Record) -> tuple[Decimal, int]:
    return (-record.price if record.side == "bid" else record.price, record.sequence)


def fill_size(one: Record, other: Record, routable: Callable[[str | None], bool]) -> int:
    """The fill rule, written out plainly: units the pair may trade now, 0 when none."""
    bid_, ask_ = (one, other) if one.side == "bid" else (other, one)
    if bid_.price < ask_.price or not routable(ask_.provider_id):
        return 0
    size = min(bid_.available, ask_.available)
    if size <= 0:
        return 0
    if size < min(bid_.min_fill, bid_.available) or size < min(ask_.min_fill, ask_.available):
        return 0
    return size


def apply_fills(
    fills: list[Fill], state: dict[str, Record], routable: Callable[[str | None], bool]
) -> None:
    """Check properties (b) and (c) for each fill in turn, moving ``state`` along with it."""
    for fill in fills:
        taker, maker = state[fill.taker_order_id], state[fill.maker_order_id]
        assert taker.side != maker.side
        bid_, ask_ = (taker, maker) if taker.side == "bid" else (maker, taker)
        assert (fill.bid_order_id, fill.ask_order_id) == (bid_.order_id, ask_.order_id)
        # (c) at the maker's limit, inside both limits, the maker being the earlier order.
        assert fill.unit_price == maker.price
        assert ask_.price <= fill.unit_price <= bid_.price
        assert maker.sequence < taker.sequence
        # (b) the first order in priority on the maker's side that the taker can trade with.
        contenders = sorted(
            (r for r in state.values() if r.side == maker.side and r.resting), key=priority
        )
        first = next((r for r in contenders if fill_size(taker, r, routable)), None)
        assert first is maker, f"{fill} skipped {first}"
        assert fill.units == fill_size(taker, maker, routable)
        for record in (taker, maker):
            record.remaining -= fill.units
            if record.remaining == 0:
                record.status, record.held = "filled", 0
            elif record.resting:
                record.status = "partially_filled"


def tradeable_pairs(
    records: Iterable[Record], routable: Callable[[str | None], bool]
) -> list[tuple[str, str]]:
    resting = [r for r in records if r.resting]
    return [
        (b.order_id, a.order_id)
        for b in resting
        if b.side == "bid"
        for a in resting
        if a.side == "ask" and fill_size(b, a, routable)
    ]


def greedy_fill(
    incoming: Record, state: dict[str, Record], routable: Callable[[str | None], bool]
) -> int:
    """What the matching rule fills for ``incoming``: take the first tradeable order until none."""
    state = copy.deepcopy(state)
    taker = copy.copy(incoming)
    filled = 0
    while taker.remaining:
        contenders = sorted(
            (r for r in state.values() if r.side != taker.side and r.resting), key=priority
        )
        maker = next((r for r in contenders if fill_size(taker, r, routable)), None)
        if maker is None:
            break
        size = fill_size(taker, maker, routable)
        taker.remaining -= size
        maker.remaining -= size
        maker.status = "filled" if maker.remaining == 0 else "partially_filled"
        filled += size
    return filled


resting_orders = st.lists(
    st.tuples(
        st.sampled_from(PRICES),
        st.integers(1, 12),  # units
        st.sampled_from([1, 1, 2, 3, 5, 8]),  # min_fill_units
        st.integers(0, 12),  # held, capped at the units (asks only)
        st.sampled_from(PROVIDERS),
    ),
    max_size=10,
)


class TestOneSubmitFollowsTheFillRule:
    """Properties (b) and (c) on many small books: one incoming order against restored ones."""

    @settings(max_examples=300, deadline=None)
    @given(
        taker_side=st.sampled_from(["bid", "ask"]),
        resting=resting_orders,
        price=st.sampled_from(PRICES),
        units=st.integers(1, 30),
        min_fill=st.sampled_from([1, 1, 2, 3, 5, 8]),
        tif=st.sampled_from(["gtc", "ioc", "fok"]),
        down=st.sets(st.sampled_from(PROVIDERS), max_size=2),
    )
    def test_fills_match_the_rule(
        self,
        taker_side: str,
        resting: list[tuple[Decimal, int, int, int, str]],
        price: Decimal,
        units: int,
        min_fill: int,
        tif: str,
        down: set[str],
    ) -> None:
        def routable(provider_id: str | None) -> bool:
            return provider_id not in down

        maker_side = "ask" if taker_side == "bid" else "bid"
        book = OrderBook("model-x", "token", routable=routable)
        state: dict[str, Record] = {}
        for n, (level, amount, least, held, provider_id) in enumerate(resting, start=1):
            provider = provider_id if maker_side == "ask" else None
            order = Order(f"r{n}", maker_side, "owner", level, amount, least, provider_id=provider)
            order.sequence = n
            book.restore(order)
            held = min(held, amount) if maker_side == "ask" else 0
            if held:
                book.restore_hold(order.order_id, held)
            state[order.order_id] = Record(
                order.order_id,
                maker_side,
                level,
                amount,
                least,
                "gtc",
                provider,
                expires_at=None,
                sequence=n,
                remaining=amount,
                held=held,
            )
        provider = "prov_a" if taker_side == "ask" else None
        taker = Order("t", taker_side, "owner", price, units, min_fill, tif, provider)
        incoming = Record(
            "t",
            taker_side,
            price,
            units,
            min_fill,
            tif,
            provider,
            expires_at=None,
            sequence=len(resting) + 1,
            remaining=units,
        )
        levels: dict[Decimal, list[Record]] = defaultdict(list)
        for record in state.values():
            levels[record.price].append(record)
        assert book.depth(maker_side, limit=100) == [
            PriceLevel(p, sum(r.available for r in levels[p]), len(levels[p]))
            for p in sorted(levels, reverse=maker_side == "bid")
        ]
        before = copy.deepcopy(state)
        result = book.submit(taker)

        state["t"] = copy.copy(incoming)
        apply_fills(result.fills, state, routable)
        left = state.pop("t")
        assert taker.remaining == left.remaining
        if tif == "fok":
            expected = units if greedy_fill(incoming, before, routable) == units else 0
            assert units - taker.remaining == expected
        else:
            assert taker.remaining == 0 or not tradeable_pairs([left, *state.values()], routable)
        for order_id, record in state.items():
            assert (order_id in book.orders) == record.resting
            if record.resting:
                assert book.orders[order_id].remaining == record.remaining


class BookMachine(RuleBasedStateMachine):
    """Random command sequences against the engine, checked against plain records."""

    min_fills: tuple[int, ...] = (1, 1, 1, 2, 3, 5)

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()
        self.book = OrderBook("model-x", "token", routable=self.routable)
        self.records: dict[str, Record] = {}
        self.orders: dict[str, Order] = {}
        self.filled: defaultdict[str, int] = defaultdict(int)
        self.now = 0.0
        self.count = 0

    def routable(self, provider_id: str | None) -> bool:
        return provider_id not in self.down

    def resting(self) -> list[Record]:
        return [r for r in self.records.values() if r.resting]

    def record(self, fills: list[Fill]) -> None:
        for fill in fills:
            self.filled[fill.bid_order_id] += fill.units
            self.filled[fill.ask_order_id] += fill.units

    def settle(self, *, may_trade: bool) -> None:
        """Run ``uncross()`` as the service does after each command; check what it trades."""
        fills = self.book.uncross()
        if not may_trade:
            assert fills == [], "the command left a tradeable pair resting"
        apply_fills(fills, self.records, self.routable)
        self.record(fills)

    # -- commands ---------------------------------------------------------------------------

    @rule(
        side=st.sampled_from(["bid", "ask"]),
        price=st.sampled_from(PRICES),
        units=st.integers(1, 12),
        min_fill=st.sampled_from(min_fills),
        tif=st.sampled_from(["gtc", "gtc", "ioc", "fok"]),
        provider_id=st.sampled_from(PROVIDERS),
        lifetime=st.sampled_from([None, None, 1.0, 5.0, 20.0]),
    )
    def submit(
        self,
        side: str,
        price: Decimal,
        units: int,
        min_fill: int,
        tif: str,
        provider_id: str,
        lifetime: float | None,
    ) -> None:
        self.count += 1
        order_id = f"o{self.count}"
        expires_at = None if lifetime is None else self.now + lifetime
        min_fill = min_fill if min_fill in type(self).min_fills else 1
        order = Order(
            order_id,
            side,
            "owner",
            price,
            units,
            min_fill_units=min_fill,
            time_in_force=tif,
            provider_id=provider_id if side == "ask" else None,
            expires_at=expires_at,
        )
        before = {r.order_id: copy.copy(r) for r in self.resting()}
        result = self.book.submit(order)
        sequence = max((r.sequence for r in self.records.values()), default=0) + 1
        assert result.order is order and order.sequence == sequence
        incoming = Record(
            order_id,
            side,
            price,
            units,
            min_fill,
            tif,
            order.provider_id,
            expires_at,
            sequence,
            units,
        )
        assert all(f.taker_order_id == order_id for f in result.fills)
        state = before | {order_id: copy.copy(incoming)}
        apply_fills(result.fills, state, self.routable)
        taker = state[order_id]
        if tif == "fok":
            if result.fills:
                assert taker.remaining == 0
            else:
                assert greedy_fill(incoming, before, self.routable) < units
        elif taker.remaining:
            # The taker stopped only because nothing left could trade with it.
            assert not tradeable_pairs(
                [taker, *(r for r in state.values() if r.side != side)], self.routable
            )
        if taker.remaining == 0:
            expected = "filled"
        elif tif == "gtc":
            expected = "partially_filled" if result.fills else "open"
        else:
            expected = "expired"
        taker.status = expected
        self.records.update(state)
        self.orders[order_id] = order
        self.record(result.fills)
        loosened = any(
            state[f.maker_order_id].resting and state[f.maker_order_id].min_fill > 1
            for f in result.fills
        )
        self.settle(may_trade=loosened)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from([*self.records, "unknown"]))
        record = self.records.get(order_id)
        cancelled = self.book.cancel(order_id)
        if record is None or not record.resting:
            assert cancelled is None
        else:
            assert cancelled is self.orders[order_id]
            record.status, record.held = "cancelled", 0
        self.settle(may_trade=False)

    @rule(
        units=st.integers(1, 20),
        max_price=st.sampled_from(PRICES),
        provider_id=st.sampled_from([None, None, *PROVIDERS]),
        allow_partial=st.booleans(),
        min_units=st.integers(1, 8),
    )
    def hold(
        self,
        units: int,
        max_price: Decimal,
        provider_id: str | None,
        allow_partial: bool,
        min_units: int,
    ) -> None:
        holds = self.book.hold(
            units,
            max_price,
            provider_id=provider_id,
            allow_partial=allow_partial,
            min_units=min_units,
        )
        expected: list[Hold] = []
        wanted = units
        for record in sorted((r for r in self.resting() if r.side == "ask"), key=priority):
            if wanted == 0 or record.price > max_price:
                break
            if provider_id is not None and record.provider_id != provider_id:
                continue
            if record.available <= 0 or not self.routable(record.provider_id):
                continue
            take = min(wanted, record.available)
            expected.append(Hold(record.order_id, take, record.price, record.provider_id))
            wanted -= take
        taken = units - wanted
        if taken == 0 or (not allow_partial and wanted) or taken < min_units:
            expected = []
        assert holds == expected
        for one in holds:
            self.records[one.order_id].held += one.units
        self.settle(may_trade=any(self.records[h.order_id].min_fill > 1 for h in holds))

    @precondition(lambda self: any(r.held for r in self.records.values()))
    @rule(data=st.data(), extra=st.integers(0, 3))
    def release(self, data: st.DataObject, extra: int) -> None:
        holding = [r for r in self.records.values() if r.held]
        record = data.draw(st.sampled_from(holding))
        units = data.draw(st.integers(1, record.held)) + extra
        self.book.release(record.order_id, units)
        record.held -= min(units, record.held)
        self.settle(may_trade=True)

    @rule(provider_id=st.sampled_from(PROVIDERS))
    def toggle_routable(self, provider_id: str) -> None:
        self.down ^= {provider_id}
        self.settle(may_trade=True)

    @rule(step=st.sampled_from([0.0, 1.0, 2.5, 5.0, 10.0]))
    def move_clock(self, step: float) -> None:
        self.now += step
        ended = self.book.expire(self.now)
        due = {
            r.order_id
            for r in self.resting()
            if r.expires_at is not None and r.expires_at <= self.now
        }
        assert {o.order_id for o in ended} == due
        for order_id in due:
            self.records[order_id].status, self.records[order_id].held = "expired", 0
        self.settle(may_trade=False)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def engine_agrees_with_the_records(self) -> None:
        assert set(self.book.orders) == {r.order_id for r in self.resting()}
        for order_id, record in self.records.items():
            order = self.orders[order_id]
            assert (order.remaining, order.held, order.status) == (
                record.remaining,
                record.held,
                record.status,
            )
            assert order.active == record.resting

    @invariant()
    def units_are_conserved(self) -> None:
        for order in self.orders.values():
            assert order.units == order.remaining + self.filled[order.order_id]
        bought = sum(self.filled[o.order_id] for o in self.orders.values() if o.side == "bid")
        sold = sum(self.filled[o.order_id] for o in self.orders.values() if o.side == "ask")
        assert bought == sold

    @invariant()
    def held_units_stay_within_remaining(self) -> None:
        for order in self.orders.values():
            assert 0 <= order.held <= order.remaining
            if order.side == "bid" or not order.active:
                assert order.held == 0

    @invariant()
    def nothing_that_can_trade_rests(self) -> None:
        assert tradeable_pairs(self.records.values(), self.routable) == []

    @invariant()
    def depth_and_best_agree_with_the_orders(self) -> None:
        for side in ("bid", "ask"):
            levels: dict[Decimal, list[Record]] = defaultdict(list)
            for record in self.resting():
                if record.side == side:
                    levels[record.price].append(record)
            ordered = sorted(levels, reverse=side == "bid")
            expected = [
                PriceLevel(p, sum(r.available for r in levels[p]), len(levels[p])) for p in ordered
            ]
            assert self.book.depth(side, limit=100) == expected
            assert self.book.best(side) == (ordered[0] if ordered else None)

    @invariant()
    def levels_keep_their_books(self) -> None:
        for side in (self.book.bids, self.book.asks):
            assert side.keys == sorted(set(side.keys))
            assert [level.key for level in side.levels] == side.keys
            assert side.by_price == {level.price: level for level in side.levels}
            for level in side.levels:
                assert len(level.queue) == level.count + level.dead
                assert sum(1 for o in level.queue if o.active) == level.count


class UnitMinFillMachine(BookMachine):
    """Every order has min_fill_units 1, so (d) is plain: nothing routable crosses a bid."""

    min_fills = (1,)

    @invariant()
    def no_routable_ask_crosses_a_bid(self) -> None:
        bids = [r.price for r in self.resting() if r.side == "bid"]
        asks = [
            r.price
            for r in self.resting()
            if r.side == "ask" and r.available > 0 and self.routable(r.provider_id)
        ]
        if bids and asks:
            assert max(bids) < min(asks)


PROPERTY_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestBookProperties = BookMachine.TestCase
TestBookProperties.settings = PROPERTY_SETTINGS
TestUnitMinFillProperties = UnitMinFillMachine.TestCase
TestUnitMinFillProperties.settings = settings(PROPERTY_SETTINGS, max_examples=100)


class TestReduce:
    def test_reduce_keeps_time_priority_and_never_cuts_held_units(self) -> None:
        book = OrderBook("m", "token")
        book.submit(Order("a1", "ask", "p", Decimal("1"), 100))
        book.submit(Order("a2", "ask", "p", Decimal("1"), 100))
        book.hold(30, Decimal("1"))
        assert book.reduce("a1", 500) == 70
        assert book.orders["a1"].remaining == 30
        assert book.depth("ask")[0].available_units == 100
        book.release("a1", 30)
        fill = book.submit(Order("b1", "bid", "q", Decimal("1"), 10)).fills[0]
        assert fill.maker_order_id == "a1"

    def test_reducing_everything_cancels_and_unknown_orders_take_nothing(self) -> None:
        book = OrderBook("m", "token")
        book.submit(Order("a1", "ask", "p", Decimal("1"), 100))
        assert book.reduce("a1", 100) == 100
        assert "a1" not in book.orders
        assert book.depth("ask") == []
        assert book.reduce("a1", 5) == 0

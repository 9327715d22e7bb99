"""Benchmark the pure order book alone: operations per second and per-operation latency.

Run: python bench/bench_orderbook.py [--ops N] [--seed S] [--profile]

The mix on one book, around a fixed mid price with a few hundred price levels each side:
~60% limit orders that rest (gtc, priced away from the mid), ~25% cancels of resting orders and
~15% crossing orders (ioc, a few fok) that take liquidity across one or more levels. The book is
seeded first so cancels and crossing orders always find something; crossing sizes are chosen so
the book stays near a steady size instead of growing without bound.

Every engine call is timed on its own with ``time.perf_counter_ns`` (one reading before, one
after), so the percentiles are true per-operation figures, not batch averages. Building the
``Order`` objects and choosing what to cancel happen outside the timed region, because those
belong to the caller, not the engine. Throughput is operations divided by the summed engine
time; that sum still carries one clock read per operation (tens of nanoseconds), so the figure
errs low. The wall-clock rate including the harness is printed too.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from array import array
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flow_memory.market.orderbook import Order, OrderBook

MID = Decimal("100.00")
TICK = Decimal("0.01")
LEVELS = 300  # price levels each side of the mid
PROVIDERS = tuple(f"prov_{n}" for n in range(8))
SEED_ORDERS = 10_000
TARGET = 400_000  # ops/s the issue asks for on one core


class Workload:
    """Chooses the next operation and keeps track of which of its orders still rest."""

    def __init__(self, book: OrderBook, seed: int) -> None:
        self.book = book
        self.rng = random.Random(seed)
        self.next_id = 0
        self.live: list[str] = []
        self.live_index: dict[str, int] = {}
        self.bid_prices = [MID - TICK * k for k in range(1, LEVELS + 1)]
        self.ask_prices = [MID + TICK * k for k in range(1, LEVELS + 1)]
        # Crossing orders carry a protective limit past the far end of the book, so they take
        # from the best price outward like market orders do.
        self.cross_bid = MID + TICK * (LEVELS + 1)
        self.cross_ask = MID - TICK * (LEVELS + 1)

    def _order_id(self) -> str:
        self.next_id += 1
        return f"ord_{self.next_id}"

    def _level(self) -> int:
        # Most interest sits near the mid; triangular mode 0 gives that and still uses every level.
        return int(self.rng.triangular(0, LEVELS, 0))

    def resting_order(self) -> Order:
        rng = self.rng
        if rng.random() < 0.5:
            return Order(
                self._order_id(),
                "bid",
                "buyer",
                self.bid_prices[self._level()],
                rng.randint(1, 100),
            )
        return Order(
            self._order_id(),
            "ask",
            "seller",
            self.ask_prices[self._level()],
            rng.randint(1, 100),
            provider_id=rng.choice(PROVIDERS),
        )

    def crossing_order(self) -> Order:
        rng = self.rng
        tif = "fok" if rng.random() < 0.1 else "ioc"
        units = rng.randint(1, 210)
        if rng.random() < 0.5:
            return Order(self._order_id(), "bid", "buyer", self.cross_bid, units, time_in_force=tif)
        return Order(
            self._order_id(),
            "ask",
            "seller",
            self.cross_ask,
            units,
            time_in_force=tif,
            provider_id=rng.choice(PROVIDERS),
        )

    def track(self, order: Order) -> None:
        if order.order_id in self.book.orders:
            self.live_index[order.order_id] = len(self.live)
            self.live.append(order.order_id)

    def forget(self, order_id: str) -> None:
        index = self.live_index.pop(order_id, None)
        if index is None:
            return
        last = self.live.pop()
        if last != order_id:
            self.live[index] = last
            self.live_index[last] = index

    def cancel_target(self) -> str:
        return self.live[self.rng.randrange(len(self.live))]


def percentile(sorted_values: array[int], fraction: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def run(ops: int, seed: int) -> None:
    down: set[str] = set()  # the service passes a predicate; no provider is down here
    book = OrderBook("bench-model", "token", routable=lambda provider_id: provider_id not in down)
    work = Workload(book, seed)
    for _ in range(SEED_ORDERS):
        order = work.resting_order()
        book.submit(order)
        work.track(order)

    latencies = array("q", bytes(8 * ops))
    kinds = array("b", bytes(ops))  # 0 rest, 1 cancel, 2 crossing
    fills = 0
    clock = time.perf_counter_ns
    rng = random.Random(seed + 1)
    wall_start = clock()
    for i in range(ops):
        draw = rng.random()
        if draw < 0.60 or not work.live:
            order = work.resting_order()
            start = clock()
            book.submit(order)
            latencies[i] = clock() - start
            work.track(order)
        elif draw < 0.85:
            order_id = work.cancel_target()
            start = clock()
            book.cancel(order_id)
            latencies[i] = clock() - start
            kinds[i] = 1
            work.forget(order_id)
        else:
            order = work.crossing_order()
            start = clock()
            result = book.submit(order)
            latencies[i] = clock() - start
            kinds[i] = 2
            fills += len(result.fills)
            for fill in result.fills:
                if fill.maker_order_id not in book.orders:
                    work.forget(fill.maker_order_id)
    wall = clock() - wall_start

    engine_ns = sum(latencies)
    counts = [0, 0, 0]
    spent = [0, 0, 0]
    for kind, latency in zip(kinds, latencies, strict=True):
        counts[kind] += 1
        spent[kind] += latency
    ordered = array("q", sorted(latencies))
    ops_per_second = ops / (engine_ns / 1e9)
    bids, asks = book.depth("bid", limit=LEVELS * 2), book.depth("ask", limit=LEVELS * 2)
    print("== order book benchmark (engine only, one book, one core)")
    print(f"operations         {ops:>12,}")
    print(
        f"mix                rest {counts[0]:,} / cancel {counts[1]:,} / "
        f"crossing {counts[2]:,} ({fills:,} fills)"
    )
    means = [spent[k] / counts[k] / 1000 if counts[k] else 0.0 for k in range(3)]
    print(
        f"mean latency       rest {means[0]:.2f} us / cancel {means[1]:.2f} us / "
        f"crossing {means[2]:.2f} us"
    )
    print(
        f"book at end        {len(book.orders):,} resting orders; "
        f"{len(bids)} bid and {len(asks)} ask levels"
    )
    print(f"engine time        {engine_ns / 1e9:>12.3f} s")
    print(f"throughput         {ops_per_second:>12,.0f} ops/s  (target {TARGET:,})")
    print(f"with harness       {ops / (wall / 1e9):>12,.0f} ops/s  (wall clock)")
    print(f"latency p50        {percentile(ordered, 0.50) / 1000:>12.2f} us")
    print(f"latency p99        {percentile(ordered, 0.99) / 1000:>12.2f} us")
    print(f"latency p99.9      {percentile(ordered, 0.999) / 1000:>12.2f} us")
    print(f"latency max        {ordered[-1] / 1000:>12.2f} us")
    print("meets target       " + ("yes" if ops_per_second >= TARGET else "no"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations to run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="run under cProfile, print top")
    args = parser.parse_args()
    if args.ops < 1:
        parser.error("--ops must be positive")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, args.ops, args.seed)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    else:
        run(args.ops, args.seed)


if __name__ == "__main__":
    main()

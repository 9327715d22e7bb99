"""How few instructions the market's order write path could take: a lean prototype, measured.

Run: python bench/bench_lean_order_path.py [--orders 1600] [--draws-only]

Not the product's path, and not a test: a yardstick for it. It does the work the market writer
does for the benchmarks' mix (half resting asks, half crossing bids, batches of 16), with the
real matching engine and the real schema, but builds each row as a tuple in its statement's
order and writes with the SQLite driver directly: no session, no savepoints, no deferred-row
bookkeeping, no bind processors. Per batch: the orders, the updates of the resting orders that
traded, the fills, a usage record per fill, the feed events, the daily and all-time usage
rollups and the market's counters, each with one ``executemany``; one durable commit (WAL,
``synchronous=FULL``); every order's answer built by the market's own ``order_read`` and
``fill_read`` and pickled, as the market process sends it.

It leaves out what the real path also does: the caller's scopes and the ask's provider and
capacity, route gates, the market's lock read, expiries and uncrossing the book, reference
prices and savings, what a bid's metadata names, and undoing a refused order. Compare
instruction counts with ``bench_market_writer.py --orders``, counted the same way:

    valgrind --tool=cachegrind --cache-sim=no python bench/bench_lean_order_path.py --orders 1600
    valgrind --tool=cachegrind --cache-sim=no python bench/bench_lean_order_path.py --orders 0

The difference of the two "I refs" totals, divided by 1,600. The same pair with
``--draws-only`` counts the yardstick's own share: drawing the orders. The yardstick also
pickles every answer, which the in-process writer benchmark does not.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flow_memory.kit.db import WAL_BACKSTOP_PAGES
from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.money import EXACT, exact, plain, to_parts
from flow_memory.market.gateway import fill_read, order_read
from flow_memory.market.orderbook import Fill, Order, OrderBook
from flow_memory.market.service import PlacedFill, PlacedOrder
from flow_memory.migrations import upgrade

MODEL, UNIT, PROVIDER = "bench-model", "token", "prv_bench"
BATCH = 16
WARM_UP = 640
SUMS = (
    "records",
    "priced_records",
    "estimated_units",
    "actual_units",
    *(
        f"{amount}_{part}"
        for amount in ("actual_cost", "priced_cost", "reference_cost", "savings")
        for part in ("whole", "nanos", "attos")
    ),
)
_JSON = json.JSONEncoder(sort_keys=True).encode  # as the real path writes documents


def insert(db: sqlite3.Connection, table: str, names: list[str] | None = None) -> str:
    names = names or [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def adding(db: sqlite3.Connection, table: str, key: list[str]) -> str:
    """Insert a row of sums, or add them to the row already there."""
    added = ", ".join(f"{name} = {name} + excluded.{name}" for name in SUMS)
    conflict = ", ".join(key)
    return f"{insert(db, table, key + list(SUMS))} ON CONFLICT ({conflict}) DO UPDATE SET {added}"


def draw(rng: random.Random) -> tuple[str, str, int, Decimal, str]:
    """The next order of the benchmarks' mix: side, owner, units, limit price, time in force."""
    units = rng.randint(1, 50) * 100
    if rng.random() < 0.5:
        return "ask", "bench-seller", units, Decimal(f"0.000{rng.randint(500, 520)}"), "gtc"
    tif = rng.choice(["gtc", "ioc"])
    return "bid", "bench-buyer", units, Decimal(f"0.000{rng.randint(505, 525)}"), tif


class LeanMarket:
    """One market's book and its rows, written batch by batch."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.book = OrderBook(MODEL, UNIT)
        self.parties: dict[str, tuple[str, str | None, str | None, Decimal]] = {}
        self.sequence = 0
        self.orders = insert(db, "market_orders")
        self.fills = insert(db, "market_fills")
        self.usage = insert(db, "usage_records")
        self.events = insert(
            db,
            "market_feed_events",
            ["kind", "model", "unit_type", "subject_id", "payload", "created_at"],
        )
        self.daily = adding(
            db, "usage_rollups", ["party", "day", "model", "unit_type", "provider_id"]
        )
        self.total = adding(db, "usage_totals", ["party", "model", "unit_type", "provider_id"])
        db.execute(
            "INSERT INTO markets (model, unit_type, version, next_sequence, created_at) "
            "VALUES (?, ?, 0, 1, ?)",
            (MODEL, UNIT, datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")),
        )

    def batch(self, rng: random.Random, size: int) -> bytes:
        """Place ``size`` orders in one transaction; the pickled answers."""
        now = datetime.now(UTC)
        stamp = now.replace(tzinfo=None).isoformat(sep=" ")
        rows: dict[str, list[tuple[Any, ...]]] = {
            name: [] for name in ("orders", "fills", "usage", "events")
        }
        updates: dict[str, tuple[Any, ...]] = {}  # one update per resting order that traded
        sums: dict[tuple[str, str], list[Any]] = {}
        answers = [self._place(rng, now, stamp, rows, updates, sums) for _ in range(size)]
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE markets SET version = version + ?, next_sequence = ? "
            "WHERE model = ? AND unit_type = ?",
            (size, self.sequence + 1, MODEL, UNIT),
        )
        db.executemany(self.orders, rows["orders"])
        db.executemany(
            "UPDATE market_orders SET remaining_units = ?, status = ?, updated_at = ? "
            "WHERE order_id = ?",
            list(updates.values()),
        )
        db.executemany(self.fills, rows["fills"])
        db.executemany(self.usage, rows["usage"])
        db.executemany(self.events, rows["events"])
        daily, total = self._rollups(sums, now.date().isoformat())
        db.executemany(self.daily, daily)
        db.executemany(self.total, total)
        db.execute("COMMIT")
        return pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL)

    def _place(
        self,
        rng: random.Random,
        now: datetime,
        stamp: str,
        rows: dict[str, list[tuple[Any, ...]]],
        updates: dict[str, tuple[Any, ...]],
        sums: dict[tuple[str, str], list[Any]],
    ) -> tuple[int, bool, dict[str, Any]]:
        side, owner, units, price, tif = draw(rng)
        self.sequence += 1
        order_id = new_ordered_id("ord", now)
        provider = PROVIDER if side == "ask" else None
        buyer = owner if side == "bid" else None
        incoming = Order(order_id, side, owner, price, units, 1, tif, provider)
        result = self.book.submit(incoming, sequence=self.sequence)
        self.parties[order_id] = (owner, buyer, provider, price)
        order = result.order
        row = PlacedOrder(
            order_id=order_id,
            model=MODEL,
            unit_type=UNIT,
            side=side,
            owner_id=owner,
            buyer_id=buyer,
            provider_id=provider,
            units=units,
            remaining_units=order.remaining,
            limit_unit_price=price,
            currency="USD_CREDIT",
            min_fill_units=1,
            time_in_force=tif,
            status=order.status,
            sequence=self.sequence,
            source="api",
            routing_policy={},
            metadata_={},
            expires_at=None,
            cancel_reason=None,
            cancelled_by=None,
            created_at=now,
            updated_at=now,
        )
        # In the columns' order, each value as its column binds it on SQLite.
        rows["orders"].append(
            (
                row.order_id,
                row.model,
                row.unit_type,
                row.side,
                row.owner_id,
                row.buyer_id,
                row.provider_id,
                row.units,
                row.remaining_units,
                format(row.limit_unit_price, "f"),
                row.currency,
                row.min_fill_units,
                row.time_in_force,
                row.status,
                row.sequence,
                row.source,
                "{}",  # routing_policy
                "{}",  # metadata
                None,  # expires_at
                None,  # cancel_reason
                None,  # cancelled_by
                stamp,
                stamp,
            )
        )
        placed = {
            "side": side,
            "units": units,
            "limit_unit_price": plain(price),
            "time_in_force": tif,
            "status": order.status,
            "source": "api",
        }
        rows["events"].append(("order_placed", MODEL, UNIT, order_id, _JSON(placed), stamp))
        fills = [self._fill(fill, now, stamp, rows, updates, sums) for fill in result.fills]
        return self.sequence, True, {"order": order_read(row), "fills": fills}

    def _fill(
        self,
        fill: Fill,
        now: datetime,
        stamp: str,
        rows: dict[str, list[tuple[Any, ...]]],
        updates: dict[str, tuple[Any, ...]],
        sums: dict[tuple[str, str], list[Any]],
    ) -> dict[str, Any]:
        maker = fill.maker_order_id
        resting = self.book.orders.get(maker)
        updates[maker] = (
            (resting.remaining, "partially_filled", stamp, maker)
            if resting is not None
            else (0, "filled", stamp, maker)
        )
        bid, ask = self.parties[fill.bid_order_id], self.parties[fill.ask_order_id]
        fill_id = new_ordered_id("fill", now)
        placed = PlacedFill(
            fill_id=fill_id,
            model=MODEL,
            unit_type=UNIT,
            bid_order_id=fill.bid_order_id,
            ask_order_id=fill.ask_order_id,
            taker_order_id=fill.taker_order_id,
            buyer_owner_id=bid[0],
            buyer_id=bid[1],
            seller_owner_id=ask[0],
            provider_id=ask[2],
            units=fill.units,
            unit_price=fill.unit_price,
            created_at=now,
        )
        rows["fills"].append(
            (
                placed.fill_id,
                placed.model,
                placed.unit_type,
                placed.bid_order_id,
                placed.ask_order_id,
                placed.taker_order_id,
                placed.buyer_owner_id,
                placed.buyer_id,
                placed.seller_owner_id,
                placed.provider_id,
                placed.units,
                format(placed.unit_price, "f"),
                stamp,
            )
        )
        payload = {
            "bid_order_id": fill.bid_order_id,
            "ask_order_id": fill.ask_order_id,
            "provider_id": ask[2],
            "units": fill.units,
            "unit_price": plain(fill.unit_price),
        }
        rows["events"].append(("fill", MODEL, UNIT, fill_id, _JSON(payload), stamp))
        cost = exact(EXACT.multiply(fill.units, fill.unit_price))
        rows["usage"].append(
            (
                new_ordered_id("use", now),
                "market_fill",
                "market_fill",
                bid[0],
                ask[0],
                None,
                bid[1],
                None,
                None,
                MODEL,
                UNIT,
                ask[2],
                None,
                fill.bid_order_id,
                None,
                fill_id,
                fill.units,
                fill.units,
                format(exact(fill.unit_price), "f"),
                format(exact(EXACT.multiply(fill.units, bid[3])), "f"),
                format(cost, "f"),
                None,
                None,
                None,
                None,
                None,
                None,
                stamp,
            )
        )
        pair = sums.setdefault((bid[0], ask[0]), [0, 0, Decimal(0)])
        pair[0] += 1
        pair[1] += fill.units
        pair[2] = EXACT.add(pair[2], cost)
        return fill_read(placed)

    def _rollups(
        self, sums: dict[tuple[str, str], list[Any]], day: str
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The batch's sums per party (everyone, the buyer, the seller), by day and in all."""
        daily: dict[str, list[Any]] = {}
        for (buyer, seller), (records, units, cost) in sums.items():
            for party in dict.fromkeys(("*", buyer, seller)):
                sum_ = daily.setdefault(party, [0, 0, Decimal(0)])
                sum_[0] += records
                sum_[1] += units
                sum_[2] = EXACT.add(sum_[2], cost)
        unpriced = (0, 0, 0) * 3
        values = {
            party: (records, 0, units, units, *to_parts(cost), *unpriced)
            for party, (records, units, cost) in sorted(daily.items())
        }
        return (
            [(party, day, MODEL, UNIT, PROVIDER, *sums_) for party, sums_ in values.items()],
            [(party, MODEL, UNIT, PROVIDER, *sums_) for party, sums_ in values.items()],
        )


@contextmanager
def database() -> Iterator[sqlite3.Connection]:
    """A fresh migrated SQLite file with the server's pragmas (WAL, synchronous=FULL)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lean.db"
        upgrade(f"sqlite:///{path}")
        db = sqlite3.connect(path, isolation_level=None)
        try:
            pragmas = (
                "journal_mode=WAL",
                "synchronous=FULL",
                "foreign_keys=ON",
                "busy_timeout=30000",
                f"wal_autocheckpoint={WAL_BACKSTOP_PAGES}",
            )
            for pragma in pragmas:
                db.execute(f"PRAGMA {pragma}")
            yield db
        finally:
            db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1600)
    parser.add_argument(
        "--draws-only",
        action="store_true",
        help="only draw the orders, writing nothing: the yardstick's own share of a count",
    )
    args = parser.parse_args()
    if args.orders < 0:
        parser.error("--orders must be 0 or more")
    if args.draws_only:
        rng = random.Random(1)
        for _ in range(WARM_UP + args.orders):
            draw(rng)
        print(f"drew {WARM_UP} + {args.orders} orders")
        return
    with database() as db:
        market = LeanMarket(db)
        rng = random.Random(1)
        for count in (WARM_UP, args.orders):
            for start in range(0, count, BATCH):
                market.batch(rng, min(BATCH, count - start))
        written = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("market_orders", "market_fills", "usage_records", "market_feed_events")
        }
    placed = WARM_UP + args.orders
    print(f"placed {args.orders} orders in batches of {BATCH} after {WARM_UP} to warm up")
    print("  rows per order: " + ", ".join(f"{t} {n / placed:.2f}" for t, n in written.items()))


if __name__ == "__main__":
    main()

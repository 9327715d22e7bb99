"""The market writer alone, in process: orders per second and CPU per order by batch size.

Run: python bench/bench_market_writer.py [--seconds 4] [--batches 1,8,32] [--orders N]

Builds the app on a fresh SQLite file (WAL, synchronous=FULL), onboards one provider through the
API, then hands the writer batches of orders directly (no HTTP): the same mix as
bench_orders_http.py, half resting asks and half crossing bids. A batch of one shows the fixed
cost of a batch (its transaction, per-batch reads, the usage rollup, the commit); larger
batches show what each order adds. Prints wall and CPU time per order.

With ``--orders N`` it places 640 orders to warm up and then exactly N more, in batches of the
first ``--batches`` size (the last one smaller when the size does not divide the count), all
from one fixed seed, and times nothing: for an instruction counter, whose counts do not move
with the machine's speed the way times do. Instructions per order in batches of 16, counted by
valgrind:

    valgrind --tool=cachegrind --cache-sim=no \
        python bench/bench_market_writer.py --orders 1600 --batches 16
    valgrind --tool=cachegrind --cache-sim=no \
        python bench/bench_market_writer.py --orders 0 --batches 16

The difference of the two "I refs" totals, divided by 1,600 (the first run's extra orders). The
count includes the benchmark's own work: building each order's schema object and a future.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_orders_http import MODEL, setup_market
from flow_memory.app import create_app
from flow_memory.keys import service as keys
from flow_memory.kit.deps import Principal
from flow_memory.market.orders import PlaceOrder
from flow_memory.market.schemas import OrderCreate
from flow_memory.migrations import upgrade
from flow_memory.settings import Settings

BUYER = Principal("bench-buyer-key", "bench-buyer", frozenset({"inference:buy"}))
SELLER = Principal("bench-seller-key", "bench-seller", frozenset({"inference:sell"}))


def order_body(rng: random.Random, provider_id: str) -> tuple[Principal, OrderCreate]:
    units = rng.randint(1, 50) * 100
    if rng.random() < 0.5:
        ask = {"side": "ask", "provider_id": provider_id, "units": units}
        price = f"0.000{rng.randint(500, 520)}"
        body, principal = {**ask, "limit_unit_price": price}, SELLER
    else:
        tif = rng.choice(["gtc", "ioc"])
        bid = {"side": "bid", "units": units, "time_in_force": tif}
        body, principal = {**bid, "limit_unit_price": f"0.000{rng.randint(505, 525)}"}, BUYER
    full = {"model": MODEL, "unit_type": "token", **body}
    return principal, OrderCreate.model_validate(full)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument(
        "--orders",
        type=int,
        default=None,
        help="place exactly this many orders after a warm-up, timing nothing (for valgrind)",
    )
    args = parser.parse_args()
    try:
        batch_sizes = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error("--batches takes sizes separated by commas, such as 1,8,32")
    if min(batch_sizes) < 1:
        parser.error("--batches: every size must be 1 or more")
    if args.orders is not None and args.orders < 0:
        parser.error("--orders must be 0 or more")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'writer.db'}"
        upgrade(url)
        settings = Settings(database_url=url)
        app = create_app(settings)
        with app.state.session_factory.begin() as session:
            seller_key = keys.create_key(
                session,
                owner_id=SELLER.owner_id,
                scopes=["inference:sell", "inference:read"],
                label="bench",
                now=app.state.clock.now(),
            ).secret
        with TestClient(app) as client:
            provider_id = setup_market(client, seller_key)
            if args.orders is None:
                run(app, provider_id, args.seconds, batch_sizes)
            else:
                count(app, provider_id, args.orders, batch_sizes[0])


def place(app: Any, rng: random.Random, provider_id: str, size: int) -> None:
    """One batch of ``size`` orders, applied by the market writer; waits for every answer."""
    writer = app.state.market.writer  # the in-process market's
    batch: list[tuple[Any, Future[Any]]] = [
        (PlaceOrder(*order_body(rng, provider_id)), Future()) for _ in range(size)
    ]
    writer.apply(batch)
    for _, future in batch:
        future.result()


WARM_UP = 640


def count(app: Any, provider_id: str, orders: int, size: int) -> None:
    """Exactly ``orders`` orders after the warm-up, the same ones every run (a fixed seed)."""
    rng = random.Random(1)
    place_many(app, rng, provider_id, WARM_UP, size)
    place_many(app, rng, provider_id, orders, size)
    print(f"placed {orders} orders in batches of {size} after {WARM_UP} to warm up")


def place_many(app: Any, rng: random.Random, provider_id: str, orders: int, size: int) -> None:
    """``orders`` orders in batches of ``size``, the last one smaller if it must be."""
    for start in range(0, orders, size):
        place(app, rng, provider_id, min(size, orders - start))


def run(app: Any, provider_id: str, seconds: float, batch_sizes: list[int]) -> None:
    rng = random.Random(1)

    print("market writer alone (in process, SQLite WAL, synchronous=FULL)")
    for size in batch_sizes:
        placed = 0
        started, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            place(app, rng, provider_id, size)
            placed += size
        wall = time.perf_counter() - started
        used = time.process_time() - cpu
        print(
            f"  batches of {size:>3}: {placed / wall:8,.0f} orders/s  "
            f"{wall / placed * 1e6:7,.0f} us wall  {used / placed * 1e6:7,.0f} us CPU per order"
        )


if __name__ == "__main__":
    main()

"""Request-path CPU of one order, in process: a micro-benchmark, not the headline figure.

Run: python bench/bench_order_request_path.py [--requests 5000] [--rounds 5] [--via edge|stack]

Drives the real ASGI app (middleware, the order edge or the full stack, rendering, the access
log) with well-formed orders on one uvloop event loop, but the market is a stub that
answers at once with a realistic placed order: what is measured is the event loop's share of an
order, without the writer's thread, the database or the HTTP server. The headline figure stays
bench_orders_http.py against a real server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flow_memory.app import create_app
from flow_memory.keys.service import create_key
from flow_memory.kit.clock import SystemClock
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.migrations import upgrade
from flow_memory.settings import Settings

PATH = "/inference/market/orders"


def placed_answer() -> dict[str, Any]:
    """What the writer's command returns for a bid that filled against one ask."""
    now = datetime(2026, 6, 17, 12, 0, 0, 123456, tzinfo=UTC)
    order = {
        "order_id": "ord_vm6ei5yqscsmopcad24v",
        "side": "bid",
        "model": "bench-model",
        "unit_type": "token",
        "owner_id": "bench-buyer",
        "buyer_id": "bench-buyer",
        "provider_id": None,
        "units": 2500,
        "filled_units": 2500,
        "remaining_units": 0,
        "limit_unit_price": Decimal("0.000512"),
        "currency": "USD_CREDIT",
        "min_fill_units": 1,
        "time_in_force": "ioc",
        "status": "filled",
        "source": "api",
        "metadata": {},
        "expires_at": None,
        "cancel_reason": None,
        "created_at": now,
        "updated_at": now,
    }
    fill = {
        "fill_id": "fill_2x6f7cz3gq5wz5oqfbyd",
        "bid_order_id": order["order_id"],
        "ask_order_id": "ord_a4x3tq2u6qmrxq4l3mfv",
        "provider_id": "prov_kq4c3m2yq5fx6z3ptw6n",
        "units": 2500,
        "unit_price": Decimal("0.000505"),
        "created_at": now,
    }
    return {"order": order, "fills": [fill]}


class StubMarket:
    """Stands in for the market: answers every order at once, placing none."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    async def place(self, principal: Any, body: Any) -> Any:
        return self.answer


def build(database: Path) -> tuple[Any, str]:
    """The app over a fresh database, and a trading key for it."""
    url = f"sqlite:///{database}"
    upgrade(url)
    with make_session_factory(make_engine(url)).begin() as session:
        secret = create_key(
            session,
            owner_id="bench-buyer",
            scopes=["inference:buy", "inference:read"],
            label="bench",
            now=SystemClock().now(),
        ).secret
    app = create_app(Settings(database_url=url))
    app.state.market = StubMarket(placed_answer())
    return app, secret


async def drive(
    app: Any, secret: str, requests: int, rounds: int, query: bytes
) -> tuple[list[float], set[int]]:
    """CPU seconds per order of each round of ``requests`` orders, and the statuses seen."""
    body = json.dumps(
        {
            "side": "bid",
            "model": "bench-model",
            "unit_type": "token",
            "units": 2500,
            "limit_unit_price": "0.000512",
            "time_in_force": "ioc",
        },
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"authorization", f"Bearer {secret}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "POST",
            "root_path": "",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": query,
            "headers": headers,
            "state": {},
            "app": app,
        }
        await app(scope, receive, send)

    for _ in range(200):  # warm the caches (key cache, name checks) first
        await one()
    per_order = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            await one()
        per_order.append((time.process_time() - started) / requests)
    return per_order, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5_000, help="orders per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--via",
        choices=("edge", "stack"),
        default="edge",
        help="edge: well-formed orders (the edge answers); stack: a query string sends them on",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app, secret = build(Path(tmp) / "bench.db")
        query = b"via=stack" if args.via == "stack" else b""
        per_order, statuses = uvloop.run(drive(app, secret, args.requests, args.rounds, query))
    print("order request path in process (stub market; a micro-benchmark)")
    print(f"  via:          {args.via}")
    print(f"  orders:       {args.rounds} rounds of {args.requests} (statuses {sorted(statuses)})")
    print(f"  CPU:          {min(per_order) * 1e6:,.1f} us per order (best round)")
    print(f"                {statistics.median(per_order) * 1e6:,.1f} us per order (median round)")


if __name__ == "__main__":
    main()

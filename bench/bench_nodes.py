"""Acknowledged orders per second with one and with several `flow-memory serve` processes on
one PostgreSQL database, all orders in one market or spread over several.

Run: python bench/bench_nodes.py [--clients 32] [--seconds 10] [--nodes 1,3] [--markets 1,8]

The database is FLOW_MEMORY_BENCH_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/flow_memory_bench). It is dropped and created afresh
before each run, so every run starts from an empty book; scripts/ensure-postgres starts the
machine's PostgreSQL first when it is stopped. Each client keeps one connection to one node
(clients are dealt to the nodes in turn) and places orders in a loop, waiting for each
acknowledgement: half resting asks, half crossing bids, each in a market drawn at random.
Answers other than 201 and broken connections are counted, never raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import create_key, onboard_provider, running_server  # noqa: E402
from bench.bench_orders_http import percentile, read_response  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/flow_memory_bench"


@dataclass(frozen=True)
class Seller:
    secret: str
    provider_id: str
    model: str


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # of every answered request
    acknowledged: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # status or exception name
    elapsed: float = 0.0


def fresh_database(url: str) -> None:
    """Start PostgreSQL when stopped, then drop and create the benchmark's database."""
    ready = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres"), url], check=False)
    if ready.returncode != 0:
        raise SystemExit(f"PostgreSQL is not available for {url}")
    name = url.rsplit("/", 1)[1].split("?")[0]
    for statement in (
        f'drop database if exists "{name}" with (force)',
        f'create database "{name}"',
    ):
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", statement],
            check=True,
            capture_output=True,
        )
    migrated = subprocess.run(
        [sys.executable, "-m", "flow_memory.cli", "db", "upgrade"],
        env={**os.environ, "FLOW_MEMORY_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    if migrated.returncode != 0:
        raise SystemExit(f"db upgrade failed:\n{migrated.stderr}")


def order_request(rng: random.Random, host: str, buyer: str, sellers: list[Seller]) -> bytes:
    """One POST /inference/market/orders as raw HTTP/1.1 bytes, in a market drawn at random."""
    seller = rng.choice(sellers)
    body: dict[str, object] = {"model": seller.model, "unit_type": "token"}
    if rng.random() < 0.5:
        body.update(
            side="ask",
            provider_id=seller.provider_id,
            units=rng.randint(1, 50) * 100,
            limit_unit_price=f"0.000{rng.randint(500, 520)}",
        )
        key = seller.secret
    else:
        body.update(
            side="bid",
            units=rng.randint(1, 50) * 100,
            limit_unit_price=f"0.000{rng.randint(505, 525)}",
            time_in_force=rng.choice(["gtc", "ioc"]),
        )
        key = buyer
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /inference/market/orders HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def client_loop(
    base: str, buyer: str, sellers: list[Seller], stop: float, outcome: Outcome, seed: int
) -> None:
    """A keep-alive connection to one node; a broken one is counted and opened again."""
    rng = random.Random(seed)
    host, port = base.removeprefix("http://").split(":")
    requests = [order_request(rng, f"{host}:{port}", buyer, sellers) for _ in range(64)]
    clock = time.perf_counter
    sent = 0
    while clock() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError as error:
            outcome.refused[type(error).__name__] += 1
            await asyncio.sleep(0.1)
            continue
        try:
            while clock() < stop:
                request = requests[sent % len(requests)]
                sent += 1
                started = clock()
                writer.write(request)
                status = await asyncio.wait_for(read_response(reader), timeout=60)
                outcome.latencies.append(clock() - started)
                if status == 201:
                    outcome.acknowledged += 1
                else:
                    outcome.refused[str(status)] += 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            outcome.refused[type(error).__name__] += 1
        finally:
            writer.close()


async def load(
    bases: list[str], buyer: str, sellers: list[Seller], clients: int, seconds: float
) -> Outcome:
    outcome = Outcome()
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(
        *(
            client_loop(bases[n % len(bases)], buyer, sellers, stop, outcome, n)
            for n in range(clients)
        )
    )
    outcome.elapsed = time.perf_counter() - started
    return outcome


def run(url: str, *, nodes: int, markets: int, clients: int, seconds: float) -> Outcome:
    fresh_database(url)
    with ExitStack() as stack:
        servers = [stack.enter_context(running_server(url)) for _ in range(nodes)]
        env = servers[0].env
        buyer = create_key(env, "bench-buyer", "inference:buy,inference:read")
        sellers: list[Seller] = []
        with httpx.Client(base_url=servers[0].base_url, timeout=30) as client:
            for index in range(markets):
                # One seller per market: a seller's provider offers the one model it enrolled.
                secret = create_key(env, f"bench-seller-{index}", "inference:sell,inference:read")
                model = f"bench-model-{index}"
                provider_id = onboard_provider(
                    client,
                    secret,
                    model=model,
                    base_url="http://127.0.0.1:9/v1",
                    available_units=10**15 // 2,
                    ask_unit_price=0.001,
                )
                sellers.append(Seller(secret, provider_id, model))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(load([s.base_url for s in servers], buyer, sellers, clients, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--nodes", default="1,3", help="server processes, e.g. 1,3")
    parser.add_argument("--markets", default="1,8", help="markets the orders spread over, e.g. 1,8")
    args = parser.parse_args()
    url = os.environ.get("FLOW_MEMORY_BENCH_DATABASE_URL", DEFAULT_URL)
    node_counts = [int(n) for n in args.nodes.split(",")]
    market_counts = [int(m) for m in args.markets.split(",")]

    print(f"orders over HTTP, {args.clients} clients, {args.seconds:g} s a run, on {url}")
    header = (
        f"{'nodes':>5} {'markets':>7} {'acked':>8} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        "  not acknowledged"
    )
    print(header)
    print("-" * len(header))
    for markets in market_counts:
        for nodes in node_counts:
            outcome = run(
                url, nodes=nodes, markets=markets, clients=args.clients, seconds=args.seconds
            )
            latencies = outcome.latencies or [0.0]
            refused = ", ".join(f"{k}: {v}" for k, v in outcome.refused.most_common()) or "none"
            print(
                f"{nodes:>5} {markets:>7} {outcome.acknowledged:>8} "
                f"{outcome.acknowledged / outcome.elapsed:>9,.0f} "
                f"{percentile(latencies, 0.50) * 1000:>8.1f} "
                f"{percentile(latencies, 0.99) * 1000:>8.1f}  {refused}",
                flush=True,
            )


if __name__ == "__main__":
    main()

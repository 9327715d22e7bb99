"""Acknowledged orders per second over HTTP against a real server (SQLite, durable commits).

Run: python bench/bench_orders_http.py [--clients 32] [--seconds 20]

Each client places orders in a loop, waiting for each acknowledgement (the server commits
before it answers). The mix alternates resting asks and crossing bids, so the book keeps
matching. Prints acknowledged orders/s and latency percentiles measured per request.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import create_key, running_server

MODEL = "bench-model"


def setup_market(base: str, seller: str) -> str:
    headers = {"authorization": f"Bearer {seller}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        ref = client.post(
            "/inference/credential-refs",
            json={"credential_ref": "secret://inference/bench", "display_name": "bench"},
        ).json()
        provider = client.post(
            "/inference/providers/enroll",
            json={
                "provider_name": "Bench Provider",
                "base_url": "http://127.0.0.1:9/v1",
                "credential_ref_id": ref["credential_ref"]["credential_ref_id"],
                "supported_units": ["token"],
            },
        ).json()["provider"]
        pid = provider["provider_id"]
        token = client.post(f"/inference/providers/{pid}/pairing-token").json()["pairing_token"]
        client.post(
            f"/inference/providers/{pid}/heartbeat", headers={"x-flow-memory-pairing-token": token}
        ).raise_for_status()
        client.post(
            f"/inference/providers/{pid}/catalog",
            json={
                "catalog_version": "2026-01-01T00:00:00Z",
                "models": [
                    {
                        "model": MODEL,
                        "compatible_api": "chat_completions",
                        "unit_types": ["token"],
                        "context_window": 8192,
                    }
                ],
            },
        ).raise_for_status()
        client.post(
            f"/inference/providers/{pid}/capacity",
            json={
                "capacity_version": "2026-01-01T00:00:00Z",
                "inventory": [
                    {
                        "model": MODEL,
                        "unit_type": "token",
                        "available_units": 10**15 // 2,
                        "ask_unit_price": 0.001,
                        "expires_at": "2099-01-01T00:00:00Z",
                    }
                ],
            },
        ).raise_for_status()
        return str(pid)


async def client_loop(
    base: str,
    buyer: str,
    seller: str,
    provider_id: str,
    stop: float,
    latencies: list[float],
    errors: list[int],
    seed: int,
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.perf_counter() < stop:
            if rng.random() < 0.5:
                body = {
                    "side": "ask",
                    "provider_id": provider_id,
                    "model": MODEL,
                    "unit_type": "token",
                    "units": rng.randint(1, 50) * 100,
                    "limit_unit_price": f"0.000{rng.randint(500, 520)}",
                }
                key = seller
            else:
                body = {
                    "side": "bid",
                    "model": MODEL,
                    "unit_type": "token",
                    "units": rng.randint(1, 50) * 100,
                    "limit_unit_price": f"0.000{rng.randint(505, 525)}",
                    "time_in_force": rng.choice(["gtc", "ioc"]),
                }
                key = buyer
            started = time.perf_counter()
            response = await client.post(
                "/inference/market/orders", json=body, headers={"authorization": f"Bearer {key}"}
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                errors.append(response.status_code)


async def run(
    base: str, buyer: str, seller: str, provider_id: str, clients: int, seconds: float
) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(
        *(
            client_loop(base, buyer, seller, provider_id, stop, latencies, errors, seed)
            for seed in range(clients)
        )
    )
    return latencies, errors, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with running_server(args.database_url) as server:
        seller = create_key(server.env, "bench-seller", "inference:sell,inference:read")
        buyer = create_key(server.env, "bench-buyer", "inference:buy,inference:read")
        provider_id = setup_market(server.base_url, seller)
        latencies, errors, elapsed = asyncio.run(
            run(server.base_url, buyer, seller, provider_id, args.clients, args.seconds)
        )
    acked = len(latencies) - len(errors)
    print("orders over HTTP (real server, SQLite WAL, synchronous=FULL)")
    print(f"  clients:           {args.clients}")
    print(f"  duration:          {elapsed:.1f} s")
    print(f"  acknowledged:      {acked} orders ({len(errors)} errors)")
    print(f"  throughput:        {acked / elapsed:,.0f} orders/s")
    print(f"  latency p50:       {percentile(latencies, 0.50) * 1000:.2f} ms")
    print(f"  latency p99:       {percentile(latencies, 0.99) * 1000:.2f} ms")
    print(f"  latency mean:      {statistics.fmean(latencies) * 1000:.2f} ms")


if __name__ == "__main__":
    main()

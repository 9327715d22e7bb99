"""The HTTP stack's own ceiling on this machine, for reading the order figures against.

Run: python bench/bench_http_ceiling.py [--clients 32] [--seconds 5]

Starts a real server and drives three endpoints with the same kind of client the order
benchmark uses: no auth and no database (/healthz), auth only (the agent manifest), and
auth plus a read transaction (the feed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import create_key, running_server

PATHS = ("/healthz", "/inference/providers/agent/manifest", "/inference/market/feed?limit=1")


async def drive(base: str, key: str, path: str, clients: int, seconds: float) -> float:
    stop = time.perf_counter() + seconds
    done = 0

    async def loop() -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.perf_counter() < stop:
                response = await client.get(path, headers={"authorization": f"Bearer {key}"})
                response.raise_for_status()
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    with running_server() as server:
        key = create_key(server.env, "bench-reader", "inference:read")
        print(f"HTTP ceiling ({args.clients} clients, {args.seconds:.0f} s each)")
        for path in PATHS:
            rate = asyncio.run(drive(server.base_url, key, path, args.clients, args.seconds))
            print(f"  {path:<40} {rate:8,.0f} requests/s")


if __name__ == "__main__":
    main()

"""The HTTP stack's own ceiling on this machine, for reading the order figures against.

Run: python bench/bench_http_ceiling.py [--clients 32] [--seconds 5]

Starts a real server and drives three endpoints with the same client the order benchmark
uses (keep-alive connections on plain asyncio streams, so the client costs little CPU): no auth
and no database (/healthz), auth only (the agent manifest), and auth plus a read transaction
(the feed). Prints requests/s and the server's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import create_key, running_server
from bench.bench_orders_http import process_cpu_seconds, read_response

PATHS = ("/healthz", "/inference/providers/agent/manifest", "/inference/market/feed?limit=1")


async def drive(base: str, key: str, path: str, clients: int, seconds: float) -> tuple[int, float]:
    """Requests answered and the seconds it took."""
    stop = time.perf_counter() + seconds
    host, port = base.removeprefix("http://").split(":")
    request = (
        f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {key}\r\n\r\n"
    ).encode()
    done = 0

    async def loop() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop:
                writer.write(request)
                status = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
                done += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return done, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    with running_server() as server:
        key = create_key(server.env, "bench-reader", "inference:read")
        print(f"HTTP ceiling ({args.clients} clients, {args.seconds:.0f} s each)")
        for path in PATHS:
            cpu = process_cpu_seconds(server.pid)
            done, elapsed = asyncio.run(
                drive(server.base_url, key, path, args.clients, args.seconds)
            )
            rate = done / elapsed
            per_request = (process_cpu_seconds(server.pid) - cpu) / max(done, 1) * 1e6
            print(
                f"  {path:<40} {rate:8,.0f} requests/s  "
                f"(server CPU {per_request:,.0f} us per request)"
            )


if __name__ == "__main__":
    main()

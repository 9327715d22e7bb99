"""Acknowledged orders per second over HTTP against a real server (SQLite, durable commits).

Run: python bench/bench_orders_http.py [--clients 32] [--seconds 20]

Each client places orders in a loop, waiting for each acknowledgement (the server commits
before it answers). The mix alternates resting asks and crossing bids, so the book keeps
matching. Prints acknowledged orders/s and latency percentiles measured per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import create_key, onboard_provider, running_server

MODEL = "bench-model"


def setup_market(client: httpx.Client, seller: str) -> str:
    """One provider selling plenty of the benchmark's model; its id."""
    return onboard_provider(
        client,
        seller,
        model=MODEL,
        base_url="http://127.0.0.1:9/v1",
        available_units=10**15 // 2,
        ask_unit_price=0.001,
    )


def order_request(
    rng: random.Random, host: str, buyer: str, seller: str, provider_id: str
) -> bytes:
    """One POST /inference/market/orders as raw HTTP/1.1 bytes: half resting asks, half bids."""
    if rng.random() < 0.5:
        body: dict[str, object] = {
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
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /inference/market/orders HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (content-length framed) and return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    await reader.readexactly(length)
    return status


async def raw_client_loop(
    base: str,
    buyer: str,
    seller: str,
    provider_id: str,
    stop: float,
    latencies: list[float],
    errors: list[int],
    seed: int,
) -> None:
    """A keep-alive connection on plain asyncio streams: little client CPU per request."""
    rng = random.Random(seed)
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    requests = [order_request(rng, f"{host}:{port}", buyer, seller, provider_id) for _ in range(64)]
    clock = time.perf_counter
    record = latencies.append
    sent = 0
    try:
        while clock() < stop:
            request = requests[sent % len(requests)]
            sent += 1
            started = clock()
            writer.write(request)
            status = await read_response(reader)
            record(clock() - started)
            if status != 201:
                errors.append(status)
    finally:
        writer.close()


async def httpx_client_loop(
    base: str,
    buyer: str,
    seller: str,
    provider_id: str,
    stop: float,
    latencies: list[float],
    errors: list[int],
    seed: int,
) -> None:
    """The earlier load generator: one httpx.AsyncClient per client (costs far more CPU)."""
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
    base: str,
    buyer: str,
    seller: str,
    provider_id: str,
    clients: int,
    seconds: float,
    client_kind: str = "raw",
) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    loop = raw_client_loop if client_kind == "raw" else httpx_client_loop
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(
        *(
            loop(base, buyer, seller, provider_id, stop, latencies, errors, seed)
            for seed in range(clients)
        )
    )
    return latencies, errors, time.perf_counter() - started


def process_cpu_seconds(pid: int, task: int | None = None) -> float:
    """User plus system CPU a process (or one of its threads) has used so far (Linux /proc)."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    fields = Path(path).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU the server has used so far: its event loop (the main thread), its other threads,
    and its child processes (the market process, when the market runs in one)."""
    everything = process_cpu_seconds(pid)
    loop = process_cpu_seconds(pid, task=pid)
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {
        "event loop thread": loop,
        "other threads": everything - loop,
        "market process": sum(process_cpu_seconds(int(child)) for child in children),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="raw: keep-alive asyncio sockets (default); httpx: the earlier, heavier client",
    )
    parser.add_argument(
        "--client-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the load generator's event loop: uvloop (default, as the server's) leaves more of "
        "the machine to the server than asyncio's own",
    )
    parser.add_argument(
        "--market",
        choices=("process", "in-server"),
        default="process",
        help="process: the market writer in a process of its own, as `serve` runs it (default); "
        "in-server: in the server's process (FLOW_MEMORY_MARKET_PROCESS=false)",
    )
    args = parser.parse_args()
    market_process = "true" if args.market == "process" else "false"
    with running_server(
        args.database_url, {"FLOW_MEMORY_MARKET_PROCESS": market_process}
    ) as server:
        seller = create_key(server.env, "bench-seller", "inference:sell,inference:read")
        buyer = create_key(server.env, "bench-buyer", "inference:buy,inference:read")
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            provider_id = setup_market(client, seller)
        print(f"server pid {server.pid} (for a profiler)", flush=True)
        server_cpu = server_cpu_seconds(server.pid)
        client_cpu = time.process_time()
        loop_factory = uvloop.new_event_loop if args.client_loop == "uvloop" else None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            latencies, errors, elapsed = runner.run(
                run(
                    server.base_url,
                    buyer,
                    seller,
                    provider_id,
                    args.clients,
                    args.seconds,
                    args.client,
                )
            )
        server_cpu = {
            part: seconds - server_cpu[part]
            for part, seconds in server_cpu_seconds(server.pid).items()
        }
        client_cpu = time.process_time() - client_cpu
    acked = len(latencies) - len(errors)
    print("orders over HTTP (real server, SQLite WAL, synchronous=FULL)")
    print(f"  clients:           {args.clients} ({args.client} client on {args.client_loop})")
    print(f"  market writer:     {args.market}")
    print(f"  duration:          {elapsed:.1f} s")
    print(f"  acknowledged:      {acked} orders ({len(errors)} errors)")
    print(f"  throughput:        {acked / elapsed:,.0f} orders/s")
    print(f"  latency p50:       {percentile(latencies, 0.50) * 1000:.2f} ms")
    print(f"  latency p99:       {percentile(latencies, 0.99) * 1000:.2f} ms")
    print(f"  latency mean:      {statistics.fmean(latencies) * 1000:.2f} ms")
    total = sum(server_cpu.values())
    print(f"  server CPU:        {total:.1f} s ({total / max(acked, 1) * 1e6:,.0f} us per order)")
    for part, seconds in server_cpu.items():
        per_order = seconds / max(acked, 1) * 1e6
        print(f"    {part + ':':<18} {seconds:.1f} s ({per_order:,.0f} us per order)")
    print(f"  client CPU:        {client_cpu:.1f} s")


if __name__ == "__main__":
    main()

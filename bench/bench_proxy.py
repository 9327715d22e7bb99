"""Proxy overhead: the same fast local upstream called directly and through Flow Memory.

    python bench/bench_proxy.py [--clients 32] [--seconds 8] [--paced-fraction 0.5] [--models 1]
                                [--charges true|false]

A minimal keep-alive HTTP/1.1 model server (asyncio, fixed answers, in its own process) plays
the provider. A real `flow-memory serve` process on SQLite routes `POST /v1/chat/completions`
to it. The load generator speaks raw HTTP/1.1 over keep-alive sockets from a third process.
Each phase runs for ``--seconds``; the direct and proxied phases alternate in one run so they
see the same machine.

Printed, side by side for the direct and the proxied path:
- saturation (closed loop): 1 client, then ``--clients`` clients each sending its next call as
  soon as the last is answered. The proxied throughput is the highest sustained throughput;
  the latency there is mostly queueing, since every client always has a call waiting.
- paced (open loop): ``--clients`` clients together offering a fixed rate, ``--paced-fraction``
  of the proxied saturation throughput, each on its own schedule. Latency is measured from each
  call's scheduled send time, so a call held up behind a slow one counts its wait (no
  coordinated omission). This is the added latency at that concurrency below saturation. The
  first half second of each paced phase (fresh connections) runs but is not counted.
- the added time to first byte of a streamed answer at one client.

With ``--models N`` the proxy serves N models, each listed by a provider of its own (all at the
same upstream), and every client asks for them in turn: the proxy then keeps N default routes
per buyer, each selected and refreshed on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import create_key, free_port, onboard_provider, running_server

MODEL = "bench-proxy-model"
CHAT = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
STREAM_EVENTS = [
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
     "choices": [{"index": 0, "delta": {"content": word}}]}
    for word in ("one ", "two ", "three")
] + [
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": [],
     "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
]  # fmt: skip


# -- the fast upstream ---------------------------------------------------------------------


async def _serve_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length) if length else b""
            if b'"stream":true' in body.replace(b" ", b""):
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                for event in STREAM_EVENTS:
                    data = b"data: " + json.dumps(event).encode() + b"\n\n"
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                    await writer.drain()
                done = b"data: [DONE]\n\n"
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(CHAT), CHAT)
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _run_upstream(port: int) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_serve_upstream, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_upstream(port: int) -> multiprocessing.Process:
    """Run the upstream in its own process, as a provider's model server would be: it then
    shares no GIL with the load generator."""
    process = multiprocessing.get_context("spawn").Process(
        target=_run_upstream, args=(port,), daemon=True
    )
    process.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=b"{}", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError("upstream did not start")


# -- the raw load generator ------------------------------------------------------------------


def request_bytes(port: int, path: str, body: bytes, token: str | None) -> bytes:
    auth = f"authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"{auth}content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader, on_first_byte: Callable[[], None]) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
    }
    if b"content-length" in headers:
        on_first_byte()
        await reader.readexactly(int(headers[b"content-length"]))
        return status
    first = True
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if first:
            on_first_byte()
            first = False
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status
        await reader.readexactly(size + 2)


async def load(
    port: int, payload: bytes | list[bytes], clients: int, seconds: float
) -> tuple[list[float], list[float], int]:
    """Latencies and times to first byte (ms) of every call in ``seconds``, and the errors
    (several payloads: each client sends them in turn, starting at its own)."""
    payloads = payload if isinstance(payload, list) else [payload]
    latencies: list[float] = []
    first_bytes: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def one_client(index: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                marks: list[float] = []
                writer.write(payloads[index % len(payloads)])
                index += 1
                status = await read_response(reader, lambda m=marks: m.append(time.perf_counter()))
                ended = time.perf_counter()
                if status != 200:
                    errors += 1
                    continue
                latencies.append((ended - started) * 1000)
                first_bytes.append((marks[0] - started) * 1000)
        finally:
            writer.close()

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies, first_bytes, errors


# The first moments of a paced phase (fresh connections, their first calls) are not counted.
PACED_WARMUP_SECONDS = 0.5


async def paced(
    port: int, payload: bytes | list[bytes], clients: int, rate: float, seconds: float
) -> tuple[list[float], list[float], int]:
    """Open loop: ``clients`` connections together offering ``rate`` calls a second, each on a
    fixed schedule, for ``PACED_WARMUP_SECONDS`` and then ``seconds``. Returns, for the calls
    after the warm-up, latencies from the scheduled send time (ms), how late each call was sent
    (ms: the generator's own lag plus waiting behind the connection's previous call), and the
    errors."""
    payloads = payload if isinstance(payload, list) else [payload]
    latencies: list[float] = []
    lateness: list[float] = []
    errors = 0
    period = clients / rate  # one client's interval between calls
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    start = time.perf_counter() + 0.05
    counted = start + PACED_WARMUP_SECONDS
    end = counted + seconds

    async def one_client(index: int) -> None:
        nonlocal errors
        reader, writer = connections[index]
        scheduled = start + index / rate
        turn = index
        try:
            while scheduled < end:
                wait = scheduled - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                sent = time.perf_counter()
                writer.write(payloads[turn % len(payloads)])
                turn += 1
                status = await read_response(reader, lambda: None)
                ended = time.perf_counter()
                if status != 200:
                    errors += 1
                elif scheduled >= counted:
                    latencies.append((ended - scheduled) * 1000)
                    lateness.append((sent - scheduled) * 1000)
                scheduled += period
        finally:
            writer.close()

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies, lateness, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def model_names(count: int) -> list[str]:
    return [MODEL] if count == 1 else [f"{MODEL}-{index}" for index in range(count)]


def setup_providers(base: str, seller: str, upstream_port: int, models: list[str]) -> None:
    """A provider of its own for each model, all at the one upstream."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for index, model in enumerate(models):
            onboard_provider(
                client,
                seller,
                model=model,
                base_url=f"http://127.0.0.1:{upstream_port}/v1",
                available_units=10**12,
                ask_unit_price=0.000001,
                reference_unit_price=0.000002,
                name=f"Bench Provider {index}",
            )


def report(label: str, latencies: list[float], seconds: float, errors: int) -> dict[str, float]:
    figures = {
        "rps": len(latencies) / seconds,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
    }
    print(
        f"  {label:<10} {figures['rps']:9.0f} calls/s   p50 {figures['p50']:7.2f} ms   "
        f"p99 {figures['p99']:7.2f} ms   errors {errors}"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--charges",
        choices=("true", "false"),
        default="true",
        help="charge each call to its payer's ledger account (the server's default: true)",
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--paced-fraction",
        type=float,
        default=0.5,
        help="offered rate of the paced phase, as a fraction of the proxied saturation rate",
    )
    parser.add_argument(
        "--models", type=int, default=1, help="models served, each by a provider of its own"
    )
    args = parser.parse_args()
    models = model_names(args.models)
    upstream_port = free_port()
    upstream = start_upstream(upstream_port)
    env = {"FLOW_MEMORY_LOG_LEVEL": "warning", "FLOW_MEMORY_LEDGER_CHARGES": args.charges}
    with running_server(extra_env=env) as server:
        seller = create_key(server.env, "bench-seller", "inference:sell,inference:read")
        buyer = create_key(server.env, "bench-buyer", "inference:proxy")
        setup_providers(server.base_url, seller, upstream_port, models)
        proxy_port = int(server.base_url.rsplit(":", 1)[1])
        plain = json.dumps(
            {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        ).encode()
        per_model = [
            request_bytes(
                proxy_port,
                "/v1/chat/completions",
                json.dumps({"model": m, "messages": [{"role": "user", "content": "hi"}]}).encode(),
                buyer,
            )
            for m in models
        ]
        streamed = json.dumps(
            {"model": models[0], "messages": [{"role": "user", "content": "hi"}], "stream": True}
        ).encode()
        direct = request_bytes(upstream_port, "/v1/chat/completions", plain, None)
        proxied = (
            per_model
            if len(models) > 1
            else request_bytes(proxy_port, "/v1/chat/completions", plain, buyer)
        )
        warm = asyncio.run(load(proxy_port, proxied, 4, 2.0))
        assert warm[0], f"the proxy answered no call ({warm[2]} errors)"
        print(
            f"load {os.getloadavg()[0]:.2f}; {args.clients} clients, {args.seconds:.0f} s a phase,"
            f" {len(models)} model(s), ledger charges {args.charges}"
        )
        print("SATURATION (closed loop: each client sends its next call as soon as answered)")
        saturation = 0.0
        for clients in (1, args.clients):
            print(f"{clients} concurrent client(s), non-streamed chat:")
            d_lat, _, d_err = asyncio.run(load(upstream_port, direct, clients, args.seconds))
            p_lat, _, p_err = asyncio.run(load(proxy_port, proxied, clients, args.seconds))
            d = report("direct", d_lat, args.seconds, d_err)
            p = report("proxied", p_lat, args.seconds, p_err)
            saturation = max(saturation, p["rps"])
            queueing = "   (mostly queueing: the proxy is saturated)" if clients > 1 else ""
            print(
                f"  added      p50 {p['p50'] - d['p50']:.2f} ms   p99 {p['p99'] - d['p99']:.2f} ms"
                + queueing
            )
        print(f"  highest sustained throughput through the proxy: {saturation:.0f} calls/s")
        rate = saturation * args.paced_fraction
        print(
            f"PACED (open loop: {args.clients} clients together offering {rate:.0f} calls/s, "
            f"{args.paced_fraction:.0%} of the proxied saturation; latency from each call's "
            f"scheduled send time; the first {PACED_WARMUP_SECONDS} s of each phase, on fresh "
            "connections, not counted)"
        )
        d_lat, d_late, d_err = asyncio.run(
            paced(upstream_port, direct, args.clients, rate, args.seconds)
        )
        p_lat, p_late, p_err = asyncio.run(
            paced(proxy_port, proxied, args.clients, rate, args.seconds)
        )
        d = report("direct", d_lat, args.seconds, d_err)
        p = report("proxied", p_lat, args.seconds, p_err)
        print(
            f"  added      p50 {p['p50'] - d['p50']:.2f} ms   p99 {p['p99'] - d['p99']:.2f} ms"
            f"   (sent late, p99: direct {percentile(d_late, 0.99):.2f} ms, "
            f"proxied {percentile(p_late, 0.99):.2f} ms)"
        )
        print("1 client, streamed chat, time to first byte:")
        direct_s = request_bytes(upstream_port, "/v1/chat/completions", streamed, None)
        proxied_s = request_bytes(proxy_port, "/v1/chat/completions", streamed, buyer)
        _, d_first, _ = asyncio.run(load(upstream_port, direct_s, 1, args.seconds / 2))
        _, p_first, p_err = asyncio.run(load(proxy_port, proxied_s, 1, args.seconds / 2))
        added = statistics.median(p_first) - statistics.median(d_first)
        print(
            f"  direct p50 {statistics.median(d_first):.2f} ms   proxied p50 "
            f"{statistics.median(p_first):.2f} ms   added {added:.2f} ms   errors {p_err}"
        )
        print(f"load after: {os.getloadavg()[0]:.2f}")
    upstream.terminate()


if __name__ == "__main__":
    main()

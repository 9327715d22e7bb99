"""The job board over HTTP: jobs posted and awarded per second with bidding agents, the time
from a post to its first automatic bid, and the award's delay after a bid window closes.

    python bench/bench_jobs.py [--bidders 20] [--models 10] [--seconds 8] [--requesters 8]
                               [--inflight 1] [--database-url URL]

A real `flow-memory serve` process (SQLite by default). Each bidding agent is a seller with a
key, an enrolled provider and a bid stake (each wins many jobs a second and runs none, so the
server lifts the cap on jobs held at once: ``FLOW_MEMORY_EARNED_CAPACITY_ENFORCED=false``); it
follows `GET /inference/jobs/stream` (server-sent events, read with the provider agent's own
stream client) and bids on every posted job whose model hint is a model it serves (``--models``
models, so each job draws ``bidders / models`` bids). The agents run in a process of their own,
the requesters in another. With ``--inflight 1`` an agent waits for each bid's answer before it
reads the next event, so past some rate each agent's round trips, not the server, bound the
throughput; ``--inflight N`` keeps up to N bids in flight.

Printed:
- throughput: requesters post fixed-mode jobs (the first eligible bid wins at once) as fast as
  they are answered for ``--seconds``; jobs awarded per second, from the first post to the last
  award (every posted job must be awarded), and the server process's CPU time a job (the
  steadier figure on a shared machine: the server's one interpreter is the bound).
- post to first bid: jobs posted at a steady 10 a second; for each, the time from sending the
  post to the first bid's answer at an agent (both on this machine's monotonic clock): p50, p99.
- award delay: auction jobs with a 1-second bid window, posted 20 a second, each bid on; for
  each, the server's ``award.awarded_at`` minus the job's ``bids_close_at``: p50, p99, max.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import create_key, running_server
from flow_memory.agent.jobs_client import decode_event, parse_events

JOBS = "/inference/jobs"
PROMPT = "Write one sentence about sealed-bid auctions."


def model_name(index: int) -> str:
    return f"bench-jobs-model-{index}"


# -- the bidding agents (a process of their own) ----------------------------------------------


def _enroll(client: httpx.Client, name: str) -> str:
    ref = client.post(
        "/inference/credential-refs",
        json={"credential_ref": "secret://inference/bench-jobs", "display_name": name},
    )
    ref.raise_for_status()
    enrolled = client.post(
        "/inference/providers/enroll",
        json={
            "provider_name": name,
            "base_url": "https://bench-jobs.example.net",
            "credential_ref_id": ref.json()["credential_ref"]["credential_ref_id"],
            "supported_units": ["token"],
        },
    )
    enrolled.raise_for_status()
    client.post("/inference/stakes", json={"amount": "1"}).raise_for_status()  # bids need one
    return str(enrolled.json()["provider"]["provider_id"])


def _agent(
    base: str, key: str, model: str, inflight: int, ready: Any, bids: Any, stop: Any
) -> None:
    """Follow the stream; bid on each posted job for ``model``, up to ``inflight`` bids awaiting
    their answers at once; report each bid's answer."""
    client = httpx.Client(
        base_url=base,
        headers={"authorization": f"Bearer {key}"},
        timeout=120,
        limits=httpx.Limits(max_connections=inflight + 1),
    )
    provider_id = _enroll(client, f"bench agent {key[-6:]}")

    def bid(job_id: str) -> None:
        answer = client.post(
            f"{JOBS}/{job_id}/bids",
            json={
                "provider_id": provider_id,
                "model": model,
                "price": "0.01",
                "estimated_time_s": 5,
            },
        )
        won = answer.status_code in (200, 201) and answer.json()["bid"]["status"] == "won"
        bids.put((job_id, time.monotonic(), answer.status_code, won))

    with (
        ThreadPoolExecutor(max_workers=inflight) as bidding,
        client.stream(
            "GET",
            f"{JOBS}/stream",
            params={"kind": "job.posted", "model_hint": model},  # only what it bids on
            headers={"accept": "text/event-stream"},
            timeout=httpx.Timeout(30, read=None),
        ) as response,
    ):
        response.raise_for_status()
        ready.release()
        for event in parse_events(response.iter_lines()):
            if stop.is_set():
                return
            try:
                kind, job_id, payload = decode_event(event)
            except ValueError:
                continue
            if kind != "job.posted" or payload.get("model_hint") != model:
                continue
            if inflight == 1:
                bid(job_id)  # the answer before the next event, as a simple agent bids
            else:
                bidding.submit(bid, job_id)


def _agents(
    base: str, keys: list[str], models: int, inflight: int, ready: Any, bids: Any, stop: Any
) -> None:
    threads = [
        threading.Thread(
            target=_agent,
            args=(base, key, model_name(index % models), inflight, ready, bids, stop),
            daemon=True,
        )
        for index, key in enumerate(keys)
    ]
    for thread in threads:
        thread.start()
    stop.wait()


# -- the requesters ----------------------------------------------------------------------------


def _job(model: str, mode: str, window: int) -> dict[str, Any]:
    return {
        "request": {"model_hint": model, "prompt": PROMPT, "max_tokens": 64},
        "economics": {"max_price": "0.05", "payment_mode": mode},
        "bid_window_seconds": window,
        "deadline_seconds": 300,
    }


def _post(client: httpx.Client, model: str, mode: str, window: int) -> tuple[str, float]:
    sent = time.monotonic()
    answer = client.post(JOBS, json=_job(model, mode, window))
    answer.raise_for_status()
    return str(answer.json()["job"]["job_id"]), sent


def _drain(bids: Any, into: dict[str, list[tuple[float, int, bool]]], until: float) -> None:
    while time.monotonic() < until:
        try:
            job_id, at, status, won = bids.get(timeout=0.05)
        except Exception:
            continue
        into.setdefault(job_id, []).append((at, status, won))


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user and system), from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(
    base: str, key: str, models: int, requesters: int, seconds: float, bids: Any, pid: int
) -> None:
    posted: dict[str, float] = {}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def post_loop(offset: int) -> None:
        client = httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=120
        )
        count = offset
        while time.monotonic() < end:
            job_id, sent = _post(client, model_name(count % models), "fixed", 60)
            with lock:
                posted[job_id] = sent
            count += requesters

    threads = [threading.Thread(target=post_loop, args=(n,)) for n in range(requesters)]
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    seen: dict[str, list[tuple[float, int, bool]]] = {}
    _drain(bids, seen, end)
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        won = {job for job, answers in seen.items() if any(w for _, _, w in answers)}
        if won >= set(posted):
            break
        _drain(bids, seen, time.monotonic() + 0.5)
    won_at = [
        min(at for at, _, w in answers if w)
        for answers in seen.values()
        if any(w for _, _, w in answers)
    ]
    awarded = len([job for job in posted if any(w for _, _, w in seen.get(job, []))])
    cpu = cpu_seconds(pid) - cpu_before
    elapsed = max(won_at) - started
    print(
        f"throughput: {len(posted)} fixed-mode jobs posted by {requesters} requesters, "
        f"{awarded} awarded; {awarded / elapsed:.0f} jobs posted and awarded a second "
        f"({elapsed:.1f} s from the first post to the last award); the server's CPU "
        f"{cpu / max(1, awarded) * 1000:.2f} ms a job ({cpu / elapsed * 100:.0f} % of a core)"
    )


def first_bid(base: str, key: str, models: int, bids: Any, count: int = 40) -> None:
    client = httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=120)
    posted: dict[str, float] = {}
    seen: dict[str, list[tuple[float, int, bool]]] = {}
    for index in range(count):
        job_id, sent = _post(client, model_name(index % models), "auction", 30)
        posted[job_id] = sent
        _drain(bids, seen, sent + 0.1)
    _drain(bids, seen, time.monotonic() + 2)
    delays = sorted(
        (min(at for at, _, _ in seen[job]) - sent) * 1000
        for job, sent in posted.items()
        if job in seen
    )
    print(
        f"post to first automatic bid: {len(delays)} of {count} jobs bid on; "
        f"p50 {statistics.median(delays):.1f} ms, p99 {_p99(delays):.1f} ms"
    )


def award_delay(base: str, key: str, models: int, bids: Any, count: int = 100) -> None:
    client = httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=120)
    posted: list[str] = []
    seen: dict[str, list[tuple[float, int, bool]]] = {}
    for index in range(count):
        job_id, sent = _post(client, model_name(index % models), "auction", 1)
        posted.append(job_id)
        _drain(bids, seen, sent + 0.05)
    _drain(bids, seen, time.monotonic() + 3)
    delays: list[float] = []
    unawarded = 0
    for job_id in posted:
        job = client.get(f"{JOBS}/{job_id}").json()["job"]
        if job["award"] is None:
            unawarded += 1
            continue
        closes = datetime.fromisoformat(job["bids_close_at"])
        awarded = datetime.fromisoformat(job["award"]["awarded_at"])
        delays.append((awarded - closes).total_seconds() * 1000)
    delays.sort()
    print(
        f"award delay after the window closes: {len(delays)} auction jobs awarded by the timer "
        f"({unawarded} not awarded); p50 {statistics.median(delays):.1f} ms, "
        f"p99 {_p99(delays):.1f} ms, max {delays[-1]:.1f} ms"
    )


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bidders", type=int, default=20)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--requesters", type=int, default=8)
    parser.add_argument(
        "--inflight",
        type=int,
        default=1,
        help="bids an agent keeps awaiting their answers at once (1: the answer before the next)",
    )
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    # Each agent wins many jobs a second and runs none: the cap on the jobs an identity holds at
    # once, earned by completing them, is lifted (its check still runs).
    capacity = {"FLOW_MEMORY_EARNED_CAPACITY_ENFORCED": "false"}
    with running_server(args.database_url, capacity) as server:
        print(f"server: {server.database_url.split(':')[0]}, {os.cpu_count()} cores")
        buyer = create_key(server.env, "bench-jobs-requester", "inference:buy,inference:read")
        keys = [
            create_key(server.env, f"bench-jobs-agent-{n}", "inference:sell,inference:read")
            for n in range(args.bidders)
        ]
        context = multiprocessing.get_context("spawn")
        ready, bids, stop = context.Semaphore(0), context.Queue(), context.Event()
        agents = context.Process(
            target=_agents,
            args=(server.base_url, keys, args.models, args.inflight, ready, bids, stop),
        )
        agents.start()
        for _ in keys:
            if not ready.acquire(timeout=120):
                raise SystemExit("the bidding agents did not connect")
        print(
            f"{args.bidders} bidding agents following the stream, {args.models} models, "
            f"up to {args.inflight} bids in flight each"
        )
        try:
            throughput(
                server.base_url, buyer, args.models, args.requesters, args.seconds, bids, server.pid
            )
            first_bid(server.base_url, buyer, args.models, bids)
            award_delay(server.base_url, buyer, args.models, bids)
        finally:
            stop.set()
            agents.join(timeout=10)
            if agents.is_alive():
                agents.kill()
        print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

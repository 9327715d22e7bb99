"""Ledger transfers per second: in process (one transfer per transaction, and the usage writer's
batched charges) and over HTTP (admin grants, the one route that moves credits by itself).

    python bench/bench_ledger.py [--transfers 2000] [--batch 500] [--clients 8] [--seconds 8]

In process runs on a fresh SQLite file (or FLOW_MEMORY_BENCH_DATABASE_URL); over HTTP starts a
real `flow-memory serve` on SQLite. Every run ends with `check_ledger` on what it wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import create_key, running_server
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.ledger import service
from flow_memory.ledger.charges import Charge, charge_many
from flow_memory.ledger.domain import Cause, Posting
from flow_memory.ledger.reconcile import check_ledger
from flow_memory.migrations import upgrade

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def in_process(url: str, transfers: int, batch: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        with factory.begin() as session:
            payer = service.open_account(session, holder_id="bench-payer", now=NOW).account_id
            payee = service.open_account(session, holder_id="bench-payee", now=NOW).account_id
        started = time.perf_counter()
        for n in range(transfers):
            with factory.begin() as session:
                service.transfer(
                    session,
                    key=f"bench:{n}",
                    postings=[Posting(payer, Decimal("-0.001")), Posting(payee, Decimal("0.001"))],
                    cause=Cause("bench", str(n)),
                    now=NOW,
                )
        single = transfers / (time.perf_counter() - started)
        print(f"in process, one transfer a transaction:   {single:8.0f} transfers/s")
        charges = [
            Charge(f"use_bench{n}", f"payer-{n % 50}", f"payee-{n % 7}", Decimal("0.00001"))
            for n in range(transfers)
        ]
        started = time.perf_counter()
        for start in range(0, len(charges), batch):
            with factory.begin() as session:
                charge_many(session, charges[start : start + batch], now=NOW)
        batched = transfers / (time.perf_counter() - started)
        print(f"in process, charges in batches of {batch:<5}: {batched:8.0f} transfers/s")
        with factory() as session:
            check = check_ledger(session)
        print("  " + "; ".join(check.report()))
    finally:
        engine.dispose()


async def over_http(base: str, admin: str, clients: int, seconds: float) -> None:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    headers = {"authorization": f"Bearer {admin}"}

    async def one(index: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            n = 0
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                answer = await client.post(
                    "/inference/ledger/grants",
                    json={
                        "holder_id": f"bench-holder-{index % 16}",
                        "amount": "0.5",
                        "idempotency_key": f"bench-{index}-{n}",
                    },
                )
                n += 1
                if answer.status_code != 201:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(one(i) for i in range(clients)))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
    print(
        f"over HTTP, grants from {clients} clients:     {len(latencies) / seconds:8.0f} "
        f"transfers/s   p50 {statistics.median(ordered) if ordered else 0:.1f} ms   "
        f"p99 {p99:.1f} ms   errors {errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("FLOW_MEMORY_BENCH_DATABASE_URL") or (
            f"sqlite:///{Path(folder) / 'ledger.db'}"
        )
        in_process(url, args.transfers, args.batch)
    with running_server(extra_env={"FLOW_MEMORY_LOG_LEVEL": "warning"}) as server:
        admin = create_key(server.env, "bench-operator", "inference:admin")
        asyncio.run(over_http(server.base_url, admin, args.clients, args.seconds))


if __name__ == "__main__":
    main()

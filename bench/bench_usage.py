"""Usage analytics at scale: the summary over a million records, and the NDJSON export.

Run: python bench/bench_usage.py [--records 1000000] [--iterations 30] [--quick]
     [--database FILE] [--export-only] [--exports 3]

``--database`` keeps the seeded SQLite file and reuses it when it already holds the records
(seeding a million records and rebuilding their rollups takes about two minutes);
``--export-only`` skips the summary figures and times only the NDJSON export, ``--exports``
times.

Seeds usage records straight into a fresh SQLite database (30 days, 20 models, 500 providers
each serving two models, 50 agents, 5 workspaces, 10 buyers, one record in ten without a
reference price), rebuilds the daily rollup from them with the product's own repair function,
then measures:

1. ``summarize`` in process, for several filter shapes (p50/p95/max), with where it read from;
2. ``GET /inference/analytics/usage`` against a real server process (p50/p95);
3. ``GET /inference/analytics/export?format=ndjson`` of every record from a real server
   process: records/s as the client receives them, and the server's peak resident memory
   (VmHWM) before and after the export.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import create_key, running_server
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.kit.deps import Principal
from flow_memory.kit.scopes import ADMIN, READ
from flow_memory.migrations import upgrade
from flow_memory.usage import rollup, service
from flow_memory.usage.models import UsageRecord

START = datetime(2026, 5, 18, tzinfo=UTC)
DAYS = 30
MODELS = [f"bench-model-{i:02d}" for i in range(20)]
PROVIDERS = [f"prov_bench{i:04d}" for i in range(500)]
PROVIDER_MODELS = {p: (MODELS[i % 20], MODELS[(i * 7 + 3) % 20]) for i, p in enumerate(PROVIDERS)}
AGENTS = [f"agent-{i:02d}" for i in range(50)]
BUYERS = [f"buyer-{i}" for i in range(10)]
PRICES = [Decimal(f"0.000000{n}") for n in range(50, 100)]
REFERENCE = Decimal("0.000001")


def seed(database_url: str, records: int) -> float:
    engine = make_engine(database_url)
    rng = random.Random(7)
    started = time.perf_counter()
    span = DAYS * 86_400
    with engine.begin() as connection:
        batch: list[dict[str, Any]] = []
        for n in range(records):
            provider = rng.choice(PROVIDERS)
            units = rng.randrange(1_000, 200_000)
            price = rng.choice(PRICES)
            priced = n % 10 != 0
            cost = units * price
            reference_cost = units * REFERENCE if priced else None
            batch.append(
                {
                    "usage_id": f"use_bench{n:012d}",
                    "source": "market_fill",
                    "decision": "market_fill",
                    "owner_id": BUYERS[n % 10],
                    "seller_owner_id": f"seller-{int(provider[-4:]) // 5}",
                    "workspace_id": f"workspace-{n % 5}",
                    "agent_id": AGENTS[n % 50],
                    "goal_id": None,
                    "task_id": f"task-{n % 1000}",
                    "model": PROVIDER_MODELS[provider][n % 2],
                    "unit_type": "token",
                    "provider_id": provider,
                    "route_id": None,
                    "order_id": f"ord_bench{n:012d}",
                    "reservation_id": None,
                    "fill_id": f"fill_bench{n:012d}",
                    "estimated_units": units,
                    "actual_units": units,
                    "unit_price": price,
                    "estimated_cost": cost,
                    "actual_cost": cost,
                    "reference_unit_price": REFERENCE if priced else None,
                    "reference_cost": reference_cost,
                    "savings": max(Decimal(0), reference_cost - cost) if priced else None,
                    "discount_bps": int((REFERENCE - price) / REFERENCE * 10_000)
                    if priced
                    else None,
                    "latency_ms": None,
                    "quality_score": None,
                    "created_at": START + timedelta(seconds=n * span // records),
                }
            )
            if len(batch) == 20_000:
                connection.execute(insert(UsageRecord), batch)
                batch = []
        if batch:
            connection.execute(insert(UsageRecord), batch)
    seeded = time.perf_counter() - started
    with make_session_factory(engine).begin() as session:
        started = time.perf_counter()
        rollups = rollup.rebuild_rollups(session)
    rebuilt = time.perf_counter() - started
    engine.dispose()
    print(f"seeded {records:,} records in {seeded:.1f} s")
    print(f"rebuilt {rollups:,} rollup rows in {rebuilt:.1f} s ({records / rebuilt:,.0f} rec/s)")
    return seeded


def seeded_records(database_url: str) -> int:
    engine = make_engine(database_url, read_only=True)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    engine.dispose()
    return int(count)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary_shapes() -> list[tuple[str, Principal, service.UsageFilters]]:
    admin = Principal("bench", "operator", frozenset({ADMIN}))
    buyer = Principal("bench", BUYERS[3], frozenset({READ}))
    day = START + timedelta(days=10)
    return [
        ("admin, no filter", admin, service.UsageFilters()),
        ("admin, one model", admin, service.UsageFilters(model=MODELS[4])),
        ("admin, one provider", admin, service.UsageFilters(provider_id=PROVIDERS[42])),
        ("one buyer, no filter", buyer, service.UsageFilters()),
        (
            "admin, 7 whole days",
            admin,
            service.UsageFilters(since=day, until=day + timedelta(days=7)),
        ),
        (
            "admin, 7 days cut mid-day",
            admin,
            service.UsageFilters(
                since=day + timedelta(hours=13), until=day + timedelta(days=7, hours=2)
            ),
        ),
        ("admin, one agent", admin, service.UsageFilters(agent_id=AGENTS[7])),
        ("admin, one task", admin, service.UsageFilters(task_id="task-123")),
    ]


def bench_summary(database_url: str, iterations: int) -> None:
    engine = make_engine(database_url, read_only=True)
    factory = make_session_factory(engine)
    print()
    print(
        f"{'summary (in process)':<30}{'from':>16}{'records':>11}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
    )
    for label, principal, filters in summary_shapes():
        timings: list[float] = []
        summary = None
        for _ in range(iterations):
            with factory() as session:
                started = time.perf_counter()
                summary = service.summarize(session, principal, filters)
                timings.append((time.perf_counter() - started) * 1000)
        assert summary is not None
        print(
            f"{label:<30}{summary.computed_from:>16}{summary.total.records:>11,}"
            f"{percentile(timings, 50):>9.1f}{percentile(timings, 95):>9.1f}"
            f"{max(timings):>9.1f}"
        )
    engine.dispose()


def peak_rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        line.split(":")[0]: int(line.split()[1]) / 1024
        for line in status.splitlines()
        if line.startswith(("VmHWM", "VmRSS"))
    }
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_http(
    database_url: str, iterations: int, records: int, *, summary: bool, exports: int
) -> None:
    with running_server(database_url=database_url) as server:
        key = create_key(server.env, "operator", "inference:admin")
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as client:
            if summary:
                timings: list[float] = []
                for _ in range(iterations):
                    started = time.perf_counter()
                    response = client.get("/inference/analytics/usage", params={"limit": 50})
                    timings.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                print()
                print(
                    f"GET /inference/analytics/usage (admin, no filter, 50 records): "
                    f"p50 {percentile(timings, 50):.1f} ms, p95 {percentile(timings, 95):.1f} ms"
                )
            for _ in range(exports):
                bench_export(client, server.pid, records)


def bench_export(client: httpx.Client, pid: int, records: int) -> None:
    """One NDJSON export of every record, timed as the client receives it."""
    rss_before, hwm_before = peak_rss_mb(pid)
    server_cpu = cpu_seconds(pid)
    client_cpu = time.process_time()
    started = time.perf_counter()
    first_byte = None
    lines = 0
    size = 0
    tail = b""
    with client.stream(
        "GET", "/inference/analytics/export", params={"format": "ndjson"}
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if first_byte is None:
                first_byte = time.perf_counter() - started
            lines += chunk.count(b"\n")
            size += len(chunk)
            tail = (tail + chunk)[-200:]
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    rss_after, hwm_after = peak_rss_mb(pid)
    exported = lines - 2
    print(
        f"NDJSON export: {exported:,} records ({size / 1e6:,.0f} MB) in {elapsed:.2f} s = "
        f"{exported / elapsed:,.0f} records/s; first byte after {first_byte or 0:.3f} s"
    )
    print(f"  footer: {tail.decode(errors='replace').strip().splitlines()[-1]}")
    print(
        f"  CPU: server {server_cpu:.2f} s ({server_cpu / max(exported, 1) * 1e6:.2f} us a "
        f"record), this client {client_cpu:.2f} s; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"  server memory: RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after; "
        f"peak (VmHWM) {hwm_before:.0f} MB before, {hwm_after:.0f} MB after"
    )
    if exported != records:
        raise SystemExit(f"exported {exported} records, expected {records}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="50,000 records, 5 iterations")
    parser.add_argument("--database", type=Path, help="keep the seeded file here and reuse it")
    parser.add_argument("--export-only", action="store_true", help="time only the export")
    parser.add_argument("--exports", type=int, default=1, help="how many exports to time")
    args = parser.parse_args()
    if args.quick:
        args.records, args.iterations = 50_000, 5
    with tempfile.TemporaryDirectory() as tmp:
        path = args.database or Path(tmp) / "usage.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        if seeded_records(url) == args.records:
            print(f"reused {path} ({args.records:,} records)")
        else:
            if seeded_records(url):
                raise SystemExit(f"{path} holds other records; remove it or pick another file")
            seed(url, args.records)
        if not args.export_only:
            bench_summary(url, args.iterations)
        bench_http(
            url, args.iterations, args.records, summary=not args.export_only, exports=args.exports
        )


if __name__ == "__main__":
    main()

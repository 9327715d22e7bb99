"""Deployments: what a call through a deployment adds, and the royalty report at scale.

    python bench/bench_deployments.py calls [--seconds 6] [--rounds 4] [--clients 8]
    python bench/bench_deployments.py royalties [--calls 1000000] [--days 365] [--versions 100]
                                                [--publishers 50] [--database-url URL]
                                                [--skip-usage] [--requests 40]

``calls``: a real ``flow-memory serve`` process on SQLite in front of the fast local upstream of
``bench/bench_proxy.py`` (its own process). One provider serves the model, and its catalog names
the published model version, so the same upstream answers both paths: a plain call
(``model: "<name>"``) and a call through a deployment of an agent and that model
(``model: "dep/<owner>/<name>"``: the agent's system prompt and a parameter applied, the usage
record naming the deployment and versions, two royalty transfers a call in the usage writer).
Phases alternate, plain then deployed, ``--rounds`` times, one client in a closed loop (the aim:
at most 0.2 ms more at p50), then ``--clients`` clients in a closed loop (each path's highest
throughput), then paced together at a share of the lower one (open loop).

``royalties``: ``--calls`` calls through deployments spread over ``--days`` days, each pinning
one of ``--versions`` agent versions and one of as many model versions of ``--publishers``
publishers, are seeded straight into the database: their usage records (unless
``--skip-usage``) and the royalty days the usage writer would have added them to (its own
upsert, ``flow_memory.deployments.repository.add_royalty_days``). A real server then answers
``GET /inference/royalties`` with each filter ``--requests`` times (the aim: p95 at most
150 ms), and the export. On SQLite a temporary file; with ``--database-url`` a PostgreSQL
database whose tables are dropped first (name one kept for benchmarks).
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
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import create_key, free_port, onboard_provider, running_server
from bench.bench_proxy import MODEL, load, paced, percentile, request_bytes, start_upstream

PUBLISHER = "benchpub"
MODEL_SLUG = f"{PUBLISHER}/bench-model"
AGENT_SLUG = f"{PUBLISHER}/bench-agent"


# -- calls -------------------------------------------------------------------------------------


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    if answer.status_code != status:
        raise RuntimeError(f"{answer.request.url.path}: {answer.status_code} {answer.text}")
    return answer.json()


def publish_and_deploy(base: str, env: dict[str, str], upstream_port: int) -> tuple[str, str]:
    """A provider of MODEL whose catalog names the published model version; an agent and that
    model published, and deployed by the buyer. Returns the buyer's key and the deployment's
    model name."""
    seller = create_key(env, "bench-seller", "inference:sell,inference:read")
    publisher = create_key(env, PUBLISHER, "inference:publish,inference:read")
    buyer = create_key(env, "bench-buyer", "inference:proxy,inference:buy,inference:read")
    with httpx.Client(base_url=base, timeout=30) as client:
        headers = {"authorization": f"Bearer {publisher}"}
        model = {
            "slug": MODEL_SLUG,
            "display_name": "Bench model",
            "description": "The benchmark's model",
            "license": "apache-2.0",
            "pricing": {"model": "per_token", "price": 0.000001},
            "royalty_bps": 250,
            "model": {
                "modality": "chat",
                "compatible_api": ["chat_completions"],
                "context_window": 8192,
                "family": "bench",
            },
        }
        agent = {
            "slug": AGENT_SLUG,
            "display_name": "Bench agent",
            "description": "The benchmark's agent",
            "license": "mit",
            "pricing": {"model": "per_request", "price": 0.01},
            "royalty_bps": 500,
            "agent": {
                "requirements": {"apis": ["chat_completions"]},
                "config_template": {
                    "system_prompt": "Answer briefly.",
                    "parameters": {"temperature": 0.2},
                },
            },
        }
        _ok(client.post("/inference/registry/models", json=model, headers=headers), 201)
        _ok(client.post("/inference/registry/agents", json=agent, headers=headers), 201)
        provider_id = onboard_provider(
            client,
            seller,
            model=MODEL,
            base_url=f"http://127.0.0.1:{upstream_port}/v1",
            available_units=10**12,
            ask_unit_price=0.000001,
            reference_unit_price=0.000002,
        )
        entry = {
            "model": MODEL,
            "compatible_api": "chat_completions",
            "unit_types": ["token"],
            "context_window": 8192,
            "reference_unit_prices": {"token": 0.000002},
            "registry_model": {"slug": MODEL_SLUG, "version": "1.0.0"},
        }
        catalog = {"catalog_version": "2026-01-02T00:00:00Z", "models": [entry]}
        _ok(client.post(f"/inference/providers/{provider_id}/catalog", json=catalog))
        client.headers["authorization"] = f"Bearer {buyer}"
        deployed = _ok(
            client.post(
                "/inference/deployments",
                json={
                    "name": "bench-bot",
                    "agent": {"slug": AGENT_SLUG},
                    "model": {"slug": MODEL_SLUG},
                },
            ),
            201,
        )
    return buyer, str(deployed["deployment"]["model"])


def bench_calls(args: argparse.Namespace) -> None:
    upstream_port = free_port()
    upstream = start_upstream(upstream_port)
    env = {"FLOW_MEMORY_LOG_LEVEL": "warning", "FLOW_MEMORY_LEDGER_CHARGES": "true"}
    try:
        with running_server(extra_env=env) as server:
            buyer, deployed = publish_and_deploy(server.base_url, server.env, upstream_port)
            port = int(server.base_url.rsplit(":", 1)[1])
            payloads = {
                name: request_bytes(
                    port,
                    "/v1/chat/completions",
                    json.dumps(
                        {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                    ).encode(),
                    buyer,
                )
                for name, model in (("plain", MODEL), ("deployed", deployed))
            }
            for name, payload in payloads.items():
                warm = asyncio.run(load(port, payload, 2, 2.0))
                assert warm[0] and not warm[2], f"{name}: {warm[2]} errors while warming up"
            print(
                f"load {os.getloadavg()[0]:.2f}; {args.seconds:.0f} s a phase, {args.rounds} "
                f"rounds; ledger charges on; the deployment: {deployed}"
            )
            print("1 client, closed loop, non-streamed chat (p50 and p99 in ms):")
            added: list[float] = []
            for round_ in range(args.rounds):
                figures = {}
                for name, payload in payloads.items():
                    latencies, _, errors = asyncio.run(load(port, payload, 1, args.seconds))
                    assert not errors, f"{name}: {errors} errors"
                    figures[name] = (percentile(latencies, 0.5), percentile(latencies, 0.99))
                plain, deployed_ = figures["plain"], figures["deployed"]
                added.append(deployed_[0] - plain[0])
                print(
                    f"  round {round_ + 1}: plain p50 {plain[0]:.3f} p99 {plain[1]:.3f}   "
                    f"deployed p50 {deployed_[0]:.3f} p99 {deployed_[1]:.3f}   "
                    f"added p50 {added[-1]:+.3f} ms"
                )
            print(
                f"  added at p50: median of rounds {statistics.median(added):+.3f} ms "
                f"(min {min(added):+.3f}, max {max(added):+.3f}); aim <= 0.200 ms"
            )
            print(f"{args.clients} clients, closed loop (saturation: the highest throughput):")
            saturation: list[float] = []
            for name, payload in payloads.items():
                latencies, _, errors = asyncio.run(load(port, payload, args.clients, args.seconds))
                saturation.append(len(latencies) / args.seconds)
                print(
                    f"  {name:<9} {saturation[-1]:6.0f} calls/s   p50 "
                    f"{percentile(latencies, 0.5):.2f} ms   errors {errors}"
                )
            rate = min(saturation) * args.paced_fraction
            print(
                f"{args.clients} clients paced together at {rate:.0f} calls/s, "
                f"{args.paced_fraction:.0%} of the lower saturation (open loop; latency from "
                "each call's scheduled send time):"
            )
            for name, payload in payloads.items():
                latencies, late, errors = asyncio.run(
                    paced(port, payload, args.clients, rate, args.seconds)
                )
                print(
                    f"  {name:<9} p50 {percentile(latencies, 0.5):.3f} ms   p99 "
                    f"{percentile(latencies, 0.99):.3f} ms   sent late p99 "
                    f"{percentile(late, 0.99):.2f} ms   errors {errors}"
                )
            print(f"load after: {os.getloadavg()[0]:.2f}")
    finally:
        upstream.terminate()


# -- the royalty report ------------------------------------------------------------------------


def reset_postgresql(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _terms(args: argparse.Namespace) -> list[tuple[Any, Any]]:
    """``--versions`` (agent term, model term) pairs a deployment may pin."""
    from flow_memory.deployments.domain import RoyaltyTerm

    rng = random.Random(7)

    def term(kind: str, index: int) -> RoyaltyTerm:
        publisher = f"pub-{index % args.publishers}"
        return RoyaltyTerm(
            kind=kind,
            publisher_id=publisher,
            slug=f"{publisher}/{kind}-{index // args.publishers}",
            version=f"1.{index % 3}.0",
            version_id=f"regv_{kind}{index:05d}",
            royalty_bps=rng.choice((0, 100, 250, 500, 1000)),
        )

    agents = [term("agent", i) for i in range(args.versions)]
    models = [term("model", i) for i in range(args.versions)]
    return list(zip(agents, models, strict=True))


def seeded_calls(args: argparse.Namespace) -> Iterator[list[dict[str, Any]]]:
    """The calls' usage records (column values), in chunks, oldest first."""
    from flow_memory.usage.service import UsageInput, record_values

    rng = random.Random(11)
    pins = _terms(args)
    first = datetime(2026, 12, 7, tzinfo=UTC) - timedelta(days=args.days)
    step = timedelta(days=args.days) / args.calls
    chunk: list[dict[str, Any]] = []
    price = Decimal("0.00000075")
    for n in range(args.calls):
        agent, model = pins[rng.randrange(len(pins))]
        units = rng.randrange(10, 4000)
        if args.skip_usage:  # only what the royalty days need
            chunk.append(
                {
                    "actual_cost": units * price,
                    "created_at": first + step * n,
                    "_terms": (agent, model),
                }
            )
            if len(chunk) == 10_000:
                yield chunk
                chunk = []
            continue
        values = record_values(
            UsageInput(
                source="proxy",
                decision="selected",
                owner_id=f"buyer-{n % 97}",
                seller_owner_id=f"seller-{n % 13}",
                model=f"served-{model.version_id}",
                unit_type="token",
                provider_id=f"prov_bench{n % 13:02d}",
                estimated_units=units,
                actual_units=units,
                unit_price=price,
                reference_unit_price=Decimal("0.000001"),
                agent_id=f"buyer-{n % 97}",
                route_id="route_bench",
                latency_ms=12.5,
            ),
            now=first + step * n,
        )
        values["deployment_id"] = f"dep_bench{n % 500:04d}"
        values["agent_version_id"] = agent.version_id
        values["model_version_id"] = model.version_id
        values["_terms"] = (agent, model)
        chunk.append(values)
        if len(chunk) == 10_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed(database_url: str, args: argparse.Namespace) -> int:
    """Seed the calls and their royalty days; returns the royalty days written."""
    from flow_memory.deployments.domain import royalty_of
    from flow_memory.deployments.repository import add_royalty_days
    from flow_memory.kit.db import make_engine, make_session_factory
    from flow_memory.kit.money import attos_parts, to_attos
    from flow_memory.usage.service import insert_records

    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    days: dict[tuple[str, date, str], list[int]] = {}
    described: dict[str, Any] = {}
    started = time.perf_counter()
    for chunk in seeded_calls(args):
        for row in chunk:
            cost: Decimal = row["actual_cost"]
            cost_attos = to_attos(cost)
            for term in row.pop("_terms"):
                key = (term.publisher_id, row["created_at"].date(), term.version_id)
                sums = days.setdefault(key, [0, 0, 0])
                sums[0] += 1
                sums[1] += cost_attos
                sums[2] += to_attos(royalty_of(cost, term.royalty_bps))
                described[term.version_id] = term
        if not args.skip_usage:
            with factory.begin() as session:
                insert_records(session, chunk)
    rows = []
    for (publisher_id, day, version_id), (count, cost_attos, royalty_attos) in days.items():
        term = described[version_id]
        cost_parts, royalty_parts = attos_parts(cost_attos), attos_parts(royalty_attos)
        rows.append(
            {
                "publisher_id": publisher_id,
                "day": day,
                "version_id": version_id,
                "kind": term.kind,
                "slug": term.slug,
                "version": term.version,
                "royalty_bps": term.royalty_bps,
                "usage_records": count,
                "cost_whole": cost_parts[0],
                "cost_nanos": cost_parts[1],
                "cost_attos": cost_parts[2],
                "royalty_whole": royalty_parts[0],
                "royalty_nanos": royalty_parts[1],
                "royalty_attos": royalty_parts[2],
            }
        )
    for start in range(0, len(rows), 5_000):
        with factory.begin() as session:
            add_royalty_days(session, rows[start : start + 5_000])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    print(
        f"seeded {args.calls:,} calls ({'no usage records' if args.skip_usage else 'with usage'}"
        f" records) and {len(rows):,} royalty days in {time.perf_counter() - started:.0f} s"
    )
    return len(rows)


def report_queries(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, who asks, query) of the report requests measured."""
    last = date(2026, 12, 6)
    return [
        ("all publishers, newest 100", "admin", {}),
        ("all, limit 1000", "admin", {"limit": 1000}),
        ("all, offset 20000", "admin", {"offset": 20_000}),
        ("all, last 30 days", "admin", {"day_from": str(last - timedelta(days=29))}),
        (
            "all, one month a year ago",
            "admin",
            {
                "day_from": str(last - timedelta(days=360)),
                "day_to": str(last - timedelta(days=330)),
            },
        ),
        ("all, kind=model", "admin", {"kind": "model"}),
        ("all, one slug", "admin", {"slug": "pub-3/agent-1"}),
        ("one publisher (admin names it)", "admin", {"publisher_id": "pub-7"}),
        ("a publisher's own", "publisher", {}),
        ("a publisher's own, limit 1000", "publisher", {"limit": 1000}),
        ("a publisher's own, one slug", "publisher", {"slug": "pub-7/model-1"}),
        ("a publisher's own, last 7 days", "publisher", {"day_from": str(last - timedelta(6))}),
    ]


def bench_royalties(args: argparse.Namespace) -> None:
    if args.database_url:
        reset_postgresql(args.database_url)
    with running_server(args.database_url, {"FLOW_MEMORY_LOG_LEVEL": "warning"}) as server:
        admin = create_key(server.env, "bench-admin", "inference:admin,inference:read")
        publisher = create_key(server.env, "pub-7", "inference:publish,inference:read")
        seed(server.database_url, args)
        keys = {"admin": admin, "publisher": publisher}
        dialect = "postgresql" if args.database_url else "sqlite"
        print(f"load {os.getloadavg()[0]:.2f}; {dialect}; {args.requests} requests a query")
        every: list[float] = []
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            for label, who, query in report_queries(args):
                headers = {"authorization": f"Bearer {keys[who]}"}
                _ok(client.get("/inference/royalties", params=query, headers=headers))
                times: list[float] = []
                rows = 0
                for _ in range(args.requests):
                    started = time.perf_counter()
                    answer = client.get("/inference/royalties", params=query, headers=headers)
                    times.append((time.perf_counter() - started) * 1000)
                    rows = len(_ok(answer)["rows"])
                every += times
                print(
                    f"  {label:<34} rows {rows:5d}   p50 {percentile(times, 0.5):7.1f} ms   "
                    f"p95 {percentile(times, 0.95):7.1f} ms"
                )
            print(
                f"  every report request: p50 {percentile(every, 0.5):.1f} ms   "
                f"p95 {percentile(every, 0.95):.1f} ms   (aim: p95 <= 150 ms)"
            )
            for label, who, query in (
                ("export, a publisher's own", "publisher", {}),
                ("export, every publisher", "admin", {}),
            ):
                headers = {"authorization": f"Bearer {keys[who]}"}
                started = time.perf_counter()
                answer = client.get("/inference/royalties/export", params=query, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                lines = answer.text.count("\n")
                assert answer.status_code == 200, answer.text
                print(f"  {label:<34} lines {lines:6d}   {elapsed:7.0f} ms")
        print(f"load after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    calls = modes.add_parser("calls", help="a call through a deployment against a plain one")
    calls.add_argument("--seconds", type=float, default=6.0)
    calls.add_argument("--rounds", type=int, default=4)
    calls.add_argument("--clients", type=int, default=8)
    calls.add_argument(
        "--paced-fraction",
        type=float,
        default=0.5,
        help="the paced rate, as a fraction of the lower saturation throughput of the two",
    )
    report = modes.add_parser("royalties", help="the royalty report over many calls")
    report.add_argument("--calls", type=int, default=1_000_000)
    report.add_argument("--days", type=int, default=365)
    report.add_argument("--versions", type=int, default=100)
    report.add_argument("--publishers", type=int, default=50)
    report.add_argument("--requests", type=int, default=40)
    report.add_argument("--skip-usage", action="store_true")
    report.add_argument(
        "--database-url", default=None, help="a PostgreSQL database kept for benchmarks"
    )
    args = parser.parse_args()
    if args.mode == "calls":
        bench_calls(args)
    else:
        bench_royalties(args)


if __name__ == "__main__":
    main()

"""Quote latency over a deep market: 10,000 resting asks from 500 providers.

Run: python bench/bench_quote.py [--iterations N] [--quick] [--shape one-model|twenty-models]
     [--profile]

Two shapes, each seeded into its own SQLite file through the real service functions: per
provider a credential reference, enrollment, a pairing token redeemed by the first heartbeat, a
catalog with a reference price, a capacity snapshot (which becomes one resting ask) and manual
asks placed with ``place_order`` at varied prices. Every provider is eligible and every ask is
under the policy's ceiling and discount floor, so each candidate becomes a ranked quote:

- one model: 500 providers x 20 asks in one (model, unit_type) book, so a quote judges and
  ranks 10,000 candidates;
- 20 models: each provider serves 2 of 20 models with 10 asks each, so a quote (the model
  rotates per call) sees about 500 candidates.

For each shape two figures are timed, each call on its own with ``time.perf_counter``:

1. in process: ``flow_memory.routing.service.quote(session, body=..., settings=..., now=...)``
   with a fresh session from the read-only engine the server uses (no write lock), as the
   endpoint does; opening the session and rolling it back afterwards are outside the timing.
2. over HTTP: ``POST /inference/quote`` to a real ``flow-memory serve`` process on the same
   SQLite file, sequential requests from one persistent ``httpx.Client``; the timing ends when
   the whole response body has arrived (the client parses it afterwards, untimed).

Heartbeats are refreshed just before each phase so the route gates stay eligible under the
default 90 s heartbeat threshold; the printed quote and rejection counts show that they did.
``--profile`` runs the in-process quotes under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import create_key, running_server
from flow_memory.credentials.schemas import CredentialRefCreate
from flow_memory.credentials.service import create_credential_ref
from flow_memory.kit.clock import SystemClock
from flow_memory.kit.db import make_engine, make_session_factory
from flow_memory.kit.deps import Principal, transaction
from flow_memory.kit.scopes import SELL
from flow_memory.market.schemas import OrderCreate
from flow_memory.market.service import MarketRegistry, place_order, publish_capacity
from flow_memory.migrations import upgrade
from flow_memory.providers import service as providers
from flow_memory.providers.schemas import (
    CapacityItem,
    CatalogModel,
    ProviderCapacity,
    ProviderCatalog,
    ProviderEnroll,
    ProviderHeartbeat,
)
from flow_memory.routing.policy import Evaluation
from flow_memory.routing.schemas import PolicyRequest
from flow_memory.routing.service import quote
from flow_memory.settings import Settings

PROVIDERS = 500
ASKS = 10_000
ASK_UNITS = 1_000_000
ESTIMATED_UNITS = 250_000  # the contract example's request; every ask can serve it alone
REFERENCE_PRICE = Decimal("0.000001")
MAX_UNIT_PRICE = Decimal("0.0000008")
# Ask prices from 0.00000050 to 0.00000079: under the ceiling and 2,100-5,000 bps below the
# reference, so the policy's 500 bps floor admits them all.
PRICES = tuple(Decimal("0.00000050") + Decimal("0.00000001") * k for k in range(30))
PROVIDERS_PER_TRANSACTION = 50
SELLER = Principal(key_id="bench", owner_id="bench-seller", scopes=frozenset({SELL}))


@dataclass(frozen=True)
class Shape:
    name: str
    title: str
    models: tuple[str, ...]
    models_per_provider: int

    @property
    def asks_per_line(self) -> int:
        """Asks per (provider, model): one snapshot ask, the rest manual."""
        return ASKS // (PROVIDERS * self.models_per_provider)

    def served_by(self, provider: int) -> tuple[str, ...]:
        count = len(self.models)
        return tuple(self.models[(provider + k) % count] for k in range(self.models_per_provider))


SHAPES = {
    "one-model": Shape(
        "one-model",
        "one model: 500 providers x 20 asks in one book (10,000 candidates per quote)",
        ("bench-model",),
        1,
    ),
    "twenty-models": Shape(
        "twenty-models",
        "20 models: 500 providers x 2 models x 10 asks (about 500 candidates per quote)",
        tuple(f"bench-model-{n:02d}" for n in range(20)),
        2,
    ),
}


def policy_request(model: str) -> dict[str, Any]:
    """The contract's policy request, for ``model``."""
    return {
        "agent_id": "agent-research-1",
        "workspace_id": "workspace-default",
        "task_id": "task-42",
        "model": model,
        "unit_type": "token",
        "estimated_units": ESTIMATED_UNITS,
        "market_policy": {
            "allowed_models": [model],
            "max_unit_price": float(MAX_UNIT_PRICE),
            "min_discount_bps": 500,
            "allow_fallback": True,
            "allow_external_providers": True,
            "require_healthy_provider": True,
            "dry_run_required": True,
            "raw_credentials_allowed": False,
            "broadcast_enabled": False,
            "sensitive_signing_inputs_allowed": False,
        },
    }


# -- seeding --------------------------------------------------------------------------------


def seed_provider(
    session: Session,
    markets: MarketRegistry,
    *,
    shape: Shape,
    index: int,
    rng: random.Random,
    settings: Settings,
    now: datetime,
) -> str:
    """Enroll, pair and publish one provider, then place its manual asks; return its id."""
    models = shape.served_by(index)
    ref = create_credential_ref(
        session,
        principal=SELLER,
        now=now,
        body=CredentialRefCreate(
            credential_ref=f"secret://inference/bench-{index:03d}",
            display_name=f"Bench provider {index:03d} reference",
            allowed_models=list(models),
        ),
    )
    provider, _ = providers.enroll_provider(
        session,
        principal=SELLER,
        settings=settings,
        now=now,
        body=ProviderEnroll.model_validate(
            {
                "provider_name": f"Bench Provider {index:03d}",
                "base_url": f"http://127.0.0.1:{9000 + index}/v1",
                "credential_ref_id": ref.credential_ref_id,
                "supported_units": ["token"],
            }
        ),
    )
    provider_id = provider.provider_id
    _, secret = providers.issue_pairing_token(
        session, principal=SELLER, provider_id=provider_id, settings=settings, now=now
    )
    providers.record_heartbeat(
        session,
        principal=SELLER,
        provider_id=provider_id,
        body=ProviderHeartbeat(agent_version="bench"),
        pairing_token=secret,
        now=now,
    )
    providers.publish_catalog(
        session,
        principal=SELLER,
        provider_id=provider_id,
        now=now,
        body=ProviderCatalog(
            catalog_version=now,
            models=[
                CatalogModel(
                    model=model,
                    compatible_api="chat_completions",
                    unit_types=["token"],
                    context_window=128_000,
                    reference_unit_prices={"token": REFERENCE_PRICE},
                )
                for model in models
            ],
        ),
    )
    per_line = shape.asks_per_line
    # Published capacity covers every manual ask and leaves one ask's worth for the snapshot
    # ask, which each manual ask shrinks by its own size.
    publish_capacity(
        session,
        markets,
        principal=SELLER,
        provider_id=provider_id,
        settings=settings,
        now=now,
        body=ProviderCapacity(
            capacity_version=now,
            inventory=[
                CapacityItem(
                    model=model,
                    unit_type="token",
                    available_units=ASK_UNITS * per_line,
                    ask_unit_price=rng.choice(PRICES),
                    min_order_units=1000,
                    quality_score=round(rng.uniform(0.80, 1.0), 3),
                    reliability_score=round(rng.uniform(0.90, 1.0), 3),
                    expires_at=now + timedelta(days=1),
                )
                for model in models
            ],
        ),
    )
    for model in models:
        for _ in range(per_line - 1):
            place_order(
                session,
                markets,
                principal=SELLER,
                settings=settings,
                now=now,
                body=OrderCreate(
                    side="ask",
                    provider_id=provider_id,
                    model=model,
                    unit_type="token",
                    units=ASK_UNITS,
                    limit_unit_price=rng.choice(PRICES),
                ),
            )
    return provider_id


def seed(
    factory: sessionmaker[Session], shape: Shape, settings: Settings, seed_value: int
) -> list[str]:
    rng = random.Random(seed_value)
    markets = MarketRegistry()
    provider_ids: list[str] = []
    now = SystemClock().now()
    for start in range(0, PROVIDERS, PROVIDERS_PER_TRANSACTION):
        with transaction(factory) as session:
            for index in range(start, min(PROVIDERS, start + PROVIDERS_PER_TRANSACTION)):
                provider_ids.append(
                    seed_provider(
                        session,
                        markets,
                        shape=shape,
                        index=index,
                        rng=rng,
                        settings=settings,
                        now=now,
                    )
                )
    return provider_ids


def refresh_heartbeats(factory: sessionmaker[Session], provider_ids: list[str]) -> datetime:
    """Beat for every provider now, as the provider agents would; return the moment."""
    now = SystemClock().now()
    with transaction(factory) as session:
        for provider_id in provider_ids:
            providers.record_heartbeat(
                session,
                principal=SELLER,
                provider_id=provider_id,
                body=ProviderHeartbeat(agent_version="bench"),
                pairing_token=None,
                now=now,
            )
    return now


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Timing:
    latencies: list[float]
    elapsed: float
    quotes: tuple[int, int]  # fewest and most quotes in one answer
    rejections: tuple[int, int]
    response_bytes: int = 0


def cycle(shape: Shape) -> Iterator[str]:
    while True:
        yield from shape.models


def time_in_process(
    read_factory: sessionmaker[Session],
    shape: Shape,
    settings: Settings,
    now: datetime,
    iterations: int,
    warmup: int,
    profiler: cProfile.Profile | None,
) -> Timing:
    bodies = {m: PolicyRequest.model_validate(policy_request(m)) for m in shape.models}
    models = cycle(shape)
    latencies: list[float] = []
    quotes: list[int] = []
    rejections: list[int] = []
    clock = time.perf_counter

    def call(session: Session, body: PolicyRequest) -> Evaluation:
        return quote(session, body=body, settings=settings, now=now)

    run: Callable[[Session, PolicyRequest], Evaluation] = call
    if profiler is not None:

        def profiled(session: Session, body: PolicyRequest) -> Evaluation:
            result: Evaluation = profiler.runcall(call, session, body)
            return result

        run = profiled
    started = clock()
    for i in range(warmup + iterations):
        body = bodies[next(models)]
        session = read_factory()
        try:
            begin = clock()
            evaluation = run(session, body)
            latency = clock() - begin
        finally:
            session.rollback()
            session.close()
        if i == warmup - 1:
            started = clock()
        if i >= warmup:
            latencies.append(latency)
            quotes.append(len(evaluation.quotes))
            rejections.append(len(evaluation.rejected))
    return Timing(
        latencies,
        clock() - started,
        (min(quotes), max(quotes)),
        (min(rejections), max(rejections)),
    )


def time_http(base_url: str, key: str, shape: Shape, iterations: int, warmup: int) -> Timing:
    contents = {
        m: json.dumps(policy_request(m)).encode() for m in shape.models
    }  # encoded once: the client's work is not the server's
    models = cycle(shape)
    latencies: list[float] = []
    quotes: list[int] = []
    rejections: list[int] = []
    size = 0
    clock = time.perf_counter
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        started = clock()
        for i in range(warmup + iterations):
            begin = clock()
            response = client.post("/inference/quote", content=contents[next(models)])
            latency = clock() - begin
            if response.status_code != 200:
                raise RuntimeError(f"quote answered {response.status_code}: {response.text[:500]}")
            if i == warmup - 1:
                started = clock()
            if i >= warmup:
                latencies.append(latency)
                answer = response.json()
                quotes.append(len(answer["quotes"]))
                rejections.append(len(answer["rejected_routes"]))
                size = max(size, len(response.content))
        elapsed = clock() - started
    return Timing(
        latencies, elapsed, (min(quotes), max(quotes)), (min(rejections), max(rejections)), size
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(pair: tuple[int, int]) -> str:
    low, high = pair
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def report_row(label: str, timing: Timing) -> None:
    ms = [
        percentile(timing.latencies, q) * 1000 for q in (0.50, 0.95, 0.99)
    ] + [statistics.fmean(timing.latencies) * 1000]
    # Sequential calls, so quotes/s is calls over the summed call time.
    rate = len(timing.latencies) / sum(timing.latencies)
    print(
        f"  {label:<28} {len(timing.latencies):>6} "
        + " ".join(f"{v:>9.2f}" for v in ms)
        + f" {rate:>9.1f}   {spread(timing.quotes):>7} / {spread(timing.rejections)}"
    )


# -- main -----------------------------------------------------------------------------------


def bench_shape(
    shape: Shape,
    *,
    iterations: int,
    http_iterations: int,
    warmup: int,
    profile: bool,
    seed_value: int,
) -> None:
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / f'quote-{shape.name}.db'}"
        upgrade(url)
        engine = make_engine(url)
        read_engine = make_engine(url, read_only=True)
        try:
            factory = make_session_factory(engine)
            read_factory = make_session_factory(read_engine)
            began = time.perf_counter()
            provider_ids = seed(factory, shape, settings, seed_value)
            seeded = time.perf_counter() - began
            # Seeding leaves garbage a serving process would not have: keep the collector
            # from walking it during the timed calls.
            gc.collect()
            gc.freeze()

            print(f"== {shape.title}")
            print(
                f"seeded {ASKS:,} asks from {len(provider_ids)} providers through the services "
                f"in {seeded:.1f} s; policy: {ESTIMATED_UNITS:,} units, "
                f"max {MAX_UNIT_PRICE:f}, min discount 500 bps"
            )
            print(
                f"  {'':<28} {'calls':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} "
                f"{'mean ms':>9} {'quotes/s':>9}   quotes / rejections per answer"
            )
            profiler = cProfile.Profile() if profile else None
            now = refresh_heartbeats(factory, provider_ids)
            in_process = time_in_process(
                read_factory, shape, settings, now, iterations, warmup, profiler
            )
            report_row("in-process service.quote()", in_process)
            if http_iterations:
                refresh_heartbeats(factory, provider_ids)
                with running_server(url) as server:
                    key = create_key(server.env, "bench-planner", "inference:plan")
                    refresh_heartbeats(factory, provider_ids)
                    over_http = time_http(
                        server.base_url, key, shape, http_iterations, min(warmup, 3)
                    )
                report_row("HTTP POST /inference/quote", over_http)
                print(f"  response body {over_http.response_bytes / 1e6:.2f} MB")
            if profiler is not None:
                print(f"-- profile of the in-process quotes ({shape.name}), by cumulative time")
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats(30)
                stats.sort_stats("tottime").print_stats(20)
            print()
        finally:
            gc.unfreeze()
            engine.dispose()
            read_engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, default=None, help="in-process quotes to time per shape"
    )
    parser.add_argument(
        "--http-iterations",
        type=int,
        default=None,
        help="HTTP quotes to time per shape (0 skips HTTP)",
    )
    parser.add_argument("--quick", action="store_true", help="few iterations, for a smoke run")
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append", help="repeatable")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile the in-process quotes")
    args = parser.parse_args()
    iterations = args.iterations or (10 if args.quick else 200)
    http_iterations = (
        args.http_iterations if args.http_iterations is not None else (5 if args.quick else 60)
    )
    if iterations < 1 or http_iterations < 0:
        parser.error("--iterations must be positive and --http-iterations not negative")
    warmup = 2 if args.quick else 5
    for name in args.shape or ("one-model", "twenty-models"):
        bench_shape(
            SHAPES[name],
            iterations=iterations,
            http_iterations=http_iterations,
            warmup=warmup,
            profile=args.profile,
            seed_value=args.seed,
        )


if __name__ == "__main__":
    main()

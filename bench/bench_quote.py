"""Quote latency over a deep market: 10,000 resting asks from 500 providers.

Run: python bench/bench_quote.py [--seconds 6 | --iterations N] [--quick]
     [--shape one-model|twenty-models] [--database-dir DIR] [--profile]

Two shapes, each seeded into its own SQLite file through the real service functions: per
provider a credential reference, enrollment, a pairing token redeemed by the first heartbeat, a
catalog with a reference price, a capacity snapshot (which becomes one resting ask) and manual
asks placed through a market writer at varied prices. Every provider is eligible and every ask is
under the policy's ceiling and discount floor, so every provider is an eligible route; a quote
judges each provider's asks (collapsed into price levels), ranks every provider at its best level
and answers the best ``max_quotes`` (20 by default):

- one model: 500 providers x 20 asks in one (model, unit_type) book, so a quote judges 10,000
  asks from 500 providers;
- 20 models: each provider serves 2 of 20 models with 10 asks each, so a quote (the model
  rotates per call) sees about 50 providers and 500 asks.

A market's asks are read once per market version and kept (``flow_memory.routing.book``), and
its providers' offers (facts and derived health) at most once a second
(``flow_memory.routing.facts``, one per app); the timed quotes after the warm-up read the list
price, the market version and the holds, and the providers once in every second of calls.

For each shape two figures are timed, each call on its own with ``time.perf_counter``:

1. in process: ``flow_memory.routing.service.quote(session, body=..., settings=..., now=...,
   facts=...)`` with the system clock read per call and one ``RouteFacts`` kept as an app keeps
   it, each call with a fresh session from the read-only engine the server uses (no write lock),
   as the endpoint does; opening the session and rolling it back afterwards are outside the
   timing.
2. over HTTP: ``POST /inference/quote`` to a real ``flow-memory serve`` process on the same
   SQLite file, sequential requests from one persistent ``httpx.Client``; the timing ends when
   the whole response body has arrived (the client parses it afterwards, untimed).

Each phase runs for ``--seconds`` (at most 2,000 calls) after a short warm-up, or exactly
``--iterations`` calls when given. quotes/s is answered quote calls over their summed time
(one caller), not quote rows.
Heartbeats are refreshed just before each phase so the route gates stay eligible under the
default 90 s heartbeat threshold; the printed quote and rejection counts show that they did.

Seeding costs one to two minutes per shape (it places 10,000 orders one by one), so the shapes
are seeded side by side, one process each, before anything is timed. With ``--database-dir``
the seeded files are kept there and reused by later runs, which then only republish each
provider's catalog and capacity (so nothing is stale or expired).
``--profile`` runs the in-process quotes under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import pstats
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
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
from flow_memory.kit.scopes import PLAN, SELL
from flow_memory.market.orders import PlaceOrder
from flow_memory.market.schemas import OrderCreate
from flow_memory.market.snapshots import PublishCapacity
from flow_memory.market.writer import MarketWriter
from flow_memory.migrations import upgrade
from flow_memory.providers import service as providers
from flow_memory.providers.repository import find_by_name
from flow_memory.providers.schemas import (
    CapacityItem,
    CatalogModel,
    ProviderCapacity,
    ProviderCatalog,
    ProviderEnroll,
    ProviderHeartbeat,
)
from flow_memory.routing.facts import RouteFacts
from flow_memory.routing.schemas import PolicyRequest
from flow_memory.routing.service import quote
from flow_memory.settings import Settings

PROVIDERS = 500
ASKS = 10_000
ASK_UNITS = 1_000_000
ESTIMATED_UNITS = 250_000  # the contract example's request; every ask can serve it alone
REFERENCE_PRICE = Decimal("0.000001")
MAX_UNIT_PRICE = Decimal("0.0000008")
MIN_DISCOUNT_BPS = 500
# Ask prices from 0.00000050 to 0.00000079: under the ceiling and 2,100-5,000 bps below the
# reference, so the policy's discount floor admits them all.
PRICES = tuple(Decimal("0.00000050") + Decimal("0.00000001") * k for k in range(30))
PROVIDERS_PER_TRANSACTION = 50
MAX_TIMED_CALLS = 2_000
SEED_VERSION = 1  # bump when seeding changes, so kept databases are not reused
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


@dataclass(frozen=True)
class ProviderSpec:
    """One seeded provider, rebuilt identically from the seed on every run."""

    index: int
    models: tuple[str, ...]
    snapshot_prices: tuple[Decimal, ...]  # one per model
    manual_prices: tuple[tuple[Decimal, ...], ...]  # per model, asks_per_line - 1 each
    quality: float
    reliability: float

    @property
    def name(self) -> str:
        return f"Bench Provider {self.index:03d}"


def provider_specs(shape: Shape, seed: int) -> list[ProviderSpec]:
    specs = []
    for index in range(PROVIDERS):
        rng = random.Random(f"{seed}:{shape.name}:{index}")
        count = len(shape.models)
        models = tuple(shape.models[(index + k) % count] for k in range(shape.models_per_provider))
        specs.append(
            ProviderSpec(
                index=index,
                models=models,
                snapshot_prices=tuple(rng.choice(PRICES) for _ in models),
                manual_prices=tuple(
                    tuple(rng.choice(PRICES) for _ in range(shape.asks_per_line - 1))
                    for _ in models
                ),
                quality=round(rng.uniform(0.80, 1.0), 3),
                reliability=round(rng.uniform(0.90, 1.0), 3),
            )
        )
    return specs


PLANNER = "agent-research-1"


def policy_request(model: str) -> dict[str, Any]:
    """The contract's policy request, for ``model``."""
    return {
        "agent_id": PLANNER,
        "workspace_id": "workspace-default",
        "task_id": "task-42",
        "model": model,
        "unit_type": "token",
        "estimated_units": ESTIMATED_UNITS,
        "market_policy": {
            "allowed_models": [model],
            "max_unit_price": float(MAX_UNIT_PRICE),
            "min_discount_bps": MIN_DISCOUNT_BPS,
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


def enroll(session: Session, spec: ProviderSpec, *, settings: Settings, now: datetime) -> str:
    """Credential reference, enrollment, pairing and the first heartbeat; the provider id."""
    ref = create_credential_ref(
        session,
        principal=SELLER,
        now=now,
        body=CredentialRefCreate(
            credential_ref=f"secret://inference/bench-{spec.index:03d}",
            display_name=f"{spec.name} reference",
            allowed_models=list(spec.models),
        ),
    )
    provider, _ = providers.enroll_provider(
        session,
        principal=SELLER,
        settings=settings,
        now=now,
        body=ProviderEnroll.model_validate(
            {
                "provider_name": spec.name,
                "base_url": f"http://127.0.0.1:{9000 + spec.index}/v1",
                "credential_ref_id": ref.credential_ref_id,
                "supported_units": ["token"],
            }
        ),
    )
    _, secret = providers.issue_pairing_token(
        session, principal=SELLER, provider_id=provider.provider_id, settings=settings, now=now
    )
    providers.record_heartbeat(
        session,
        principal=SELLER,
        provider_id=provider.provider_id,
        body=ProviderHeartbeat(agent_version="bench"),
        pairing_token=secret,
        now=now,
    )
    return provider.provider_id


def publish_catalog(session: Session, spec: ProviderSpec, provider_id: str, now: datetime) -> None:
    """A catalog with a reference price for each of the provider's models."""
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
                for model in spec.models
            ],
        ),
    )


def publish_capacity(
    spec: ProviderSpec, provider_id: str, *, asks_per_line: int, now: datetime
) -> PublishCapacity:
    """Capacity whose snapshot becomes one ask a model: it covers every manual ask and leaves
    one ask's worth for the snapshot ask (each manual ask shrinks it by its own size)."""
    return PublishCapacity(
        SELLER,
        provider_id,
        ProviderCapacity(
            capacity_version=now,
            inventory=[
                CapacityItem(
                    model=model,
                    unit_type="token",
                    available_units=ASK_UNITS * asks_per_line,
                    ask_unit_price=price,
                    min_order_units=1000,
                    quality_score=spec.quality,
                    reliability_score=spec.reliability,
                    expires_at=now + timedelta(days=1),
                )
                for model, price in zip(spec.models, spec.snapshot_prices, strict=True)
            ],
        ),
    )


def manual_asks(spec: ProviderSpec, provider_id: str) -> list[PlaceOrder]:
    return [
        PlaceOrder(
            SELLER,
            OrderCreate(
                side="ask",
                provider_id=provider_id,
                model=model,
                unit_type="token",
                units=ASK_UNITS,
                limit_unit_price=price,
            ),
        )
        for model, prices in zip(spec.models, spec.manual_prices, strict=True)
        for price in prices
    ]


def apply(writer: MarketWriter, commands: list[Any]) -> None:
    """Apply market commands in one batch of the writer; raise the first refusal."""
    futures: list[Future[Any]] = [Future() for _ in commands]
    writer.apply(list(zip(commands, futures, strict=True)))
    for future in futures:
        future.result()


def seed_market(
    factory: sessionmaker[Session], shape: Shape, specs: list[ProviderSpec], settings: Settings
) -> None:
    writer = MarketWriter(factory, settings=settings, clock=SystemClock())
    now = SystemClock().now()
    for start in range(0, len(specs), PROVIDERS_PER_TRANSACTION):
        chunk = specs[start : start + PROVIDERS_PER_TRANSACTION]
        with transaction(factory) as session:
            enrolled = [enroll(session, spec, settings=settings, now=now) for spec in chunk]
            for spec, provider_id in zip(chunk, enrolled, strict=True):
                publish_catalog(session, spec, provider_id, now)
        for spec, provider_id in zip(chunk, enrolled, strict=True):
            apply(
                writer,
                [publish_capacity(spec, provider_id, asks_per_line=shape.asks_per_line, now=now)],
            )
            apply(writer, manual_asks(spec, provider_id))
    writer.stop()


def refresh(
    factory: sessionmaker[Session],
    shape: Shape,
    specs: list[ProviderSpec],
    *,
    settings: Settings,
    republish: bool,
) -> datetime:
    """Beat for every provider now, as its agent would (and with ``republish`` publish its
    catalog and capacity again, for a kept database); return the moment."""
    now = SystemClock().now()
    published: list[tuple[ProviderSpec, str]] = []
    with transaction(factory) as session:
        for spec in specs:
            provider = find_by_name(session, SELLER.owner_id, spec.name)
            if provider is None:
                raise RuntimeError(f"{spec.name} is missing from the seeded database")
            providers.record_heartbeat(
                session,
                principal=SELLER,
                provider_id=provider.provider_id,
                body=ProviderHeartbeat(agent_version="bench"),
                pairing_token=None,
                now=now,
            )
            if republish:
                publish_catalog(session, spec, provider.provider_id, now)
                published.append((spec, provider.provider_id))
    if published:
        writer = MarketWriter(factory, settings=settings, clock=SystemClock())
        for spec, provider_id in published:
            apply(
                writer,
                [publish_capacity(spec, provider_id, asks_per_line=shape.asks_per_line, now=now)],
            )
        writer.stop()
    return now


# -- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    seconds: float
    calls: int  # exactly this many when fixed, else at most this many
    fixed: bool
    warmup: int

    def more(self, done: int, started: float) -> bool:
        if done >= self.calls:
            return False
        return self.fixed or time.perf_counter() - started < self.seconds


@dataclass
class Timing:
    latencies: list[float]
    quotes: tuple[int, int]  # fewest and most quotes in one answer
    rejections: tuple[int, int]
    response_bytes: int = 0


def time_in_process(
    read_factory: sessionmaker[Session],
    shape: Shape,
    *,
    settings: Settings,
    budget: Budget,
    profiler: cProfile.Profile | None,
) -> Timing:
    # As the endpoint does: the app's kept provider offers and the system clock, read per call,
    # so the offers are read again once a second, within the timed calls.
    facts = RouteFacts()
    now = SystemClock().now
    bodies = {m: PolicyRequest.model_validate(policy_request(m)) for m in shape.models}
    models = itertools.cycle(shape.models)
    latencies: list[float] = []
    quotes: list[int] = []
    rejections: list[int] = []
    clock = time.perf_counter
    for _ in range(budget.warmup):
        with read_factory() as session:
            quote(session, body=bodies[next(models)], settings=settings, now=now(), facts=facts)
    started = clock()
    while budget.more(len(latencies), started):
        body = bodies[next(models)]
        session = read_factory()
        try:
            begin = clock()
            if profiler is not None:
                profiler.enable()
            evaluation = quote(session, body=body, settings=settings, now=now(), facts=facts)
            if profiler is not None:
                profiler.disable()
            latencies.append(clock() - begin)
        finally:
            session.rollback()
            session.close()
        quotes.append(len(evaluation.quotes))
        rejections.append(len(evaluation.rejected))
    return Timing(latencies, (min(quotes), max(quotes)), (min(rejections), max(rejections)))


def time_http(base_url: str, key: str, shape: Shape, *, budget: Budget) -> Timing:
    # Bodies are encoded once: the client's work is not the server's.
    contents = {m: json.dumps(policy_request(m)).encode() for m in shape.models}
    models = itertools.cycle(shape.models)
    latencies: list[float] = []
    quotes: list[int] = []
    rejections: list[int] = []
    size = 0
    clock = time.perf_counter
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:

        def post() -> httpx.Response:
            response = client.post("/inference/quote", content=contents[next(models)])
            if response.status_code != 200:
                raise RuntimeError(f"quote answered {response.status_code}: {response.text[:500]}")
            return response

        for _ in range(budget.warmup):
            post()
        started = clock()
        while budget.more(len(latencies), started):
            begin = clock()
            response = post()
            latencies.append(clock() - begin)
            answer = response.json()
            quotes.append(len(answer["quotes"]))
            rejections.append(len(answer["rejected_routes"]))
            size = max(size, len(response.content))
    return Timing(latencies, (min(quotes), max(quotes)), (min(rejections), max(rejections)), size)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(pair: tuple[int, int]) -> str:
    low, high = pair
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def print_header() -> None:
    print(
        f"  {'':<28} {'calls':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} "
        f"{'mean ms':>9} {'quotes/s':>9}   quotes / rejections per answer"
    )


def print_row(label: str, timing: Timing) -> None:
    values = timing.latencies
    figures = [percentile(values, q) * 1000 for q in (0.50, 0.95, 0.99)]
    figures.append(statistics.fmean(values) * 1000)
    rate = len(values) / sum(values)
    print(
        f"  {label:<28} {len(values):>6} "
        + " ".join(f"{v:>9.2f}" for v in figures)
        + f" {rate:>9.1f}   {spread(timing.quotes)} / {spread(timing.rejections)}"
    )


# -- main -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    url: str
    path: Path
    seeding_seconds: float | None  # None: a kept database was reused


def prepare(directory: Path, shape: Shape, seed: int) -> Prepared:
    """Seed the shape's database, or find a kept one."""
    path = directory / f"quote-{shape.name}-seed{seed}-v{SEED_VERSION}.db"
    done = path.with_name(path.name + ".seeded")
    url = f"sqlite:///{path}"
    if path.exists() and done.exists():
        upgrade(url)
        return Prepared(url, path, None)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    upgrade(url)
    engine = make_engine(url)
    try:
        began = time.perf_counter()
        seed_market(make_session_factory(engine), shape, provider_specs(shape, seed), Settings())
        seeded = time.perf_counter() - began
    finally:
        engine.dispose()
    done.touch()
    return Prepared(url, path, seeded)


def bench_shape(
    shape: Shape,
    prepared: Prepared,
    *,
    seed: int,
    budget: Budget,
    http: bool,
    profile: bool,
) -> None:
    settings = Settings()
    specs = provider_specs(shape, seed)
    reused = prepared.seeding_seconds is None
    how = (
        f"reused {prepared.path}"
        if reused
        else f"seeded through the services in {prepared.seeding_seconds:.1f} s"
    )
    engine = make_engine(prepared.url)
    read_engine = make_engine(prepared.url, read_only=True)
    factory = make_session_factory(engine)
    read_factory = make_session_factory(read_engine)
    try:
        print(f"== {shape.title}")
        print(
            f"{ASKS:,} asks from {len(specs)} providers, {how}; policy: "
            f"{ESTIMATED_UNITS:,} units, max {MAX_UNIT_PRICE:f}, min discount "
            f"{MIN_DISCOUNT_BPS} bps"
        )
        print_header()
        profiler = cProfile.Profile() if profile else None
        refresh(factory, shape, specs, settings=settings, republish=reused)
        in_process = time_in_process(
            read_factory, shape, settings=settings, budget=budget, profiler=profiler
        )
        print_row("in-process service.quote()", in_process)
        if http:
            with running_server(prepared.url) as server:
                # The policy request's agent_id is the key's owner: a key acts as its owner.
                key = create_key(server.env, PLANNER, PLAN)
                refresh(factory, shape, specs, settings=settings, republish=False)
                over_http = time_http(server.base_url, key, shape, budget=budget)
            print_row("HTTP POST /inference/quote", over_http)
            print(f"  HTTP response body: {over_http.response_bytes / 1e6:.2f} MB")
        if profiler is not None:
            print(f"-- profile of the in-process quotes ({shape.name})")
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(35)
            stats.sort_stats("tottime").print_stats(25)
        print()
    finally:
        engine.dispose()
        read_engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6, help="timed seconds per phase")
    parser.add_argument(
        "--iterations", type=int, default=None, help="exactly this many timed calls per phase"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 s per phase")
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append", help="repeatable")
    parser.add_argument("--no-http", action="store_true", help="time the in-process quote only")
    parser.add_argument(
        "--database-dir", type=Path, default=None, help="keep seeded databases here and reuse them"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile the in-process quotes")
    args = parser.parse_args()
    if args.iterations is not None and args.iterations < 1:
        parser.error("--iterations must be positive")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    budget = Budget(
        seconds=2 if args.quick else args.seconds,
        calls=args.iterations or MAX_TIMED_CALLS,
        fixed=args.iterations is not None,
        warmup=1 if args.quick else 2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.database_dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        shapes = [SHAPES[name] for name in args.shape or ("one-model", "twenty-models")]
        # One process per shape seeds the databases side by side, before anything is timed.
        with ProcessPoolExecutor(max_workers=len(shapes)) as pool:
            prepared = list(
                pool.map(prepare, [directory] * len(shapes), shapes, [args.seed] * len(shapes))
            )
        for shape, ready in zip(shapes, prepared, strict=True):
            bench_shape(
                shape,
                ready,
                seed=args.seed,
                budget=budget,
                http=not args.no_http,
                profile=args.profile,
            )


if __name__ == "__main__":
    main()

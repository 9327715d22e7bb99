"""``flow-memory demo``: a seeded demo market beside the server, with a key for each role; with
the local-model extra installed (``scripts/demo`` installs it), also a real local model server
and a provider agent for it, so an SDK call gets a real answer.

The seeded providers are listings only: no model server stands behind their base URLs, so their
routes are disabled once their history is seeded (route gate ``blocked``) and no call is ever
routed to them. Their asks stay in the books, and a few fills bought from them before that
(orders and usage marked ``workspace_id: demo-seed``) give the charts something to show."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from flow_memory.agent import local_model
from flow_memory.agent.local_provider import LocalProvider, start_local_provider
from flow_memory.credentials.schemas import CredentialRefCreate
from flow_memory.credentials.service import create_credential_ref
from flow_memory.keys.service import create_key
from flow_memory.kit.clock import SystemClock
from flow_memory.kit.deps import Principal, transaction
from flow_memory.kit.scopes import (
    ALL_SCOPES,
    AUDIT,
    BUY,
    PLAN,
    PROXY,
    PUBLISH,
    READ,
    SELL,
    VALIDATE,
)
from flow_memory.market.gateway import Market
from flow_memory.market.orders import PlaceOrder
from flow_memory.market.schemas import OrderCreate
from flow_memory.market.snapshots import PublishCapacity
from flow_memory.providers import service as providers
from flow_memory.providers.repository import disable_routes, find_by_name
from flow_memory.providers.schemas import (
    CapacityItem,
    CatalogModel,
    CompatibleApi,
    ProviderCapacity,
    ProviderCatalog,
    ProviderEnroll,
    ProviderHeartbeat,
    RegistryModelRef,
    UnitType,
)
from flow_memory.registry.examples import seed_examples
from flow_memory.settings import DEFAULT_DATA_DIR, DEMO_DATABASE, Settings

log = logging.getLogger("flow_memory.demo")

ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "operator": ("operator", tuple(sorted(ALL_SCOPES))),
    "provider": ("provider-team-alpha", (READ, SELL, PUBLISH, VALIDATE)),
    "buyer": ("agent-research-1", (READ, BUY, PLAN, PROXY)),
    "auditor": ("auditor", (READ, AUDIT)),
}


@dataclass(frozen=True)
class DemoModel:
    model: str
    compatible_api: CompatibleApi
    unit_types: tuple[UnitType, ...]
    context_window: int


@dataclass(frozen=True)
class DemoAsk:
    model: str
    unit_type: UnitType
    available_units: int
    ask_unit_price: Decimal
    min_order_units: int


@dataclass(frozen=True)
class DemoProvider:
    name: str
    credential_ref: str
    base_url: str
    models: tuple[DemoModel, ...]
    capacity: tuple[DemoAsk, ...]


DEMO_PROVIDERS = (
    DemoProvider(
        name="Demo listing Alpha",
        credential_ref="secret://inference/provider-alpha",
        base_url="http://127.0.0.1:8801/v1",
        models=(
            DemoModel("flow-memory-orchestrator", "chat_responses", ("token", "request"), 128_000),
            DemoModel("flow-memory-message-chat", "messages", ("request",), 200_000),
        ),
        capacity=(
            DemoAsk("flow-memory-orchestrator", "token", 2_500_000, Decimal("0.00000075"), 1000),
            DemoAsk("flow-memory-message-chat", "request", 5_000, Decimal("0.0021"), 1),
        ),
    ),
    DemoProvider(
        name="Demo listing Beta",
        credential_ref="secret://inference/provider-beta",
        base_url="http://127.0.0.1:8802/v1",
        models=(
            DemoModel("flow-memory-orchestrator", "chat_responses", ("token",), 128_000),
            DemoModel("flow-memory-embed", "embeddings", ("token",), 8_192),
        ),
        capacity=(
            DemoAsk("flow-memory-orchestrator", "token", 1_200_000, Decimal("0.00000070"), 5000),
            DemoAsk("flow-memory-embed", "token", 40_000_000, Decimal("0.00000002"), 1000),
        ),
    ),
)
REFERENCE_PRICES: dict[str, dict[UnitType, Decimal]] = {
    "flow-memory-orchestrator": {"token": Decimal("0.000001")}
}
DEMO_SELLER = Principal(key_id="demo", owner_id=ROLES["provider"][0], scopes=frozenset({SELL}))
DEMO_BUYER = Principal(key_id="demo", owner_id=ROLES["buyer"][0], scopes=frozenset({BUY}))
LISTING_ONLY = (
    "demo listing: no model server answers at its base URL, so its routes are disabled and "
    "no call is routed to it"
)
# What the seeded history is marked with: its orders' metadata and its usage records.
DEMO_HISTORY = {"workspace_id": "demo-seed", "task_id": "demo-history", "demo_data": True}
# Bids that fill against the listings' asks before their routes are disabled: (model, unit
# type, units, limit unit price).
DEMO_FILLS: tuple[tuple[str, UnitType, int, Decimal], ...] = (
    ("flow-memory-orchestrator", "token", 40_000, Decimal("0.0000008")),
    ("flow-memory-orchestrator", "token", 150_000, Decimal("0.0000009")),
    ("flow-memory-embed", "token", 2_000_000, Decimal("0.00000003")),
    ("flow-memory-message-chat", "request", 25, Decimal("0.0025")),
    ("flow-memory-orchestrator", "token", 60_000, Decimal("0.00000072")),
)


# Demo market models that serve a registry example model (``flow_memory.registry.examples``).
REGISTRY_MODELS = {"flow-memory-orchestrator": "orchestrator-8b"}


def seed_demo_market(
    factory: sessionmaker[Session], market: Market, *, now: datetime
) -> dict[str, str]:
    """Create keys for each role and the demo listings: enrolled, paired and published, with a
    few fills bought from them, then their routes disabled (nothing answers behind them)."""
    with transaction(factory) as session:
        # The registry's examples first: the listings' catalogs name its model.
        seed_examples(session, publisher_id=DEMO_SELLER.owner_id, now=now)
        keys, seeded = _seed_providers(session, now=now)
    for provider_id, spec in seeded:
        publish_demo_capacity(market, provider_id, spec, now)
    seed_demo_history(market)
    with transaction(factory) as session:
        disable_routes(session, [provider_id for provider_id, _ in seeded], now=now)
    return keys


def seed_demo_history(market: Market) -> int:
    """Fill a few of the buyer's bids (marked as demo data) against the listings' asks; the
    fills write their usage records. Answers how many fills were made."""
    fills = 0
    for model, unit_type, units, limit in DEMO_FILLS:
        answer = market.execute(
            PlaceOrder(
                DEMO_BUYER,
                OrderCreate(
                    side="bid",
                    model=model,
                    unit_type=unit_type,
                    units=units,
                    limit_unit_price=limit,
                    time_in_force="ioc",
                    metadata=DEMO_HISTORY,
                ),
            )
        )
        fills += len(answer["fills"])
    return fills


def _seed_providers(
    session: Session, *, now: datetime
) -> tuple[dict[str, str], list[tuple[str, DemoProvider]]]:
    """Keys for each role, and providers enrolled, paired and with a catalog."""
    keys = {
        role: create_key(
            session, owner_id=owner, scopes=scopes, label=f"demo {role}", now=now
        ).secret
        for role, (owner, scopes) in ROLES.items()
    }
    settings = Settings()
    seeded = []
    for spec in DEMO_PROVIDERS:
        ref = create_credential_ref(
            session,
            principal=DEMO_SELLER,
            now=now,
            body=CredentialRefCreate(
                credential_ref=spec.credential_ref,
                display_name=f"{spec.name} reference (no secret behind it)",
                allowed_models=[m.model for m in spec.models],
            ),
        )
        provider, _ = providers.enroll_provider(
            session,
            principal=DEMO_SELLER,
            now=now,
            settings=settings,
            body=ProviderEnroll.model_validate(
                {
                    "provider_name": spec.name,
                    "base_url": spec.base_url,
                    "credential_ref_id": ref.credential_ref_id,
                    "supported_units": ["token", "request"],
                    "contact": {"demo_listing": LISTING_ONLY},
                }
            ),
        )
        _, secret = providers.issue_pairing_token(
            session,
            principal=DEMO_SELLER,
            provider_id=provider.provider_id,
            settings=settings,
            now=now,
        )
        providers.record_heartbeat(
            session,
            principal=DEMO_SELLER,
            provider_id=provider.provider_id,
            body=ProviderHeartbeat(agent_version="demo listing"),
            pairing_token=secret,
            now=now,
        )
        providers.publish_catalog(
            session,
            principal=DEMO_SELLER,
            provider_id=provider.provider_id,
            now=now,
            body=ProviderCatalog(
                catalog_version=now,
                models=[
                    CatalogModel(
                        model=m.model,
                        compatible_api=m.compatible_api,
                        unit_types=list(m.unit_types),
                        context_window=m.context_window,
                        tool_calling="metadata_only",
                        reference_unit_prices=REFERENCE_PRICES.get(m.model, {}),
                        registry_model=_registry_model(m.model),
                    )
                    for m in spec.models
                ],
            ),
        )
        seeded.append((provider.provider_id, spec))
    return keys, seeded


def _registry_model(model: str) -> RegistryModelRef | None:
    """The registry example a demo listing serves (its model page then lists the listing)."""
    name = REGISTRY_MODELS.get(model)
    if name is None:
        return None
    return RegistryModelRef(slug=f"{DEMO_SELLER.owner_id}/{name}", version="1.0.0")


def publish_demo_capacity(
    market: Market, provider_id: str, spec: DemoProvider, now: datetime
) -> None:
    market.execute(
        PublishCapacity(
            DEMO_SELLER,
            provider_id,
            ProviderCapacity(
                capacity_version=now,
                inventory=[
                    CapacityItem(
                        model=a.model,
                        unit_type=a.unit_type,
                        available_units=a.available_units,
                        ask_unit_price=a.ask_unit_price,
                        min_order_units=a.min_order_units,
                        quality_score=0.97,
                        reliability_score=0.99,
                        expires_at=now + timedelta(days=1),
                    )
                    for a in spec.capacity
                ],
            ),
        )
    )


def keep_demo_providers_live(
    factory: sessionmaker[Session],
    market: Market,
    stop: threading.Event,
    interval: float = 30.0,
) -> None:
    """Refresh the seeded providers' heartbeats and capacity so the demo market stays live."""
    clock = SystemClock()
    while not stop.wait(interval):
        try:
            live = []
            with transaction(factory) as session:
                for spec in DEMO_PROVIDERS:
                    provider = find_by_name(session, DEMO_SELLER.owner_id, spec.name)
                    if provider is None:
                        continue
                    providers.record_heartbeat(
                        session,
                        principal=DEMO_SELLER,
                        provider_id=provider.provider_id,
                        body=ProviderHeartbeat(agent_version="demo listing"),
                        pairing_token=None,
                        now=clock.now(),
                    )
                    live.append((provider.provider_id, spec))
            for provider_id, spec in live:
                publish_demo_capacity(market, provider_id, spec, clock.now())
        except Exception:
            log.exception("demo refresh failed")


LOCAL_PROVIDER_NAME = "Local model server"


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_demo(
    settings: Settings,
    *,
    host: str | None,
    port: int | None,
    keep: bool,
    with_local_model: bool = True,
) -> int:
    from flow_memory.app import create_app
    from flow_memory.cli import configure_logging
    from flow_memory.kit.server import run_server
    from flow_memory.migrations import upgrade

    if "FLOW_MEMORY_DATABASE_URL" not in os.environ:
        path = DEMO_DATABASE
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        settings = replace(settings, database_url=f"sqlite:///{path}")
    configure_logging(settings)
    upgrade(settings.database_url)
    app = create_app(settings)
    factory = app.state.session_factory
    keys = seed_demo_market(factory, app.state.market, now=SystemClock().now())
    bind_host, bind_port = host or settings.host, port or settings.port
    base = f"http://{bind_host}:{bind_port}"
    print("\nFlow Memory demo market is starting (dry-run records only; no funds move).")
    print(f"  API docs:   {base}/docs")
    print(f"  SDK base:   {base}/v1")
    print(f"  database:   {settings.database_url}")
    print("  API keys (shown once; send as 'Authorization: Bearer <key>'):")
    for role, secret in keys.items():
        owner, scopes = ROLES[role]
        print(f"    {role:<9} {secret}   owner={owner} scopes={','.join(scopes)}")
    print(
        f"  try: curl -H 'Authorization: Bearer {keys['operator']}' "
        f"{base}/inference/credential-refs",
        flush=True,
    )
    print(
        "  seeded: listings 'Demo listing Alpha' and 'Demo listing Beta' with a few fills "
        "(workspace_id demo-seed);\n"
        "    no model server stands behind them, so their routes are disabled (route gate "
        "blocked)"
    )
    local: LocalProvider | None = None
    missing = local_model.local_model_missing() if with_local_model else "--no-local-model"
    if missing is None:
        data_dir = Path(settings.database_url.removeprefix("sqlite:///")).parent
        if not settings.database_url.startswith("sqlite:///"):
            data_dir = Path(DEFAULT_DATA_DIR)
        local = start_local_provider(
            base,
            keys["provider"],
            provider_name=LOCAL_PROVIDER_NAME,
            credential_ref="secret://inference/demo-local-model",
            log_path=data_dir / "demo-model-server.log",
        )
        print(
            f"  local model: {local_model.CHAT_MODEL} (chat) and {local_model.EMBEDDING_MODEL} "
            f"(embeddings), served at {local.base_url}\n"
            f"    a provider agent publishes them as {LOCAL_PROVIDER_NAME!r} once the model "
            f"server is up (log: {local.log_path})\n"
            f"    SDK: base_url={base}/v1 api_key=<the buyer key> model={local_model.CHAT_MODEL}\n"
            "    the agent also bids on the job board's chat jobs: post one with the buyer key "
            "(POST /inference/jobs, or the dashboard's Jobs view) and it is bid on, answered by "
            "the local model and archived; accept the result (POST /inference/jobs/{job_id}/"
            "verdicts, or stay silent until the review window ends) and the agent is paid\n"
            f"  try: curl {base}/v1/chat/completions -H 'Authorization: Bearer {keys['buyer']}' "
            "-H 'content-type: application/json' "
            f"""-d '{{"model": "{local_model.CHAT_MODEL}", "max_tokens": 16, """
            """"messages": [{"role": "user", "content": "What is the capital of France?"}]}'"""
        )
    else:
        print(f"  local model: not started ({missing}); no model answers SDK calls in this demo")
    print(flush=True)
    stop = threading.Event()
    refresher = threading.Thread(
        target=keep_demo_providers_live,
        args=(factory, app.state.market, stop),
        daemon=True,
        name="demo-refresh",
    )
    refresher.start()
    # The server re-raises SIGTERM after its graceful shutdown; exiting through SystemExit
    # instead lets the model server below be stopped rather than left running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        run_server(app, host=bind_host, port=bind_port, log_level=settings.log_level)
    finally:
        stop.set()
        if local is not None:
            local.close()
    return 0

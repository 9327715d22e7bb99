"""``flow-memory demo``: a seeded demo market beside the server, with a key for each role."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from flow_memory.credentials.schemas import CredentialRefCreate
from flow_memory.credentials.service import create_credential_ref
from flow_memory.keys.service import create_key
from flow_memory.kit.clock import SystemClock
from flow_memory.kit.deps import Principal
from flow_memory.kit.scopes import ADMIN, ALL_SCOPES, AUDIT, BUY, PLAN, PROXY, READ, SELL
from flow_memory.providers import service as providers
from flow_memory.providers.schemas import (
    CapacityItem,
    CatalogModel,
    ProviderCapacity,
    ProviderCatalog,
    ProviderEnroll,
    ProviderHeartbeat,
)
from flow_memory.settings import DEFAULT_DATA_DIR, Settings

log = logging.getLogger("flow_memory.demo")

ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "operator": ("operator", tuple(sorted(ALL_SCOPES))),
    "provider": ("provider-team-alpha", (READ, SELL)),
    "buyer": ("agent-research-1", (READ, BUY, PLAN, PROXY)),
    "auditor": ("auditor", (READ, AUDIT)),
}

DEMO_PROVIDERS = (
    {
        "name": "Provider Alpha",
        "ref": "secret://inference/provider-alpha",
        "base_url": "http://127.0.0.1:8801/v1",
        "models": [("flow-memory-orchestrator", "chat_responses", ["token", "request"], 128_000),
                   ("flow-memory-message-chat", "messages", ["request"], 200_000)],
        "capacity": [("flow-memory-orchestrator", "token", 2_500_000, "0.00000075", 1000),
                     ("flow-memory-message-chat", "request", 5_000, "0.0021", 1)],
    },
    {
        "name": "Provider Beta",
        "ref": "secret://inference/provider-beta",
        "base_url": "http://127.0.0.1:8802/v1",
        "models": [("flow-memory-orchestrator", "chat_responses", ["token"], 128_000),
                   ("flow-memory-embed", "embeddings", ["token"], 8_192)],
        "capacity": [("flow-memory-orchestrator", "token", 1_200_000, "0.00000070", 5000),
                     ("flow-memory-embed", "token", 40_000_000, "0.00000002", 1000)],
    },
)
REFERENCE_PRICES = {"flow-memory-orchestrator": {"token": Decimal("0.000001")}}


def seed_demo_market(session: Session, *, now: datetime) -> dict[str, str]:
    """Create keys for each role and an enrolled, paired, published set of providers."""
    keys = {
        role: create_key(session, owner_id=owner, scopes=scopes, label=f"demo {role}",
                         now=now).secret
        for role, (owner, scopes) in ROLES.items()
    }
    seller = Principal(key_id="demo", owner_id=ROLES["provider"][0], scopes=frozenset({SELL}))
    for spec in DEMO_PROVIDERS:
        ref = create_credential_ref(session, principal=seller, now=now, body=CredentialRefCreate(
            credential_ref=str(spec["ref"]), display_name=f"{spec['name']} reference",
            allowed_models=[m[0] for m in spec["models"]],  # type: ignore[union-attr]
        ))
        provider, _ = providers.enroll_provider(
            session, principal=seller, now=now, settings=Settings(),
            body=ProviderEnroll(provider_name=str(spec["name"]),
                                base_url=str(spec["base_url"]),  # type: ignore[arg-type]
                                credential_ref_id=ref.credential_ref_id,
                                supported_units=["token", "request"]),
        )
        _, secret = providers.issue_pairing_token(session, principal=seller,
                                                  provider_id=provider.provider_id,
                                                  settings=Settings(), now=now)
        providers.record_heartbeat(session, principal=seller, provider_id=provider.provider_id,
                                   body=ProviderHeartbeat(agent_version="demo"),
                                   pairing_token=secret, now=now)
        providers.publish_catalog(session, principal=seller, provider_id=provider.provider_id,
                                  now=now, body=ProviderCatalog(catalog_version=now, models=[
            CatalogModel(model=m, compatible_api=api, unit_types=units, context_window=window,
                         tool_calling="metadata_only",
                         reference_unit_prices=REFERENCE_PRICES.get(m, {}))  # type: ignore[arg-type]
            for m, api, units, window in spec["models"]  # type: ignore[attr-defined]
        ]))
        _publish_capacity(session, seller, provider.provider_id, spec, now)
    return keys


def _publish_capacity(session: Session, seller: Principal, provider_id: str,
                      spec: dict[str, object], now: datetime) -> None:
    providers.publish_capacity(session, principal=seller, provider_id=provider_id, now=now,
                               body=ProviderCapacity(capacity_version=now, inventory=[
        CapacityItem(model=m, unit_type=u, available_units=units, ask_unit_price=Decimal(price),
                     min_order_units=minimum, quality_score=0.97, reliability_score=0.99,
                     expires_at=now + timedelta(days=1))
        for m, u, units, price, minimum in spec["capacity"]  # type: ignore[attr-defined]
    ]))


def keep_demo_providers_live(factory: sessionmaker[Session], stop: threading.Event,
                             interval: float = 30.0) -> None:
    """Refresh the seeded providers' heartbeats and capacity so the demo market stays live."""
    seller = Principal(key_id="demo", owner_id=ROLES["provider"][0], scopes=frozenset({SELL}))
    clock = SystemClock()
    while not stop.wait(interval):
        try:
            with factory.begin() as session:
                from flow_memory.providers.models import Provider

                for provider in session.query(Provider).filter_by(owner_id=seller.owner_id):
                    spec = next(s for s in DEMO_PROVIDERS if s["name"] == provider.provider_name)
                    now = clock.now()
                    providers.record_heartbeat(session, principal=seller,
                                               provider_id=provider.provider_id,
                                               body=ProviderHeartbeat(agent_version="demo"),
                                               pairing_token=None, now=now)
                    _publish_capacity(session, seller, provider.provider_id, spec, now)
        except Exception:
            log.exception("demo refresh failed")


def run_demo(settings: Settings, *, host: str | None, port: int | None, keep: bool) -> int:
    import uvicorn

    from flow_memory.app import create_app
    from flow_memory.cli import configure_logging
    from flow_memory.migrations import upgrade

    if "FLOW_MEMORY_DATABASE_URL" not in os.environ:
        path = Path(DEFAULT_DATA_DIR) / "demo.db"
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        settings = replace(settings, database_url=f"sqlite:///{path}")
    configure_logging(settings)
    upgrade(settings.database_url)
    app = create_app(settings)
    factory = app.state.session_factory
    with factory.begin() as session:
        keys = seed_demo_market(session, now=SystemClock().now())
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
    print(f"  try: curl -H 'Authorization: Bearer {keys['operator']}' "
          f"{base}/inference/credential-refs\n", flush=True)
    stop = threading.Event()
    refresher = threading.Thread(target=keep_demo_providers_live, args=(factory, stop),
                                 daemon=True, name="demo-refresh")
    refresher.start()
    try:
        uvicorn.run(app, host=bind_host, port=bind_port, access_log=False,
                    log_level=settings.log_level)
    finally:
        stop.set()
    return 0

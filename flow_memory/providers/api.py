"""Routes for the provider-agent runtime."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from sqlalchemy.orm import Session

from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    on_session_end,
    require_scopes,
)
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES
from flow_memory.kit.scopes import READ, SELL
from flow_memory.market.snapshots import PublishCapacity
from flow_memory.providers import service
from flow_memory.providers.models import CatalogEntry
from flow_memory.providers.schemas import (
    CapacityResponse,
    CatalogResponse,
    HealthResponse,
    HeartbeatResponse,
    PairingTokenResponse,
    ProviderCapacity,
    ProviderCatalog,
    ProviderEnroll,
    ProviderEnrollResponse,
    ProviderHeartbeat,
)
from flow_memory.routing.facts import clear_after_commit

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/providers",
    tags=["provider runtime"],
    responses=ERROR_RESPONSES,
)

Seller = Annotated[Principal, Depends(require_scopes(SELL))]
ProviderId = Annotated[str, Path(max_length=64)]


@router.post(
    "/enroll",
    response_model=ProviderEnrollResponse,
    name="providerEnroll",
    summary="Enroll a provider-agent runtime (201 new, 200 re-enrollment)",
    status_code=201,
    responses={200: {"model": ProviderEnrollResponse}},
)
def enroll_provider(
    request: Request,
    body: ProviderEnroll,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Seller,
) -> FlowJSONResponse:
    now = clock.now()
    _forget_route_facts_after_commit(request, session)
    provider, created = service.enroll_provider(
        session, principal=principal, body=body, settings=settings, now=now
    )
    health = service.provider_health(session, provider, settings=settings, now=now)
    base = f"/inference/providers/{provider.provider_id}"
    return respond(
        {
            "enrollment": "created" if created else "updated",
            "provider": service.provider_read(provider, health),
            "pairing": {
                "pairing_token_route": f"{base}/pairing-token",
                "heartbeat_route": f"{base}/heartbeat",
                "pairing_header": service.PAIRING_HEADER,
                "steps": [
                    f"POST {base}/pairing-token to receive a short-lived pairing token",
                    f"POST {base}/heartbeat with the token in {service.PAIRING_HEADER}",
                    f"POST {base}/catalog with the models you serve",
                    f"POST {base}/capacity with available units and ask prices",
                    f"GET {base}/health to see the route gate",
                ],
            },
        },
        status_code=201 if created else 200,
    )


@router.post(
    "/{provider_id}/pairing-token",
    response_model=PairingTokenResponse,
    status_code=201,
    name="providerPairingToken",
    summary="Create a short-lived runtime pairing token (shown once)",
)
def create_pairing_token(
    provider_id: ProviderId,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Seller,
) -> FlowJSONResponse:
    token, secret = service.issue_pairing_token(
        session, principal=principal, provider_id=provider_id, settings=settings, now=clock.now()
    )
    return respond(
        {
            "provider_id": token.provider_id,
            "pairing_token": secret,
            "token_preview": token.token_preview,
            "issued_at": token.created_at,
            "expires_at": token.expires_at,
            "ttl_seconds": settings.pairing_token_ttl_seconds,
            "pairing_header": service.PAIRING_HEADER,
        },
        status_code=201,
    )


@router.post(
    "/{provider_id}/heartbeat",
    response_model=HeartbeatResponse,
    name="providerHeartbeat",
    summary="Record runtime liveness",
)
def record_heartbeat(
    request: Request,
    provider_id: ProviderId,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Seller,
    body: ProviderHeartbeat | None = None,
    pairing_token: Annotated[
        str | None, Header(alias=service.PAIRING_HEADER, max_length=128)
    ] = None,
) -> FlowJSONResponse:
    now = clock.now()
    if body is not None and body.runtime_status in ("draining", "degraded"):
        # The runtime's own report changes its health: quotes must see it at once.
        _forget_route_facts_after_commit(request, session)
    else:
        _forget_unsettled_after_commit(request, session, provider_id)
    provider = service.record_heartbeat(
        session,
        principal=principal,
        provider_id=provider_id,
        body=body or ProviderHeartbeat(),
        pairing_token=pairing_token,
        now=now,
    )
    return respond(
        {
            "provider_id": provider.provider_id,
            "runtime_status": provider.runtime_status,
            "reported_status": provider.reported_status,
            "paired": provider.paired_at is not None,
            "last_heartbeat_at": provider.last_heartbeat_at,
            "next_heartbeat_due_by": now + timedelta(seconds=settings.heartbeat_stale_seconds),
        }
    )


@router.post(
    "/{provider_id}/catalog",
    response_model=CatalogResponse,
    name="providerCatalog",
    summary="Publish the model/API capability catalog",
)
def publish_catalog(
    request: Request,
    provider_id: ProviderId,
    body: ProviderCatalog,
    session: SessionDep,
    clock: ClockDep,
    principal: Seller,
) -> FlowJSONResponse:
    _forget_route_facts_after_commit(request, session)
    provider, entries = service.publish_catalog(
        session, principal=principal, provider_id=provider_id, body=body, now=clock.now()
    )
    return respond(
        {
            "provider_id": provider.provider_id,
            "catalog_version": provider.catalog_version,
            "models": [_catalog_item(e) for e in entries],
            "model_count": len(entries),
        }
    )


def _catalog_item(entry: CatalogEntry) -> dict[str, Any]:
    """A catalog entry as answered: ``registry_model`` only when the entry names one, so a
    catalog that names none is answered exactly as the contract shows it."""
    item: dict[str, Any] = {
        "model": entry.model,
        "compatible_api": entry.compatible_api,
        "unit_types": entry.unit_types,
        "context_window": entry.context_window,
        "tool_calling": entry.tool_calling,
        "reference_unit_prices": {k: Decimal(v) for k, v in entry.reference_unit_prices.items()},
    }
    if entry.registry_slug is not None:
        item["registry_model"] = {"slug": entry.registry_slug, "version": entry.registry_version}
    return item


@router.post(
    "/{provider_id}/capacity",
    response_model=CapacityResponse,
    name="providerCapacity",
    summary="Publish available units and ask prices",
)
async def publish_capacity(
    request: Request,
    provider_id: ProviderId,
    body: ProviderCapacity,
    principal: Seller,
) -> FlowJSONResponse:
    # The market writer records the snapshot with the asks it becomes, in one transaction.
    answer = await request.app.state.market.run(PublishCapacity(principal, provider_id, body))
    request.app.state.route_facts.clear()  # quotes show the new capacity at once
    return respond(answer)


@router.get(
    "/{provider_id}/health",
    response_model=HealthResponse,
    name="providerHealth",
    summary="Passive health and route-gating state",
)
def provider_health(
    provider_id: ProviderId,
    session: ReadSessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
) -> FlowJSONResponse:
    now = clock.now()
    provider = service.get_owned(session, principal=principal, provider_id=provider_id)
    health = service.provider_health(session, provider, settings=settings, now=now)
    return respond(
        {
            "provider_id": provider.provider_id,
            "status": health.status,
            "credential_ref_status": health.credential_ref_status,
            "last_heartbeat_at": provider.last_heartbeat_at,
            "heartbeat_status": health.heartbeat_status,
            "catalog_status": health.catalog_status,
            "capacity_status": health.capacity_status,
            "route_gate": health.route_gate,
            "reasons": list(health.reasons),
            "checked_at": now,
        }
    )


def _forget_route_facts_after_commit(request: Request, session: Session) -> None:
    """Quotes keep providers' offers for a second: once an enrollment, catalog or capacity is
    committed, forget them, so the next quote shows it."""
    clear_after_commit(request.app.state.route_facts, session)


def _forget_unsettled_after_commit(request: Request, session: Session, provider_id: str) -> None:
    """A heartbeat may make a provider that was not eligible eligible: once it is committed,
    forget the offers that show the provider otherwise (heartbeats of eligible providers,
    nearly all of them, forget nothing)."""

    def forget(committed: bool) -> None:
        if committed:
            request.app.state.route_facts.forget_unsettled(provider_id)

    on_session_end(session, forget)

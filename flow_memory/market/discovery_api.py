"""Routes for marketplace discovery and the provider-agent manifest."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from flow_memory.kit.deps import Principal, ReadSessionDep, require_scopes
from flow_memory.kit.errors import NotFound
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.money import Amount
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.schemas import ERROR_RESPONSES, Identifier, SafetyFields
from flow_memory.kit.scopes import ALL_SCOPES, READ
from flow_memory.market import discovery

router = APIRouter(route_class=ExactJSONRoute, tags=["discovery"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require_scopes(READ))]
PathId = Annotated[str, Path(max_length=128)]


class MarketSummaryRead(BaseModel):
    model: str
    unit_type: str
    best_bid: Amount | None
    best_ask: Amount | None
    bid_units: int
    ask_units: int
    bid_orders: int
    ask_orders: int
    provider_count: int
    last_fill_price: Amount | None
    last_fill_at: datetime | None
    demand_only: bool = Field(
        description="true for a market no provider's catalog lists (in this unit type) and no "
        "ask rests in: bids recording demand for a model not offered yet"
    )


class MarketListResponse(SafetyFields):
    ok: Literal[True] = True
    markets: list[MarketSummaryRead]
    count: int


class ModelDetailResponse(SafetyFields):
    ok: Literal[True] = True
    model: str
    markets: list[MarketSummaryRead]
    offers: list[dict[str, Any]]


class FeedEventRead(BaseModel):
    event_id: int
    kind: str
    model: str | None
    unit_type: str | None
    subject_id: str
    payload: dict[str, Any]
    created_at: datetime


class FeedResponse(SafetyFields):
    ok: Literal[True] = True
    events: list[FeedEventRead]
    next_cursor: int | None


class VolumeFields(BaseModel):
    fill_count: int
    filled_units: int
    notional: Amount
    models: list[str]
    last_fill_at: datetime | None


class BuyerProfileResponse(SafetyFields, VolumeFields):
    ok: Literal[True] = True
    buyer_id: str
    order_count: int
    orders_by_status: dict[str, int]
    reservation_count: int
    held_units: int


class SellerProfileResponse(SafetyFields, VolumeFields):
    ok: Literal[True] = True
    seller_id: str
    provider_ids: list[str]
    provider_count: int
    open_ask_count: int
    open_ask_units: int
    published_units: int
    reliability_score: float | None
    quality_score: float | None


class ManifestResponse(SafetyFields):
    ok: Literal[True] = True
    manifest_version: str
    product: str
    steps: list[dict[str, Any]]
    route_templates: dict[str, dict[str, Any]]
    scopes: dict[str, str]
    safety_rules: list[str]
    safety_fields: dict[str, bool]


@router.get(
    "/inference/market/list",
    response_model=MarketListResponse,
    name="marketList",
    summary="List market models with summary depth",
)
def market_list(session: ReadSessionDep, _principal: Reader) -> FlowJSONResponse:
    markets = [s.read() for s in discovery.market_summaries(session)]
    return respond({"markets": markets, "count": len(markets)})


@router.get(
    "/inference/market/models/{model}",
    response_model=ModelDetailResponse,
    name="modelDetail",
    summary="One model's markets and the providers offering it",
)
def model_detail(model: PathId, session: ReadSessionDep, _principal: Reader) -> FlowJSONResponse:
    markets = [s.read() for s in discovery.market_summaries(session, model)]
    offers = discovery.model_offers(session, model)
    if not markets and not offers:
        raise NotFound(
            "no market or provider offers this model",
            field="model",
            hint="GET /inference/market/list shows the models on offer",
        )
    return respond({"model": model, "markets": markets, "offers": offers})


def _payload_numbers(value: Any, key: str = "") -> Any:
    """Feed payloads store prices as exact text; the API shows them as plain JSON numbers."""
    if isinstance(value, dict):
        return {k: _payload_numbers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_payload_numbers(v, key) for v in value]
    if isinstance(value, str) and key.endswith("price"):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


@router.get(
    "/inference/market/feed",
    response_model=FeedResponse,
    name="feed",
    summary="Recent dry-run marketplace events, oldest or newest first, with a cursor",
)
def market_feed(
    session: ReadSessionDep,
    _principal: Reader,
    after: Annotated[int, Query(ge=0, le=2**62, description="Return events after this id")] = 0,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Return events before this id")
    ] = None,
    order: Annotated[
        Literal["oldest", "newest"],
        Query(
            description="oldest: the first events first, next page with after=next_cursor; "
            "newest: the latest events first, next page with before=next_cursor"
        ),
    ] = "oldest",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    kind: Annotated[Identifier | None, Query()] = None,
    model: Annotated[Identifier | None, Query()] = None,
) -> FlowJSONResponse:
    events, cursor = discovery.feed_page(
        session,
        after=after,
        before=before,
        newest_first=order == "newest",
        limit=limit,
        kind=kind,
        model=model,
    )
    return respond(
        {
            "events": [
                {
                    "event_id": e.event_id,
                    "kind": e.kind,
                    "model": e.model,
                    "unit_type": e.unit_type,
                    "subject_id": e.subject_id,
                    "payload": _payload_numbers(dict(e.payload)),
                    "created_at": e.created_at,
                }
                for e in events
            ],
            "next_cursor": cursor,
        }
    )


@router.get(
    "/inference/buyers/{buyer_id}/profile",
    response_model=BuyerProfileResponse,
    name="buyerProfile",
    summary="A buyer's marketplace activity",
)
def buyer_profile(
    buyer_id: PathId, session: ReadSessionDep, _principal: Reader
) -> FlowJSONResponse:
    profile = discovery.buyer_profile(session, buyer_id)
    if profile is None:
        raise NotFound(
            "no such buyer",
            field="buyer_id",
            hint="a buyer appears once it has placed an order or a reservation",
        )
    return respond(profile)


@router.get(
    "/inference/sellers/{seller_id}/profile",
    response_model=SellerProfileResponse,
    name="sellerProfile",
    summary="A seller's volume, fills and reliability",
)
def seller_profile(
    seller_id: PathId, session: ReadSessionDep, _principal: Reader
) -> FlowJSONResponse:
    profile = discovery.seller_profile(session, seller_id)
    if profile is None:
        raise NotFound(
            "no such seller",
            field="seller_id",
            hint="use a provider_id or a provider owner's id",
        )
    return respond(profile)


AGENT_ROUTES = {
    "providerEnroll": ("POST", "/inference/providers/enroll"),
    "providerPairingToken": ("POST", "/inference/providers/{provider_id}/pairing-token"),
    "providerHeartbeat": ("POST", "/inference/providers/{provider_id}/heartbeat"),
    "providerCatalog": ("POST", "/inference/providers/{provider_id}/catalog"),
    "providerCapacity": ("POST", "/inference/providers/{provider_id}/capacity"),
    "providerHealth": ("GET", "/inference/providers/{provider_id}/health"),
    "marketOrders": ("POST", "/inference/market/orders"),
    "marketOrderCancel": ("POST", "/inference/market/orders/{order_id}/cancel"),
    "marketDepth": ("GET", "/inference/market/depth"),
}


@router.get(
    "/inference/providers/agent/manifest",
    response_model=ManifestResponse,
    name="providerAgentManifest",
    summary="How a provider agent onboards",
)
def provider_agent_manifest(_principal: Reader) -> FlowJSONResponse:
    return respond(
        {
            "manifest_version": "1",
            "product": "Flow Memory",
            "steps": [
                {
                    "step": 1,
                    "route": "credentialRefs",
                    "action": "An operator or the provider "
                    "creates a credential reference (secret://…); the secret itself stays with the "
                    "operator's secret manager.",
                },
                {
                    "step": 2,
                    "route": "providerEnroll",
                    "action": "Enroll with base_url and credential_ref_id; keep the provider_id.",
                },
                {
                    "step": 3,
                    "route": "providerPairingToken",
                    "action": "Request a short-lived pairing token; it is shown once.",
                },
                {
                    "step": 4,
                    "route": "providerHeartbeat",
                    "action": "Send the first heartbeat with the token in "
                    "x-flow-memory-pairing-token, then heartbeat well inside the stale threshold.",
                },
                {
                    "step": 5,
                    "route": "providerCatalog",
                    "action": "Publish the models served, "
                    "with compatible_api, unit_types, context_window and tool_calling.",
                },
                {
                    "step": 6,
                    "route": "providerCapacity",
                    "action": "Publish available units, ask "
                    "prices and expiry; each line becomes a resting ask.",
                },
                {"step": 7, "route": "providerHealth", "action": "Check route_gate is eligible."},
            ],
            "route_templates": {
                key: {"method": method, "path": path}
                for key, (method, path) in AGENT_ROUTES.items()
            },
            "scopes": {
                "inference:sell": (
                    "enroll, pair, heartbeat, publish catalog and capacity, place asks"
                ),
                "inference:read": "read health, depth and discovery",
                **{
                    s: "not needed by a provider agent"
                    for s in sorted(ALL_SCOPES)
                    if s not in {"inference:sell", "inference:read"}
                },
            },
            "safety_rules": [
                "Every market record is a dry-run record: no funds move, nothing is signed or "
                "broadcast.",
                "Never send a raw credential, bearer token, private key, seed phrase or signature; "
                "send only credential references such as secret://inference/provider-alpha.",
                "Safety flags keep their dry-run values (dry_run_required true, broadcast_enabled "
                "false, raw_credentials_allowed false, sensitive_signing_inputs_allowed false).",
                "Requests carrying forbidden material are refused with 422 forbidden_material and "
                "nothing is stored.",
                "A key acts as its owner: owner_id, buyer_id, requested_by and agent_id may be "
                "left out, and otherwise must name the key's owner or an identity it controls "
                "(403 identity_not_yours).",
            ],
            "safety_fields": dict(SAFETY_ENVELOPE),
        }
    )

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from flow_memory.kit.actors import Actor
from flow_memory.kit.money import Amount, UnitPrice
from flow_memory.kit.schemas import Identifier, RequestModel, SafetyFields
from flow_memory.providers.schemas import UnitType

DEFAULT_QUOTES = 20
MAX_QUOTES = 100


class MarketPolicy(RequestModel):
    allowed_models: list[Identifier] = Field(default_factory=list, max_length=256)
    max_unit_price: UnitPrice | None = None
    min_discount_bps: Annotated[int, Field(ge=0, le=10_000)] = 0
    allow_fallback: bool = True
    allow_external_providers: bool = True
    require_healthy_provider: bool = True
    dry_run_required: Literal[True] = True
    raw_credentials_allowed: Literal[False] = False
    broadcast_enabled: Literal[False] = False
    sensitive_signing_inputs_allowed: Literal[False] = False


class PolicyRequest(RequestModel):
    agent_id: Actor = None
    workspace_id: Identifier = "workspace-default"
    task_id: Identifier | None = None
    goal_id: Identifier | None = None
    model: Identifier
    unit_type: UnitType = "token"
    estimated_units: Annotated[int, Field(ge=1, le=10**15)]
    market_policy: MarketPolicy = Field(default_factory=MarketPolicy)
    max_quotes: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_QUOTES,
            description="the best quotes to answer (one per provider); the route's fallbacks "
            "are the quotes after the first",
        ),
    ] = DEFAULT_QUOTES
    max_rejected_routes: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_QUOTES,
            description="rejected routes to answer; the first of each code comes before any "
            "other, so 9 or more shows every code found",
        ),
    ] = DEFAULT_QUOTES


class QuoteRead(BaseModel):
    rank: int
    provider_id: str
    provider_name: str
    order_id: str | None
    model: str
    unit_type: str
    unit_price: Amount
    estimated_units: int
    estimated_cost: Amount
    reference_unit_price: Amount | None
    reference_source: Literal["list_price", "catalog"] | None
    discount_bps: int | None
    available_units: int
    ask_count: int
    quality_score: float
    reliability_score: float
    route_gate: str
    score_explanation: str


class RejectedRoute(BaseModel):
    provider_id: str
    provider_name: str
    order_id: str | None
    code: str
    ask_count: int
    message: str
    next_action: str


class QuoteResponse(SafetyFields):
    ok: Literal[True] = True
    model: str
    unit_type: str
    estimated_units: int
    quotes: list[QuoteRead]
    quote_count: int
    eligible_count: int
    rejected_routes: list[RejectedRoute]
    rejected_count: int
    rejected_by_code: dict[str, int]
    warnings: list[str]
    suggested_models: list[str] = Field(
        description="When no provider lists the model: the listed model names nearest to it "
        "(empty otherwise, or when none is near)"
    )


class RouteRead(BaseModel):
    route_id: str
    agent_id: str | None
    workspace_id: str
    task_id: str | None
    goal_id: str | None
    model: str
    unit_type: str
    estimated_units: int
    provider_id: str
    unit_price: Amount
    estimated_cost: Amount
    discount_bps: int | None
    created_at: datetime
    expires_at: datetime


class RouteResponse(SafetyFields):
    ok: Literal[True] = True
    decision: Literal["selected", "no_valid_inference_route"]
    route: RouteRead | None
    selected_quote: QuoteRead | None
    fallbacks: list[QuoteRead]
    eligible_count: int
    rejected_routes: list[RejectedRoute]
    rejected_count: int
    rejected_by_code: dict[str, int]
    warnings: list[str]
    suggested_models: list[str] = Field(
        description="When no provider lists the model: the listed model names nearest to it "
        "(empty otherwise, or when none is near)"
    )

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, StringConstraints, UrlConstraints

from flow_memory.kit.actors import Actor
from flow_memory.kit.money import Amount, UnitPrice
from flow_memory.kit.schemas import (
    DateTime,
    Identifier,
    Metadata,
    Name,
    ProviderApi,
    RequestModel,
    SafetyFields,
)
from flow_memory.registry.domain import SEMVER_PATTERN, SLUG_PATTERN

UnitType = Literal["token", "request", "second", "image"]
CompatibleApi = Literal["chat_responses", "chat_completions", "responses", "messages", "embeddings"]
ToolCalling = Literal["none", "metadata_only", "native"]
BaseUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=512)]
Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Units = Annotated[int, Field(ge=0, le=10**15)]


class ProviderEnroll(RequestModel):
    owner_id: Actor = None
    workspace_id: Identifier = "workspace-default"
    provider_name: Name
    provider_api: ProviderApi = "sdk_compatible"
    base_url: BaseUrl
    credential_ref_id: Identifier
    credential_ref: Annotated[str, Field(max_length=256)] | None = None
    supported_units: list[UnitType] = Field(
        default_factory=lambda: list[UnitType](["token"]), min_length=1, max_length=4
    )
    contact: Metadata = Field(default_factory=dict)


class ProviderHeartbeat(RequestModel):
    runtime_status: Literal["ready", "busy", "draining", "degraded"] = "ready"
    agent_version: Annotated[str, Field(max_length=64)] | None = None
    active_requests: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    metadata: Metadata = Field(default_factory=dict)


class RegistryModelRef(RequestModel):
    """A model version in Flow Memory's registry (``GET /inference/registry/models/{slug}``)."""

    slug: Annotated[str, StringConstraints(max_length=129, pattern=SLUG_PATTERN)]
    version: Annotated[str, StringConstraints(max_length=64, pattern=SEMVER_PATTERN)]


class RegistryModelRead(BaseModel):
    slug: str
    version: str


class CatalogModel(RequestModel):
    model: Identifier = Field(description="Each model at most once in a catalog")
    compatible_api: CompatibleApi
    unit_types: list[UnitType] = Field(
        min_length=1,
        max_length=4,
        description="Each one of the provider's supported_units, set when it enrolled "
        "(422 unit_type_not_supported otherwise)",
    )
    context_window: Annotated[int, Field(ge=1, le=100_000_000)]
    tool_calling: ToolCalling = "none"
    reference_unit_prices: dict[UnitType, UnitPrice] = Field(default_factory=dict)
    registry_model: RegistryModelRef | None = Field(
        default=None,
        description="The registry model version served under this name, if any: its registry "
        "page then lists this provider (422 registry_model_not_found, registry_version_yanked)",
    )


class ProviderCatalog(RequestModel):
    catalog_version: DateTime = Field(
        description="Not older than the catalog published before (409 catalog_version_outdated)"
    )
    models: list[CatalogModel] = Field(min_length=1, max_length=256)


class CapacityItem(RequestModel):
    model: Identifier = Field(
        description="A model of the provider's catalog (422 model_not_in_catalog otherwise)"
    )
    unit_type: UnitType = Field(
        description="A unit type the catalog lists for the model (422 unit_type_not_offered "
        "otherwise); each model and unit type at most once in a snapshot"
    )
    available_units: Units
    ask_unit_price: UnitPrice
    min_order_units: Annotated[int, Field(ge=1, le=10**15)] = 1
    quality_score: Score = 1.0
    reliability_score: Score = 1.0
    expires_at: DateTime


class ProviderCapacity(RequestModel):
    capacity_version: DateTime = Field(
        description="Not older than the capacity published before (409 "
        "capacity_version_outdated); publish a catalog first (409 catalog_required)"
    )
    inventory: list[CapacityItem] = Field(max_length=1000)


class ProviderRead(BaseModel):
    provider_id: str
    owner_id: str
    workspace_id: str
    provider_name: str
    provider_api: str
    base_url: str
    credential_ref_id: str
    credential_ref: str
    supported_units: list[str]
    contact: dict[str, Any]
    runtime_status: str
    route_gate: str
    created_at: datetime
    updated_at: datetime


class PairingInstructions(BaseModel):
    pairing_token_route: str
    heartbeat_route: str
    pairing_header: str
    steps: list[str]


class ProviderEnrollResponse(SafetyFields):
    ok: Literal[True] = True
    enrollment: Literal["created", "updated"]
    provider: ProviderRead
    pairing: PairingInstructions


class PairingTokenResponse(SafetyFields):
    ok: Literal[True] = True
    provider_id: str
    pairing_token: str = Field(description="Shown once; only its hash is stored")
    token_preview: str
    issued_at: datetime
    expires_at: datetime
    ttl_seconds: int
    pairing_header: str


class HeartbeatResponse(SafetyFields):
    ok: Literal[True] = True
    provider_id: str
    runtime_status: str
    reported_status: str
    paired: bool
    last_heartbeat_at: datetime
    next_heartbeat_due_by: datetime


class CatalogModelRead(BaseModel):
    model: str
    compatible_api: str
    unit_types: list[str]
    context_window: int
    tool_calling: str
    reference_unit_prices: dict[str, Amount]
    registry_model: RegistryModelRead | None = Field(
        default=None, description="Present only when the entry names a registry model version"
    )


class CatalogResponse(SafetyFields):
    ok: Literal[True] = True
    provider_id: str
    catalog_version: datetime
    models: list[CatalogModelRead]
    model_count: int


class CapacityItemRead(BaseModel):
    model: str
    unit_type: str
    available_units: int
    ask_unit_price: Amount
    min_order_units: int
    quality_score: float
    reliability_score: float
    expires_at: datetime


class CapacityResponse(SafetyFields):
    ok: Literal[True] = True
    provider_id: str
    capacity_version: datetime
    inventory: list[CapacityItemRead]
    total_available_units: int


class HealthResponse(SafetyFields):
    ok: Literal[True] = True
    provider_id: str
    status: str
    credential_ref_status: str
    last_heartbeat_at: datetime | None
    heartbeat_status: str
    catalog_status: str
    capacity_status: str
    route_gate: str
    reasons: list[str]
    checked_at: datetime

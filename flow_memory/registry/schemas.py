"""Request and response models of the registry routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from flow_memory.kit.money import Amount, UnitPrice
from flow_memory.kit.schemas import Name, RequestModel, SafetyFields
from flow_memory.providers.schemas import CompatibleApi
from flow_memory.registry.domain import NAME_PATTERN, SEMVER_PATTERN, SLUG_PATTERN

Kind = Literal["model", "agent", "solution"]
Modality = Literal["text", "chat", "vision", "audio", "image", "embedding", "multimodal"]
Derivation = Literal["finetune", "quantization", "merge", "adapter"]
PricingModel = Literal["per_token", "per_request", "per_minute"]
VersionStatus = Literal["active", "deprecated", "yanked"]

Slug = Annotated[
    str,
    StringConstraints(max_length=129, pattern=SLUG_PATTERN),
    Field(
        description="publisher/name: the publisher is the key's owner (or an identity it "
        "controls); lower-case letters, digits, '.', '_' and '-', 64 characters a part"
    ),
]
EntryName = Annotated[str, StringConstraints(max_length=64, pattern=NAME_PATTERN)]
SemVer = Annotated[
    str,
    StringConstraints(max_length=64, pattern=SEMVER_PATTERN),
    Field(description="A semantic version: MAJOR.MINOR.PATCH with an optional -pre-release"),
]
Description = Annotated[str, StringConstraints(max_length=2000)]
Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9._+-]*$")
]
License = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")
]
Family = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]
Prompt = Annotated[str, StringConstraints(max_length=4000)]
Royalty = Annotated[
    int,
    Field(ge=0, le=5000, description="The publisher's royalty in basis points (0 to 5,000)"),
]


class Pricing(RequestModel):
    model: PricingModel = Field(description="per_token, per_request or per_minute")
    price: UnitPrice = Field(description="USD_CREDIT per token, request or minute")
    currency: Literal["USD_CREDIT"] = "USD_CREDIT"


class Lineage(RequestModel):
    base_model: Annotated[str, StringConstraints(min_length=1, max_length=129)]
    derivation: Derivation


class ModelSpec(RequestModel):
    modality: Modality
    compatible_api: list[CompatibleApi] = Field(min_length=1, max_length=5)
    context_window: int = Field(ge=1, le=100_000_000, description="Tokens")
    tool_calling: bool = False
    family: Family
    lineage: Lineage | None = None


class AgentRequirements(RequestModel):
    apis: list[CompatibleApi] = Field(
        default_factory=list, max_length=5, description="APIs the agent speaks; empty: any"
    )
    min_context_window: int = Field(default=0, ge=0, le=100_000_000)
    tool_calling: bool = False
    families: list[Family] = Field(
        default_factory=list, max_length=32, description="Model families allowed; empty: any"
    )
    modalities: list[Modality] = Field(default_factory=list, max_length=7)


class ToolDescription(RequestModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    description: Annotated[str, StringConstraints(max_length=512)] = ""


class ConfigTemplate(RequestModel):
    """Metadata only: Flow Memory never runs agent code."""

    system_prompt: Prompt = ""
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=32)
    tools: list[ToolDescription] = Field(default_factory=list, max_length=32)


class AgentSpec(RequestModel):
    requirements: AgentRequirements = Field(default_factory=AgentRequirements)
    config_template: ConfigTemplate = Field(default_factory=ConfigTemplate)


class _EntryCreate(RequestModel):
    slug: Slug
    display_name: Name
    description: Description = ""
    tags: list[Tag] = Field(default_factory=list, max_length=24)
    license: License
    version: SemVer = "1.0.0"
    changelog: Description = ""


class _Terms(RequestModel):
    pricing: Pricing
    royalty_bps: Royalty = 0


class ModelCreate(_EntryCreate, _Terms):
    model: ModelSpec


class AgentCreate(_EntryCreate, _Terms):
    agent: AgentSpec


class ModelVersionCreate(_Terms):
    version: SemVer
    changelog: Description = ""
    model: ModelSpec


class AgentVersionCreate(_Terms):
    version: SemVer
    changelog: Description = ""
    agent: AgentSpec


class Pin(RequestModel):
    slug: Slug
    version: SemVer


class SolutionSpec(RequestModel):
    agent: Pin
    model: Pin
    configuration: ConfigTemplate = Field(default_factory=ConfigTemplate)


class SolutionCreate(_EntryCreate):
    solution: SolutionSpec
    royalty_bps: Royalty = 0


class SolutionVersionCreate(RequestModel):
    version: SemVer
    changelog: Description = ""
    solution: SolutionSpec
    royalty_bps: Royalty = 0


class VersionStatusChange(RequestModel):
    status: VersionStatus
    reason: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None, description="Required to deprecate or yank"
    )

    @model_validator(mode="after")
    def _reason_when_withdrawn(self) -> VersionStatusChange:
        if self.status != "active" and not (self.reason or "").strip():
            raise ValueError("a reason is required to deprecate or yank a version")
        return self


# -- answers --------------------------------------------------------------------------------


class PricingRead(BaseModel):
    model: PricingModel
    price: Amount
    currency: Literal["USD_CREDIT"] = "USD_CREDIT"


class VersionRead(BaseModel):
    version_id: str
    version: str
    status: VersionStatus
    status_reason: str | None
    status_changed_at: datetime | None
    pricing: PricingRead | None
    royalty_bps: int
    spec: dict[str, Any]
    changelog: str
    published_by: str
    published_at: datetime


class VersionSummary(BaseModel):
    version: str
    status: VersionStatus
    pricing: PricingRead | None
    royalty_bps: int
    published_at: datetime


class EntryRead(BaseModel):
    entry_id: str
    kind: Kind
    slug: str
    publisher_id: str
    name: str
    display_name: str
    description: str = Field(description="The publisher's own text, shown as theirs")
    tags: list[str]
    license: str
    latest_version: str | None = Field(description="The latest active version; null if none")
    created_at: datetime
    updated_at: datetime


class EntryResponse(SafetyFields):
    ok: Literal[True] = True
    entry: EntryRead
    version: VersionRead = Field(description="The pinned version, else the latest active one")
    versions: list[VersionSummary]


class ServingRead(BaseModel):
    provider_id: str
    provider_name: str
    model: str = Field(description="The name the provider lists it under in its catalog")
    version: str = Field(description="The registry version its catalog entry names")
    unit_type: str
    route_gate: str = Field(description="eligible, pending, stale or blocked, as routing judges")
    ask_unit_price: Amount | None = Field(description="Its published capacity's ask, if live")
    available_units: int
    serving_now: bool = Field(description="Eligible for routing, with live capacity left")


class DepthRead(BaseModel):
    unit_type: str
    providers: int
    available_units: int = Field(description="The sum over the providers serving now")
    best_ask_unit_price: Amount | None


class ModelEntryResponse(EntryResponse):
    served_by: list[ServingRead] = Field(
        description="Providers whose catalog names a version of this model; serving now first"
    )
    served_by_count: int = Field(description="Every such provider and unit type (100 listed)")
    depth: list[DepthRead]


class VersionResponse(SafetyFields):
    ok: Literal[True] = True
    entry: EntryRead
    version: VersionRead


class EntryListItem(BaseModel):
    entry: EntryRead
    pricing: PricingRead | None
    royalty_bps: int | None
    facts: dict[str, Any]


class SearchHit(EntryListItem):
    rank: float = Field(description="Higher is a better match; 0 when no text was asked")


class FacetCount(BaseModel):
    value: str
    count: int


class SearchResponse(SafetyFields):
    ok: Literal[True] = True
    results: list[SearchHit]
    total: int = Field(description="The number of hits; a lower bound when total_exact is false")
    total_exact: bool = Field(
        description="False when a text search has more hits than facets_over on PostgreSQL: "
        "total is then a lower bound"
    )
    facets: dict[str, list[FacetCount]] = Field(
        description="Counts by value over the best facets_over hits (the ten busiest publishers)"
    )
    facets_over: int = Field(
        description="How many hits the facets count: every hit, or the best 1,000 of them"
    )
    facets_exact: bool = Field(description="True when the facets count every hit")
    limit: int
    offset: int


class PublisherRead(BaseModel):
    publisher_id: str
    counts: dict[str, int]
    entries: list[EntryListItem]


class PublisherResponse(SafetyFields):
    ok: Literal[True] = True
    publisher: PublisherRead


class MismatchRead(BaseModel):
    requirement: str
    message: str


class Counterpart(BaseModel):
    slug: str
    version: str
    display_name: str
    compatible: bool
    reasons: list[MismatchRead]


class CompatibilityResponse(SafetyFields):
    ok: Literal[True] = True
    subject: dict[str, str] = Field(description="The agent or model asked about: slug, version")
    compatible: list[Counterpart]
    checked: list[Counterpart] = Field(
        description="The candidates named in the query, each compatible or with its reasons"
    )

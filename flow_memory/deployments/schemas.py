"""Request and response models of the deployment and royalty routes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from flow_memory.kit.money import Amount
from flow_memory.kit.schemas import RequestModel, SafetyFields
from flow_memory.registry.schemas import PricingRead, Prompt, SemVer, Slug
from flow_memory.routing.schemas import MarketPolicy

State = Literal["active", "paused", "deleted"]
DeploymentName = Annotated[
    str,
    StringConstraints(max_length=48, pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$"),
    Field(
        description="The slug's second part (lower-case letters, digits, '.', '_' and '-'); "
        "generated when left out"
    ),
]
ParameterValue = str | int | float | bool


class EntryRef(RequestModel):
    slug: Slug
    version: SemVer | None = Field(
        default=None, description="A version to pin; the latest active version when left out"
    )


class ConfigurationOverrides(RequestModel):
    """Overrides of the agent's configuration template: only what the template names."""

    system_prompt: Prompt | None = None
    parameters: dict[str, ParameterValue] = Field(default_factory=dict, max_length=32)


class Requirements(RequestModel):
    min_context_window: int = Field(default=0, ge=0, le=100_000_000, description="Tokens")
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="The most calls through the deployment one server answers at once (beyond "
        "it: 429 deployment_concurrency_exceeded); left out, no limit",
    )
    latency_ceiling_ms: int | None = Field(
        default=None,
        ge=1,
        le=600_000,
        description="Route only to providers whose measured time to first byte (the median of "
        "their last 20 answered calls on the server) is within it; left out, any",
    )


class _Pins(RequestModel):
    solution: EntryRef | None = None
    agent: EntryRef | None = None
    model: EntryRef | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _Pins:
        if self.solution is not None and (self.agent is not None or self.model is not None):
            raise ValueError("send a solution, or an agent and a model, not both")
        if (self.agent is None) != (self.model is None):
            raise ValueError("an agent and a model go together")
        return self


class DeploymentCreate(_Pins):
    name: DeploymentName | None = None
    configuration: ConfigurationOverrides = Field(default_factory=ConfigurationOverrides)
    requirements: Requirements = Field(default_factory=Requirements)
    policy: MarketPolicy = Field(default_factory=MarketPolicy)
    wait_for_capacity: bool = Field(
        default=False, description="Deploy even when no provider serves the model version now"
    )

    @model_validator(mode="after")
    def _something_to_deploy(self) -> DeploymentCreate:
        if self.solution is None and self.agent is None:
            raise ValueError("send a solution, or an agent and a model")
        return self


class RevisionCreate(_Pins):
    """A new revision. Pins left out keep the current ones (their exact versions), with the
    current configuration as the base of any overrides; new pins start from their template
    (and solution). Requirements and policy left out are kept."""

    configuration: ConfigurationOverrides | None = None
    requirements: Requirements | None = None
    policy: MarketPolicy | None = None
    wait_for_capacity: bool = False


# -- answers --------------------------------------------------------------------------------


class PinRead(BaseModel):
    kind: Literal["agent", "model"]
    entry_id: str
    slug: str
    publisher_id: str
    version: str
    version_id: str
    pricing: PricingRead | None
    royalty_bps: int


class RevisionRead(BaseModel):
    revision: int
    solution: dict[str, str] | None = Field(description="The solution it was made from: slug")
    agent: PinRead
    model: PinRead
    configuration: dict[str, Any]
    requirements: dict[str, Any]
    policy: dict[str, Any]
    wait_for_capacity: bool
    created_by: str
    created_at: datetime


class ProviderRead(BaseModel):
    provider_id: str
    provider_name: str
    model: str = Field(description="The name its catalog lists the pinned version under")
    unit_type: str
    route_gate: str
    ask_unit_price: Amount | None
    available_units: int
    serving_now: bool


class CapacityRead(BaseModel):
    serving_now: bool
    providers: list[ProviderRead]
    reasons: list[str] = Field(description="Why no provider serves it now, when none does")


class DeploymentRead(BaseModel):
    deployment_id: str
    slug: str
    model: str = Field(description="The model name to call it by: dep/<slug>")
    owner_id: str
    state: State
    revision: int
    pins: RevisionRead
    created_at: datetime
    updated_at: datetime


class DeploymentResponse(SafetyFields):
    ok: Literal[True] = True
    deployment: DeploymentRead
    capacity: CapacityRead | None = None
    revisions: list[RevisionRead] | None = None


class DeploymentList(SafetyFields):
    ok: Literal[True] = True
    deployments: list[DeploymentRead]
    limit: int
    offset: int


class RoyaltyRow(BaseModel):
    publisher_id: str
    kind: Literal["agent", "model"]
    slug: str
    version: str
    version_id: str
    day: date
    royalty_bps: int
    usage_records: int = Field(description="Calls through deployments that pinned the version")
    cost: Amount = Field(description="Their summed cost")
    royalty: Amount = Field(description="The sum of the royalty lines transferred")
    royalty_of_cost: Amount = Field(
        description="cost * royalty_bps / 10,000, unrounded: royalty less this is the rounding"
    )


class RoyaltyTotals(BaseModel):
    """Over the rows answered. A call counts once for each version it pinned."""

    usage_records: int
    royalty: Amount


class RoyaltyReport(SafetyFields):
    ok: Literal[True] = True
    rows: list[RoyaltyRow]
    totals: RoyaltyTotals
    limit: int
    offset: int


class RoyaltyExportDocument(SafetyFields):
    """The JSON export (``format=json``); NDJSON carries the same parts line by line."""

    ok: Literal[True] = True
    schema_version: str
    format: Literal["json"]
    generated_at: datetime
    filters: dict[str, Any]
    redaction: dict[str, Any]
    records: list[RoyaltyRow] = Field(description="Each with record_type and currency too")
    record_count: int
    complete: bool

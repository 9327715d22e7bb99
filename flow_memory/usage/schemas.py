from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from flow_memory.kit.money import Amount
from flow_memory.kit.schemas import SafetyFields


class UsageRecordRead(SafetyFields):
    usage_id: str
    created_at: datetime
    source: Literal["market_fill", "proxy"]
    decision: str
    owner_id: str
    seller_owner_id: str
    workspace_id: str | None
    agent_id: str | None
    goal_id: str | None
    task_id: str | None
    model: str
    unit_type: str
    provider_id: str
    route_id: str | None
    order_id: str | None
    reservation_id: str | None
    fill_id: str | None
    estimated_units: int
    actual_units: int
    unit_price: Amount
    estimated_cost: Amount
    actual_cost: Amount
    reference_unit_price: Amount | None
    reference_cost: Amount | None
    savings: Amount | None
    discount_bps: int | None
    savings_bps: int | None
    latency_ms: float | None
    quality_score: float | None
    deployment_id: str | None = Field(
        description="The deployment a proxied call went through (model dep/<slug>); null for "
        "every other record"
    )
    agent_version_id: str | None = Field(
        description="The agent version the deployment's revision pinned; null otherwise"
    )
    model_version_id: str | None = Field(
        description="The model version the deployment's revision pinned; null otherwise"
    )
    currency: Literal["USD_CREDIT"]


class UsageTotals(BaseModel):
    records: int = Field(description="Every usage record, billed calls and failed attempts")
    billed_calls: int = Field(
        description="Records of answered calls and fills, and of calls cut short after part "
        "of the answer arrived: what was billed (records - failed_attempts)"
    )
    failed_attempts: int = Field(
        description="Records of proxied calls that got no answer and billed nothing (the "
        "provider refused or failed, or the client left first): kept for audit, never billed"
    )
    records_with_reference: int
    records_without_reference: int
    estimated_units: int
    actual_units: int
    actual_cost: Amount
    cost_with_reference: Amount
    reference_cost: Amount | None
    savings: Amount | None
    savings_bps: int | None


class ModelTotals(UsageTotals):
    model: str


class ProviderTotals(UsageTotals):
    provider_id: str


class DayTotals(UsageTotals):
    day: str


class UsageSummary(UsageTotals):
    currency: Literal["USD_CREDIT"]
    computed_from: Literal["rollup", "rollup+records", "records"]
    by_model: list[ModelTotals]
    by_provider: list[ProviderTotals]
    by_day: list[DayTotals]


class UsageFiltersRead(BaseModel):
    agent_id: str | None
    provider_id: str | None
    model: str | None
    workspace_id: str | None
    route_id: str | None
    task_id: str | None
    deployment_id: str | None
    unit_type: str | None
    since: datetime | None
    until: datetime | None


class UsageResponse(SafetyFields):
    ok: Literal[True] = True
    filters: UsageFiltersRead
    summary: UsageSummary
    records: list[UsageRecordRead]
    count: int
    next_cursor: str | None
    savings_rule: str


class ExportRedaction(BaseModel):
    applied: bool
    policy: str
    omitted_fields: list[str]
    masked_fields: list[str]


class UsageExportDocument(SafetyFields):
    """The JSON export (``format=json``); NDJSON carries the same parts line by line."""

    ok: Literal[True] = True
    schema_version: str
    format: Literal["json"]
    generated_at: datetime
    filters: UsageFiltersRead
    redaction: ExportRedaction
    records: list[UsageRecordRead]
    record_count: int
    complete: bool
    error: dict[str, Any] | None = None

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flow_memory.kit.actors import Actor
from flow_memory.kit.money import Amount
from flow_memory.kit.schemas import Identifier, RequestModel, SafetyFields


class PaymentChallengePreviewCreate(RequestModel):
    # At least one of order_id and reservation_id, each one of the caller's records.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["order_id"], "properties": {"order_id": {"type": "string"}}},
                {
                    "required": ["reservation_id"],
                    "properties": {"reservation_id": {"type": "string"}},
                },
            ]
        }
    )

    order_id: Identifier | None = Field(
        default=None,
        description="An order of the key's owner (another owner's is not found, 404); name an "
        "order_id, a reservation_id or both",
    )
    reservation_id: Identifier | None = Field(
        default=None, description="A reservation of the key's owner (another owner's, 404)"
    )
    buyer_id: Actor = None
    provider_id: Identifier | None = None
    estimated_total_cost: Amount | None = None
    currency: Literal["USD_CREDIT"] = "USD_CREDIT"
    acknowledge_disabled_execution: bool = Field(
        description="Must be true: the preview never executes (422 acknowledgement_required)"
    )

    @model_validator(mode="after")
    def _names_a_record(self) -> PaymentChallengePreviewCreate:
        if self.order_id is None and self.reservation_id is None:
            raise ValueError("name an order_id or a reservation_id")
        return self


class PaymentChallengePreviewRead(BaseModel):
    challenge_id: str
    status: Literal["disabled_preview_only"]
    execution_enabled: Literal[False]
    requires_signature: Literal[False]
    requires_sensitive_signing_material: Literal[False]
    broadcast_allowed: Literal[False]
    next_safe_actions: list[str]
    order_id: str | None
    reservation_id: str | None
    audit_recorded_at: datetime


class PaymentChallengePreviewResponse(SafetyFields):
    ok: Literal[True] = True
    payment_challenge_preview: PaymentChallengePreviewRead

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, model_validator

from flow_memory.kit.money import Amount
from flow_memory.kit.schemas import Identifier, RequestModel, SafetyFields


class PaymentChallengePreviewCreate(RequestModel):
    order_id: Identifier | None = None
    reservation_id: Identifier | None = None
    buyer_id: Identifier | None = None
    provider_id: Identifier | None = None
    estimated_total_cost: Amount | None = None
    currency: Literal["USD_CREDIT"] = "USD_CREDIT"
    acknowledge_disabled_execution: bool

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

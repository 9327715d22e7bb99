"""Route for the disabled payment-challenge preview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from flow_memory.kit.deps import ClockDep, Principal, SessionDep, require_scopes
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES
from flow_memory.kit.scopes import BUY
from flow_memory.payments import service
from flow_memory.payments.schemas import (
    PaymentChallengePreviewCreate,
    PaymentChallengePreviewResponse,
)

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/market",
    tags=["payment preview"],
    responses=ERROR_RESPONSES,
)


@router.post(
    "/payment-challenge/preview",
    status_code=201,
    response_model=PaymentChallengePreviewResponse,
    name="paymentChallengePreview",
    summary="Record a disabled payment challenge preview (never executes)",
)
def preview_payment_challenge(
    body: PaymentChallengePreviewCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(BUY))],
) -> FlowJSONResponse:
    record = service.preview_payment_challenge(
        session, principal=principal, body=body, now=clock.now()
    )
    return respond(
        {
            "payment_challenge_preview": {
                "challenge_id": record.challenge_id,
                "status": "disabled_preview_only",
                "execution_enabled": False,
                "requires_signature": False,
                "requires_sensitive_signing_material": False,
                "broadcast_allowed": False,
                "next_safe_actions": list(service.NEXT_SAFE_ACTIONS),
                "order_id": record.order_id,
                "reservation_id": record.reservation_id,
                "audit_recorded_at": record.created_at,
            }
        },
        status_code=201,
    )

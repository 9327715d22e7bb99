"""Record a disabled payment-challenge preview after checking what it refers to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.market.models import MarketOrder, Reservation
from flow_memory.payments.models import PaymentChallengePreview
from flow_memory.payments.schemas import PaymentChallengePreviewCreate

NEXT_SAFE_ACTIONS = ["record audit preview", "continue with dry-run accounting only"]


def preview_payment_challenge(
    session: Session, *, principal: Principal, body: PaymentChallengePreviewCreate, now: datetime
) -> PaymentChallengePreview:
    if not body.acknowledge_disabled_execution:
        raise Invalid(
            "acknowledge_disabled_execution must be true: the preview never executes",
            field="acknowledge_disabled_execution",
            code="acknowledgement_required",
            hint="send acknowledge_disabled_execution: true",
        )
    ensure_may_act_as(principal, body.buyer_id, field="buyer_id")
    if body.order_id is not None:
        order = session.get(MarketOrder, body.order_id)
        if order is None or not principal.can_see(order.owner_id):
            raise NotFound("order not found", field="order_id")
    if body.reservation_id is not None:
        reservation = session.get(Reservation, body.reservation_id)
        if reservation is None or not principal.can_see(reservation.owner_id):
            raise NotFound("reservation not found", field="reservation_id")
    record = PaymentChallengePreview(
        challenge_id=new_id("payprev"),
        owner_id=principal.owner_id,
        order_id=body.order_id,
        reservation_id=body.reservation_id,
        request=body.model_dump(mode="json"),
        status="disabled_preview_only",
        created_at=now,
    )
    session.add(record)
    session.flush()
    return record

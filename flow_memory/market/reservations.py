"""Reservations: capacity held from asks for a while, idempotent per owner and key."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict
from flow_memory.kit.ids import new_id
from flow_memory.market import repository
from flow_memory.market.models import Reservation, ReservationHold
from flow_memory.market.schemas import ReservationCreate
from flow_memory.market.service import MarketRegistry, open_market
from flow_memory.settings import Settings


def _fingerprint(body: ReservationCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_reservation(
    session: Session,
    markets: MarketRegistry,
    *,
    principal: Principal,
    body: ReservationCreate,
    settings: Settings,
    now: datetime,
) -> tuple[Reservation, list[ReservationHold], bool]:
    """Hold capacity; the same idempotency key and body return the same reservation."""
    fingerprint = _fingerprint(body)
    market = open_market(
        session, markets, model=body.model, unit_type=body.unit_type, settings=settings, now=now
    )
    existing = repository.reservation_by_key(session, principal.owner_id, body.idempotency_key)
    if existing is not None:
        if existing.request_fingerprint != fingerprint:
            raise Conflict(
                "idempotency_key was already used with a different request",
                field="idempotency_key",
                code="idempotency_key_reused",
                hint="use a new idempotency_key for a different reservation",
            )
        return existing, repository.holds_of(session, existing.reservation_id), True
    holds = market.changing().hold(
        body.requested_units,
        body.max_unit_price,
        provider_id=body.provider_id,
        allow_partial=body.allow_partial,
    )
    held = sum(h.units for h in holds)
    if held == 0:
        raise Conflict(
            "no routable capacity at or below max_unit_price"
            + ("" if body.allow_partial else " for the whole request"),
            code="insufficient_capacity",
            field="requested_units",
            hint="raise max_unit_price, allow_partial, or try another provider",
        )
    reservation = Reservation(
        reservation_id=new_id("res"),
        owner_id=principal.owner_id,
        buyer_id=body.buyer_id or principal.owner_id,
        model=body.model,
        unit_type=body.unit_type,
        provider_id=body.provider_id,
        requested_units=body.requested_units,
        held_units=held,
        max_unit_price=body.max_unit_price,
        hold_seconds=body.hold_seconds,
        allow_partial=body.allow_partial,
        idempotency_key=body.idempotency_key,
        request_fingerprint=fingerprint,
        status="active",
        expires_at=now + timedelta(seconds=body.hold_seconds),
        created_at=now,
    )
    session.add(reservation)
    # It may end before any hold the market knew of (when the market writer makes it, no
    # lock release forgets that for it).
    market.state.holds_quiet_until = None
    session.flush()
    rows = [
        ReservationHold(
            reservation_id=reservation.reservation_id,
            order_id=h.order_id,
            units=h.units,
            unit_price=h.unit_price,
            provider_id=h.provider_id,
        )
        for h in holds
    ]
    session.add_all(rows)
    repository.add_event(
        session,
        kind="reservation_held",
        subject_id=reservation.reservation_id,
        model=body.model,
        unit_type=body.unit_type,
        now=now,
        payload={
            "held_units": held,
            "requested_units": body.requested_units,
            "expires_at": reservation.expires_at.isoformat(),
        },
    )
    market.bump()
    session.flush()
    return reservation, rows, False

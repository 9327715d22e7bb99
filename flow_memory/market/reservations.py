"""Reservations: capacity held from routable asks for a while, idempotent per owner and key.

A hold takes units of resting asks out of trading until its reservation expires; expiry is
settled when the market is next opened by a writer's batch. A retired snapshot ask (replaced
by a newer snapshot) offers only held units, so what its holds give back leaves the book.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict
from flow_memory.kit.ids import new_id
from flow_memory.market import repository
from flow_memory.market.books import MarketKey
from flow_memory.market.rows import (
    PlacedHold,
    PlacedReservation,
    event,
    hold_row,
    reservation_row,
)
from flow_memory.market.schemas import ReservationCreate

if TYPE_CHECKING:
    from flow_memory.market.batch import Batch, OpenMarket

QUIET_HOLDS_CHECK = timedelta(hours=1)


def _fingerprint(body: ReservationCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Reserve:
    """Hold capacity: answers the reservation, and whether it replays an earlier one."""

    principal: Principal
    body: ReservationCreate

    def markets(self, batch: Batch) -> list[MarketKey]:
        return [(self.body.model, self.body.unit_type)]

    def run(self, batch: Batch) -> Callable[[Session], tuple[dict[str, Any], bool]]:
        body, owner = self.body, self.principal.owner_id
        ensure_may_act_as(self.principal, body.buyer_id, field="buyer_id")
        fingerprint = _fingerprint(body)
        market = batch.market((body.model, body.unit_type))
        made = batch.reserved_keys
        earlier = made.get((owner, body.idempotency_key))
        if earlier is None:
            found = repository.reservation_by_key(batch.session, owner, body.idempotency_key)
            earlier = None if found is None else found.request_fingerprint
        if earlier is not None:
            if earlier != fingerprint:
                raise Conflict(
                    "idempotency_key was already used with a different request",
                    field="idempotency_key",
                    code="idempotency_key_reused",
                    hint="use a new idempotency_key for a different reservation",
                )
            return self._replay
        holds = market.book.hold(
            body.requested_units,
            body.max_unit_price,
            provider_id=body.provider_id,
            allow_partial=body.allow_partial,
        )
        if not holds:
            raise Conflict(
                "no routable capacity at or below max_unit_price"
                + ("" if body.allow_partial else " for the whole request"),
                code="insufficient_capacity",
                field="requested_units",
                hint="raise max_unit_price, allow_partial, or try another provider",
            )
        market.changed = True
        now = batch.now
        reservation = PlacedReservation(
            reservation_id=new_id("res"),
            owner_id=owner,
            buyer_id=body.buyer_id or owner,
            model=body.model,
            unit_type=body.unit_type,
            provider_id=body.provider_id,
            requested_units=body.requested_units,
            held_units=sum(h.units for h in holds),
            max_unit_price=body.max_unit_price,
            hold_seconds=body.hold_seconds,
            allow_partial=body.allow_partial,
            idempotency_key=body.idempotency_key,
            request_fingerprint=fingerprint,
            status="active",
            expires_at=now + timedelta(seconds=body.hold_seconds),
            created_at=now,
            released_at=None,
            version=market.next_version,
        )
        made[(owner, body.idempotency_key)] = fingerprint
        rows = [
            PlacedHold(reservation.reservation_id, h.order_id, h.units, h.unit_price, h.provider_id)
            for h in holds
        ]
        batch.rows.reservations.append(reservation_row(reservation))
        batch.rows.holds.extend(hold_row(h) for h in rows)
        batch.rows.events.append(
            event(
                "reservation_held",
                reservation.reservation_id,
                market.key,
                now,
                {
                    "held_units": reservation.held_units,
                    "requested_units": reservation.requested_units,
                    "expires_at": reservation.expires_at.isoformat(),
                },
            )
        )
        quiet = market.state.holds_quiet_until
        if quiet is not None and reservation.expires_at < quiet:
            market.state.holds_quiet_until = reservation.expires_at
        answer = reservation_answer(reservation, rows, replay=False), False
        return lambda _session: answer

    def _replay(self, session: Session) -> tuple[dict[str, Any], bool]:
        found = repository.reservation_by_key(
            session, self.principal.owner_id, self.body.idempotency_key
        )
        assert found is not None  # written by an earlier batch or this one
        holds = repository.holds_of(session, found.reservation_id)
        return reservation_answer(found, holds, replay=True), True


def expire_due(batch: Batch, market: OpenMarket) -> None:
    """End the market's reservations that are due and give their held units back."""
    state, now = market.state, batch.now
    if state.holds_quiet_until is not None and now < state.holds_quiet_until:
        return
    model, unit_type = market.key
    due = repository.due_reservations(batch.session, model, unit_type, now)
    following = repository.next_reservation_expiry(batch.session, model, unit_type, after=now)
    state.holds_quiet_until = following or now + QUIET_HOLDS_CHECK
    if not due:
        return
    book = market.changing()
    released: set[str] = set()
    for reservation_id, order_id, units in due:
        batch.rows.reservation_updates[reservation_id] = {
            "status": "expired",
            "released_at": now,
            "version": market.next_version,
        }
        if order_id is not None:
            book.release(order_id, units)
            released.add(order_id)
    for order_id in sorted(released):
        party = state.parties.get(order_id)
        order = book.orders.get(order_id)
        if party is None or order is None or not party.retired:
            continue
        if order.held:
            taken = book.reduce(order_id, order.remaining - order.held) if order.available else 0
            if taken:
                batch.rows.update_order(
                    order_id, now, version=market.next_version, remaining_units=order.remaining
                )
            continue
        book.cancel(order_id)
        batch.rows.update_order(
            order_id,
            now,
            version=market.next_version,
            status="cancelled",
            cancel_reason="replaced_by_capacity_snapshot",
            cancelled_by=party.provider_id,
        )


def reservation_read(reservation: Any, holds: list[Any]) -> dict[str, Any]:
    """A reservation's answer (a ``PlacedReservation`` or a stored row, with its holds)."""
    return {
        "reservation_id": reservation.reservation_id,
        "buyer_id": reservation.buyer_id,
        "model": reservation.model,
        "unit_type": reservation.unit_type,
        "provider_id": reservation.provider_id,
        "requested_units": reservation.requested_units,
        "held_units": reservation.held_units,
        "max_unit_price": reservation.max_unit_price,
        "status": reservation.status,
        "expires_at": reservation.expires_at,
        "created_at": reservation.created_at,
        "idempotency_key": reservation.idempotency_key,
        "matched_orders": [
            {
                "order_id": h.order_id,
                "provider_id": h.provider_id,
                "units": h.units,
                "unit_price": h.unit_price,
            }
            for h in sorted(holds, key=lambda h: (h.unit_price, h.order_id))
        ],
    }


def reservation_answer(reservation: Any, holds: list[Any], *, replay: bool) -> dict[str, Any]:
    read = reservation_read(reservation, holds)
    return {
        "reservation_id": reservation.reservation_id,
        "held_units": reservation.held_units,
        "expires_at": reservation.expires_at,
        "matched_orders": read["matched_orders"],
        "reservation": read,
        "idempotent_replay": replay,
    }

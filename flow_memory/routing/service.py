"""Quote and route use cases: gather candidates, judge them, record the selected route."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flow_memory.credentials import repository as credentials_repository
from flow_memory.kit.deps import Principal
from flow_memory.kit.ids import new_id
from flow_memory.market.models import MarketOrder, Reservation, ReservationHold
from flow_memory.market.repository import ACTIVE
from flow_memory.pricing import service as pricing
from flow_memory.providers import repository as providers_repository
from flow_memory.providers import service as providers_service
from flow_memory.providers.models import CapacityEntry, CatalogEntry
from flow_memory.routing.models import RouteRecord
from flow_memory.routing.policy import Candidate, Evaluation, Policy, Quote, Rejection, evaluate
from flow_memory.routing.schemas import PolicyRequest
from flow_memory.settings import Settings


def gather_candidates(
    session: Session, *, model: str, unit_type: str, settings: Settings, now: datetime
) -> list[Candidate]:
    """Every provider whose catalog lists ``model``, once per resting ask (or once without)."""
    catalog = list(session.scalars(select(CatalogEntry).where(CatalogEntry.model == model)))
    listed = pricing.list_price(session, model, unit_type)
    provider_ids = [entry.provider_id for entry in catalog]
    if not provider_ids:
        return []
    providers = {p.provider_id: p for p in providers_repository.many(session, provider_ids)}
    credentials = credentials_repository.many(
        session, {p.credential_ref_id for p in providers.values()}
    )
    healths = providers_service.health_of_many(session, provider_ids, settings=settings, now=now)
    capacity = {
        c.provider_id: c
        for c in session.scalars(
            select(CapacityEntry).where(
                CapacityEntry.model == model,
                CapacityEntry.unit_type == unit_type,
                CapacityEntry.provider_id.in_(provider_ids),
            )
        )
    }
    asks: dict[str, list[MarketOrder]] = defaultdict(list)
    for order in session.scalars(
        select(MarketOrder)
        .where(
            MarketOrder.model == model,
            MarketOrder.unit_type == unit_type,
            MarketOrder.side == "ask",
            MarketOrder.status.in_(ACTIVE),
            MarketOrder.provider_id.in_(provider_ids),
        )
        .order_by(MarketOrder.sequence)
    ):
        asks[order.provider_id or ""].append(order)
    held: dict[str, int] = {
        order_id: int(units)
        for order_id, units in session.execute(
            select(ReservationHold.order_id, func.sum(ReservationHold.units))
            .join(Reservation)
            .where(
                Reservation.status == "active",
                Reservation.expires_at > now,
                Reservation.model == model,
                Reservation.unit_type == unit_type,
            )
            .group_by(ReservationHold.order_id)
        )
    }

    candidates: list[Candidate] = []
    for entry in catalog:
        provider = providers.get(entry.provider_id)
        if provider is None:
            continue
        credential = credentials.get(provider.credential_ref_id)
        health = healths[provider.provider_id]
        reference = listed if listed is not None else pricing.catalog_reference(entry, unit_type)
        line = capacity.get(provider.provider_id)
        common: dict[str, Any] = {
            "provider_id": provider.provider_id,
            "provider_name": provider.provider_name,
            "model": model,
            "unit_type": unit_type,
            "quality_score": line.quality_score if line else 0.0,
            "reliability_score": line.reliability_score if line else 0.0,
            "reference_unit_price": reference,
            "reference_source": None
            if reference is None
            else ("list_price" if listed is not None else "catalog"),
            "route_gate": health.route_gate,
            "credential_status": health.credential_ref_status,
            "catalog_unit_types": tuple(entry.unit_types),
            "credential_allowed_models": tuple(credential.allowed_models) if credential else (),
        }
        provider_asks = asks.get(provider.provider_id, [])
        if not provider_asks:
            candidates.append(
                Candidate(order_id=None, unit_price=None, available_units=0, **common)
            )
        for order in provider_asks:
            available = order.remaining_units - held.get(order.order_id, 0)
            candidates.append(
                Candidate(
                    order_id=order.order_id,
                    unit_price=order.limit_unit_price,
                    available_units=available,
                    **common,
                )
            )
    return candidates


def _policy(body: PolicyRequest) -> Policy:
    market = body.market_policy
    return Policy(
        allowed_models=tuple(market.allowed_models),
        max_unit_price=market.max_unit_price,
        min_discount_bps=market.min_discount_bps,
        allow_fallback=market.allow_fallback,
        require_healthy_provider=market.require_healthy_provider,
    )


def quote(
    session: Session, *, body: PolicyRequest, settings: Settings, now: datetime
) -> Evaluation:
    candidates = gather_candidates(
        session, model=body.model, unit_type=body.unit_type, settings=settings, now=now
    )
    return evaluate(
        candidates, _policy(body), model=body.model, estimated_units=body.estimated_units
    )


def quote_read(q: Quote, estimated_units: int) -> dict[str, Any]:
    c = q.candidate
    return {
        "rank": q.rank,
        "provider_id": c.provider_id,
        "provider_name": c.provider_name,
        "order_id": c.order_id,
        "model": c.model,
        "unit_type": c.unit_type,
        "unit_price": q.unit_price,
        "estimated_units": estimated_units,
        "estimated_cost": q.estimated_cost,
        "reference_unit_price": c.reference_unit_price,
        "reference_source": c.reference_source,
        "discount_bps": q.discount_bps,
        "available_units": c.available_units,
        "quality_score": c.quality_score,
        "reliability_score": c.reliability_score,
        "route_gate": c.route_gate,
        "score_explanation": q.score_explanation,
    }


def rejection_read(r: Rejection) -> dict[str, Any]:
    return {
        "provider_id": r.candidate.provider_id,
        "provider_name": r.candidate.provider_name,
        "order_id": r.candidate.order_id,
        "code": r.code,
        "message": r.message,
        "next_action": r.next_action,
    }


def select_route(
    session: Session,
    *,
    principal: Principal,
    body: PolicyRequest,
    settings: Settings,
    now: datetime,
) -> tuple[Evaluation, RouteRecord | None, list[Quote]]:
    """Pick the best quote, keep the next ones as ordered fallbacks, and record the route."""
    evaluation = quote(session, body=body, settings=settings, now=now)
    if not evaluation.quotes:
        return evaluation, None, []
    best, *rest = evaluation.quotes
    # A fallback is worth having only on another provider: the same one fails the same way.
    fallbacks: list[Quote] = []
    if body.market_policy.allow_fallback:
        seen = {best.candidate.provider_id}
        for q in rest:
            if q.candidate.provider_id not in seen:
                fallbacks.append(q)
                seen.add(q.candidate.provider_id)
    record = RouteRecord(
        route_id=new_id("route"),
        owner_id=principal.owner_id,
        agent_id=body.agent_id,
        workspace_id=body.workspace_id,
        task_id=body.task_id,
        goal_id=body.goal_id,
        model=body.model,
        unit_type=body.unit_type,
        estimated_units=body.estimated_units,
        provider_id=best.candidate.provider_id,
        order_id=best.candidate.order_id,
        unit_price=best.unit_price,
        estimated_cost=best.estimated_cost,
        reference_unit_price=best.candidate.reference_unit_price,
        discount_bps=best.discount_bps,
        selected_quote=_jsonable(quote_read(best, body.estimated_units)),
        fallbacks=[_jsonable(quote_read(q, body.estimated_units)) for q in fallbacks],
        warnings=list(evaluation.warnings),
        policy=body.market_policy.model_dump(mode="json"),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.route_ttl_seconds),
    )
    session.add(record)
    session.flush()
    return evaluation, record, fallbacks


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in value.items()}

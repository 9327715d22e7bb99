"""Quote and route use cases: gather each provider's offer, judge them, record the route."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal
from flow_memory.kit.ids import new_id
from flow_memory.pricing import service as pricing
from flow_memory.providers import service as providers_service
from flow_memory.providers.health import RuntimeFacts, derive_health
from flow_memory.routing import book, repository
from flow_memory.routing.facts import RouteFacts
from flow_memory.routing.models import RouteRecord
from flow_memory.routing.policy import Evaluation, Offer, Policy, Quote, Rejection, evaluate
from flow_memory.routing.schemas import PolicyRequest
from flow_memory.routing.suggest import name_list, nearest_models
from flow_memory.settings import Settings


def provider_offers(
    session: Session,
    *,
    model: str,
    unit_type: str,
    listed: Decimal | None,
    settings: Settings,
    now: datetime,
) -> tuple[Offer, ...]:
    """Every provider whose catalog lists ``model``, judged for health at ``now``, without
    asks; ``listed`` is the operator's list price, if any.

    One column-only query for the providers with their health facts."""
    lines = repository.provider_lines(session, model=model, unit_type=unit_type)
    limits = providers_service.thresholds(settings)
    offers: list[Offer] = []
    for line in lines:
        health = derive_health(_facts(line), now, limits)
        reference: Decimal | None = listed
        source: str | None = "list_price"
        if listed is None:
            reference = pricing.reference_from_catalog(line.reference_unit_prices, unit_type)
            source = None if reference is None else "catalog"
        offers.append(
            Offer(
                provider_id=line.provider_id,
                provider_name=line.provider_name,
                model=model,
                unit_type=unit_type,
                quality_score=line.quality_score or 0.0,
                reliability_score=line.reliability_score or 0.0,
                reference_unit_price=reference,
                reference_source=source,
                route_gate=health.route_gate,
                credential_status=health.credential_ref_status,
                catalog_unit_types=tuple(line.unit_types),
                credential_allowed_models=tuple(line.allowed_models or ()),
            )
        )
    return tuple(offers)


def kept_offers(
    session: Session,
    facts: RouteFacts | None,
    *,
    model: str,
    unit_type: str,
    settings: Settings,
    now: datetime,
) -> tuple[Offer, ...]:
    """The market's offers, from ``facts`` while they are fresh, else read (and kept there)."""
    if facts is None:
        listed = repository.list_price(session, model=model, unit_type=unit_type)
        return provider_offers(
            session, model=model, unit_type=unit_type, listed=listed, settings=settings, now=now
        )
    # Taken before the session's first read: on SQLite that read fixes the snapshot, and a
    # change committed after it must keep the offers read from that snapshot out of ``facts``.
    generation = facts.generation
    listed = repository.list_price(session, model=model, unit_type=unit_type)
    offers = facts.get((model, unit_type), now=now, listed=listed)
    if offers is None:
        offers = provider_offers(
            session, model=model, unit_type=unit_type, listed=listed, settings=settings, now=now
        )
        facts.put((model, unit_type), offers, listed=listed, now=now, generation=generation)
    return offers


def _facts(line: repository.ProviderLine) -> RuntimeFacts:
    """The health facts of a provider line (as the providers domain gathers them)."""
    return RuntimeFacts(
        paired=line.paired_at is not None,
        routes_disabled=line.routes_disabled,
        credential_status=line.credential_status or "revoked",
        credential_pointer_current=line.credential_ref is not None
        and line.credential_ref == line.provider_credential_ref,
        last_heartbeat_at=line.last_heartbeat_at,
        catalog_published_at=line.catalog_published_at,
        capacity_published_at=line.capacity_published_at,
        capacity_latest_expiry=line.capacity_latest_expiry,
        reported_status=line.reported_status,
    )


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
    session: Session,
    *,
    body: PolicyRequest,
    settings: Settings,
    now: datetime,
    facts: RouteFacts | None = None,
) -> Evaluation:
    """Judge every provider for the request; the best ``max_quotes`` quotes, with totals.

    With ``facts`` (the app's), the providers' offers may be up to a second old; the asks
    are always as committed (``book``)."""
    model, unit_type = body.model, body.unit_type
    offers = kept_offers(
        session, facts, model=model, unit_type=unit_type, settings=settings, now=now
    )
    levels = book.ask_levels(session, model=model, unit_type=unit_type, now=now) if offers else {}
    evaluation = evaluate(
        offers,
        _policy(body),
        levels=levels,
        model=body.model,
        estimated_units=body.estimated_units,
        max_quotes=body.max_quotes,
        max_rejected=body.max_rejected_routes,
    )
    if evaluation.unlisted:
        evaluation.suggested_models = suggest_models(session, model)
        evaluation.warnings = [unlisted_warning(evaluation.suggested_models)]
    return evaluation


NOT_LISTED = "no provider lists this model"


def suggest_models(
    session: Session, model: str, *, compatible_apis: Collection[str] | None = None
) -> list[str]:
    """The listed model names nearest to ``model`` (a name nobody lists)."""
    return nearest_models(model, repository.listed_models(session, compatible_apis=compatible_apis))


def unlisted_warning(suggested: list[str]) -> str:
    """What a quote or route says of a model nobody lists: never the name the caller sent."""
    if suggested:
        return f"{NOT_LISTED}; listed models with similar names: {name_list(suggested)}"
    return f"{NOT_LISTED}; GET /inference/market/list shows the models on offer"


def model_apis(session: Session, model: str) -> set[str]:
    """The API styles providers' catalogs declare for ``model`` (empty: nobody lists it)."""
    return repository.catalog_apis(session, model=model)


def models_serving(session: Session, model: str, compatible_apis: Collection[str]) -> list[str]:
    """Listed models some provider serves in one of ``compatible_apis``, the names nearest to
    ``model`` first (at most ten)."""
    listed = repository.listed_models(session, compatible_apis=compatible_apis)
    return nearest_models(model, listed, limit=10, cutoff=0)


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
        "ask_count": c.ask_count,
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
        "ask_count": r.ask_count,
        "message": r.message,
        "next_action": r.next_action,
    }


def rejections_read(evaluation: Evaluation) -> dict[str, Any]:
    """The bounded rejected routes with their totals."""
    return {
        "rejected_routes": [rejection_read(r) for r in evaluation.rejected],
        "rejected_count": evaluation.rejected_count,
        "rejected_by_code": dict(sorted(evaluation.rejected_by_code.items())),
    }


def select_route(
    session: Session,
    *,
    principal: Principal,
    body: PolicyRequest,
    settings: Settings,
    now: datetime,
    facts: RouteFacts | None = None,
) -> tuple[Evaluation, RouteRecord | None, list[Quote]]:
    """Choose a route (``choose_route``) and record it in ``session``."""
    evaluation, record, fallbacks = choose_route(
        session, principal=principal, body=body, settings=settings, now=now, facts=facts
    )
    if record is not None:
        session.add(record)
        session.flush()
    return evaluation, record, fallbacks


def choose_route(
    session: Session,
    *,
    principal: Principal,
    body: PolicyRequest,
    settings: Settings,
    now: datetime,
    facts: RouteFacts | None = None,
) -> tuple[Evaluation, RouteRecord | None, list[Quote]]:
    """Pick the best quote and keep the next ones as ordered fallbacks: a route record, not
    yet stored (only reads, so a read session serves)."""
    evaluation = quote(session, body=body, settings=settings, now=now, facts=facts)
    if not evaluation.quotes:
        return evaluation, None, []
    # Each quote is another provider, so the rest are the fallbacks, in rank order.
    best, *rest = evaluation.quotes
    fallbacks = rest if body.market_policy.allow_fallback else []
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
    return evaluation, record, fallbacks


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in value.items()}

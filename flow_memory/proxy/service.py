"""Proxy use cases: turn a request's routing options into an ordered list of upstream targets,
and turn an answered call into its usage record and ``flow_memory`` metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from flow_memory.deployments.domain import DeployedCall, call_metadata
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, FlowMemoryError, NotFound
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.providers import repository as providers_repository
from flow_memory.providers import service as providers_service
from flow_memory.providers.models import CatalogEntry
from flow_memory.proxy.estimate import estimated_units
from flow_memory.proxy.schemas import ProxyOptions
from flow_memory.proxy.translate import Usage
from flow_memory.routing import service as routing
from flow_memory.routing.models import RouteRecord
from flow_memory.routing.schemas import MarketPolicy, PolicyRequest
from flow_memory.routing.suggest import name_list
from flow_memory.settings import Settings
from flow_memory.usage.outcomes import billed_request_units
from flow_memory.usage.service import UsageInput, record_values

Kind = Literal["chat", "responses", "embeddings"]

# Which catalog styles can answer each client style, and how (None: passed through as is).
SERVES: dict[Kind, dict[str, str | None]] = {
    "chat": {"chat_completions": None, "chat_responses": None, "messages": "messages"},
    "responses": {
        "responses": None,
        "chat_responses": None,
        "chat_completions": "chat",
        "messages": "messages",
    },
    "embeddings": {"embeddings": None, "chat_completions": None, "chat_responses": None},
}
# What a call's route is selected for when its flow_memory options name no estimated_units:
# providers with fewer units at one price are passed over. (The usage record's estimate is the
# call's own: flow_memory.proxy.estimate.)
DEFAULT_ESTIMATED_UNITS = 1_000
# How each client style is named in messages.
API_NAMES: dict[Kind, str] = {
    "chat": "chat completions",
    "responses": "responses",
    "embeddings": "embeddings",
}


class NoRoute(FlowMemoryError):
    status_code = 503
    code = "no_valid_inference_route"


class ApiNotServed(FlowMemoryError):
    """The model is listed, but no provider serves it in the call's API style: the caller's
    mistake (another API, or another model), not an outage."""

    status_code = 400
    code = "api_not_served"


@dataclass(frozen=True)
class Target:
    """One provider to try, with what the usage record needs to price the call."""

    provider_id: str
    seller_owner_id: str
    base_url: str
    credential_ref: str
    compatible_api: str
    translation: str | None
    unit_type: str
    unit_price: Decimal
    reference_unit_price: Decimal | None
    order_id: str | None
    quality_score: float | None


@dataclass(frozen=True)
class Plan:
    """A route to follow: the selected target first, then its fallbacks in order."""

    route_id: str
    owner_id: str
    model: str
    unit_type: str
    estimated_units: int
    agent_id: str | None
    workspace_id: str
    task_id: str | None
    goal_id: str | None
    targets: tuple[Target, ...]
    allow_fallback: bool
    warnings: tuple[str, ...]
    expires_at: datetime
    # An enforced payer's estimate, held before the call (flow_memory.proxy.paying).
    hold_id: str | None = None
    # A call through a deployment (``dep/<slug>``): its pins, recorded with the call's usage.
    deployment: DeployedCall | None = None


def plan_for_route(
    session: Session,
    *,
    principal: Principal,
    route_id: str,
    model: str,
    kind: Kind,
    settings: Settings,
    now: datetime,
) -> Plan:
    """Follow a route the caller recorded earlier with ``POST /inference/route``."""
    record = session.get(RouteRecord, route_id)
    if record is None or not principal.can_see(record.owner_id):
        raise NotFound(
            "route not found", field="route_id", hint="create one with POST /inference/route"
        )
    if record.expires_at <= now:
        raise Conflict(
            f"the route expired at {record.expires_at.isoformat()}",
            field="route_id",
            code="route_expired",
            hint="select a new route with POST /inference/route, or send no route_id",
        )
    if record.model != model:
        raise Conflict(
            "the route is for another model",
            field="model",
            code="route_model_mismatch",
            hint="send the route's model, or no route_id",
        )
    return _plan(session, record, kind=kind, settings=settings, now=now)


def plan_fresh(
    session: Session,
    *,
    principal: Principal,
    model: str,
    kind: Kind,
    options: ProxyOptions,
    settings: Settings,
    now: datetime,
    keep: Callable[[RouteRecord], None],
) -> Plan:
    """Select a route under the request's policy (or the default one) and plan the call.

    Only reads: ``session`` may be a read session. The chosen route is handed to ``keep``
    once the plan is made (the proxy queues it to the usage writer, so selecting takes no
    write lock on the request path)."""
    ensure_model_serves(session, model=model, kind=kind)
    body = PolicyRequest(
        model=model,
        unit_type=options.unit_type,
        estimated_units=options.estimated_units or DEFAULT_ESTIMATED_UNITS,
        agent_id=options.agent_id,
        workspace_id=options.workspace_id,
        task_id=options.task_id,
        goal_id=options.goal_id,
        market_policy=options.market_policy or MarketPolicy(),
    )
    evaluation, record, _ = routing.choose_route(
        session, principal=principal, body=body, settings=settings, now=now
    )
    if record is None and not evaluation.rejected_by_code:
        raise model_not_found(evaluation.suggested_models)
    if record is None:
        counts = evaluation.rejected_by_code
        reasons = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
        raise NoRoute(
            f"no provider can serve this model under the policy ({reasons})",
            field="model",
            hint="POST /inference/quote shows each rejected route and its safe next action",
        )
    plan = _plan(session, record, kind=kind, settings=settings, now=now)
    keep(record)
    return plan


def model_not_found(suggested: list[str]) -> NotFound:
    """No provider lists the model: never repeating the name the caller sent."""
    near = f"listed models with similar names: {name_list(suggested)}; " if suggested else ""
    return NotFound(
        "no provider lists this model",
        field="model",
        code="model_not_found",
        hint=f"{near}GET /v1/models lists the models providers serve now",
    )


def ensure_model_serves(session: Session, *, model: str, kind: Kind) -> None:
    """Refuse, before any route is selected, a model nobody lists (404) or one whose providers
    all serve other API styles than the call's (400), naming the models that do serve it."""
    apis = routing.model_apis(session, model)
    if not apis:
        raise model_not_found(routing.suggest_models(session, model))
    if apis & SERVES[kind].keys():
        return
    serving = routing.models_serving(session, model, SERVES[kind].keys())
    raise ApiNotServed(
        f"no provider serves this model for {API_NAMES[kind]}: its providers serve "
        f"{name_list(sorted(apis))}",
        field="model",
        hint=(
            f"models served for {API_NAMES[kind]}: {name_list(serving)}"
            if serving
            else f"no listed model is served for {API_NAMES[kind]} now"
        )
        + "; GET /v1/models lists each model's compatible_apis",
    )


def _plan(
    session: Session, record: RouteRecord, *, kind: Kind, settings: Settings, now: datetime
) -> Plan:
    quotes: list[dict[str, Any]] = [record.selected_quote, *record.fallbacks]
    provider_ids = [str(q["provider_id"]) for q in quotes]
    providers = {p.provider_id: p for p in providers_repository.many(session, provider_ids)}
    catalog = {
        entry.provider_id: entry
        for entry in session.scalars(
            select(CatalogEntry).where(
                tuple_(CatalogEntry.provider_id, CatalogEntry.model).in_(
                    [(pid, record.model) for pid in provider_ids]
                )
            )
        )
    }
    gates = providers_service.route_gates(session, provider_ids, settings=settings, now=now)
    require_healthy = bool(record.policy.get("require_healthy_provider", True))
    warnings = list(record.warnings)
    targets: list[Target] = []
    for quote in quotes:
        provider_id = str(quote["provider_id"])
        provider = providers.get(provider_id)
        entry = catalog.get(provider_id)
        if provider is None or entry is None:
            warnings.append(f"{provider_id} no longer lists the model; skipped")
            continue
        gate = gates.get(provider_id, "blocked")
        if gate == "blocked" or (require_healthy and gate != "eligible"):
            warnings.append(f"{provider_id} route gate is {gate}; skipped")
            continue
        serves = SERVES[kind]
        if entry.compatible_api not in serves:
            warnings.append(f"{provider_id} serves {entry.compatible_api}, not {kind}; skipped")
            continue
        reference = quote.get("reference_unit_price")
        targets.append(
            Target(
                provider_id=provider_id,
                seller_owner_id=provider.owner_id,
                base_url=provider.base_url.rstrip("/"),
                credential_ref=provider.credential_ref,
                compatible_api=entry.compatible_api,
                translation=serves[entry.compatible_api],
                unit_type=str(quote.get("unit_type") or record.unit_type),
                unit_price=Decimal(str(quote["unit_price"])),
                reference_unit_price=None if reference is None else Decimal(str(reference)),
                order_id=quote.get("order_id"),
                quality_score=quote.get("quality_score"),
            )
        )
    if not targets:
        ensure_model_serves(session, model=record.model, kind=kind)
        raise NoRoute(
            f"route {record.route_id} has no provider that can serve this model for "
            f"{API_NAMES[kind]} now",
            field="model",
            hint="select a new route with POST /inference/route, or allow fallback",
        )
    allow_fallback = bool(record.policy.get("allow_fallback", True))
    return Plan(
        route_id=record.route_id,
        owner_id=record.owner_id,
        model=record.model,
        unit_type=record.unit_type,
        estimated_units=record.estimated_units,
        agent_id=record.agent_id,
        workspace_id=record.workspace_id,
        task_id=record.task_id,
        goal_id=record.goal_id,
        targets=tuple(targets if allow_fallback else targets[:1]),
        allow_fallback=allow_fallback,
        warnings=tuple(warnings),
        expires_at=record.expires_at,
    )


def for_this_call(plan: Plan, kind: Kind, body: dict[str, Any], options: ProxyOptions) -> Plan:
    """The plan as this call is recorded: with the call's own estimated units (those its
    options name, else ``flow_memory.proxy.estimate``'s), and attributed to the agent the call
    names (checked by the caller), else the route's, else the route owner (the key's owner)."""
    return replace(
        plan,
        estimated_units=options.estimated_units or estimated_units(kind, body, plan.unit_type),
        agent_id=options.agent_id or plan.agent_id or plan.owner_id,
    )


def units_of(usage: Usage, unit_type: str, decision: str) -> int:
    """Billable units of one call: its tokens, or one request (none for a failed attempt)."""
    if unit_type == "token":
        return usage.total_tokens
    return billed_request_units(decision, usage.total_tokens)


def usage_record(
    plan: Plan,
    target: Target,
    *,
    usage: Usage,
    decision: str,
    latency_ms: float,
    now: datetime,
) -> dict[str, Any]:
    """The usage record (its column values) of one proxied call, priced at the route's unit
    price. Column values, not an ORM object: building one costs more than the call itself."""
    units = units_of(usage, target.unit_type, decision)
    values = record_values(
        UsageInput(
            source="proxy",
            decision=decision,
            owner_id=plan.owner_id,
            seller_owner_id=target.seller_owner_id,
            model=plan.model,
            unit_type=target.unit_type,
            provider_id=target.provider_id,
            estimated_units=plan.estimated_units,
            actual_units=units,
            unit_price=target.unit_price,
            reference_unit_price=target.reference_unit_price,
            workspace_id=plan.workspace_id,
            agent_id=plan.agent_id,
            goal_id=plan.goal_id,
            task_id=plan.task_id,
            route_id=plan.route_id,
            order_id=target.order_id,
            latency_ms=round(latency_ms, 3),
            quality_score=target.quality_score,
        ),
        now=now,
    )
    if plan.deployment is not None:
        values.update(plan.deployment.columns())
    return values


def metadata(
    plan: Plan,
    target: Target | None,
    *,
    record: dict[str, Any] | None,
    usage: Usage | None,
    warnings: list[str],
    attempts: list[dict[str, str]],
) -> dict[str, Any]:
    """The ``flow_memory`` object added to every proxied answer."""
    body: dict[str, Any] = {
        "route_id": plan.route_id,
        "provider_id": target.provider_id if target else None,
        "model": plan.model,
        "unit_type": target.unit_type if target else plan.unit_type,
        "unit_price": target.unit_price if target else None,
        "reference_unit_price": target.reference_unit_price if target else None,
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "units": record["actual_units"] if record else None,
            "estimated": usage.estimated,
        },
        "cost": record["actual_cost"] if record else None,
        "reference_cost": record["reference_cost"] if record else None,
        "savings": record["savings"] if record else None,
        "savings_bps": record["discount_bps"]
        if record and record["reference_cost"] is not None
        else None,
        "usage_id": record["usage_id"] if record else None,
        "attempts": attempts,
        "warnings": [*plan.warnings, *warnings],
    }
    if plan.deployment is not None:
        body.update(call_metadata(plan.deployment, record["actual_cost"] if record else None))
    body.update(SAFETY_ENVELOPE)
    return body

"""Calling a deployment through the proxy: ``model: "dep/<slug>"`` in /v1/chat/completions or
/v1/responses.

The proxy hands such a call here (and only such a call: every other model name goes its usual
way, reading nothing more). Only the deployment's owner's keys may call it, and only while it
is active; the deployment is read at most once a second per caller (``Resolutions``), and a
pause, resume, delete or revision made through this server applies to the next call. Its
current revision's configuration is applied to the body (``flow_memory.deployments.domain``),
and the call is routed to the providers whose catalog names the pinned model version, under
the deployment's policy; the route is cached per revision as the proxy caches default routes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from flow_memory.deployments import repository
from flow_memory.deployments.domain import DeployedCall, RoyaltyTerm, configured_body
from flow_memory.deployments.limits import LatencyCeilingUnmet, ProviderLatencies, latencies_of
from flow_memory.deployments.models import Deployment
from flow_memory.deployments.service import MODEL_PREFIX
from flow_memory.kit.deps import Principal, transaction
from flow_memory.kit.errors import Conflict, Invalid, NotFound
from flow_memory.kit.http import problems_error
from flow_memory.providers.models import CatalogEntry
from flow_memory.proxy.plans import PlanCache
from flow_memory.proxy.schemas import ProxyOptions
from flow_memory.proxy.service import Kind, NoRoute, Plan, plan_fresh
from flow_memory.routing.schemas import MarketPolicy

RESOLVED_SECONDS = 1.0


@dataclass(frozen=True)
class Resolved:
    """A deployment as one call needs it: its pins, configuration and the catalog names."""

    call: DeployedCall
    revision_id: str
    configuration: dict[str, Any]
    policy: MarketPolicy
    model: str  # the catalog name the call is routed under
    providers: frozenset[str]  # those whose catalog names the pinned version under it


class Resolutions:
    """Deployments resolved for calls in the last ``seconds`` (a second by default), so steady
    traffic to a deployment reads it once a second, not once a call. A change made through this
    server (a pause, a resume, a delete, a revision) forgets them all at once; one made through
    another server sharing the database applies within the second."""

    def __init__(
        self, seconds: float = RESOLVED_SECONDS, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._monotonic = monotonic
        self._found: dict[tuple[str, str, str], tuple[float, Resolved]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key: tuple[str, str, str]) -> Resolved | None:
        found = self._found.get(key)  # a dict read: atomic
        if found is None or self._monotonic() - found[0] >= self._seconds:
            return None
        return found[1]

    def put(self, key: tuple[str, str, str], resolved: Resolved, *, generation: int) -> None:
        """Keep ``resolved`` unless the deployments changed since it was read."""
        with self._lock:
            if generation != self.generation:
                return
            if len(self._found) > 10_000:
                self._found.clear()
            self._found[key] = (self._monotonic(), resolved)

    def forget(self) -> None:
        with self._lock:
            self.generation += 1
            self._found.clear()


def resolutions_of(state: State) -> Resolutions:
    """The app's resolved deployments (made on first use)."""
    found: Resolutions | None = getattr(state, "deployment_resolutions", None)
    if found is None:
        found = state.deployment_resolutions = Resolutions()
    return found


def is_deployment(model: str) -> bool:
    return model.startswith(MODEL_PREFIX)


def _term(pin: dict[str, Any]) -> RoyaltyTerm:
    return RoyaltyTerm(
        kind=pin["kind"],
        publisher_id=pin["publisher_id"],
        slug=pin["slug"],
        version=pin["version"],
        version_id=pin["version_id"],
        royalty_bps=int(pin["royalty_bps"]),
    )


def resolve(session: Session, *, principal: Principal, kind: Kind, slug: str) -> Resolved:
    """The caller's active deployment ``slug`` and where its pinned model version is served."""
    deployment = repository.by_slug(session, slug)
    if deployment is None or deployment.owner_id != principal.owner_id:
        raise NotFound(
            "no deployment of yours has this name",
            field="model",
            code="deployment_not_found",
            hint="GET /inference/deployments lists yours; call one as dep/<slug>",
        )
    _ensure_callable(deployment, kind)
    revision = repository.revision(session, deployment.deployment_id, deployment.revision)
    assert revision is not None
    names: dict[str, set[str]] = {}
    for provider_id, model in session.execute(
        select(CatalogEntry.provider_id, CatalogEntry.model).where(
            CatalogEntry.registry_version_id == revision.model_version_id
        )
    ):
        names.setdefault(model, set()).add(provider_id)
    if not names:
        raise NoRoute(
            f"no provider's catalog names {revision.model['slug']}@{revision.model['version']} now",
            field="model",
            hint="the deployment waits for capacity: GET /inference/deployments/{id} shows who "
            "serves it",
        )
    # The name most of them list it under (then the first in order).
    model = min(names, key=lambda name: (-len(names[name]), name))
    call = DeployedCall(
        deployment_id=deployment.deployment_id,
        slug=deployment.slug,
        revision=revision.revision,
        agent_version_id=revision.agent_version_id,
        model_version_id=revision.model_version_id,
        terms=(_term(revision.agent), _term(revision.model)),
        concurrency=revision.requirements.get("concurrency"),
        latency_ceiling_ms=revision.requirements.get("latency_ceiling_ms"),
    )
    return Resolved(
        call=call,
        revision_id=revision.revision_id,
        configuration=revision.configuration,
        policy=MarketPolicy.model_validate(revision.policy),
        model=model,
        providers=frozenset(names[model]),
    )


def _ensure_callable(deployment: Deployment, kind: Kind) -> None:
    if deployment.state != "active":
        raise Conflict(
            f"the deployment is {deployment.state}",
            field="model",
            code=f"deployment_{deployment.state}",
            hint="resume it with POST /inference/deployments/{id}/resume"
            if deployment.state == "paused"
            else "a deleted deployment is never called again; deploy anew",
        )
    if kind == "embeddings":
        raise Invalid(
            "a deployment answers chat completions and responses, not embeddings",
            field="model",
            code="api_not_served",
        )


def _options(options: ProxyOptions, sent: Any, policy: MarketPolicy) -> ProxyOptions:
    if options.route_id is not None or (isinstance(sent, dict) and "market_policy" in sent):
        raise Invalid(
            "a deployment routes under its own policy: leave route_id and market_policy out",
            field="flow_memory",
            code="deployment_policy",
            hint="change the policy with POST /inference/deployments/{id}/revisions",
        )
    return options.model_copy(update={"market_policy": policy})


def _select(
    state: State, caller: Principal, kind: Kind, found: Resolved, options: ProxyOptions
) -> Plan:
    now: datetime = state.clock.now()
    with transaction(state.read_session_factory) as session:
        plan = plan_fresh(
            session,
            principal=caller,
            model=found.model,
            kind=kind,
            options=options,
            settings=state.settings,
            now=now,
            keep=state.usage_recorder.add_route,
        )
    targets = tuple(t for t in plan.targets if t.provider_id in found.providers)
    if not targets:
        raise NoRoute(
            "no provider serving the deployment's model version can take the call under its policy",
            field="model",
            hint="GET /inference/deployments/{id} shows who serves it now",
        )
    return replace(plan, targets=targets, deployment=found.call)


async def plan_call(
    state: State,
    caller: Principal,
    kind: Kind,
    body: dict[str, Any],
    options: ProxyOptions,
    sent_options: Any,
) -> tuple[Plan, dict[str, Any]]:
    """The plan of a call through a deployment, and its body with the configuration applied."""
    slug = str(body["model"]).removeprefix(MODEL_PREFIX)

    def read() -> Resolved:
        with transaction(state.read_session_factory) as session:
            return resolve(session, principal=caller, kind=kind, slug=slug)

    resolutions = resolutions_of(state)
    called = (caller.owner_id, kind, slug)
    found = resolutions.get(called)
    if found is None:
        generation = resolutions.generation
        found = await run_in_threadpool(read)
        resolutions.put(called, found, generation=generation)
    options = _options(options, sent_options, found.policy)
    configured, problems = configured_body(kind, body, found.configuration, found.model)
    if problems:
        raise problems_error(problems, hint="the deployment's configuration sets these")
    cache: PlanCache = state.proxy_plans
    key = (caller.owner_id, kind, f"{MODEL_PREFIX}{found.revision_id}", options.model_dump_json())
    now = state.clock.now()
    plan = cache.get(key, now)
    if plan is None:
        async with cache.selecting(key):
            plan = cache.get(key, now)
            if plan is None:
                generation = cache.generation
                plan = await run_in_threadpool(_select, state, caller, kind, found, options)
                cache.put(key, plan, generation=generation)
    ceiling = found.call.latency_ceiling_ms
    if ceiling is not None:
        plan = within_ceiling(plan, latencies_of(state), ceiling)
    return plan, configured


def within_ceiling(plan: Plan, latencies: ProviderLatencies, ceiling_ms: int) -> Plan:
    """The plan's targets whose measured time to first byte is within the deployment's
    ceiling (``flow_memory.deployments.limits``), in their order."""
    targets = tuple(t for t in plan.targets if latencies.fits(t.provider_id, ceiling_ms))
    if len(targets) == len(plan.targets):
        return plan
    if not targets:
        slowest = ", ".join(
            f"{t.provider_id} {latencies.measured(t.provider_id):.0f} ms" for t in plan.targets
        )
        raise LatencyCeilingUnmet(
            f"no provider serving the deployment begins its answer within {ceiling_ms} ms "
            f"now (measured: {slowest})",
            field="model",
            hint="retry later, or raise requirements.latency_ceiling_ms with a new revision",
        )
    return replace(plan, targets=targets)


def listed_models(session: Session, *, owner_id: str) -> list[dict[str, Any]]:
    """The owner's active deployments as SDK model objects, for ``GET /v1/models``."""
    found = repository.listed(
        session, owner_id=owner_id, include_deleted=False, limit=1_000, offset=0
    )
    return [
        {
            "id": MODEL_PREFIX + d.slug,
            "object": "model",
            "created": int(d.created_at.timestamp()),
            "owned_by": d.owner_id,
            "flow_memory": {
                "deployment_id": d.deployment_id,
                "state": d.state,
                "revision": d.revision,
            },
        }
        for d in found
        if d.state == "active"
    ]

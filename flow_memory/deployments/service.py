"""Deploy an agent and a model (or a solution), revise, pause, resume and delete deployments,
and read them. Pins are resolved and checked here; a revision once written never changes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.deployments import repository
from flow_memory.deployments.capacity import Capacity, capacity, ensure_capacity
from flow_memory.deployments.domain import merged_configuration
from flow_memory.deployments.models import Deployment, DeploymentRevision
from flow_memory.deployments.schemas import (
    DeploymentCreate,
    EntryRef,
    RevisionCreate,
)
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Invalid, NotFound, Problem
from flow_memory.kit.ids import new_id
from flow_memory.kit.scopes import AUDIT
from flow_memory.registry import repository as registry_repository
from flow_memory.registry import service as registry
from flow_memory.registry.domain import mismatches, valid_publisher
from flow_memory.registry.models import RegistryEntry, RegistryVersion
from flow_memory.settings import Settings

MODEL_PREFIX = "dep/"


@dataclass(frozen=True)
class Pins:
    """What a revision pins, resolved from the registry."""

    solution: tuple[str, str] | None
    agent_entry: RegistryEntry
    agent: RegistryVersion
    model_entry: RegistryEntry
    model: RegistryVersion
    base: dict[str, Any] | None  # a solution's configuration


def sees_all(principal: Principal) -> bool:
    return principal.is_admin or AUDIT in principal.scopes


def find(session: Session, principal: Principal, deployment_id: str) -> Deployment:
    """A deployment its caller may see: its owner's, or any for admins and auditors."""
    found = repository.by_id(session, deployment_id)
    if found is None or not (sees_all(principal) or found.owner_id == principal.owner_id):
        raise NotFound("deployment not found", field="deployment_id")
    return found


def _for_change(session: Session, principal: Principal, deployment_id: str) -> Deployment:
    found = repository.by_id(session, deployment_id, for_update=True)
    if found is None or not principal.can_see(found.owner_id):
        raise NotFound("deployment not found", field="deployment_id")
    if found.state == "deleted":
        raise Conflict(
            "the deployment is deleted", code="deployment_deleted", field="deployment_id"
        )
    return found


# -- pins -------------------------------------------------------------------------------------


def _pinned(session: Session, ref: EntryRef, kind: str, field: str) -> tuple[RegistryEntry, Any]:
    entry = registry_repository.entry_by_slug(session, ref.slug, kind=kind)
    if entry is None:
        raise NotFound(f"no {kind} {ref.slug} in the registry", field=f"{field}.slug")
    try:
        version = registry.find_version(session, entry, ref.version)
    except NotFound as error:
        raise NotFound(error.message, code=error.code, field=f"{field}.version") from None
    if version.status == "yanked":
        raise Invalid(
            f"{kind} version {ref.slug}@{version.version} is yanked",
            code="pin_yanked",
            field=f"{field}.version",
            hint="pin an active or deprecated version",
        )
    return entry, version


def resolve_pins(session: Session, body: DeploymentCreate | RevisionCreate) -> Pins | None:
    """The versions ``body`` names (None when it names none), checked compatible."""
    if body.solution is not None:
        entry, version = _pinned(session, body.solution, "solution", "solution")
        spec = version.spec
        versions = registry_repository.versions_by_id(
            session, [spec["agent"]["version_id"], spec["model"]["version_id"]]
        )
        agent = versions[spec["agent"]["version_id"]]
        model = versions[spec["model"]["version_id"]]
        entries = registry_repository.entries_by_slug(
            session, [spec["agent"]["slug"], spec["model"]["slug"]]
        )
        for pin, field in ((agent, "agent"), (model, "model")):
            if pin.status == "yanked":
                raise Invalid(
                    f"the solution's {field} version {pin.version} is yanked",
                    code="pin_yanked",
                    field="solution",
                    hint="pick another solution version, or an agent and a model",
                )
        pins = Pins(
            solution=(entry.slug, version.version),
            agent_entry=entries[spec["agent"]["slug"]],
            agent=agent,
            model_entry=entries[spec["model"]["slug"]],
            model=model,
            base=spec.get("configuration"),
        )
    elif body.agent is not None and body.model is not None:
        agent_entry, agent = _pinned(session, body.agent, "agent", "agent")
        model_entry, model = _pinned(session, body.model, "model", "model")
        pins = Pins(None, agent_entry, agent, model_entry, model, None)
    else:
        return None
    failed = mismatches(registry.needs_of(pins.agent), registry.facts_of(pins.model))
    if failed:
        raise Invalid(
            "the agent and model versions are not compatible: " + failed[0].message,
            code="incompatible",
            field="model",
            hint="pick a model version the agent's requirements allow "
            "(GET /inference/registry/agents/{publisher}/{name}/compatible-models)",
            problems=tuple(
                Problem("model", f.message, f"requirement_{f.requirement}") for f in failed
            ),
        )
    return pins


def _term(entry: RegistryEntry, version: RegistryVersion) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "entry_id": entry.entry_id,
        "slug": entry.slug,
        "publisher_id": entry.publisher_id,
        "version": version.version,
        "version_id": version.version_id,
        "pricing": None
        if version.pricing_model is None
        else {
            "model": version.pricing_model,
            "price": str(version.price),
            "currency": "USD_CREDIT",
        },
        "royalty_bps": version.royalty_bps,
    }


def _requirements_met(pins: Pins, requirements: dict[str, Any]) -> None:
    window = int(pins.model.spec.get("context_window", 0))
    wanted = int(requirements.get("min_context_window", 0))
    if window < wanted:
        raise Invalid(
            f"the model version's context window is {window} tokens; the deployment asks for "
            f"{wanted}",
            code="requirement_min_context_window",
            field="requirements.min_context_window",
        )


def _revision(
    session: Session,
    *,
    deployment_id: str,
    number: int,
    pins: Pins,
    overrides: dict[str, Any],
    requirements: dict[str, Any],
    policy: dict[str, Any],
    wait: bool,
    principal: Principal,
    now: datetime,
) -> DeploymentRevision:
    template = pins.agent.spec.get("config_template", {})
    configuration, problems = merged_configuration(template, pins.base, overrides)
    if problems:
        raise Invalid(
            problems[0].message,
            code=problems[0].code,
            field=problems[0].field,
            hint="override only the parameters the agent's configuration template names",
            problems=tuple(problems),
        )
    _requirements_met(pins, requirements)
    row = DeploymentRevision(
        revision_id=new_id("deprev"),
        deployment_id=deployment_id,
        revision=number,
        solution_slug=pins.solution[0] if pins.solution else None,
        solution_version=pins.solution[1] if pins.solution else None,
        agent_version_id=pins.agent.version_id,
        model_version_id=pins.model.version_id,
        agent=_term(pins.agent_entry, pins.agent),
        model=_term(pins.model_entry, pins.model),
        configuration=configuration,
        requirements=requirements,
        policy=policy,
        wait_for_capacity=wait,
        created_by=principal.owner_id,
        created_at=now,
    )
    session.add(row)
    return row


def _slug(session: Session, principal: Principal, name: str | None, pins: Pins) -> str:
    owner = principal.owner_id
    namespace = owner if valid_publisher(owner) and len(owner) <= 64 else new_id("o").lower()
    if name is None:
        name = f"{pins.agent_entry.name[:40]}-{secrets.token_hex(3)}"
    slug = f"{namespace}/{name}"
    if repository.by_slug(session, slug) is not None:
        raise Conflict(
            "a deployment with this name exists", code="slug_taken", field="name",
            hint="pick another name, or revise the deployment that has it",
        )  # fmt: skip
    return slug


def create(
    session: Session,
    *,
    principal: Principal,
    body: DeploymentCreate,
    settings: Settings,
    now: datetime,
) -> tuple[Deployment, DeploymentRevision, Capacity]:
    """Deploy: resolve and check the pins, check capacity, and write revision 1."""
    pins = resolve_pins(session, body)
    assert pins is not None  # the schema demands a solution or an agent and a model
    found = capacity(session, pins.model_entry, pins.model.version, settings=settings, now=now)
    ensure_capacity(found, wait=body.wait_for_capacity)
    deployment = Deployment(
        deployment_id=new_id("dep"),
        slug=_slug(session, principal, body.name, pins),
        owner_id=principal.owner_id,
        state="active",
        revision=1,
        created_by=principal.owner_id,
        created_at=now,
        updated_at=now,
    )
    session.add(deployment)
    session.flush()
    revision = _revision(
        session,
        deployment_id=deployment.deployment_id,
        number=1,
        pins=pins,
        overrides=body.configuration.model_dump(mode="json"),
        requirements=body.requirements.model_dump(mode="json"),
        policy=body.policy.model_dump(mode="json"),
        wait=body.wait_for_capacity,
        principal=principal,
        now=now,
    )
    session.flush()
    return deployment, revision, found


def _current_pins(session: Session, current: DeploymentRevision) -> Pins:
    versions = registry_repository.versions_by_id(
        session, [current.agent_version_id, current.model_version_id]
    )
    entries = registry_repository.entries_by_slug(
        session, [current.agent["slug"], current.model["slug"]]
    )
    solution = None
    if current.solution_slug is not None and current.solution_version is not None:
        solution = (current.solution_slug, current.solution_version)
    return Pins(
        solution=solution,
        agent_entry=entries[current.agent["slug"]],
        agent=versions[current.agent_version_id],
        model_entry=entries[current.model["slug"]],
        model=versions[current.model_version_id],
        base=None,
    )


def revise(
    session: Session,
    *,
    principal: Principal,
    deployment_id: str,
    body: RevisionCreate,
    settings: Settings,
    now: datetime,
) -> tuple[Deployment, DeploymentRevision, Capacity]:
    """A new revision: new pins where the body names them, the current ones elsewhere."""
    deployment = _for_change(session, principal, deployment_id)
    current = repository.revision(session, deployment.deployment_id, deployment.revision)
    assert current is not None
    pins = resolve_pins(session, body)
    if pins is None:
        pins = _current_pins(session, current)
        # The current configuration is the base: the overrides apply on top of it.
        pins = Pins(pins.solution, pins.agent_entry, pins.agent, pins.model_entry, pins.model,
                    current.configuration)  # fmt: skip
    found = capacity(session, pins.model_entry, pins.model.version, settings=settings, now=now)
    ensure_capacity(found, wait=body.wait_for_capacity)
    overrides = (
        body.configuration.model_dump(mode="json")
        if body.configuration is not None
        else {"system_prompt": None, "parameters": {}}
    )
    revision = _revision(
        session,
        deployment_id=deployment.deployment_id,
        number=deployment.revision + 1,
        pins=pins,
        overrides=overrides,
        requirements=body.requirements.model_dump(mode="json")
        if body.requirements is not None
        else current.requirements,
        policy=body.policy.model_dump(mode="json") if body.policy is not None else current.policy,
        wait=body.wait_for_capacity,
        principal=principal,
        now=now,
    )
    deployment.revision += 1
    deployment.updated_at = now
    session.flush()
    return deployment, revision, found


def change_state(
    session: Session, *, principal: Principal, deployment_id: str, to: str, now: datetime
) -> Deployment:
    """Pause (from active), resume (from paused) or delete (from either)."""
    deployment = _for_change(session, principal, deployment_id)
    allowed = {"paused": {"active"}, "active": {"paused"}, "deleted": {"active", "paused"}}
    if deployment.state not in allowed[to]:
        raise Conflict(
            f"the deployment is {deployment.state}",
            code="deployment_state",
            field="deployment_id",
            hint="pause an active deployment, resume a paused one",
        )
    deployment.state = to
    deployment.updated_at = now
    session.flush()
    return deployment

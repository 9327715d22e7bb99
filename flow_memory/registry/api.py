"""Routes of the registry: publish models, agents and solutions and their versions, read them,
search them, match agents and models both ways, and read a publisher's page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    require_scopes,
)
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES
from flow_memory.kit.scopes import PUBLISH, READ
from flow_memory.registry import repository, service, views
from flow_memory.registry.domain import NAME_PATTERN, PUBLISHER_PATTERN, SEMVER_PATTERN
from flow_memory.registry.models import RegistryEntry, RegistryVersion
from flow_memory.registry.schemas import (
    AgentCreate,
    AgentVersionCreate,
    EntryResponse,
    ModelCreate,
    ModelEntryResponse,
    ModelVersionCreate,
    SolutionCreate,
    SolutionVersionCreate,
    VersionResponse,
    VersionStatusChange,
)
from flow_memory.registry.serving import page_part

router = APIRouter(
    route_class=ExactJSONRoute, prefix="/inference", tags=["registry"], responses=ERROR_RESPONSES
)
REGISTRY = "/registry"

Publisher = Annotated[Principal, Depends(require_scopes(PUBLISH))]
Reader = Annotated[Principal, Depends(require_scopes(READ))]
PublisherPath = Annotated[
    str, Path(pattern=PUBLISHER_PATTERN, description="The publisher: the slug's first part")
]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="The slug's second part")]
VersionPath = Annotated[str, Path(pattern=SEMVER_PATTERN, max_length=64)]
PinQuery = Annotated[
    str | None,
    Query(
        pattern=SEMVER_PATTERN,
        max_length=64,
        description="A version to pin; the latest active version when left out",
    ),
]
Limit = Annotated[int, Query(ge=1, le=100)]


def _published(entry: RegistryEntry, version: RegistryVersion) -> dict[str, Any]:
    return {"entry": views.entry_read(entry), "version": views.version_read(version)}


def _entry_page(
    session: Session, kind: str, publisher_id: str, name: str, version: str | None
) -> tuple[RegistryEntry, dict[str, Any]]:
    """An entry's page: the pinned (else latest active) version and every version."""
    entry = service.find_entry(session, f"{publisher_id}/{name}", kind=kind)
    pinned = service.find_version(session, entry, version)
    versions = views.version_summaries(repository.versions_of(session, entry.entry_id))
    return entry, {**_published(entry, pinned), "versions": versions}


def _status(
    session: Session,
    principal: Principal,
    now: Any,
    kind: str,
    slug: str,
    version: str,
    body: VersionStatusChange,
) -> FlowJSONResponse:
    entry, changed = service.change_status(
        session,
        principal=principal,
        kind=kind,
        slug=slug,
        version_text=version,
        body=body,
        now=now,
    )
    return respond(_published(entry, changed))


# -- models ---------------------------------------------------------------------------------


@router.post(
    f"{REGISTRY}/models",
    status_code=201,
    response_model=VersionResponse,
    name="registryModels",
    summary="Register a model under the publisher's namespace with its first version",
)
def publish_model(
    body: ModelCreate, session: SessionDep, clock: ClockDep, principal: Publisher
) -> FlowJSONResponse:
    entry, version = service.publish_entry(
        session, principal=principal, kind="model", body=body, now=clock.now()
    )
    return respond(_published(entry, version), status_code=201)


@router.get(
    f"{REGISTRY}/models/{{publisher_id}}/{{name}}",
    response_model=ModelEntryResponse,
    name="registryModel",
    summary="A model: its latest active version (or the one pinned), every version, and the "
    "providers serving it now with their asks and depth",
)
def get_model(
    publisher_id: PublisherPath,
    name: NamePath,
    session: ReadSessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    _principal: Reader,
    version: PinQuery = None,
) -> FlowJSONResponse:
    entry, page = _entry_page(session, "model", publisher_id, name, version)
    return respond({**page, **page_part(session, entry, settings=settings, now=clock.now())})


@router.post(
    f"{REGISTRY}/models/{{publisher_id}}/{{name}}/versions",
    status_code=201,
    response_model=VersionResponse,
    name="registryModelVersions",
    summary="Publish a new, immutable version of a model (its price and royalty included)",
)
def publish_model_version(
    publisher_id: PublisherPath,
    name: NamePath,
    body: ModelVersionCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Publisher,
) -> FlowJSONResponse:
    entry, version = service.publish_version(
        session,
        principal=principal,
        kind="model",
        slug=f"{publisher_id}/{name}",
        body=body,
        now=clock.now(),
    )
    return respond(_published(entry, version), status_code=201)


@router.post(
    f"{REGISTRY}/models/{{publisher_id}}/{{name}}/versions/{{version}}/status",
    response_model=VersionResponse,
    name="registryModelVersionStatus",
    summary="Activate, deprecate or yank a model version (with a reason); nothing else changes",
)
def model_version_status(
    publisher_id: PublisherPath,
    name: NamePath,
    version: VersionPath,
    body: VersionStatusChange,
    session: SessionDep,
    clock: ClockDep,
    principal: Publisher,
) -> FlowJSONResponse:
    slug = f"{publisher_id}/{name}"
    return _status(session, principal, clock.now(), "model", slug, version, body)


# -- agents ---------------------------------------------------------------------------------


@router.post(
    f"{REGISTRY}/agents",
    status_code=201,
    response_model=VersionResponse,
    name="registryAgents",
    summary="Register an agent (its requirements and configuration template, as metadata) "
    "with its first version",
)
def publish_agent(
    body: AgentCreate, session: SessionDep, clock: ClockDep, principal: Publisher
) -> FlowJSONResponse:
    entry, version = service.publish_entry(
        session, principal=principal, kind="agent", body=body, now=clock.now()
    )
    return respond(_published(entry, version), status_code=201)


@router.get(
    f"{REGISTRY}/agents/{{publisher_id}}/{{name}}",
    response_model=EntryResponse,
    name="registryAgent",
    summary="An agent: its latest active version (or the one pinned) and every version",
)
def get_agent(
    publisher_id: PublisherPath,
    name: NamePath,
    session: ReadSessionDep,
    _principal: Reader,
    version: PinQuery = None,
) -> FlowJSONResponse:
    return respond(_entry_page(session, "agent", publisher_id, name, version)[1])


@router.post(
    f"{REGISTRY}/agents/{{publisher_id}}/{{name}}/versions",
    status_code=201,
    response_model=VersionResponse,
    name="registryAgentVersions",
    summary="Publish a new, immutable version of an agent (its price and royalty included)",
)
def publish_agent_version(
    publisher_id: PublisherPath,
    name: NamePath,
    body: AgentVersionCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Publisher,
) -> FlowJSONResponse:
    entry, version = service.publish_version(
        session,
        principal=principal,
        kind="agent",
        slug=f"{publisher_id}/{name}",
        body=body,
        now=clock.now(),
    )
    return respond(_published(entry, version), status_code=201)


@router.post(
    f"{REGISTRY}/agents/{{publisher_id}}/{{name}}/versions/{{version}}/status",
    response_model=VersionResponse,
    name="registryAgentVersionStatus",
    summary="Activate, deprecate or yank an agent version (with a reason); nothing else changes",
)
def agent_version_status(
    publisher_id: PublisherPath,
    name: NamePath,
    version: VersionPath,
    body: VersionStatusChange,
    session: SessionDep,
    clock: ClockDep,
    principal: Publisher,
) -> FlowJSONResponse:
    slug = f"{publisher_id}/{name}"
    return _status(session, principal, clock.now(), "agent", slug, version, body)


# -- solutions ------------------------------------------------------------------------------


@router.post(
    f"{REGISTRY}/solutions",
    status_code=201,
    response_model=VersionResponse,
    name="registrySolutions",
    summary="Publish a solution: an agent version, a model version and a configuration, "
    "checked compatible",
)
def publish_solution(
    body: SolutionCreate, session: SessionDep, clock: ClockDep, principal: Publisher
) -> FlowJSONResponse:
    entry, version = service.publish_entry(
        session, principal=principal, kind="solution", body=body, now=clock.now()
    )
    return respond(_published(entry, version), status_code=201)


@router.get(
    f"{REGISTRY}/solutions/{{publisher_id}}/{{name}}",
    response_model=EntryResponse,
    name="registrySolution",
    summary="A solution: its latest active version (or the one pinned) and every version",
)
def get_solution(
    publisher_id: PublisherPath,
    name: NamePath,
    session: ReadSessionDep,
    _principal: Reader,
    version: PinQuery = None,
) -> FlowJSONResponse:
    return respond(_entry_page(session, "solution", publisher_id, name, version)[1])


@router.post(
    f"{REGISTRY}/solutions/{{publisher_id}}/{{name}}/versions",
    status_code=201,
    response_model=VersionResponse,
    name="registrySolutionVersions",
    summary="Publish a new, immutable version of a solution, checked compatible",
)
def publish_solution_version(
    publisher_id: PublisherPath,
    name: NamePath,
    body: SolutionVersionCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Publisher,
) -> FlowJSONResponse:
    entry, version = service.publish_version(
        session,
        principal=principal,
        kind="solution",
        slug=f"{publisher_id}/{name}",
        body=body,
        now=clock.now(),
    )
    return respond(_published(entry, version), status_code=201)


@router.post(
    f"{REGISTRY}/solutions/{{publisher_id}}/{{name}}/versions/{{version}}/status",
    response_model=VersionResponse,
    name="registrySolutionVersionStatus",
    summary="Activate, deprecate or yank a solution version (with a reason)",
)
def solution_version_status(
    publisher_id: PublisherPath,
    name: NamePath,
    version: VersionPath,
    body: VersionStatusChange,
    session: SessionDep,
    clock: ClockDep,
    principal: Publisher,
) -> FlowJSONResponse:
    slug = f"{publisher_id}/{name}"
    return _status(session, principal, clock.now(), "solution", slug, version, body)

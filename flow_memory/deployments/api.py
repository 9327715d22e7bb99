"""Routes of deployments (an agent and a model pinned as a route through the proxy) and of the
royalties their calls pay."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from flow_memory.deployments import capacity, repository, royalties, service, views
from flow_memory.deployments.calling import resolutions_of
from flow_memory.deployments.models import Deployment
from flow_memory.deployments.schemas import (
    DeploymentCreate,
    DeploymentList,
    DeploymentResponse,
    RevisionCreate,
    RoyaltyExportDocument,
    RoyaltyReport,
)
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    on_session_end,
    require_scopes,
)
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES
from flow_memory.kit.scopes import BUY, PUBLISH, READ
from flow_memory.registry import repository as registry_repository
from flow_memory.registry.domain import PUBLISHER_PATTERN, SLUG_PATTERN

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference",
    tags=["deployments"],
    responses=ERROR_RESPONSES,
)

Deployer = Annotated[Principal, Depends(require_scopes(BUY))]
# Auditors read every deployment and royalty with their inference:read scope (and audit).
Reader = Annotated[Principal, Depends(require_scopes(READ, BUY))]
DeploymentPath = Annotated[
    str, Path(max_length=40, pattern=r"^[A-Za-z0-9_]+$", description="The deployment's id")
]


def _read(session: Session, deployment: Deployment) -> dict[str, object]:
    current = repository.revision(session, deployment.deployment_id, deployment.revision)
    assert current is not None
    return views.deployment_read(deployment, current)


@router.post(
    "/deployments",
    status_code=201,
    response_model=DeploymentResponse,
    name="deployments",
    summary="Deploy an agent and a model (or a solution) as a proxy route, dep/<slug>, pinning "
    "their versions, configuration and terms",
)
def create_deployment(
    body: DeploymentCreate,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Deployer,
) -> FlowJSONResponse:
    deployment, revision, found = service.create(
        session, principal=principal, body=body, settings=settings, now=clock.now()
    )
    return respond(
        {
            "deployment": views.deployment_read(deployment, revision),
            "capacity": views.capacity_read(found),
        },
        status_code=201,
    )


@router.get(
    "/deployments",
    response_model=DeploymentList,
    name="deploymentList",
    summary="The caller's deployments, newest first (every owner's for admins and auditors)",
)
def list_deployments(
    session: ReadSessionDep,
    principal: Reader,
    include_deleted: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> FlowJSONResponse:
    owner = None if service.sees_all(principal) else principal.owner_id
    found = repository.listed(
        session, owner_id=owner, include_deleted=include_deleted, limit=limit, offset=offset
    )
    current = repository.current_revisions(session, found)
    return respond(
        {
            "deployments": [views.deployment_read(d, current[d.deployment_id]) for d in found],
            "limit": limit,
            "offset": offset,
        }
    )


@router.get(
    "/deployments/{deployment_id}",
    response_model=DeploymentResponse,
    name="deployment",
    summary="A deployment: its current pins, every revision, and who serves it now",
)
def get_deployment(
    deployment_id: DeploymentPath,
    session: ReadSessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Reader,
) -> FlowJSONResponse:
    deployment = service.find(session, principal, deployment_id)
    revisions = repository.revisions_of(session, deployment.deployment_id)
    current = next(r for r in revisions if r.revision == deployment.revision)
    entry = registry_repository.entry_by_slug(session, current.model["slug"])
    serving = None
    if entry is not None:
        found = capacity.capacity(
            session, entry, current.model["version"], settings=settings, now=clock.now()
        )
        serving = views.capacity_read(found)
    return respond(
        {
            "deployment": views.deployment_read(deployment, current),
            "capacity": serving,
            "revisions": [views.revision_read(r) for r in revisions],
        }
    )


@router.post(
    "/deployments/{deployment_id}/revisions",
    status_code=201,
    response_model=DeploymentResponse,
    name="deploymentRevisions",
    summary="A new revision of a deployment: new pins, configuration, requirements or policy "
    "(the earlier revisions are kept)",
)
def revise_deployment(
    request: Request,
    deployment_id: DeploymentPath,
    body: RevisionCreate,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Deployer,
) -> FlowJSONResponse:
    deployment, revision, found = service.revise(
        session,
        principal=principal,
        deployment_id=deployment_id,
        body=body,
        settings=settings,
        now=clock.now(),
    )
    forget_after_commit(session, request)
    return respond(
        {
            "deployment": views.deployment_read(deployment, revision),
            "capacity": views.capacity_read(found),
        },
        status_code=201,
    )


def forget_after_commit(session: Session, request: Request) -> None:
    """The proxy's resolved deployments are forgotten once the change is committed (and now,
    so a call meanwhile does not keep the old state for long)."""
    resolutions = resolutions_of(request.app.state)
    resolutions.forget()
    on_session_end(session, lambda committed: resolutions.forget())


def _state(
    request: Request,
    session: Session,
    principal: Principal,
    deployment_id: str,
    to: str,
    clock: ClockDep,
) -> FlowJSONResponse:
    deployment = service.change_state(
        session, principal=principal, deployment_id=deployment_id, to=to, now=clock.now()
    )
    forget_after_commit(session, request)
    return respond({"deployment": _read(session, deployment)})


@router.post(
    "/deployments/{deployment_id}/pause",
    response_model=DeploymentResponse,
    name="deploymentPause",
    summary="Pause a deployment: calls to it are refused until it is resumed",
)
def pause_deployment(
    request: Request,
    deployment_id: DeploymentPath,
    session: SessionDep,
    clock: ClockDep,
    principal: Deployer,
) -> FlowJSONResponse:
    return _state(request, session, principal, deployment_id, "paused", clock)


@router.post(
    "/deployments/{deployment_id}/resume",
    response_model=DeploymentResponse,
    name="deploymentResume",
    summary="Resume a paused deployment",
)
def resume_deployment(
    request: Request,
    deployment_id: DeploymentPath,
    session: SessionDep,
    clock: ClockDep,
    principal: Deployer,
) -> FlowJSONResponse:
    return _state(request, session, principal, deployment_id, "active", clock)


@router.delete(
    "/deployments/{deployment_id}",
    response_model=DeploymentResponse,
    name="deploymentDelete",
    summary="Delete a deployment: its slug and history are kept, calls to it are refused",
)
def delete_deployment(
    request: Request,
    deployment_id: DeploymentPath,
    session: SessionDep,
    clock: ClockDep,
    principal: Deployer,
) -> FlowJSONResponse:
    return _state(request, session, principal, deployment_id, "deleted", clock)


# -- royalties --------------------------------------------------------------------------------

RoyaltyReader = Annotated[Principal, Depends(require_scopes(READ, PUBLISH))]


def royalty_filters(
    publisher_id: Annotated[str | None, Query(pattern=PUBLISHER_PATTERN)] = None,
    kind: Annotated[Literal["agent", "model"] | None, Query()] = None,
    slug: Annotated[str | None, Query(max_length=129, pattern=SLUG_PATTERN)] = None,
    day_from: Annotated[date | None, Query(description="The first day (UTC), included")] = None,
    day_to: Annotated[date | None, Query(description="The last day (UTC), included")] = None,
) -> royalties.ReportFilters:
    return royalties.ReportFilters(
        publisher_id=publisher_id,
        kind=kind,
        slug=slug,
        day_from=day_from,
        day_to=day_to,
    )


RoyaltyFilters = Annotated[royalties.ReportFilters, Depends(royalty_filters)]


@router.get(
    "/royalties",
    response_model=RoyaltyReport,
    name="royalties",
    summary="Royalties by publisher, entry (agent or model), version and day, with the usage "
    "and cost behind them (a publisher's own; every publisher's for admins and auditors)",
)
def royalty_report(
    session: ReadSessionDep,
    principal: RoyaltyReader,
    filters: RoyaltyFilters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> FlowJSONResponse:
    filters = royalties.visible(principal, filters)
    rows = royalties.report_rows(session, filters, limit=limit, offset=offset)
    total = sum((row["royalty"] for row in rows), Decimal(0))
    return respond(
        {
            "rows": rows,
            "totals": {"royalty": total, "usage_records": sum(r["usage_records"] for r in rows)},
            "limit": limit,
            "offset": offset,
        }
    )


@router.get(
    "/royalties/export",
    name="royaltiesExport",
    summary="Royalty days as NDJSON (a header with the schema version, filters and redaction, "
    "one line a day and version, a footer with the count) or one JSON document",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": RoyaltyExportDocument,
            "description": "The export; NDJSON has a header line, one line per royalty day and "
            "a footer line with record_count and complete",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
def royalty_export(
    session: ReadSessionDep,
    clock: ClockDep,
    principal: RoyaltyReader,
    filters: RoyaltyFilters,
    format: Literal["ndjson", "json"] = "ndjson",
) -> StreamingResponse:
    filters = royalties.visible(principal, filters)
    lines = royalties.export_lines(session, filters, fmt=format, generated_at=clock.now())
    media = "application/x-ndjson" if format == "ndjson" else "application/json"
    return StreamingResponse(iter(lines), media_type=media)

"""Routes for credential references."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from flow_memory.credentials import service
from flow_memory.credentials.schemas import (
    CredentialRefCreate,
    CredentialRefListResponse,
    CredentialRefResponse,
    CredentialRefRevoke,
    CredentialRefRevokeResponse,
    CredentialRefRotate,
    CredentialRefRotateResponse,
)
from flow_memory.kit.broadcast import ROUTES, announce
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SessionDep,
    on_session_end,
    require_scopes,
)
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES
from flow_memory.kit.scopes import ADMIN, READ, SELL

router = APIRouter(
    route_class=ExactJSONRoute,
    prefix="/inference/credential-refs",
    tags=["credential refs"],
    responses=ERROR_RESPONSES,
)


@router.post(
    "",
    status_code=201,
    response_model=CredentialRefResponse,
    name="credentialRefs",
    summary="Create a credential reference record",
)
def create_credential_ref(
    body: CredentialRefCreate,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(SELL, ADMIN))],
) -> FlowJSONResponse:
    record = service.create_credential_ref(session, principal=principal, body=body, now=clock.now())
    return respond({"credential_ref": service.to_read(record)}, status_code=201)


@router.get(
    "",
    response_model=CredentialRefListResponse,
    name="credentialRefs",
    summary="List visible credential reference records without secrets",
)
def list_credential_refs(
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(require_scopes(READ))],
    status: Literal["active", "revoked"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> FlowJSONResponse:
    records = service.list_credential_refs(
        session, principal=principal, status=status, limit=limit, offset=offset
    )
    reads = [service.to_read(r) for r in records]
    return respond({"credential_refs": reads, "count": len(reads)})


@router.patch(
    "/{credential_ref_id}/rotate",
    response_model=CredentialRefRotateResponse,
    name="credentialRefRotate",
    summary="Rotate a reference pointer",
)
def rotate_credential_ref(
    request: Request,
    credential_ref_id: str,
    body: CredentialRefRotate,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(ADMIN))],
) -> FlowJSONResponse:
    _forget_routes_after_commit(request, session)
    record, rotation = service.rotate_credential_ref(
        session,
        principal=principal,
        credential_ref_id=credential_ref_id,
        body=body,
        now=clock.now(),
    )
    return respond({"credential_ref": service.to_read(record), "rotation": rotation})


@router.post(
    "/{credential_ref_id}/revoke",
    response_model=CredentialRefRevokeResponse,
    name="credentialRefRevoke",
    summary="Revoke a reference and gate provider routes",
)
def revoke_credential_ref(
    request: Request,
    credential_ref_id: str,
    body: CredentialRefRevoke,
    session: SessionDep,
    clock: ClockDep,
    principal: Annotated[Principal, Depends(require_scopes(ADMIN))],
) -> FlowJSONResponse:
    _forget_routes_after_commit(request, session)
    record, gated = service.revoke_credential_ref(
        session,
        principal=principal,
        credential_ref_id=credential_ref_id,
        body=body,
        now=clock.now(),
    )
    return respond({"credential_ref": service.to_read(record), "gated_provider_ids": gated})


def _forget_routes_after_commit(request: Request, session: Session) -> None:
    """Routes the proxy cached, and provider offers quotes keep, may lead to a provider this
    change gates: drop them once the change is committed, so the next call selects afresh."""

    def forget(committed: bool) -> None:
        if committed:
            request.app.state.proxy_plans.clear()
            request.app.state.route_facts.clear()

    on_session_end(session, forget)
    announce(session, ROUTES)  # and every other server on the database forgets them too

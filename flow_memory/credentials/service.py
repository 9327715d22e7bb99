"""Credential-reference use cases: create, list, rotate, revoke."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from flow_memory.credentials import repository
from flow_memory.credentials.models import CredentialRef, CredentialRefRotation
from flow_memory.credentials.schemas import (
    CredentialRefCreate,
    CredentialRefRead,
    CredentialRefRevoke,
    CredentialRefRotate,
    RotationRead,
)
from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.providers import repository as providers_repository


def to_read(record: CredentialRef) -> CredentialRefRead:
    return CredentialRefRead(
        credential_ref_id=record.credential_ref_id,
        owner_id=record.owner_id,
        workspace_id=record.workspace_id,
        credential_ref=record.credential_ref,
        provider_api=record.provider_api,
        display_name=record.display_name,
        allowed_models=list(record.allowed_models),
        metadata=dict(record.metadata_),
        status=record.status,
        created_at=record.created_at,
        updated_at=record.updated_at,
        rotated_at=record.rotated_at,
        revoked_at=record.revoked_at,
        revoke_reason=record.revoke_reason,
        provider_routes_disabled=record.routes_disabled,
    )


def resolve_owner(principal: Principal, requested: str | None) -> str:
    """The owner a record is created for: the caller, or one it may act as."""
    ensure_may_act_as(principal, requested, field="owner_id")
    return principal.owner_id if requested is None else requested


def create_credential_ref(
    session: Session, *, principal: Principal, body: CredentialRefCreate, now: datetime
) -> CredentialRef:
    record = CredentialRef(
        credential_ref_id=new_id("credref"),
        owner_id=resolve_owner(principal, body.owner_id),
        workspace_id=body.workspace_id,
        credential_ref=body.credential_ref,
        provider_api=body.provider_api,
        display_name=body.display_name,
        allowed_models=list(body.allowed_models),
        metadata_=dict(body.metadata),
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    session.flush()
    return record


def list_credential_refs(
    session: Session, *, principal: Principal, status: str | None, limit: int, offset: int
) -> list[CredentialRef]:
    owner = None if principal.is_admin else principal.owner_id
    return repository.list_visible(
        session, owner_id=owner, status=status, limit=limit, offset=offset
    )


def get_visible(
    session: Session, *, principal: Principal, credential_ref_id: str, for_update: bool = False
) -> CredentialRef:
    record = repository.get(session, credential_ref_id, for_update=for_update)
    if record is None or not principal.can_see(record.owner_id):
        raise NotFound("credential reference not found", field="credential_ref_id")
    return record


def rotate_credential_ref(
    session: Session,
    *,
    principal: Principal,
    credential_ref_id: str,
    body: CredentialRefRotate,
    now: datetime,
) -> tuple[CredentialRef, RotationRead]:
    record = get_visible(
        session, principal=principal, credential_ref_id=credential_ref_id, for_update=True
    )
    if record.status == "revoked":
        raise Conflict(
            "the credential reference is revoked and cannot be rotated",
            code="credential_ref_revoked",
            hint="create a new credential reference instead",
        )
    if body.new_credential_ref == record.credential_ref:
        raise Conflict(
            "new_credential_ref equals the current pointer",
            field="new_credential_ref",
            code="credential_ref_unchanged",
            hint="rotate to the pointer of the new secret version",
        )
    rotation = CredentialRefRotation(
        rotation_id=new_id("rot"),
        credential_ref_id=record.credential_ref_id,
        previous_credential_ref=record.credential_ref,
        new_credential_ref=body.new_credential_ref,
        rotation_reason=body.rotation_reason,
        operator_ticket=body.operator_ticket,
        rotated_by=principal.owner_id,
        rotated_at=now,
    )
    # Providers still enrolled with the old pointer are now stale: health derives that from
    # the pointer mismatch until they re-enroll with the new one.
    stale = providers_repository.ids_using_pointer(
        session, record.credential_ref_id, record.credential_ref
    )
    record.credential_ref = body.new_credential_ref
    record.rotated_at = now
    record.updated_at = now
    session.add(rotation)
    session.flush()
    return record, RotationRead(
        rotation_id=rotation.rotation_id,
        credential_ref_id=record.credential_ref_id,
        previous_credential_ref=rotation.previous_credential_ref,
        new_credential_ref=rotation.new_credential_ref,
        rotation_reason=rotation.rotation_reason,
        operator_ticket=rotation.operator_ticket,
        rotated_at=rotation.rotated_at,
        stale_provider_ids=stale,
    )


def revoke_credential_ref(
    session: Session,
    *,
    principal: Principal,
    credential_ref_id: str,
    body: CredentialRefRevoke,
    now: datetime,
) -> tuple[CredentialRef, list[str]]:
    record = get_visible(
        session, principal=principal, credential_ref_id=credential_ref_id, for_update=True
    )
    if record.status == "revoked":
        raise Conflict(
            "the credential reference is already revoked",
            code="credential_ref_revoked",
        )
    record.status = "revoked"
    record.revoked_at = now
    record.updated_at = now
    record.revoke_reason = body.revoke_reason
    record.routes_disabled = body.disable_provider_routes
    gated = providers_repository.ids_using_credential(session, record.credential_ref_id)
    if body.disable_provider_routes:
        providers_repository.disable_routes(session, gated, now=now)
    session.flush()
    return record, gated

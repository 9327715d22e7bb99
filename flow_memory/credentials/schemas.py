from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from flow_memory.kit.actors import Actor
from flow_memory.kit.schemas import (
    CredentialPointer,
    Identifier,
    Metadata,
    Name,
    ProviderApi,
    RequestModel,
    SafetyFields,
)

CredentialRefStatus = Literal["active", "revoked"]


class CredentialRefCreate(RequestModel):
    owner_id: Actor = None
    workspace_id: Identifier = "workspace-default"
    credential_ref: CredentialPointer
    provider_api: ProviderApi = "sdk_compatible"
    display_name: Name
    allowed_models: list[Identifier] = Field(default_factory=list, max_length=256)
    metadata: Metadata = Field(default_factory=dict)


class CredentialRefRotate(RequestModel):
    rotation_reason: Name
    new_credential_ref: CredentialPointer
    operator_ticket: Name | None = None


class CredentialRefRevoke(RequestModel):
    revoke_reason: Name
    disable_provider_routes: bool = False


class CredentialRefRead(BaseModel):
    credential_ref_id: str
    owner_id: str
    workspace_id: str
    credential_ref: str
    provider_api: str
    display_name: str
    allowed_models: list[str]
    metadata: dict[str, object]
    status: CredentialRefStatus
    secret_value_redacted: Literal[True] = True
    raw_credentials_accepted: Literal[False] = False
    created_at: datetime
    updated_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None
    provider_routes_disabled: bool


class RotationRead(BaseModel):
    rotation_id: str
    credential_ref_id: str
    previous_credential_ref: str
    new_credential_ref: str
    rotation_reason: str
    operator_ticket: str | None
    rotated_at: datetime
    secret_value_redacted: Literal[True] = True
    stale_provider_ids: list[str]


class CredentialRefResponse(SafetyFields):
    ok: Literal[True] = True
    credential_ref: CredentialRefRead


class CredentialRefListResponse(SafetyFields):
    ok: Literal[True] = True
    credential_refs: list[CredentialRefRead]
    count: int


class CredentialRefRotateResponse(SafetyFields):
    ok: Literal[True] = True
    credential_ref: CredentialRefRead
    rotation: RotationRead


class CredentialRefRevokeResponse(SafetyFields):
    ok: Literal[True] = True
    credential_ref: CredentialRefRead
    gated_provider_ids: list[str]

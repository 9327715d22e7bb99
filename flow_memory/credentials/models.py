from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, UTCDateTime


class CredentialRef(Base):
    __tablename__ = "credential_refs"

    credential_ref_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    workspace_id: Mapped[str] = mapped_column(String(128))
    credential_ref: Mapped[str] = mapped_column(String(256))
    provider_api: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(128))
    allowed_models: Mapped[list[str]] = mapped_column(JSONDocument())
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument())
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    routes_disabled: Mapped[bool] = mapped_column(default=False)


class CredentialRefRotation(Base):
    __tablename__ = "credential_ref_rotations"

    rotation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    credential_ref_id: Mapped[str] = mapped_column(
        ForeignKey("credential_refs.credential_ref_id"), index=True
    )
    previous_credential_ref: Mapped[str] = mapped_column(String(256))
    new_credential_ref: Mapped[str] = mapped_column(String(256))
    rotation_reason: Mapped[str] = mapped_column(String(128))
    operator_ticket: Mapped[str | None] = mapped_column(String(128), nullable=True)
    rotated_by: Mapped[str] = mapped_column(String(128))
    rotated_at: Mapped[datetime] = mapped_column(UTCDateTime())

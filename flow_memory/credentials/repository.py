"""All SQL for credential references."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.credentials.models import CredentialRef


def get(
    session: Session, credential_ref_id: str, *, for_update: bool = False
) -> CredentialRef | None:
    query = select(CredentialRef).where(CredentialRef.credential_ref_id == credential_ref_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def list_visible(
    session: Session, *, owner_id: str | None, status: str | None, limit: int, offset: int
) -> list[CredentialRef]:
    query = select(CredentialRef).order_by(
        CredentialRef.created_at, CredentialRef.credential_ref_id
    )
    if owner_id is not None:
        query = query.where(CredentialRef.owner_id == owner_id)
    if status is not None:
        query = query.where(CredentialRef.status == status)
    return list(session.scalars(query.limit(limit).offset(offset)))


def many(session: Session, credential_ref_ids: Iterable[str]) -> dict[str, CredentialRef]:
    ids = list(credential_ref_ids)
    if not ids:
        return {}
    query = select(CredentialRef).where(CredentialRef.credential_ref_id.in_(ids))
    return {c.credential_ref_id: c for c in session.scalars(query)}

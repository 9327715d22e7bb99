"""All SQL for providers, pairing tokens, catalogs and capacity."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from flow_memory.providers.models import CapacityEntry, CatalogEntry, PairingToken, Provider


def get(session: Session, provider_id: str, *, for_update: bool = False) -> Provider | None:
    query = select(Provider).where(Provider.provider_id == provider_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def find_by_name(session: Session, owner_id: str, provider_name: str) -> Provider | None:
    return session.scalars(
        select(Provider)
        .where(Provider.owner_id == owner_id, Provider.provider_name == provider_name)
        .with_for_update()
    ).first()


def ids_using_credential(session: Session, credential_ref_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Provider.provider_id)
            .where(Provider.credential_ref_id == credential_ref_id)
            .order_by(Provider.provider_id)
        )
    )


def ids_using_pointer(session: Session, credential_ref_id: str, pointer: str) -> list[str]:
    return list(
        session.scalars(
            select(Provider.provider_id)
            .where(
                Provider.credential_ref_id == credential_ref_id, Provider.credential_ref == pointer
            )
            .order_by(Provider.provider_id)
        )
    )


def disable_routes(session: Session, provider_ids: Sequence[str], *, now: datetime) -> None:
    if provider_ids:
        session.execute(
            update(Provider)
            .where(Provider.provider_id.in_(provider_ids))
            .values(routes_disabled=True, updated_at=now)
        )


def find_pairing_token(session: Session, token_hash: str) -> PairingToken | None:
    return session.scalars(
        select(PairingToken).where(PairingToken.token_hash == token_hash).with_for_update()
    ).first()


def catalog(session: Session, provider_id: str) -> list[CatalogEntry]:
    return list(
        session.scalars(
            select(CatalogEntry)
            .where(CatalogEntry.provider_id == provider_id)
            .order_by(CatalogEntry.model)
        )
    )


def capacity(session: Session, provider_id: str) -> list[CapacityEntry]:
    return list(
        session.scalars(
            select(CapacityEntry)
            .where(CapacityEntry.provider_id == provider_id)
            .order_by(CapacityEntry.model, CapacityEntry.unit_type)
        )
    )


def replace_catalog(session: Session, provider_id: str, entries: Iterable[CatalogEntry]) -> None:
    session.execute(delete(CatalogEntry).where(CatalogEntry.provider_id == provider_id))
    session.add_all(list(entries))


def replace_capacity(session: Session, provider_id: str, entries: Iterable[CapacityEntry]) -> None:
    session.execute(delete(CapacityEntry).where(CapacityEntry.provider_id == provider_id))
    session.add_all(list(entries))


def ids(session: Session) -> list[str]:
    """Every enrolled provider's id."""
    return list(session.scalars(select(Provider.provider_id).order_by(Provider.provider_id)))


def many(session: Session, provider_ids: Sequence[str]) -> list[Provider]:
    return list(session.scalars(select(Provider).where(Provider.provider_id.in_(provider_ids))))


def latest_capacity_expiry(session: Session, provider_ids: Sequence[str]) -> dict[str, datetime]:
    rows = session.execute(
        select(CapacityEntry.provider_id, func.max(CapacityEntry.expires_at))
        .where(CapacityEntry.provider_id.in_(provider_ids))
        .group_by(CapacityEntry.provider_id)
    )
    return {provider_id: latest for provider_id, latest in rows if latest is not None}

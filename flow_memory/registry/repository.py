"""SQL of the registry's entries and versions (search has its own module)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flow_memory.registry.models import RegistryEntry, RegistryVersion


def entry_by_slug(
    session: Session, slug: str, *, kind: str | None = None, for_update: bool = False
) -> RegistryEntry | None:
    query = select(RegistryEntry).where(RegistryEntry.slug == slug)
    if kind is not None:
        query = query.where(RegistryEntry.kind == kind)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def versions_of(session: Session, entry_id: str) -> list[RegistryVersion]:
    """Every version of an entry, in no promised order (callers sort by precedence)."""
    query = select(RegistryVersion).where(RegistryVersion.entry_id == entry_id)
    return list(session.scalars(query))


def version(session: Session, entry_id: str, text: str) -> RegistryVersion | None:
    query = select(RegistryVersion).where(
        RegistryVersion.entry_id == entry_id, RegistryVersion.version == text
    )
    return session.scalars(query).first()


def versions_by_id(session: Session, version_ids: Sequence[str]) -> dict[str, RegistryVersion]:
    if not version_ids:
        return {}
    query = select(RegistryVersion).where(RegistryVersion.version_id.in_(list(version_ids)))
    return {v.version_id: v for v in session.scalars(query)}


def latest_versions(
    session: Session, entries: Sequence[RegistryEntry]
) -> dict[str, RegistryVersion]:
    """The listed version of each entry (its latest active one), by entry id."""
    wanted = [(e.entry_id, e.latest_version) for e in entries if e.latest_version is not None]
    if not wanted:
        return {}
    ids = [entry_id for entry_id, _ in wanted]
    query = select(RegistryVersion).where(RegistryVersion.entry_id.in_(ids))
    pins = dict(wanted)
    return {v.entry_id: v for v in session.scalars(query) if pins.get(v.entry_id) == v.version}


def by_publisher(
    session: Session, publisher_id: str, *, limit: int, offset: int
) -> list[RegistryEntry]:
    e = RegistryEntry
    query = (
        select(e)
        .where(e.publisher_id == publisher_id)
        .order_by(e.kind, e.slug)
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(query))


def publisher_counts(session: Session, publisher_id: str) -> dict[str, int]:
    e = RegistryEntry
    query = select(e.kind, func.count()).where(e.publisher_id == publisher_id).group_by(e.kind)
    return {kind: int(count) for kind, count in session.execute(query)}


def listed_of_kind(
    session: Session,
    *,
    kind: str,
    min_context_window: int | None = None,
    max_context_window: int | None = None,
    tool_calling: bool | None = None,
    after_slug: str = "",
    limit: int,
) -> list[RegistryEntry]:
    """Listed entries of ``kind`` in slug order, narrowed by the facts SQL can check."""
    e = RegistryEntry
    query = select(e).where(e.kind == kind, e.listed.is_(True), e.slug > after_slug)
    if min_context_window:
        query = query.where(e.context_window >= min_context_window)
    if max_context_window is not None:
        query = query.where(e.context_window <= max_context_window)
    if tool_calling is not None:
        query = query.where(e.tool_calling.is_(tool_calling))
    return list(session.scalars(query.order_by(e.slug).limit(limit)))


def entries_by_slug(session: Session, slugs: Sequence[str]) -> dict[str, RegistryEntry]:
    if not slugs:
        return {}
    query = select(RegistryEntry).where(RegistryEntry.slug.in_(list(slugs)))
    return {e.slug: e for e in session.scalars(query)}

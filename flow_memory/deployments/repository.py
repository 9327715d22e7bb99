"""SQL of deployments, their revisions and the daily royalty sums."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from flow_memory.deployments.models import Deployment, DeploymentRevision, RoyaltyDay
from flow_memory.kit.driver import dialect_inserts


def by_id(session: Session, deployment_id: str, *, for_update: bool = False) -> Deployment | None:
    query = select(Deployment).where(Deployment.deployment_id == deployment_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def by_slug(session: Session, slug: str) -> Deployment | None:
    return session.scalars(select(Deployment).where(Deployment.slug == slug)).first()


def listed(
    session: Session, *, owner_id: str | None, include_deleted: bool, limit: int, offset: int
) -> list[Deployment]:
    """Deployments, newest first: one owner's, or everyone's (``owner_id`` None)."""
    query = select(Deployment)
    if owner_id is not None:
        query = query.where(Deployment.owner_id == owner_id)
    if not include_deleted:
        query = query.where(Deployment.state != "deleted")
    query = query.order_by(Deployment.created_at.desc(), Deployment.deployment_id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


def revision(session: Session, deployment_id: str, number: int) -> DeploymentRevision | None:
    query = select(DeploymentRevision).where(
        DeploymentRevision.deployment_id == deployment_id, DeploymentRevision.revision == number
    )
    return session.scalars(query).first()


def current_revisions(
    session: Session, deployments: Sequence[Deployment]
) -> dict[str, DeploymentRevision]:
    """Each deployment's current revision, by deployment id, in one query."""
    if not deployments:
        return {}
    wanted = {d.deployment_id: d.revision for d in deployments}
    query = select(DeploymentRevision).where(DeploymentRevision.deployment_id.in_(list(wanted)))
    return {
        r.deployment_id: r for r in session.scalars(query) if wanted[r.deployment_id] == r.revision
    }


def revisions_of(session: Session, deployment_id: str) -> list[DeploymentRevision]:
    query = (
        select(DeploymentRevision)
        .where(DeploymentRevision.deployment_id == deployment_id)
        .order_by(DeploymentRevision.revision)
    )
    return list(session.scalars(query))


def add_royalty_days(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add each row's sums to its day (inserted when new), atomically on both databases: two
    writers adding to one day both count."""
    if not rows:
        return
    statement = dialect_inserts(RoyaltyDay.__table__)[session.get_bind().dialect.name]  # type: ignore[arg-type]
    excluded = statement.excluded
    sums = (
        "usage_records",
        "cost_whole",
        "cost_nanos",
        "cost_attos",
        "royalty_whole",
        "royalty_nanos",
        "royalty_attos",
    )
    table = RoyaltyDay.__table__
    upsert = statement.on_conflict_do_update(
        index_elements=["publisher_id", "day", "version_id"],
        set_={name: table.c[name] + excluded[name] for name in sums},
    )
    # Sorted by key, so two writers take the rows' locks in one order (no deadlock).
    ordered = sorted(rows, key=lambda r: (r["publisher_id"], r["day"], r["version_id"]))
    session.execute(upsert, ordered)


def royalty_days(
    session: Session,
    *,
    publisher_id: str | None,
    kind: str | None,
    slug: str | None,
    day_from: date | None,
    day_to: date | None,
    limit: int | None,
    offset: int,
) -> Iterable[Row[Any]]:
    """Royalty days (their columns, not ORM objects: a page of a thousand is read in a few
    milliseconds), newest first, then by publisher, entry and version: the order of the
    indexes that serve it (``ix_royalty_days_report``, and ``…_publisher_report`` for one
    publisher). ``limit`` None: every one, streamed."""
    r = RoyaltyDay
    query = select(*RoyaltyDay.__table__.columns)
    if publisher_id is not None:
        query = query.where(r.publisher_id == publisher_id)
    if kind is not None:
        query = query.where(r.kind == kind)
    if slug is not None:
        query = query.where(r.slug == slug)
    if day_from is not None:
        query = query.where(r.day >= day_from)
    if day_to is not None:
        query = query.where(r.day <= day_to)
    query = query.order_by(r.day.desc(), r.publisher_id, r.slug, r.version, r.version_id)
    if limit is None:
        return session.execute(query.offset(offset), execution_options={"yield_per": 1_000})
    return session.execute(query.limit(limit).offset(offset)).all()

"""Deployment tables: a deployment, its immutable revisions (the pins), and the daily royalty
sums its calls add up to.

A revision is written once and never changed: the agent and model versions it pins, the
configuration, and the pricing and royalty terms both versions had when it was made. Changing
any of them is a new revision; the deployment row only points at its current one and carries
its state (active, paused, deleted)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, UTCDateTime


class Deployment(Base):
    """An agent and a model pinned as a route through the proxy (``dep/<slug>``)."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_owner", "owner_id", "created_at"),)

    deployment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # ``<namespace>/<name>``: permanent, also once deleted (a slug never names another).
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    owner_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(12))  # active | paused | deleted
    revision: Mapped[int] = mapped_column(Integer)  # the current revision's number
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeploymentRevision(Base):
    """One immutable set of pins of a deployment, numbered from 1."""

    __tablename__ = "deployment_revisions"
    __table_args__ = (UniqueConstraint("deployment_id", "revision"),)

    revision_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.deployment_id"))
    revision: Mapped[int] = mapped_column(Integer)
    # The solution it was made from, if one (its slug and version).
    solution_slug: Mapped[str | None] = mapped_column(String(160), nullable=True)
    solution_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_version_id: Mapped[str] = mapped_column(String(40))
    model_version_id: Mapped[str] = mapped_column(String(40))
    # Each pinned version as it was at deploy time: entry id, slug, publisher, version, pricing
    # and royalty_bps (``flow_memory.deployments.domain.PinnedTerms``).
    agent: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    model: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    # The effective configuration: system prompt, parameters and tools (metadata only).
    configuration: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    requirements: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    policy: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    wait_for_capacity: Mapped[bool] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RoyaltyDay(Base):
    """A day's royalty of one pinned version to its publisher: the calls through deployments
    that pinned it, their cost, and the royalty lines transferred for them. Amounts are kept as
    (whole, nanos, attos) so both databases sum them exactly (``flow_memory.kit.money``)."""

    __tablename__ = "royalty_days"
    __table_args__ = ({"sqlite_with_rowid": False},)

    publisher_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    version_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # agent | model
    slug: Mapped[str] = mapped_column(String(160))
    version: Mapped[str] = mapped_column(String(64))
    royalty_bps: Mapped[int] = mapped_column(Integer)
    usage_records: Mapped[int] = mapped_column(BigInteger)
    cost_whole: Mapped[int] = mapped_column(BigInteger)
    cost_nanos: Mapped[int] = mapped_column(BigInteger)
    cost_attos: Mapped[int] = mapped_column(BigInteger)
    royalty_whole: Mapped[int] = mapped_column(BigInteger)
    royalty_nanos: Mapped[int] = mapped_column(BigInteger)
    royalty_attos: Mapped[int] = mapped_column(BigInteger)


# The report's order (newest day first, then publisher, entry and version), for every publisher
# and for one: a page is read off an index, never sorted (migration 0019).
Index(
    "ix_royalty_days_report",
    RoyaltyDay.day.desc(),
    RoyaltyDay.publisher_id,
    RoyaltyDay.slug,
    RoyaltyDay.version,
    RoyaltyDay.version_id,
)
Index(
    "ix_royalty_days_publisher_report",
    RoyaltyDay.publisher_id,
    RoyaltyDay.day.desc(),
    RoyaltyDay.slug,
    RoyaltyDay.version,
    RoyaltyDay.version_id,
)

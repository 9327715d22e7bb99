from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Float, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, Money, UTCDateTime


class UsageRecord(Base):
    """One use of inference capacity: a market fill now, a proxied call later.

    Costs are exact decimals; ``reference_cost`` and ``savings`` stay empty when no reference
    price was known, so no savings are ever invented."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_time", "created_at", "usage_id"),
        Index("ix_usage_records_owner_time", "owner_id", "created_at"),
        Index("ix_usage_records_seller_time", "seller_owner_id", "created_at"),
        Index("ix_usage_records_agent_time", "agent_id", "created_at"),
        Index("ix_usage_records_workspace_time", "workspace_id", "created_at"),
        Index("ix_usage_records_deployment_time", "deployment_id", "created_at"),
    )

    usage_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # market_fill | proxy
    # market_fill | selected | fallback, or how a proxied call failed (upstream_rejected, …)
    decision: Mapped[str] = mapped_column(String(24))
    owner_id: Mapped[str] = mapped_column(String(128))  # the buyer's key owner
    seller_owner_id: Mapped[str] = mapped_column(String(128))
    workspace_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    goal_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    model: Mapped[str] = mapped_column(String(128))
    unit_type: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str] = mapped_column(String(40))
    route_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reservation_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    fill_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    estimated_units: Mapped[int] = mapped_column(BigInteger)
    actual_units: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[Decimal] = mapped_column(Money())
    estimated_cost: Mapped[Decimal] = mapped_column(Money())
    actual_cost: Mapped[Decimal] = mapped_column(Money())
    reference_unit_price: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    reference_cost: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    savings: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    discount_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A call through a deployment (``flow_memory.deployments``): the deployment and the agent
    # and model versions its revision pinned. Empty for every other record, and left out of
    # the values ``record_row`` gives (``DEPLOYMENT_COLUMNS``).
    deployment_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    agent_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


# Written only for calls through a deployment, and only by the proxy's usage writer.
DEPLOYMENT_COLUMNS = ("deployment_id", "agent_version_id", "model_version_id")


EVERYONE = "*"  # the rollup party that counts every record (for admins and auditors)
AMOUNTS = ("actual_cost", "priced_cost", "reference_cost", "savings")


class _RollupSums:
    """The sums a rollup row keeps; amounts as (whole, nanos, attos) so SQL sums them exactly."""

    records: Mapped[int] = mapped_column(BigInteger)
    priced_records: Mapped[int] = mapped_column(BigInteger)
    estimated_units: Mapped[int] = mapped_column(BigInteger)
    actual_units: Mapped[int] = mapped_column(BigInteger)
    # Failed attempts among the records (``flow_memory.usage.outcomes``).
    failed_records: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    actual_cost_whole: Mapped[int] = mapped_column(BigInteger)
    actual_cost_nanos: Mapped[int] = mapped_column(BigInteger)
    actual_cost_attos: Mapped[int] = mapped_column(BigInteger)
    priced_cost_whole: Mapped[int] = mapped_column(BigInteger)
    priced_cost_nanos: Mapped[int] = mapped_column(BigInteger)
    priced_cost_attos: Mapped[int] = mapped_column(BigInteger)
    reference_cost_whole: Mapped[int] = mapped_column(BigInteger)
    reference_cost_nanos: Mapped[int] = mapped_column(BigInteger)
    reference_cost_attos: Mapped[int] = mapped_column(BigInteger)
    savings_whole: Mapped[int] = mapped_column(BigInteger)
    savings_nanos: Mapped[int] = mapped_column(BigInteger)
    savings_attos: Mapped[int] = mapped_column(BigInteger)


class UsageRollup(_RollupSums, Base):
    """Daily sums of usage per party, model, unit and provider, kept as records are written.

    Each record counts once for ``EVERYONE``, once for its buyer and once for its seller (once
    when they are the same owner), so a summary over millions of records reads thousands of
    rows. Stored clustered by its key on SQLite, so one party's days are read in one range."""

    __tablename__ = "usage_rollups"
    __table_args__ = ({"sqlite_with_rowid": False},)

    party: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(40), primary_key=True)


class UsageTotal(_RollupSums, Base):
    """All-time sums per party, model, unit and provider: summaries without a time range."""

    __tablename__ = "usage_totals"
    __table_args__ = ({"sqlite_with_rowid": False},)

    party: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(40), primary_key=True)


# A usage record's columns, in the table's order, but those only the proxy's usage writer
# writes (``service.record_row`` gives a record's values so).
RECORD_COLUMNS: tuple[str, ...] = tuple(
    column.key for column in UsageRecord.__table__.columns if column.key not in DEPLOYMENT_COLUMNS
)

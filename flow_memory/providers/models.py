from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, Money, UTCDateTime


class Provider(Base):
    __tablename__ = "providers"
    __table_args__ = (UniqueConstraint("owner_id", "provider_name"),)

    provider_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    workspace_id: Mapped[str] = mapped_column(String(128))
    provider_name: Mapped[str] = mapped_column(String(128))
    provider_api: Mapped[str] = mapped_column(String(64))
    base_url: Mapped[str] = mapped_column(String(512))
    credential_ref_id: Mapped[str] = mapped_column(
        ForeignKey("credential_refs.credential_ref_id"), index=True
    )
    credential_ref: Mapped[str] = mapped_column(String(256))
    supported_units: Mapped[list[str]] = mapped_column(JSONDocument())
    contact: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    runtime_status: Mapped[str] = mapped_column(String(32))
    routes_disabled: Mapped[bool] = mapped_column(default=False)
    paired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reported_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    agent_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    catalog_version: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    catalog_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    capacity_version: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    capacity_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PairingToken(Base):
    __tablename__ = "provider_pairing_tokens"

    token_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.provider_id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_preview: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CatalogEntry(Base):
    __tablename__ = "provider_catalog_entries"
    __table_args__ = (Index("ix_provider_catalog_registry", "registry_version_id"),)

    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.provider_id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    compatible_api: Mapped[str] = mapped_column(String(32))
    unit_types: Mapped[list[str]] = mapped_column(JSONDocument())
    context_window: Mapped[int] = mapped_column(BigInteger)
    tool_calling: Mapped[str] = mapped_column(String(32))
    reference_unit_prices: Mapped[dict[str, str]] = mapped_column(JSONDocument())
    # The registry model version the provider says it serves under this name, if it names one
    # (its slug and version as given, and the version's id the model's registry page joins).
    registry_slug: Mapped[str | None] = mapped_column(String(129), nullable=True)
    registry_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registry_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class CapacityEntry(Base):
    __tablename__ = "provider_capacity_entries"

    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.provider_id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    available_units: Mapped[int] = mapped_column(BigInteger)
    ask_unit_price: Mapped[Decimal] = mapped_column(Money())
    min_order_units: Mapped[int] = mapped_column(BigInteger)
    quality_score: Mapped[float] = mapped_column(Float)
    reliability_score: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, Money, UTCDateTime


class Market(Base):
    """One row per (model, unit_type): its lock and the version of its book."""

    __tablename__ = "markets"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    next_sequence: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MarketOrder(Base):
    __tablename__ = "market_orders"
    __table_args__ = (
        Index("ix_market_orders_book", "model", "unit_type", "status"),
        Index("ix_market_orders_provider_source", "provider_id", "source", "status"),
        Index("ix_market_orders_changes", "model", "unit_type", "version"),
    )

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    unit_type: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    buyer_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    provider_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    units: Mapped[int] = mapped_column(BigInteger)
    remaining_units: Mapped[int] = mapped_column(BigInteger)
    limit_unit_price: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(16))
    min_fill_units: Mapped[int] = mapped_column(BigInteger)
    time_in_force: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(24))
    sequence: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(40))
    routing_policy: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Its market's version when it was last written: another writer reloads what changed.
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class MarketFill(Base):
    __tablename__ = "market_fills"
    __table_args__ = (Index("ix_market_fills_book", "model", "unit_type", "created_at"),)

    fill_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    unit_type: Mapped[str] = mapped_column(String(32))
    bid_order_id: Mapped[str] = mapped_column(ForeignKey("market_orders.order_id"), index=True)
    ask_order_id: Mapped[str] = mapped_column(ForeignKey("market_orders.order_id"), index=True)
    taker_order_id: Mapped[str] = mapped_column(String(40))
    buyer_owner_id: Mapped[str] = mapped_column(String(128), index=True)
    buyer_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    seller_owner_id: Mapped[str] = mapped_column(String(128), index=True)
    provider_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    units: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[Decimal] = mapped_column(Money())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Reservation(Base):
    __tablename__ = "market_reservations"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        Index("ix_market_reservations_changes", "model", "unit_type", "version"),
    )

    reservation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    buyer_id: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    unit_type: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    requested_units: Mapped[int] = mapped_column(BigInteger)
    held_units: Mapped[int] = mapped_column(BigInteger)
    max_unit_price: Mapped[Decimal] = mapped_column(Money())
    hold_seconds: Mapped[int] = mapped_column(Integer)
    allow_partial: Mapped[bool] = mapped_column()
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))  # as an order's


class ReservationHold(Base):
    __tablename__ = "market_reservation_holds"

    reservation_id: Mapped[str] = mapped_column(
        ForeignKey("market_reservations.reservation_id"), primary_key=True
    )
    order_id: Mapped[str] = mapped_column(ForeignKey("market_orders.order_id"), primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[Decimal] = mapped_column(Money())
    provider_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class FeedEvent(Base):
    __tablename__ = "market_feed_events"

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    unit_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subject_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

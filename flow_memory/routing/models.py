from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, Money, UTCDateTime


class RouteRecord(Base):
    """A selected route: what the proxy and usage records refer to."""

    __tablename__ = "routes"

    route_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    workspace_id: Mapped[str] = mapped_column(String(128))
    task_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    goal_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str] = mapped_column(String(128))
    unit_type: Mapped[str] = mapped_column(String(32))
    estimated_units: Mapped[int] = mapped_column(BigInteger)
    provider_id: Mapped[str] = mapped_column(String(40), index=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    unit_price: Mapped[Decimal] = mapped_column(Money())
    estimated_cost: Mapped[Decimal] = mapped_column(Money())
    reference_unit_price: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    discount_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    selected_quote: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    fallbacks: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument())
    warnings: Mapped[list[str]] = mapped_column(JSONDocument())
    policy: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

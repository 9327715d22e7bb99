from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, Money, UTCDateTime


class ListPrice(Base):
    """An operator-set reference price for one (model, unit_type); it outranks catalogs."""

    __tablename__ = "list_prices"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    unit_price: Mapped[Decimal] = mapped_column(Money())
    set_by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(String(512), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

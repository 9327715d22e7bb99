from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, UTCDateTime


class PaymentChallengePreview(Base):
    """The audit record of one disabled payment-challenge preview."""

    __tablename__ = "payment_challenge_previews"

    challenge_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reservation_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

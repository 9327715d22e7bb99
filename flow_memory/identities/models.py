"""The agent identity table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, UTCDateTime


class AgentIdentity(Base):
    """An identity that acts in the market. A ``bound`` one belongs to its operator (the key
    owner who registered it), whose keys act as it and who earns what it earns; a ``free`` one
    acts with keys issued to it and, from its first key on, with nothing else."""

    __tablename__ = "agent_identities"
    __table_args__ = (
        Index("ix_agent_identities_creator", "creator_id", "status"),
        Index("ix_agent_identities_time", "created_at", "agent_id"),
    )

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # bound | free
    display_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(512))
    values: Mapped[list[str]] = mapped_column(JSONDocument())
    # An opaque pointer to where the agent's memory lives (never the memory itself).
    memory_ref: Mapped[str | None] = mapped_column(String(256), nullable=True)
    models: Mapped[list[str]] = mapped_column(JSONDocument())
    profile: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    # The owner who registered it: a bound agent's operator; a free agent's creator, who may
    # act as it until its first key is issued.
    creator_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # active | suspended
    keyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    suspend_reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

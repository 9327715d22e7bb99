"""Job board tables: jobs, their bids, the archive of results, and the jobs' events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, JSONDocument, Money, UTCDateTime


class Job(Base):
    """A whole inference job offered to bidders: its request (shown only as its visibility
    allows), its economics, the escrow hold taken when it was posted, and where it stands."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_window", "status", "bids_close_at"),
        Index("ix_jobs_deadline", "status", "result_due_at"),
        Index("ix_jobs_time", "created_at", "job_id"),
        Index("ix_jobs_requester", "requester_id", "created_at"),
    )

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    requester_id: Mapped[str] = mapped_column(String(128))
    # Whose account holds the escrow: the requester's, or a bound agent's operator's.
    payer_id: Mapped[str] = mapped_column(String(128))
    posted_by: Mapped[str] = mapped_column(String(128))  # the owner of the key that posted it
    status: Mapped[str] = mapped_column(String(24))
    model_hint: Mapped[str] = mapped_column(String(128))
    quality_threshold: Mapped[str] = mapped_column(String(16))
    max_tokens: Mapped[int] = mapped_column(Integer)
    # {"prompt": …} or {"messages": […]}: shown to bidders only when the job is open.
    request: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    input_characters: Mapped[int] = mapped_column(BigInteger)
    message_count: Mapped[int] = mapped_column(Integer)
    max_price: Mapped[Decimal] = mapped_column(Money())
    payment_mode: Mapped[str] = mapped_column(String(8))  # fixed | auction
    visibility: Mapped[str] = mapped_column(String(8))  # sealed | open
    validation: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    escrow: Mapped[Decimal] = mapped_column(Money())
    hold_id: Mapped[str] = mapped_column(String(40))
    bid_window_seconds: Mapped[int] = mapped_column(Integer)
    deadline_seconds: Mapped[int] = mapped_column(Integer)
    min_reputation: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    reaward_on_no_show: Mapped[bool] = mapped_column()
    bids_close_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    winning_bid_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    award_count: Mapped[int] = mapped_column(Integer)
    awarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobBid(Base):
    """A bidder's one bid on a job: revised in place, withdrawn, then won or lost (with why)."""

    __tablename__ = "job_bids"
    __table_args__ = (
        UniqueConstraint("job_id", "bidder_id"),
        Index("ix_job_bids_bidder", "bidder_id", "placed_at"),
    )

    bid_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.job_id"))
    bidder_id: Mapped[str] = mapped_column(String(128))
    placed_by: Mapped[str] = mapped_column(String(128))  # the owner of the key that bid
    provider_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(128))
    price: Mapped[Decimal] = mapped_column(Money())
    estimated_time_s: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # live | withdrawn | won | lost | no_show
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    score: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    revision: Mapped[int] = mapped_column(Integer)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())  # its latest revision
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobResult(Base):
    """A job's result, addressed by the SHA-256 of its canonical encoding (``content``, kept
    byte for byte so anyone may hash it again). Written once, never changed."""

    __tablename__ = "job_results"

    result_hash: Mapped[str] = mapped_column(String(80), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.job_id"), unique=True)
    bid_id: Mapped[str] = mapped_column(String(40))
    bidder_id: Mapped[str] = mapped_column(String(128))
    content: Mapped[str] = mapped_column(Text())
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobEvent(Base):
    """One thing that happened to a job, in the order streams deliver them: by ``tx`` (on
    PostgreSQL the writing transaction's id, 0 on SQLite), then ``event_id``. The market feed
    gets a copy of each."""

    __tablename__ = "job_events"
    __table_args__ = (
        Index("ix_job_events_order", "tx", "event_id"),
        Index("ix_job_events_job", "job_id", "event_id"),
    )

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tx: Mapped[int] = mapped_column(BigInteger)
    job_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

"""Ledger tables: accounts, their balance rows, transfers, postings and holds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flow_memory.kit.db import Base, Money, UTCDateTime


class LedgerAccount(Base):
    """One holder's account in one currency: its ``main`` account, or the ``hold`` account
    beside it where held credits wait. The issuance account (holder kind ``system``) is the
    only one that is always below zero: every credit in circulation came from it."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("holder_id", "role", "currency"),
        Index("ix_ledger_accounts_main", "main_account_id"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder_kind: Mapped[str] = mapped_column(String(16))  # owner | agent | system
    holder_id: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(8))  # main | hold
    currency: Mapped[str] = mapped_column(String(16))
    main_account_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # off | on (an admin turned it on) | always (a free agent's: it cannot be turned off)
    enforcement: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerBalance(Base):
    """An account's balance, kept in the transaction of every posting to it: the sum of its
    postings, which ``flow-memory db check-ledger`` recomputes and compares."""

    __tablename__ = "ledger_balances"

    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("ledger_accounts.account_id"), primary_key=True
    )
    amount: Mapped[Decimal] = mapped_column(Money())
    postings: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerTransfer(Base):
    """One movement of credits, caused by one market action: its postings sum to zero, and its
    idempotency key (derived from the action) is unique, so a retried action moves nothing."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (Index("ix_ledger_transfers_time", "created_at", "transfer_id"),)

    transfer_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    cause_kind: Mapped[str] = mapped_column(String(32))
    cause_id: Mapped[str] = mapped_column(String(128))
    actor_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    memo: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerPosting(Base):
    """One leg of a transfer: a signed amount on one account."""

    __tablename__ = "ledger_postings"
    __table_args__ = (Index("ix_ledger_postings_account_time", "account_id", "created_at"),)

    posting_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(
        String(48), ForeignKey("ledger_transfers.transfer_id"), index=True
    )
    account_id: Mapped[str] = mapped_column(String(40), ForeignKey("ledger_accounts.account_id"))
    amount: Mapped[Decimal] = mapped_column(Money())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerHold(Base):
    """Credits moved from a main account to its hold account for an action under way, until
    that action settles them (to whoever earned them) or releases them (back), or they expire."""

    __tablename__ = "ledger_holds"
    __table_args__ = (Index("ix_ledger_holds_open", "status", "expires_at"),)

    hold_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    hold_account_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Money())
    settled: Mapped[Decimal] = mapped_column(Money())
    released: Mapped[Decimal] = mapped_column(Money())
    status: Mapped[str] = mapped_column(String(16))  # open | settled | released
    cause_kind: Mapped[str] = mapped_column(String(32))
    cause_id: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

"""All SQL of the ledger."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from flow_memory.ledger.models import (
    LedgerAccount,
    LedgerBalance,
    LedgerHold,
    LedgerPosting,
    LedgerTransfer,
)


def insert_ignoring_conflicts(
    session: Session, model: type[Any], rows: Sequence[Mapping[str, Any]], on: Sequence[str]
) -> None:
    """Insert ``rows``, skipping those whose ``on`` columns another row already holds (one
    committed meanwhile by another transaction included: PostgreSQL waits for it)."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).values(list(rows)).on_conflict_do_nothing(index_elements=on)
    session.execute(statement)


def main_account(session: Session, holder_id: str, currency: str) -> LedgerAccount | None:
    query = select(LedgerAccount).where(
        LedgerAccount.holder_id == holder_id,
        LedgerAccount.role == "main",
        LedgerAccount.currency == currency,
    )
    return session.scalars(query).first()


def main_accounts_of(
    session: Session, holder_ids: Sequence[str], currency: str
) -> list[LedgerAccount]:
    """``main_account`` of each holder that has one, in one query."""
    query = select(LedgerAccount).where(
        LedgerAccount.holder_id.in_(list(holder_ids)),
        LedgerAccount.role == "main",
        LedgerAccount.currency == currency,
    )
    return list(session.scalars(query))


def hold_account(session: Session, main_account_id: str) -> LedgerAccount | None:
    query = select(LedgerAccount).where(
        LedgerAccount.main_account_id == main_account_id, LedgerAccount.role == "hold"
    )
    return session.scalars(query).first()


def accounts(session: Session, account_ids: Iterable[str]) -> dict[str, LedgerAccount]:
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = select(LedgerAccount).where(LedgerAccount.account_id.in_(ids))
    return {a.account_id: a for a in session.scalars(query)}


def main_accounts(
    session: Session, *, holder_ids: Sequence[str] | None, limit: int
) -> list[LedgerAccount]:
    query = select(LedgerAccount).where(LedgerAccount.role == "main")
    if holder_ids is not None:
        query = query.where(LedgerAccount.holder_id.in_(holder_ids))
    return list(
        session.scalars(
            query.order_by(LedgerAccount.created_at, LedgerAccount.account_id).limit(limit)
        )
    )


def balances(
    session: Session, account_ids: Iterable[str], *, for_update: bool = False
) -> dict[str, LedgerBalance]:
    """Balance rows by account id; ``for_update`` locks them, in account id order so that
    transfers touching the same accounts never wait on each other in a circle."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = (
        select(LedgerBalance)
        .where(LedgerBalance.account_id.in_(ids))
        .order_by(LedgerBalance.account_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        query = query.with_for_update()
    return {b.account_id: b for b in session.scalars(query)}


def transfer_by_key(session: Session, key: str) -> LedgerTransfer | None:
    query = select(LedgerTransfer).where(LedgerTransfer.idempotency_key == key)
    return session.scalars(query.execution_options(populate_existing=True)).first()


def postings_of(session: Session, transfer_id: str) -> list[LedgerPosting]:
    query = select(LedgerPosting).where(LedgerPosting.transfer_id == transfer_id)
    return list(session.scalars(query.order_by(LedgerPosting.posting_id)))


def hold_by_key(session: Session, key: str) -> LedgerHold | None:
    query = select(LedgerHold).where(LedgerHold.idempotency_key == key)
    return session.scalars(query.execution_options(populate_existing=True)).first()


def hold(session: Session, hold_id: str, *, for_update: bool = False) -> LedgerHold | None:
    query = select(LedgerHold).where(LedgerHold.hold_id == hold_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).first()


def expired_holds(session: Session, now: datetime, *, limit: int) -> list[LedgerHold]:
    query = (
        select(LedgerHold)
        .where(LedgerHold.status == "open", LedgerHold.expires_at <= now)
        .order_by(LedgerHold.expires_at, LedgerHold.hold_id)
        .limit(limit)
    )
    return list(session.scalars(query))


def entries_page(
    session: Session,
    account_ids: Sequence[str],
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[LedgerPosting, LedgerTransfer]]:
    """The postings of ``account_ids`` with their transfers, newest first."""
    p = LedgerPosting
    query = (
        select(p, LedgerTransfer)
        .join(LedgerTransfer, LedgerTransfer.transfer_id == p.transfer_id)
        .where(p.account_id.in_(account_ids))
    )
    if before is not None:
        when, posting_id = before
        query = query.where(
            or_(p.created_at < when, and_(p.created_at == when, p.posting_id < posting_id))
        )
    rows = session.execute(query.order_by(p.created_at.desc(), p.posting_id.desc()).limit(limit))
    return [(posting, transfer) for posting, transfer in rows]


def postings_since(
    session: Session, account_ids: Sequence[str], since: datetime
) -> list[tuple[str, datetime, Decimal]]:
    """(transfer id, time, amount) of every posting to ``account_ids`` from ``since`` on."""
    p = LedgerPosting
    query = select(p.transfer_id, p.created_at, p.amount).where(
        p.account_id.in_(account_ids), p.created_at >= since
    )
    return [(t, when, amount) for t, when, amount in session.execute(query)]


def count_transfers(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerTransfer)) or 0

"""The ledger's hottest statements, run on the driver: every job posted, bid won and call
paid moves credits, and SQLAlchemy's ORM path (a unit of work per flush, an object per row)
cost several times the statements themselves. Each statement is compiled once per dialect
(``flow_memory.kit.db``), and values go through the columns' own bind processors, so what is
stored is what the ORM stored. What these write is read back through the ORM as before:
every ledger read of a balance or hold refreshes what the session holds
(``populate_existing``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from flow_memory.kit.db import Money
from flow_memory.kit.driver import BulkWrite, DriverQuery, bulk_insert
from flow_memory.ledger.models import LedgerBalance, LedgerHold, LedgerPosting, LedgerTransfer

_TRANSFERS: Table = LedgerTransfer.__table__  # type: ignore[assignment]
_POSTINGS: Table = LedgerPosting.__table__  # type: ignore[assignment]
_BALANCES: Table = LedgerBalance.__table__  # type: ignore[assignment]
_HOLDS: Table = LedgerHold.__table__  # type: ignore[assignment]

_TRANSFER_BY_KEY = DriverQuery(
    select(_TRANSFERS.c.transfer_id).where(_TRANSFERS.c.idempotency_key == bindparam("key"))
)
_INSERT_TRANSFER = bulk_insert(_TRANSFERS)
_INSERT_POSTINGS = bulk_insert(_POSTINGS)
_INSERT_HOLD = bulk_insert(_HOLDS)
_UPDATE_BALANCES = BulkWrite(
    update(_BALANCES)
    .where(_BALANCES.c.account_id == bindparam("b_account_id"))
    .values(
        amount=bindparam("b_amount"),
        postings=bindparam("b_postings"),
        updated_at=bindparam("b_updated_at"),
    )
)
_BALANCE_NAMES = ("b_amount", "b_postings", "b_updated_at", "b_account_id")
_LOCKED_BALANCES: dict[int, DriverQuery] = {}  # by the number of accounts
_MONEY = Money()


@dataclass
class BalanceRow:
    """A balance as read under its row lock: what a transfer changes."""

    account_id: str
    amount: Decimal
    postings: int


def key_is_used(session: Session, key: str) -> bool:
    """Whether a transfer holds ``key``."""
    return bool(_TRANSFER_BY_KEY.rows(session.connection(), {"key": key}))


def locked_balances(session: Session, account_ids: Sequence[str]) -> dict[str, BalanceRow]:
    """Balance rows by account id, locked (PostgreSQL) in account id order so that transfers
    touching the same accounts never wait on each other in a circle."""
    ids = sorted(set(account_ids))
    query = _LOCKED_BALANCES.get(len(ids))
    if query is None:
        query = _LOCKED_BALANCES[len(ids)] = DriverQuery(
            select(_BALANCES.c.account_id, _BALANCES.c.amount, _BALANCES.c.postings)
            .where(_BALANCES.c.account_id.in_([bindparam(f"a{i}") for i in range(len(ids))]))
            .order_by(_BALANCES.c.account_id)
            .with_for_update()
        )
    connection = session.connection()
    rows = query.rows(connection, {f"a{i}": account_id for i, account_id in enumerate(ids)})
    dialect = connection.dialect
    return {
        account_id: BalanceRow(
            account_id, _MONEY.process_result_value(amount, dialect) or Decimal(0), postings
        )
        for account_id, amount, postings in rows
    }


def insert_transfer(session: Session, row: dict[str, Any]) -> None:
    _INSERT_TRANSFER.execute(session.connection(), [row])


def insert_postings(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    _INSERT_POSTINGS.execute(session.connection(), rows)


def save_balances(session: Session, rows: Sequence[BalanceRow], now: datetime) -> None:
    _UPDATE_BALANCES.execute_rows(
        session.connection(),
        _BALANCE_NAMES,
        [(row.amount, row.postings, now, row.account_id) for row in rows],
    )


def insert_hold(session: Session, row: dict[str, Any]) -> None:
    _INSERT_HOLD.execute(session.connection(), [row])

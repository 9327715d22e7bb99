"""What callers read of the ledger: who sees an account, accounts and entries as answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.cursors import decode_cursor, encode_cursor
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import NotFound
from flow_memory.kit.scopes import AUDIT
from flow_memory.ledger import repository, service
from flow_memory.ledger.domain import CURRENCY
from flow_memory.ledger.models import LedgerAccount, LedgerPosting, LedgerTransfer


def sees_every_account(principal: Principal) -> bool:
    return principal.is_admin or AUDIT in principal.scopes


def may_see(principal: Principal, account: LedgerAccount) -> bool:
    """The holder (or an owner acting for the identity holding it), admins and auditors."""
    return (
        sees_every_account(principal)
        or account.holder_id == principal.owner_id
        or account.holder_id in principal.controls
    )


def visible_account(session: Session, principal: Principal, account_id: str) -> LedgerAccount:
    """A main account the caller may see; any other is reported as absent."""
    try:
        account = service.find_account(session, account_id)
    except NotFound:
        account = None
    if account is None or not may_see(principal, account):
        raise NotFound("ledger account not found", field="account_id")
    return account


def account_read(session: Session, account: LedgerAccount) -> dict[str, Any]:
    held = service.balance(session, account_id=account.account_id)
    return {
        "account_id": account.account_id,
        "holder_id": account.holder_id,
        "holder_kind": account.holder_kind,
        "currency": account.currency,
        "enforced": account.enforcement != "off",
        "enforcement": account.enforcement,
        "balance": held.balance,
        "held": held.held,
        "available": held.available,
        "created_at": account.created_at,
    }


def visible_accounts(
    session: Session, principal: Principal, holder_id: str | None, *, limit: int
) -> list[LedgerAccount]:
    """Main accounts the caller may see: of ``holder_id`` when given, else its own and those
    of the identities it controls (every account, for admins and auditors)."""
    if holder_id is not None:
        found = service.account_of(session, holder_id)
        return [found] if found is not None and may_see(principal, found) else []
    holders = None if sees_every_account(principal) else [principal.owner_id, *principal.controls]
    return repository.main_accounts(session, holder_ids=holders, limit=limit)


def cause_read(transfer: LedgerTransfer) -> dict[str, Any]:
    return {
        "kind": transfer.cause_kind,
        "id": transfer.cause_id,
        "actor_id": transfer.actor_id,
        "memo": transfer.memo,
    }


def transfer_read(transfer: LedgerTransfer) -> dict[str, Any]:
    return {
        "transfer_id": transfer.transfer_id,
        "idempotency_key": transfer.idempotency_key,
        "cause": cause_read(transfer),
        "created_at": transfer.created_at,
    }


def entry_read(posting: LedgerPosting, transfer: LedgerTransfer, role: str) -> dict[str, Any]:
    return {
        "entry_id": posting.posting_id,
        "transfer_id": posting.transfer_id,
        "account_id": posting.account_id,
        "account_role": role,
        "amount": posting.amount,
        "currency": CURRENCY,
        "cause": cause_read(transfer),
        "created_at": posting.created_at,
    }


@dataclass(frozen=True)
class EntriesPage:
    entries: list[dict[str, Any]]
    next_cursor: str | None


def page_entries(
    session: Session, account: LedgerAccount, *, limit: int, cursor: str | None
) -> EntriesPage:
    """The postings of an account and its hold account, newest first, ``limit`` at a time."""
    hold = repository.hold_account(session, account.account_id)
    roles = {account.account_id: "main", **({hold.account_id: "hold"} if hold else {})}
    before = None if cursor is None else decode_cursor(cursor)
    rows = repository.entries_page(session, list(roles), before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [entry_read(p, t, roles[p.account_id]) for p, t in rows]
    return EntriesPage(
        entries,
        encode_cursor(rows[-1][0].created_at, rows[-1][0].posting_id) if more and rows else None,
    )

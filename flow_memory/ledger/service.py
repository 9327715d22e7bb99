"""Accounts, transfers, balances and enforcement: the ledger's use cases.

Every function takes the caller's session and writes in its transaction, so a movement of
credits commits or rolls back with the market action that causes it. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.kit.db import transaction_memo
from flow_memory.kit.errors import Conflict, InsufficientCredit, Invalid, NotFound
from flow_memory.kit.ids import new_id, new_ordered_id
from flow_memory.kit.money import EXACT
from flow_memory.ledger import repository, rows
from flow_memory.ledger.domain import (
    CURRENCY,
    Cause,
    Posting,
    check_transfer,
    netted,
    overdrawn,
    storable_balance,
)
from flow_memory.ledger.models import LedgerAccount, LedgerBalance, LedgerTransfer

# The holder of the issuance account: not an identifier any request can name.
ISSUANCE = "@issuance"
ENFORCEMENTS = ("off", "on", "always")


@dataclass(frozen=True)
class TransferRequest:
    """What one action moves: ``key`` is derived from the action, so a retry replays."""

    key: str
    postings: tuple[Posting, ...]
    cause: Cause


@dataclass(frozen=True)
class TransferResult:
    """The transfer that holds the key; ``replayed`` when an earlier call wrote it."""

    transfer: LedgerTransfer
    replayed: bool


@dataclass(frozen=True)
class Balance:
    """An account's credits: ``balance`` in all, ``held`` for actions under way, and
    ``available`` to spend (balance less held)."""

    account: LedgerAccount
    balance: Decimal
    held: Decimal
    available: Decimal


# -- accounts ---------------------------------------------------------------------------------


def open_account(
    session: Session,
    *,
    holder_id: str,
    now: datetime,
    holder_kind: str = "owner",
    enforcement: str = "off",
) -> LedgerAccount:
    """The holder's main account, opened with its hold account on first need (the kind and
    enforcement given apply only when it is opened here)."""
    known = transaction_memo(session, "main_accounts")
    found: LedgerAccount | None = known.get(holder_id)
    if found is None:
        found = repository.main_account(session, holder_id, CURRENCY)
    if found is not None:
        known[holder_id] = found
        return found
    session.flush()
    main_id = new_id("acct")
    repository.insert_ignoring_conflicts(
        session,
        LedgerAccount,
        [
            {
                "account_id": main_id,
                "holder_kind": holder_kind,
                "holder_id": holder_id,
                "role": "main",
                "currency": CURRENCY,
                "main_account_id": None,
                "enforcement": enforcement,
                "created_at": now,
            }
        ],
        on=("holder_id", "role", "currency"),
    )
    main = repository.main_account(session, holder_id, CURRENCY)
    assert main is not None
    if main.account_id == main_id:  # opened here, not by a transaction that committed first
        hold_id = new_id("acct")
        session.add(
            LedgerAccount(
                account_id=hold_id,
                holder_kind=holder_kind,
                holder_id=holder_id,
                role="hold",
                currency=CURRENCY,
                main_account_id=main_id,
                enforcement="off",
                created_at=now,
            )
        )
        session.flush()
        for account_id in (main_id, hold_id):
            session.add(
                LedgerBalance(account_id=account_id, amount=Decimal(0), postings=0, updated_at=now)
            )
        session.flush()
    known[holder_id] = main
    return main


def issuance_account(session: Session, *, now: datetime) -> LedgerAccount:
    """The account every granted credit comes from: the only one that is meant to be below
    zero (minus every credit in circulation)."""
    return open_account(session, holder_id=ISSUANCE, holder_kind="system", now=now)


def find_account(session: Session, account_id: str) -> LedgerAccount:
    """A main account by id (hold accounts are read through their main account)."""
    account = repository.accounts(session, [account_id]).get(account_id)
    if account is None or account.role != "main":
        raise NotFound("ledger account not found", field="account_id")
    return account


def account_of(session: Session, holder_id: str) -> LedgerAccount | None:
    """The holder's main account, or None when it has none yet (reads only)."""
    return repository.main_account(session, holder_id, CURRENCY)


def accounts_of(session: Session, holder_ids: Sequence[str]) -> list[LedgerAccount]:
    """The main accounts of those holders that have one (reads only, one query)."""
    if not holder_ids:
        return []
    return repository.main_accounts_of(session, holder_ids, CURRENCY)


def is_enforced(session: Session, *, account_id: str) -> bool:
    """Whether the account may not go below zero (a free agent's always; an owner's when an
    admin turned enforcement on)."""
    return find_account(session, account_id).enforcement != "off"


def set_enforcement(
    session: Session, *, holder_id: str, enforced: bool, now: datetime
) -> LedgerAccount:
    """Turn enforcement on or off for a holder's account (opened if need be); a free agent's
    is always on."""
    account = open_account(session, holder_id=holder_id, now=now)
    if account.enforcement == "always":
        if not enforced:
            raise Conflict(
                "a free agent's account is always enforced",
                code="enforcement_fixed",
                field="enforced",
                hint="free agents spend only what they hold; grant credits instead",
            )
        return account
    account.enforcement = "on" if enforced else "off"
    session.flush()
    return account


def balance(session: Session, *, account_id: str) -> Balance:
    """An account's balance, held and available credits, from its balance rows."""
    account = find_account(session, account_id)
    hold = repository.hold_account(session, account_id)
    rows = repository.balances(session, [account_id] + ([hold.account_id] if hold else []))
    main = rows[account_id].amount
    held = rows[hold.account_id].amount if hold is not None else Decimal(0)
    return Balance(account, EXACT.add(main, held), held, main)


def available(session: Session, *, account_id: str) -> Decimal:
    """Credits the account may spend now: its balance less what is held."""
    return balance(session, account_id=account_id).available


# -- transfers --------------------------------------------------------------------------------


def transfer(
    session: Session,
    *,
    key: str,
    postings: Sequence[Posting],
    cause: Cause,
    now: datetime,
    accounts: Sequence[LedgerAccount] = (),
) -> TransferResult:
    """Write one transfer (postings summing to zero) unless ``key`` was used before, in which
    case nothing moves and the first transfer is returned. An enforced account that would end
    below zero refuses it with 402 ``insufficient_credit``. ``accounts``: postings' accounts
    the caller has loaded already, so they are not read again."""
    request = TransferRequest(key, tuple(postings), cause)
    return transfer_many(session, [request], now=now, accounts=accounts)[0]


def transfer_many(
    session: Session,
    requests: Sequence[TransferRequest],
    *,
    now: datetime,
    accounts: Sequence[LedgerAccount] = (),
) -> list[TransferResult]:
    """``transfer`` for each request in order, in the session's transaction: for a writer
    that records actions in batches. One refused request refuses the batch (raise)."""
    for request in requests:
        check_transfer(request.postings)
    session.flush()
    known = {account.account_id: account for account in accounts}
    results: list[TransferResult] = []
    for request in requests:
        results.append(_write(session, request, now, known))
    return results


def _write(
    session: Session, request: TransferRequest, now: datetime, known: dict[str, LedgerAccount]
) -> TransferResult:
    if rows.key_is_used(session, request.key):
        return _replayed(session, request)
    net = netted(request.postings)
    accounts = _accounts(session, net, known)
    balances = rows.locked_balances(session, list(net))
    if set(net) - set(balances):
        raise NotFound("a posting names no ledger account", field="postings")
    if _written_meanwhile(session, request.key):  # by a transaction that held these rows first
        return _replayed(session, request)
    # Refused before anything is written, so a caller that carries on in the same transaction
    # leaves no trace of the refused movement (and its key stays free for a retry).
    for account_id, delta in sorted(net.items()):
        _ensure_may_take(accounts[account_id], balances[account_id].amount, delta)
    transfer_id = new_ordered_id("xfer", now)
    written = _insert_transfer(session, request, transfer_id, now)
    if written.transfer_id != transfer_id:  # a concurrent transaction wrote it first
        _ensure_same(session, written, request.postings)
        return TransferResult(written, replayed=True)
    rows.insert_postings(
        session,
        [
            {
                "posting_id": f"{transfer_id}.{index}",
                "transfer_id": transfer_id,
                "account_id": posting.account_id,
                "amount": posting.amount,
                "created_at": now,
            }
            for index, posting in enumerate(request.postings)
        ],
    )
    for account_id, delta in net.items():
        row = balances[account_id]
        row.amount = EXACT.add(row.amount, delta)
        row.postings += sum(1 for p in request.postings if p.account_id == account_id)
    rows.save_balances(session, list(balances.values()), now)
    return TransferResult(written, replayed=False)


def _replayed(session: Session, request: TransferRequest) -> TransferResult:
    """The transfer an earlier call wrote with this key, when it moved the same."""
    found = repository.transfer_by_key(session, request.key)
    assert found is not None
    _ensure_same(session, found, request.postings)
    return TransferResult(found, replayed=True)


def _accounts(
    session: Session, account_ids: Collection[str], known: dict[str, LedgerAccount]
) -> dict[str, LedgerAccount]:
    """The accounts by id, reading only those the caller has not loaded: a query would give
    back the very objects the session holds (it refreshes none of them)."""
    found = {i: known[i] for i in account_ids if i in known}
    missing = [i for i in account_ids if i not in known]
    if missing:
        found.update(repository.accounts(session, missing))
    return found


def _others_write_meanwhile(session: Session) -> bool:
    """Whether another transaction may write a transfer between two reads of this one. On
    PostgreSQL (read committed) it may; SQLite writes one transaction at a time (each write
    transaction takes the write lock as it begins) and each reads one snapshot, so a key found
    free stays free until this transaction writes it."""
    return session.get_bind().dialect.name != "sqlite"


def _written_meanwhile(session: Session, key: str) -> bool:
    """Whether a transaction that committed since this one found ``key`` free wrote it (never
    on SQLite, see ``_others_write_meanwhile``)."""
    return _others_write_meanwhile(session) and rows.key_is_used(session, key)


def _insert_transfer(
    session: Session, request: TransferRequest, transfer_id: str, now: datetime
) -> LedgerTransfer:
    """Write the transfer's row; the row that holds its key: this one, or where another
    transaction wrote the key first, that one (PostgreSQL only; on SQLite nothing can, so the
    row is written as it is and not read back)."""
    cause = request.cause
    row = {
        "transfer_id": transfer_id,
        "idempotency_key": request.key,
        "cause_kind": cause.kind,
        "cause_id": cause.id,
        "actor_id": cause.actor_id,
        "memo": cause.memo,
        "created_at": now,
    }
    if not _others_write_meanwhile(session):
        rows.insert_transfer(session, row)
        return LedgerTransfer(**row)
    repository.insert_ignoring_conflicts(session, LedgerTransfer, [row], on=("idempotency_key",))
    found = repository.transfer_by_key(session, request.key)
    assert found is not None
    return found


def _ensure_may_take(account: LedgerAccount, amount: Decimal, delta: Decimal) -> None:
    if not storable_balance(amount, delta):
        raise Invalid(
            "the movement would take a balance beyond what the ledger stores",
            field="amount",
            code="amount_out_of_range",
        )
    if not overdrawn(amount, delta):
        return
    if account.role == "hold":
        raise Conflict(
            "more would leave a hold than it holds", code="hold_overdrawn", field="amount"
        )
    if account.enforcement != "off":
        raise InsufficientCredit(
            "the account's available credit does not cover this",
            field="amount",
            hint="spend less, wait for held credits to be released, or ask an operator for a "
            "grant (POST /inference/ledger/grants)",
        )


def _ensure_same(session: Session, written: LedgerTransfer, postings: Sequence[Posting]) -> None:
    """A replay must ask for what the first call moved: a key reused for other postings is a
    caller's mistake, refused rather than answered as if it were the same action."""
    before = netted(
        Posting(p.account_id, p.amount)
        for p in repository.postings_of(session, written.transfer_id)
    )
    if before != netted(postings):
        raise Conflict(
            "this idempotency key was used for a different movement",
            code="idempotency_key_reused",
            field="idempotency_key",
            hint="derive the key from the action that moves credits, one key per action",
        )


def grant(
    session: Session,
    *,
    holder_id: str,
    amount: Decimal,
    key: str,
    actor_id: str,
    memo: str,
    now: datetime,
) -> TransferResult:
    """Credits from the issuance account to a holder's account (opened if need be): an admin's
    grant, recorded with who granted it and why."""
    account = open_account(session, holder_id=holder_id, now=now)
    issuance = issuance_account(session, now=now)
    return transfer(
        session,
        key=f"grant:{key}",
        postings=[Posting(issuance.account_id, -amount), Posting(account.account_id, amount)],
        cause=Cause("grant", key, actor_id=actor_id, memo=memo),
        now=now,
    )

"""What proxied calls cost their payers, written as ledger transfers in batches.

The usage writer records calls in batches; each batch's charges are written in the same
transaction as its usage records, with a few statements per batch whatever its size (a
transfer at a time would cost several statements a call):

- a call whose payer's estimate was held before it ran (an enforced account) settles the hold:
  the cost is paid out of it to the provider's owner and the rest is released; a cost above the
  hold is drawn from the payer's account as far as its balance goes, never below zero (what it
  cannot cover is left uncollected and counted);
- any other call moves its cost from the payer's account to the provider's owner's in one
  transfer keyed ``proxy:<usage_id>``: a key written before is skipped, so a replayed batch
  moves nothing twice. Accounts are opened on first need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.kit.driver import bulk_insert
from flow_memory.kit.ids import new_ordered_id
from flow_memory.kit.money import EXACT
from flow_memory.ledger import holds, repository
from flow_memory.ledger.domain import CURRENCY, Cause, Posting
from flow_memory.ledger.models import LedgerAccount, LedgerPosting, LedgerTransfer
from flow_memory.ledger.service import open_account

CAUSE = "proxy_charge"
# Plain inserts, many rows per statement: the ORM's bulk path costs more than the calls.
_INSERT_TRANSFERS = bulk_insert(LedgerTransfer.__table__)  # type: ignore[arg-type]
_INSERT_POSTINGS = bulk_insert(LedgerPosting.__table__)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Charge:
    """One call's cost, from ``payer`` to ``payee`` (holders: an owner or an identity)."""

    usage_id: str
    payer: str
    payee: str
    amount: Decimal
    hold_id: str | None = None  # the payer's estimate, held before the call

    @property
    def key(self) -> str:
        return f"proxy:{self.usage_id}"


@dataclass
class Charged:
    """What a batch of charges did."""

    transfers: int = 0
    skipped: int = 0  # keys written before: moved nothing
    uncollected: Decimal = Decimal(0)  # what enforced payers could not cover


def charge_many(session: Session, charges: Sequence[Charge], *, now: datetime) -> Charged:
    """Write every charge of a batch in ``session``'s transaction (see the module)."""
    done = Charged()
    held = [c for c in charges if c.hold_id is not None]
    plain = [c for c in charges if c.hold_id is None and c.amount > 0 and c.payer != c.payee]
    for charge in held:
        _settle(session, charge, done, now)
    if plain:
        _transfer_plain(session, plain, done, now)
    return done


def _accounts(session: Session, holders: set[str], now: datetime) -> dict[str, LedgerAccount]:
    """The main account of every holder, opened where it has none yet."""
    query = select(LedgerAccount).where(
        LedgerAccount.holder_id.in_(sorted(holders)),
        LedgerAccount.role == "main",
        LedgerAccount.currency == CURRENCY,
    )
    found = {account.holder_id: account for account in session.scalars(query)}
    for holder in sorted(holders - set(found)):
        found[holder] = open_account(session, holder_id=holder, now=now)
    return found


def _transfer_plain(
    session: Session, charges: Sequence[Charge], done: Charged, now: datetime
) -> None:
    keys = [c.key for c in charges]
    written = set(
        session.scalars(
            select(LedgerTransfer.idempotency_key).where(LedgerTransfer.idempotency_key.in_(keys))
        )
    )
    fresh = [c for c in charges if c.key not in written]
    done.skipped += len(charges) - len(fresh)
    if not fresh:
        return
    accounts = _accounts(session, {c.payer for c in fresh} | {c.payee for c in fresh}, now)
    transfers: list[dict[str, object]] = []
    postings: list[dict[str, object]] = []
    net: dict[str, Decimal] = defaultdict(Decimal)
    counts: dict[str, int] = defaultdict(int)
    for charge in fresh:
        transfer_id = new_ordered_id("xfer", now)
        transfers.append(
            {
                "transfer_id": transfer_id,
                "idempotency_key": charge.key,
                "cause_kind": CAUSE,
                "cause_id": charge.usage_id,
                "actor_id": None,
                "memo": "a proxied call's cost",
                "created_at": now,
            }
        )
        for index, (holder, amount) in enumerate(
            ((charge.payer, -charge.amount), (charge.payee, charge.amount))
        ):
            account_id = accounts[holder].account_id
            postings.append(
                {
                    "posting_id": f"{transfer_id}.{index}",
                    "transfer_id": transfer_id,
                    "account_id": account_id,
                    "amount": amount,
                    "created_at": now,
                }
            )
            net[account_id] = EXACT.add(net[account_id], amount)
            counts[account_id] += 1
    connection = session.connection()
    _INSERT_TRANSFERS.execute(connection, transfers)
    _INSERT_POSTINGS.execute(connection, postings)
    rows = repository.balances(session, net, for_update=True)
    for account_id, delta in net.items():
        row = rows[account_id]
        row.amount = EXACT.add(row.amount, delta)
        row.postings += counts[account_id]
        row.updated_at = now
    session.flush()
    done.transfers += len(fresh)


def _settle(session: Session, charge: Charge, done: Charged, now: datetime) -> None:
    """Pay the call's cost out of its hold, as far as the hold and the payer's balance go."""
    assert charge.hold_id is not None
    record = repository.hold(session, charge.hold_id, for_update=True)
    if record is None or record.status != "open":
        done.skipped += 1
        return
    cause = Cause(CAUSE, charge.usage_id, memo="a proxied call's cost")
    cost = charge.amount
    if cost > 0:
        in_hold = holds.remaining(record)
        balance = repository.balances(session, [record.account_id])[record.account_id].amount
        cover = EXACT.add(in_hold, max(balance, Decimal(0)))
        paid = min(cost, cover)
        done.uncollected = EXACT.add(done.uncollected, EXACT.subtract(cost, paid))
        cost = paid
    if cost > 0:
        payee = _accounts(session, {charge.payee}, now)[charge.payee]
        holds.settle(
            session,
            hold_id=record.hold_id,
            credits=[Posting(payee.account_id, cost)],
            cause=cause,
            now=now,
        )
        done.transfers += 1
    else:
        holds.release(session, hold_id=record.hold_id, cause=cause, now=now)

"""``flow-memory db check-ledger``: recompute every balance from the postings and compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.kit.money import EXACT, plain
from flow_memory.ledger.models import LedgerAccount, LedgerBalance, LedgerPosting

_BATCH = 5_000


@dataclass
class LedgerCheck:
    """What a check found: counts, and every discrepancy (empty lists: the ledger is sound)."""

    transfers: int = 0
    postings: int = 0
    accounts: int = 0
    unbalanced_transfers: list[str] = field(default_factory=list)
    mismatched_balances: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    below_zero: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unbalanced_transfers or self.mismatched_balances or self.below_zero)

    def report(self) -> list[str]:
        """One line per finding, then a summary line."""
        lines = [f"transfer {t}: postings do not sum to zero" for t in self.unbalanced_transfers]
        lines += [
            f"account {a}: balance row {plain(row)}, postings sum {plain(computed)}"
            for a, row, computed in self.mismatched_balances
        ]
        lines += [f"account {a}: enforced or held, yet below zero" for a in self.below_zero]
        verdict = "clean" if self.ok else f"{len(lines)} problem(s)"
        lines.append(
            f"ledger {verdict}: {self.transfers} transfers, {self.postings} postings, "
            f"{self.accounts} accounts"
        )
        return lines


def check_ledger(session: Session) -> LedgerCheck:
    """Stream the postings in transfer order: each transfer must sum to zero, each account's
    postings must sum to its balance row, and no enforced or hold account may be below zero."""
    found = LedgerCheck()
    sums: dict[str, Decimal] = {}
    current: str | None = None
    total = Decimal(0)
    query = select(LedgerPosting.transfer_id, LedgerPosting.account_id, LedgerPosting.amount)
    rows = session.execute(
        query.order_by(LedgerPosting.transfer_id).execution_options(yield_per=_BATCH)
    )
    for transfer_id, account_id, amount in rows:
        if transfer_id != current:
            if current is not None:
                _close(found, current, total)
            current, total = transfer_id, Decimal(0)
        total = EXACT.add(total, amount)
        sums[account_id] = EXACT.add(sums.get(account_id, Decimal(0)), amount)
        found.postings += 1
    if current is not None:
        _close(found, current, total)
    accounts = session.execute(
        select(LedgerAccount, LedgerBalance).outerjoin(
            LedgerBalance, LedgerBalance.account_id == LedgerAccount.account_id
        )
    )
    for account, row in accounts:
        found.accounts += 1
        computed = sums.pop(account.account_id, Decimal(0))
        stored = row.amount if row is not None else Decimal(0)
        if row is None or stored != computed:
            found.mismatched_balances.append((account.account_id, stored, computed))
        floor = account.role == "hold" or account.enforcement != "off"
        if floor and computed < 0:
            found.below_zero.append(account.account_id)
    # Postings to an account that does not exist (the foreign key forbids it; a check reports it).
    found.mismatched_balances += [(a, Decimal(0), s) for a, s in sorted(sums.items())]
    return found


def _close(found: LedgerCheck, transfer_id: str, total: Decimal) -> None:
    found.transfers += 1
    if total != 0:
        found.unbalanced_transfers.append(transfer_id)

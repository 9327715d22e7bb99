"""Ledger rules that read no database: what a transfer must be, and what a burn rate means.

A transfer is two or more postings whose amounts sum to exactly zero; an account whose balance
is enforced may not end below zero; runway is the balance over the recent daily burn."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from flow_memory.kit.errors import Invalid
from flow_memory.kit.money import EXACT

CURRENCY = "USD_CREDIT"
# Amounts are stored NUMERIC(38, 18): at most 18 decimal places and 20 whole digits.
_LIMIT = Decimal(10) ** 20
# The most one grant may give: far below the storable limit, so sums of grants stay storable.
MAX_GRANT = Decimal(10) ** 12
_QUANTUM = Decimal(1).scaleb(-18)


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of a transfer: ``amount`` (signed: negative takes, positive gives) on an account."""

    account_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Cause:
    """The market action that moves credits: its kind (``grant``, ``proxy_charge``, ``hold``, …),
    its record's id, who acted (None: the system) and a short note."""

    kind: str
    id: str
    actor_id: str | None = None
    memo: str = ""


def is_amount(value: Decimal) -> bool:
    """Whether ``value`` is a finite amount the ledger can store exactly."""
    if not value.is_finite() or abs(value) >= _LIMIT:
        return False
    return value.quantize(_QUANTUM, context=EXACT) == value


def netted(postings: Iterable[Posting]) -> dict[str, Decimal]:
    """Each account's net amount across ``postings`` (accounts named twice are summed)."""
    net: dict[str, Decimal] = {}
    for posting in postings:
        net[posting.account_id] = EXACT.add(net.get(posting.account_id, Decimal(0)), posting.amount)
    return net


def check_transfer(postings: Sequence[Posting]) -> None:
    """Refuse postings that are not a transfer: fewer than two, an amount of zero or one the
    ledger cannot store, or amounts that do not sum to exactly zero."""
    if len(postings) < 2:
        raise Invalid("a transfer has at least two postings", field="postings")
    for posting in postings:
        if posting.amount == 0 or not is_amount(posting.amount):
            raise Invalid(
                "every posting's amount is non-zero, finite and has at most 18 decimal places",
                field="postings",
            )
    if sum((p.amount for p in postings), Decimal(0)) != 0:
        raise Invalid("a transfer's postings must sum to zero", field="postings")


def storable_balance(balance: Decimal, delta: Decimal) -> bool:
    """Whether the balance after ``delta`` can still be stored exactly."""
    return abs(EXACT.add(balance, delta)) < _LIMIT


def overdrawn(balance: Decimal, delta: Decimal) -> bool:
    """Whether an enforced account holding ``balance`` would end below zero after ``delta``."""
    return delta < 0 and EXACT.add(balance, delta) < 0


def runway_days(balance: Decimal, daily_burn: Decimal) -> Decimal | None:
    """Days the balance lasts at ``daily_burn`` credits a day (None: nothing is burnt, so the
    balance lasts indefinitely; zero when nothing is left)."""
    if daily_burn <= 0:
        return None
    if balance <= 0:
        return Decimal(0)
    return EXACT.divide(balance, daily_burn).quantize(Decimal("0.01"), context=EXACT)

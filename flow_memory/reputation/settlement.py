"""Who is paid what once a job's result is judged: the winner its price when the result is
accepted (or the dispute overturned a rejection), every validator who answered in time its
fee, and a dispute's fees borne by the side that lost it. ``split`` reads no database; the job
board turns a ``Settlement`` into ledger postings out of the job's escrow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.orm import Session

from flow_memory.kit.money import EXACT
from flow_memory.reputation import repository
from flow_memory.reputation.verdicts import Judgement, judged

PAID = frozenset({"accepted", "overturned"})
ENDED = frozenset({"accepted", "overturned", "upheld", "rejected_final"})


@dataclass(frozen=True)
class Settlement:
    """``from_escrow``: holder → amount paid out of the job's escrow (the rest returns to the
    requester); ``winner_pays``: validator → fee the winner pays from its own account (a
    dispute it lost)."""

    from_escrow: dict[str, Decimal] = field(default_factory=dict)
    winner_pays: dict[str, Decimal] = field(default_factory=dict)


def split(
    status: str,
    *,
    winner_id: str,
    price: Decimal,
    fee: Decimal,
    judged_result: Sequence[str],
    judged_dispute: Sequence[str],
) -> Settlement:
    """The payments a validation that ended ``status`` makes: ``judged_result`` and
    ``judged_dispute`` are the validators who answered in time in each round."""
    if status not in ENDED:
        return Settlement()
    escrow: dict[str, Decimal] = {}
    if status in PAID:
        escrow[winner_id] = price
    for validator_id in judged_result:
        escrow[validator_id] = EXACT.add(escrow.get(validator_id, Decimal(0)), fee)
    winner_pays: dict[str, Decimal] = {}
    for validator_id in judged_dispute:
        side = escrow if status == "overturned" else winner_pays
        side[validator_id] = EXACT.add(side.get(validator_id, Decimal(0)), fee)
    return Settlement(
        {k: v for k, v in escrow.items() if v > 0},
        {k: v for k, v in winner_pays.items() if v > 0},
    )


def settlement_of(session: Session, judgement: Judgement, *, price: Decimal) -> Settlement:
    """``split`` for a job whose validation ended, from its recorded draws."""
    record = judged(session, judgement.job_id)
    answered = [d for d in repository.draws(session, record.job_id, None) if d.status == "answered"]
    return split(
        record.status,
        winner_id=record.winner_id,
        price=price,
        fee=record.fee,
        judged_result=[d.validator_id for d in answered if d.round == 0],
        judged_dispute=[d.validator_id for d in answered if d.round == 1],
    )

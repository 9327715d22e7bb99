"""The validator draw and the consensus rule, read by no database.

**Draw.** A validator may judge a job unless it is the requester or the winner, stands behind
either of them (same owner: a bound agent's operator, a free agent's creator), was excluded by
the caller (a dispute wants fresh validators), has no stake, or stands below the exclusion
threshold. Among those, validators are drawn one at a time without replacement, each with
probability proportional to its weight

    weight = standing * sqrt(stake)

so standing counts fully and stake with diminishing returns: doubling a stake raises the
chance of a draw by about 41 %, and no one buys the draws outright. The draw is reproducible:
the same candidates, seed and count give the same validators whatever order they come in.

**Consensus.** Each verdict accepts or rejects with a score in [0, 1] and weighs as its
validator does in the draw. The verdict is the side with the greater total weight (a tie is no
verdict: draw another validator). The consensus score is the weighted mean of the verdicts on
the winning side. A validator is far from the consensus when it took the other side, or its
score lies more than ``FAR`` from the consensus score: those lose validator standing.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal

FAR = Decimal("0.3")
_CONTEXT = Context(prec=40)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A validator who opted in: who stands behind it, its validator standing and stake."""

    identity_id: str
    owner_id: str
    standing: Decimal
    stake: Decimal


def weight(standing: Decimal, stake: Decimal) -> Decimal:
    """standing * sqrt(stake) (0 for a validator without stake or standing)."""
    if standing <= 0 or stake <= 0:
        return Decimal(0)
    return _CONTEXT.multiply(standing, _CONTEXT.sqrt(stake))


def eligible(
    candidates: Sequence[Candidate],
    *,
    parties: Collection[str],
    owners: Collection[str],
    threshold: Decimal,
    exclude: Collection[str] = (),
) -> list[Candidate]:
    """The candidates who may judge: not a party (the requester, the winner) nor one of the
    same owner as a party, not excluded, above the threshold and with weight. Sorted by id."""
    kept = [
        c
        for c in candidates
        if c.identity_id not in parties
        and c.owner_id not in owners
        and c.owner_id not in parties
        and c.identity_id not in owners
        and c.identity_id not in exclude
        and c.standing >= threshold
        and weight(c.standing, c.stake) > 0
    ]
    return sorted(kept, key=lambda c: c.identity_id)


def draw(
    candidates: Sequence[Candidate],
    *,
    count: int,
    seed: str,
    parties: Collection[str],
    owners: Collection[str],
    threshold: Decimal,
    exclude: Collection[str] = (),
) -> list[str]:
    """Up to ``count`` validators, drawn weighted (see the module) from the eligible ones,
    in the order drawn; fewer when fewer are eligible."""
    pool = eligible(
        candidates, parties=parties, owners=owners, threshold=threshold, exclude=exclude
    )
    rng = random.Random(seed)
    drawn: list[str] = []
    while pool and len(drawn) < count:
        weights = [weight(c.standing, c.stake) for c in pool]
        point = _CONTEXT.multiply(Decimal(repr(rng.random())), sum(weights, Decimal(0)))
        index = len(pool) - 1
        for i, w in enumerate(weights):
            if point < w:
                index = i
                break
            point -= w
        drawn.append(pool.pop(index).identity_id)
    return drawn


@dataclass(frozen=True, slots=True)
class Vote:
    """One validator's verdict, weighed by its standing and stake."""

    validator_id: str
    accept: bool
    score: Decimal
    standing: Decimal
    stake: Decimal


@dataclass(frozen=True)
class Consensus:
    """The weighted verdict (None: a tie, no verdict), its score, each side's weight, and the
    validators far from it."""

    accept: bool | None
    score: Decimal | None
    weight_for: Decimal
    weight_against: Decimal
    far: tuple[str, ...]


def consensus(votes: Sequence[Vote]) -> Consensus:
    """The stake-and-reputation weighted majority of ``votes`` (see the module)."""
    weights = {v.validator_id: weight(v.standing, v.stake) for v in votes}
    for_ = sum((weights[v.validator_id] for v in votes if v.accept), Decimal(0))
    against = sum((weights[v.validator_id] for v in votes if not v.accept), Decimal(0))
    if for_ == against:
        return Consensus(None, None, for_, against, ())
    accept = for_ > against
    side = [v for v in votes if v.accept == accept]
    total = sum((weights[v.validator_id] for v in side), Decimal(0))
    mean = _CONTEXT.divide(
        sum((_CONTEXT.multiply(weights[v.validator_id], v.score) for v in side), Decimal(0)),
        total,
    )
    far = tuple(
        sorted(v.validator_id for v in votes if v.accept != accept or abs(v.score - mean) > FAR)
    )
    return Consensus(
        accept, mean.quantize(Decimal("0.000001"), context=_CONTEXT), for_, against, far
    )

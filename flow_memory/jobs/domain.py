"""Job board rules that read no database: a job's states and their transitions, which bids may
win, the award score, and what a job holds in escrow.

States: ``open`` → ``awarded`` → ``submitted`` → ``completed`` or ``rejected``; ``cancelled``
(by the requester, while open), ``expired_unawarded`` (the bid window closed without an
eligible bid) and ``expired_no_show`` (no result by the deadline). A ``submitted`` job's result
is being judged (``flow_memory.jobs.judging``): accepted, it completes and pays; rejected, it
becomes ``rejected`` with its escrow still held while the winner may dispute, and ends when the
rejection is final (``ended_at`` set, the escrow released less validator fees) or moves on to
``completed`` when a dispute overturns it. ``after_judgement`` maps a decision to its state.

The award score (auction mode; lower wins): ``price * (1 + 0.5 * (0.5 - standing))``, where
``standing`` in [0, 1] is the bidder's standing (0.5, neutral, for a bidder without one), so a
bid is scored between 0.75 and 1.25 times its price. Ties break by the lower price, then the
shorter ``estimated_time_s``, then the earlier last revision, then the lower bid id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from flow_memory.kit.errors import Conflict
from flow_memory.kit.money import EXACT

OPEN = "open"
AWARDED = "awarded"
SUBMITTED = "submitted"
COMPLETED = "completed"
REJECTED = "rejected"
CANCELLED = "cancelled"
EXPIRED_UNAWARDED = "expired_unawarded"
EXPIRED_NO_SHOW = "expired_no_show"
STATUSES = (
    OPEN,
    AWARDED,
    SUBMITTED,
    COMPLETED,
    REJECTED,
    CANCELLED,
    EXPIRED_UNAWARDED,
    EXPIRED_NO_SHOW,
)
# States a job never leaves: the transition into each settles or releases its escrow.
ENDED = frozenset({COMPLETED, CANCELLED, EXPIRED_UNAWARDED, EXPIRED_NO_SHOW})
# Where each state may go. ``awarded`` → ``awarded`` is the runner-up's award after a no-show;
# ``rejected`` → ``completed`` is a dispute the winner won. A ``rejected`` job is left by no
# other transition: it ends where it stands once the rejection is final.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    OPEN: frozenset({AWARDED, CANCELLED, EXPIRED_UNAWARDED}),
    AWARDED: frozenset({AWARDED, SUBMITTED, EXPIRED_NO_SHOW}),
    SUBMITTED: frozenset({COMPLETED, REJECTED}),
    REJECTED: frozenset({COMPLETED}),
}
# A validation's decisions (``flow_memory.reputation.verdicts``) and the job state each leads
# to; ``rejected_final`` and ``upheld`` end a ``rejected`` job where it stands.
JUDGED_STATES: Mapping[str, str] = {
    "accepted": COMPLETED,
    "overturned": COMPLETED,
    "rejected": REJECTED,
    "rejected_final": REJECTED,
    "upheld": REJECTED,
}

# Bid statuses, and why a bid lost.
LIVE = "live"
WITHDRAWN = "withdrawn"
WON = "won"
LOST = "lost"
NO_SHOW = "no_show"
OUTBID = "outbid"
OVER_MAX_PRICE = "over_max_price"
BELOW_REPUTATION_FLOOR = "below_reputation_floor"
DEADLINE_INFEASIBLE = "deadline_infeasible"
WINDOW_CLOSED = "window_closed"
# A bid whose bidder's group holds all the jobs it has earned to hold at once, at the award.
CAPACITY_REACHED = "capacity_reached"
LOSS_REASONS = (
    OUTBID,
    OVER_MAX_PRICE,
    BELOW_REPUTATION_FLOOR,
    DEADLINE_INFEASIBLE,
    WITHDRAWN,
    WINDOW_CLOSED,
    CAPACITY_REACHED,
)

MODEL_CLASSES = frozenset({"codegen", "chat", "analysis", "any"})
NEUTRAL_STANDING = Decimal("0.5")
STANDING_WEIGHT = Decimal("0.5")
# A job is awarded at most this many times: once, then to a runner-up after each no-show.
MAX_AWARDS = 3
# How long a job's escrow outlives the latest moment the job could still be under way: the
# ledger's sweep releases holds past their expiry, and a job's must never be released by it.
ESCROW_GRACE = timedelta(days=1)
CHARACTERS_PER_TOKEN = 4


def check_transition(current: str, target: str) -> None:
    """Refuse a move the state machine does not have (409 ``job_state``)."""
    if target not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(
            f"a job that is {current} cannot become {target}", code="job_state", field="job_id"
        )


def after_judgement(decision: str) -> str:
    """The state a validation's decision leads a job to (``JUDGED_STATES``)."""
    return JUDGED_STATES[decision]


def has_ended(status: str, ended_at: datetime | None) -> bool:
    """Whether a job has ended: in an ended state, or rejected for good."""
    return status in ENDED or (status == REJECTED and ended_at is not None)


def names_a_model(model_hint: str) -> bool:
    """Whether the hint names one model (a bid must offer it) rather than a class of them."""
    return model_hint not in MODEL_CLASSES


def escrow_amount(max_price: Decimal, validators: int, validator_fee: Decimal) -> Decimal:
    """What posting a job holds: its maximum price and every validator's fee."""
    return EXACT.add(max_price, EXACT.multiply(Decimal(validators), validator_fee))


def escrow_expiry(bids_close_at: datetime, deadline_seconds: int, judging_seconds: int) -> datetime:
    """When a job's escrow hold expires: after the window, every award's deadline, the
    result's judging (``JobRules.judging_seconds``) and a day."""
    held = deadline_seconds * MAX_AWARDS + judging_seconds
    return bids_close_at + timedelta(seconds=held) + ESCROW_GRACE


def estimated_input_tokens(characters: int) -> int:
    """A prompt's size in tokens as bidders price it: a token per four characters, rounded up."""
    return math.ceil(characters / CHARACTERS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Terms:
    """What a bid must meet to be eligible."""

    max_price: Decimal
    deadline_seconds: int
    min_reputation: Decimal | None


@dataclass(frozen=True, slots=True)
class Offer:
    """A live bid as the award weighs it (``standing`` None: the bidder has none yet)."""

    bid_id: str
    price: Decimal
    estimated_time_s: int
    submitted_at: datetime
    standing: Decimal | None = None


@dataclass(frozen=True)
class Decision:
    """The winning bid (None: no bid is eligible), the reason each other bid lost, and every
    eligible bid's score."""

    winner: str | None
    reasons: Mapping[str, str]
    scores: Mapping[str, Decimal]


def ineligibility(terms: Terms, offer: Offer) -> str | None:
    """Why ``offer`` may not win, or None. ``terms.min_reputation`` is the job's reputation
    floor (the award passes the higher of the job's and the exclusion threshold); it applies
    only to a bidder with a standing, so with no standing source registered no one is below
    it."""
    if offer.price > terms.max_price:
        return OVER_MAX_PRICE
    if offer.estimated_time_s > terms.deadline_seconds:
        return DEADLINE_INFEASIBLE
    if (
        terms.min_reputation is not None
        and offer.standing is not None
        and offer.standing < terms.min_reputation
    ):
        return BELOW_REPUTATION_FLOOR
    return None


def score(price: Decimal, standing: Decimal | None) -> Decimal:
    """The price adjusted by standing (see the module): lower is better."""
    weight = EXACT.subtract(NEUTRAL_STANDING, NEUTRAL_STANDING if standing is None else standing)
    return EXACT.multiply(price, EXACT.add(Decimal(1), EXACT.multiply(STANDING_WEIGHT, weight)))


def ranked(terms: Terms, offers: Iterable[Offer]) -> list[Offer]:
    """The eligible offers, best first, in the deterministic order the award uses."""
    eligible = [offer for offer in offers if ineligibility(terms, offer) is None]
    return sorted(
        eligible,
        key=lambda o: (
            score(o.price, o.standing),
            o.price,
            o.estimated_time_s,
            o.submitted_at,
            o.bid_id,
        ),
    )


def decide(terms: Terms, offers: Sequence[Offer], *, chosen: str | None = None) -> Decision:
    """Award ``chosen`` (the requester's pick, which must be eligible) or the best-ranked
    offer; every other offer loses, outbid or for the reason it was not eligible."""
    order = ranked(terms, offers)
    scores = {offer.bid_id: score(offer.price, offer.standing) for offer in order}
    winner = chosen if chosen is not None and chosen in scores else None
    if chosen is None and order:
        winner = order[0].bid_id
    reasons: dict[str, str] = {}
    for offer in offers:
        if offer.bid_id == winner:
            continue
        reasons[offer.bid_id] = ineligibility(terms, offer) or OUTBID
    return Decision(winner, reasons, scores)

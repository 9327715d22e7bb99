"""The reputation rule, read by no database: what each recorded outcome weighs, how a record
decays, the score it gives, its components, and the jobs an identity has earned to hold at once.

**Score.** Each identity has a record per role (``bidder``, ``validator``): the decayed sums
``good`` and ``bad`` of its outcomes' weights. Its score is the Beta-style mean

    score = (good + 1) / (good + bad + 2)

so an identity with no record stands at the prior, 1/2, and every score lies in (0, 1).

**Weight.** An outcome on a job worth ``v`` credits weighs ``v / REFERENCE_VALUE`` (one
outcome per reference credit), at most ``MAX_WEIGHT``; a bad outcome weighs at least
``MIN_BAD_WEIGHT`` whatever the job's value. The asymmetry is the point: good standing costs
real work (a hundred jobs worth nothing earn nothing), while failing cheap jobs is no way to
cheat without trace. Each kind multiplies the weight into good or bad (``KINDS``): a failed
known-answer job counts twice, a late delivery half.

**Decay.** An outcome recorded ``a`` days before the identity's latest outcome counts
``2 ** (-a / half_life_days)`` of its weight. Age runs up to the latest outcome, not to the
present, on purpose: standing changes only when something happens, so nobody washes a record
by waiting (under decay to the present, an identity excluded at 0.2 would drift back to the
prior, above any exclusion threshold, after a few idle half-lives). The decayed sums are kept
per identity and updated as ``sums * 2 ** (-gap / half_life) + weight``: the same for any order
of recording (``fold``), so the stored record needs no clock and no replay to read.

**Earned capacity.** Jobs held at once start at 1. Every good completion adds a point, every
failure (a rejected result, a no-show, a lost dispute, a failed known-answer job) halves the
points (additive increase, multiplicative decrease); each ``POINTS_PER_SLOT`` points earn one
more slot, up to ``MAX_SLOTS``. The stake bounds it: ``floor(stake / stake_per_slot)`` slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

BIDDER = "bidder"
VALIDATOR = "validator"
ROLES = (BIDDER, VALIDATOR)

# Outcomes a bidder is recorded with (by the job board) ...
COMPLETION_GOOD = "completion_good"
COMPLETION_BAD = "completion_bad"
NO_SHOW = "no_show"
LATE = "late"
DISPUTE_WON = "dispute_won"
DISPUTE_LOST = "dispute_lost"
KNOWN_ANSWER_PASS = "known_answer_pass"
KNOWN_ANSWER_FAIL = "known_answer_fail"
# ... and a validator.
VALIDATOR_AGREED = "validator_agreed"
VALIDATOR_DISAGREED = "validator_disagreed"
VALIDATOR_NO_ANSWER = "validator_no_answer"


@dataclass(frozen=True, slots=True)
class Kind:
    """What an outcome of this kind does: its role, the multiples of its weight it adds to
    good and to bad, and whether it grows or halves earned capacity (None: neither)."""

    role: str
    good: Decimal
    bad: Decimal
    capacity: str | None


KINDS: Mapping[str, Kind] = {
    COMPLETION_GOOD: Kind(BIDDER, Decimal(1), Decimal(0), "grow"),
    COMPLETION_BAD: Kind(BIDDER, Decimal(0), Decimal(1), "halve"),
    NO_SHOW: Kind(BIDDER, Decimal(0), Decimal(1), "halve"),
    # Delivered before the deadline but after the time the bid promised: recorded besides the
    # completion's own outcome.
    LATE: Kind(BIDDER, Decimal(0), Decimal("0.5"), None),
    # A disputed rejection ends as one of these instead of completion_bad.
    DISPUTE_WON: Kind(BIDDER, Decimal(1), Decimal(0), "grow"),
    DISPUTE_LOST: Kind(BIDDER, Decimal(0), Decimal("1.5"), "halve"),
    # A known-answer job ends as one of these instead of a completion.
    KNOWN_ANSWER_PASS: Kind(BIDDER, Decimal(1), Decimal(0), "grow"),
    KNOWN_ANSWER_FAIL: Kind(BIDDER, Decimal(0), Decimal(2), "halve"),
    VALIDATOR_AGREED: Kind(VALIDATOR, Decimal(1), Decimal(0), None),
    VALIDATOR_DISAGREED: Kind(VALIDATOR, Decimal(0), Decimal(1), None),
    VALIDATOR_NO_ANSWER: Kind(VALIDATOR, Decimal(0), Decimal(1), None),
}

PRIOR = Decimal("0.5")
REFERENCE_VALUE = Decimal(1)
MAX_WEIGHT = Decimal(10)
MIN_BAD_WEIGHT = Decimal("0.25")
POINTS_PER_SLOT = 5
MAX_SLOTS = 64
# Scores are answered to six places: enough to rank, few enough to read.
SCORE_PLACES = Decimal("0.000001")
_STORED = Decimal(1).scaleb(-18)  # records are stored NUMERIC(38, 18)
_CONTEXT = Context(prec=40)
_SECONDS_PER_DAY = Decimal(86_400)


def weight(kind: str, value: Decimal) -> tuple[Decimal, Decimal]:
    """What an outcome of ``kind`` on a job worth ``value`` adds to (good, bad)."""
    effect = KINDS[kind]
    base = min(_CONTEXT.divide(max(value, Decimal(0)), REFERENCE_VALUE), MAX_WEIGHT)
    good = _stored(_CONTEXT.multiply(effect.good, base))
    bad = _stored(_CONTEXT.multiply(effect.bad, max(base, MIN_BAD_WEIGHT)))
    return good, bad


def decay_factor(seconds: Decimal, half_life_days: Decimal) -> Decimal:
    """How much of an outcome's weight is left ``seconds`` later: 2 ** (-days / half-life)."""
    if seconds <= 0:
        return Decimal(1)
    days = _CONTEXT.divide(seconds, _SECONDS_PER_DAY)
    return _CONTEXT.power(Decimal(2), -_CONTEXT.divide(days, half_life_days))


def score(good: Decimal, bad: Decimal) -> Decimal:
    """(good + 1) / (good + bad + 2), to six places."""
    exact = _CONTEXT.divide(good + 1, good + bad + 2)
    return exact.quantize(SCORE_PLACES, rounding=ROUND_HALF_EVEN, context=_CONTEXT)


@dataclass(frozen=True, slots=True)
class Record:
    """One identity's decayed sums in one role, as of its latest outcome (None: none yet)."""

    good: Decimal = Decimal(0)
    bad: Decimal = Decimal(0)
    latest: datetime | None = None

    @property
    def score(self) -> Decimal:
        return score(self.good, self.bad)


def add(
    record: Record, *, good: Decimal, bad: Decimal, at: datetime, half_life_days: Decimal
) -> Record:
    """The record with one more outcome at ``at``: the older side decays by the gap between
    ``at`` and the latest outcome, whichever is older (so the order of adding is irrelevant)."""
    if record.latest is None:
        return Record(good, bad, at)
    gap = Decimal(str((at - record.latest).total_seconds()))
    if gap >= 0:
        old = decay_factor(gap, half_life_days)
        return Record(
            _stored(_CONTEXT.add(_CONTEXT.multiply(record.good, old), good)),
            _stored(_CONTEXT.add(_CONTEXT.multiply(record.bad, old), bad)),
            at,
        )
    new = decay_factor(-gap, half_life_days)
    return Record(
        _stored(_CONTEXT.add(record.good, _CONTEXT.multiply(good, new))),
        _stored(_CONTEXT.add(record.bad, _CONTEXT.multiply(bad, new))),
        record.latest,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recorded outcome as the rule reads it."""

    kind: str
    value: Decimal
    at: datetime


def fold(outcomes: Iterable[Outcome], *, half_life_days: Decimal) -> Record:
    """The record ``outcomes`` make, added one by one."""
    record = Record()
    for outcome in outcomes:
        good, bad = weight(outcome.kind, outcome.value)
        record = add(record, good=good, bad=bad, at=outcome.at, half_life_days=half_life_days)
    return record


def next_points(points: int, kind: str) -> int:
    """Earned-capacity points after an outcome of ``kind``."""
    change = KINDS[kind].capacity
    if change == "grow":
        return points + 1
    if change == "halve":
        return points // 2
    return points


def earned_slots(points: int) -> int:
    """Jobs an identity has earned to hold at once: 1, and one more per POINTS_PER_SLOT."""
    return min(1 + max(points, 0) // POINTS_PER_SLOT, MAX_SLOTS)


def stake_slots(stake: Decimal, stake_per_slot: Decimal) -> int | None:
    """Jobs a stake covers at once (None: stakes bound nothing, ``stake_per_slot`` is 0)."""
    if stake_per_slot <= 0:
        return None
    covered = _CONTEXT.divide(max(stake, Decimal(0)), stake_per_slot)
    return int(covered.to_integral_value(rounding=ROUND_FLOOR))


def capacity(points: int, stake: Decimal, stake_per_slot: Decimal) -> int:
    """Jobs held at once: the earned slots, bounded by what the stake covers."""
    earned = earned_slots(points)
    covered = stake_slots(stake, stake_per_slot)
    return earned if covered is None else min(earned, covered)


def components(counts: Mapping[str, int], role: str) -> dict[str, int | Decimal | None]:
    """What a record is made of, from its outcome counts (rates None until there is one)."""
    n = {kind: int(counts.get(kind, 0)) for kind in KINDS}
    if role == VALIDATOR:
        answered = n[VALIDATOR_AGREED] + n[VALIDATOR_DISAGREED]
        return {
            "verdicts": answered,
            "agreed": n[VALIDATOR_AGREED],
            "disagreed": n[VALIDATOR_DISAGREED],
            "no_answers": n[VALIDATOR_NO_ANSWER],
            "agreement_rate": _rate(n[VALIDATOR_AGREED], answered),
            "answer_rate": _rate(answered, answered + n[VALIDATOR_NO_ANSWER]),
        }
    accepted = n[COMPLETION_GOOD] + n[DISPUTE_WON] + n[KNOWN_ANSWER_PASS]
    judged = accepted + n[COMPLETION_BAD] + n[DISPUTE_LOST] + n[KNOWN_ANSWER_FAIL]
    known = n[KNOWN_ANSWER_PASS] + n[KNOWN_ANSWER_FAIL]
    return {
        "completions": accepted,
        "judged": judged,
        "acceptance_rate": _rate(accepted, judged),
        "late": n[LATE],
        "on_time_rate": _rate(max(judged - n[LATE], 0), judged + n[NO_SHOW]),
        "no_shows": n[NO_SHOW],
        "disputes_won": n[DISPUTE_WON],
        "disputes_lost": n[DISPUTE_LOST],
        "known_answer_jobs": known,
        "known_answer_pass_rate": _rate(n[KNOWN_ANSWER_PASS], known),
    }


def _rate(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return _CONTEXT.divide(Decimal(part), Decimal(whole)).quantize(
        SCORE_PLACES, rounding=ROUND_HALF_EVEN, context=_CONTEXT
    )


def _stored(value: Decimal) -> Decimal:
    return value.quantize(_STORED, rounding=ROUND_HALF_EVEN, context=_CONTEXT)


def required_standing(min_reputation: Decimal | None, exclusion_threshold: Decimal) -> Decimal:
    """The least standing a bid needs: the exclusion threshold, or the job's floor if higher."""
    return (
        exclusion_threshold if min_reputation is None else max(min_reputation, exclusion_threshold)
    )


def gated(own: Decimal, operator: Decimal | None) -> Decimal:
    """A bidder's standing as the board reads it: a bound agent's is the lower of its own and
    its operator's, so a fresh instance never stands above the operator's record."""
    return own if operator is None else min(own, operator)

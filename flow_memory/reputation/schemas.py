"""Request and response models of reputation, stakes and validators."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, WithJsonSchema

from flow_memory.jobs.schemas import JobCreate
from flow_memory.kit.money import UnitPrice
from flow_memory.kit.schemas import Identifier, RequestModel, SafetyFields
from flow_memory.ledger.domain import MAX_GRANT
from flow_memory.ledger.schemas import Credits

Role = Literal["bidder", "validator"]
OutcomeKind = Literal[
    "completion_good",
    "completion_bad",
    "no_show",
    "late",
    "dispute_won",
    "dispute_lost",
    "known_answer_pass",
    "known_answer_fail",
    "validator_agreed",
    "validator_disagreed",
    "validator_no_answer",
]
Score = Annotated[
    Decimal,
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
]
Rate = Annotated[
    Decimal | None,
    WithJsonSchema({"type": ["number", "null"], "minimum": 0, "maximum": 1}),
]
Weight = Annotated[
    Decimal,
    WithJsonSchema({"type": "number", "minimum": 0, "description": "A sum of outcome weights"}),
]


class BidderComponents(BaseModel):
    completions: int = Field(description="Results accepted (disputes won and known answers too)")
    judged: int = Field(description="Results judged, accepted or not")
    acceptance_rate: Rate
    late: int = Field(description="Results delivered after the time the bid promised")
    on_time_rate: Rate = Field(description="On-time results over results due (no-shows count)")
    no_shows: int
    disputes_won: int
    disputes_lost: int
    known_answer_jobs: int
    known_answer_pass_rate: Rate


class ValidatorComponents(BaseModel):
    verdicts: int
    agreed: int = Field(description="Verdicts on the side of the consensus")
    disagreed: int
    no_answers: int = Field(description="Draws answered late or never")
    agreement_rate: Rate
    answer_rate: Rate


class CapacityRead(BaseModel):
    counted_for: str = Field(
        description="Whose record earns it: a bound agent's operator, anyone else itself"
    )
    points: int
    earned: int = Field(description="Jobs earned to hold at once: 1, one more per 5 points")
    stake: Credits = Field(description="Bid stakes of the identity's group")
    stake_covers: int | None = Field(description="Jobs the stake covers (null: unbounded)")
    limit: int = Field(description="Jobs it may hold at once: earned, bounded by stake")
    held: int = Field(description="Jobs its group holds now")


class BidderStanding(BaseModel):
    score: Score = Field(description="(good + 1) / (good + bad + 2) of its own record")
    standing: Score = Field(
        description="What the job board reads: the score, a bound agent's bounded by its operator's"
    )
    good: Weight
    bad: Weight
    outcomes: int
    latest_at: datetime | None
    components: BidderComponents
    capacity: CapacityRead


class ValidatorStanding(BaseModel):
    score: Score
    good: Weight
    bad: Weight
    outcomes: int
    latest_at: datetime | None
    components: ValidatorComponents
    stake: Credits
    opted_in: bool


class OutcomeRead(BaseModel):
    outcome_id: str
    identity_id: str
    operator_id: str | None = Field(description="The operator it also counted for")
    role: Role
    kind: OutcomeKind
    job_id: str | None
    value: Credits = Field(description="The job's value in credits")
    good: Weight = Field(description="What it added to good, before decay")
    bad: Weight = Field(description="What it added to bad, before decay")
    recorded_at: datetime


class ReputationRead(BaseModel):
    identity_id: str
    identity_kind: Literal["owner", "bound", "free"]
    operator_id: str | None
    formula: str
    prior: Score
    half_life_days: Weight = Field(description="Days over which an outcome's weight halves")
    bidder: BidderStanding
    validator: ValidatorStanding
    history: list[OutcomeRead] = Field(
        description="Outcomes newest first (an operator's include its bound agents')"
    )
    next_cursor: str | None


class ReputationResponse(SafetyFields):
    ok: Literal[True] = True
    reputation: ReputationRead


# -- stakes and validators --------------------------------------------------------------------

StakeAmount = Annotated[UnitPrice, Field(le=MAX_GRANT)]


class StakeCreate(RequestModel):
    """Stake credits to bid: held on the identity's paying account until withdrawn."""

    identity_id: Identifier | None = Field(
        default=None,
        description="Who stakes: the key's owner when left out, or an identity it acts as",
    )
    amount: StakeAmount = Field(description="Credits to hold as the stake")


class StakeRead(BaseModel):
    stake_id: str
    identity_id: str
    purpose: Literal["bid", "validate"]
    payer_id: str = Field(description="Whose account holds it: a bound agent's operator's")
    hold_id: str = Field(description="The ledger hold in force")
    amount: Credits = Field(description="Staked now")
    slashed: Credits = Field(description="Paid to wronged requesters so far")
    slashes: int
    status: Literal["active", "withdrawn"]
    created_at: datetime
    withdrawn_at: datetime | None


class StakeResponse(SafetyFields):
    ok: Literal[True] = True
    stake: StakeRead


class StakeListResponse(SafetyFields):
    ok: Literal[True] = True
    stakes: list[StakeRead]
    count: int


class ValidatorCreate(RequestModel):
    """Opt in as a validator with a stake."""

    identity_id: Identifier | None = Field(
        default=None,
        description="Who validates: the key's owner when left out, or an identity it acts as",
    )
    stake: StakeAmount = Field(description="Credits to hold as the validator's stake")


class ValidatorRead(BaseModel):
    identity_id: str
    status: Literal["active", "withdrawn"]
    standing: Score = Field(description="Its validator score (the prior, 0.5, when new)")
    stake: Credits
    verdicts: int = Field(description="Outcomes recorded for it as a validator")
    joined_at: datetime
    withdrawn_at: datetime | None


class ValidatorResponse(SafetyFields):
    ok: Literal[True] = True
    validator: ValidatorRead


class ValidatorListResponse(SafetyFields):
    ok: Literal[True] = True
    validators: list[ValidatorRead]
    count: int


# -- verdicts and disputes --------------------------------------------------------------------

Reason = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class VerdictCreate(RequestModel):
    """A judge's verdict on a job's result: the requester's (requester mode) or a validator's
    drawn for the job."""

    judge_id: Identifier | None = Field(
        default=None,
        description="Who judges: the key's owner when left out, or an identity it acts as",
    )
    decision: Literal["accept", "reject"]
    score: Annotated[
        Decimal,
        Field(ge=0, le=1, max_digits=19, decimal_places=18, allow_inf_nan=False),
        WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
    ] = Field(description="How good the result is, from 0 to 1")
    reason: Reason = Field(description="Why: kept with the verdict, shown on the job")


class DisputeCreate(RequestModel):
    """The winner's dispute of a rejection, within the dispute window."""

    reason: Reason


class DrawRead(BaseModel):
    validator_id: str
    round: int
    status: Literal["pending", "answered", "missed"]


class ValidationRead(BaseModel):
    job_id: str
    mode: Literal["requester", "random_validator", "consensus"]
    status: Literal[
        "open", "accepted", "rejected", "rejected_final", "disputed", "overturned", "upheld"
    ]
    round: int = Field(description="0: the result is judged; 1: a dispute is")
    score: Rate
    due_at: datetime = Field(description="Verdicts by then, or (rejected) a dispute")
    decided_at: datetime | None
    drawn: list[DrawRead]


class VerdictRead(BaseModel):
    verdict_id: str
    job_id: str
    judge_id: str
    judge_role: Literal["requester", "validator"]
    round: int
    decision: Literal["accept", "reject"]
    score: Score
    reason: str
    created_at: datetime


class DisputeRead(BaseModel):
    job_id: str
    winner_id: str
    reason: str
    status: Literal["open", "won", "lost", "unheard"] = Field(
        description="unheard: no validator could be drawn in time; the rejection stands"
    )
    opened_at: datetime
    decided_at: datetime | None


class VerdictResponse(SafetyFields):
    ok: Literal[True] = True
    verdict: VerdictRead
    validation: ValidationRead


class DisputeResponse(SafetyFields):
    ok: Literal[True] = True
    dispute: DisputeRead
    validation: ValidationRead


class DrawDetail(DrawRead):
    drawn_at: datetime
    due_at: datetime = Field(description="Its verdict by then, or it is replaced")


class DecisionRead(BaseModel):
    status: Literal["accepted", "rejected", "rejected_final", "overturned", "upheld"]
    score: Rate
    decided_at: datetime | None


class FeeLine(BaseModel):
    payee_id: str
    amount: Credits
    round: int = Field(description="0: judged the result; 1: decided the dispute")
    paid_by: Literal["escrow", "winner"] = Field(
        description="escrow: out of the job's hold (the requester's); winner: a lost dispute's "
        "fees, from the winner's account"
    )


class ValidationDetail(BaseModel):
    job_id: str
    mode: Literal["requester", "random_validator", "consensus"]
    status: Literal[
        "open", "accepted", "rejected", "rejected_final", "disputed", "overturned", "upheld"
    ]
    round: int = Field(description="0: the result is judged; 1: a dispute is")
    requester_id: str
    winner_id: str
    price: Credits = Field(description="The winning bid's price, paid when the result is accepted")
    validator_fee: Credits = Field(description="Each validator's fee, when it answers in time")
    opened_at: datetime
    due_at: datetime = Field(
        description="Verdicts by then (a silent requester accepts), or (rejected) a dispute"
    )
    decision: DecisionRead | None = Field(description="None while the result is being judged")
    drawn: list[DrawDetail]
    verdicts: list[VerdictRead]
    dispute: DisputeRead | None
    fees: list[FeeLine] = Field(description="Fees paid once the validation ended (empty before)")
    settled: bool = Field(description="Whether the validation ended and its payments were made")


class ValidationResponse(SafetyFields):
    ok: Literal[True] = True
    validation: ValidationDetail


# -- known-answer jobs ------------------------------------------------------------------------

AnswerMatch = Literal["exact", "contains"]


class KnownAnswer(RequestModel):
    """How a result is checked against the known answer: both are compared with runs of
    whitespace as one space and case ignored; ``exact`` wants the output to be the answer,
    ``contains`` wants the answer somewhere in the output."""

    match: AnswerMatch = "contains"
    expected: Annotated[str, StringConstraints(min_length=1, max_length=65_536)]


class KnownAnswerCreate(RequestModel):
    """Register a known-answer job: the job the board posts (as a requester would; its
    ``requester_id`` is who it is posted as, the key's owner when left out) and its answer."""

    job: JobCreate
    answer: KnownAnswer


class KnownAnswerRead(BaseModel):
    probe_id: str
    requester_id: str = Field(description="Who the board posts it as")
    job: dict[str, object] = Field(description="The job's body as the board posts it")
    answer: KnownAnswer
    status: Literal["active", "retired"]
    posted: int = Field(description="Jobs the board posted from it")
    passed: int = Field(description="Of them, results that matched the answer")
    failed: int = Field(description="Of them, results that did not")
    created_by: str
    created_at: datetime
    retired_at: datetime | None


class KnownAnswerResponse(SafetyFields):
    ok: Literal[True] = True
    known_answer: KnownAnswerRead


class KnownAnswerListResponse(SafetyFields):
    ok: Literal[True] = True
    known_answers: list[KnownAnswerRead]
    count: int


class KnownAnswerPosted(SafetyFields):
    ok: Literal[True] = True
    known_answer: KnownAnswerRead
    job_id: str = Field(description="The job just posted from it")

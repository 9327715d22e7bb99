"""Request and response models of the job board routes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from flow_memory.kit.actors import Actor
from flow_memory.kit.errors import ForbiddenMaterial
from flow_memory.kit.money import Amount, UnitPrice
from flow_memory.kit.safety import name_words
from flow_memory.kit.schemas import DateTime, Identifier, RequestModel, SafetyFields, Text
from flow_memory.ledger.domain import MAX_GRANT
from flow_memory.ledger.schemas import Credits

JobStatus = Literal[
    "open",
    "awarded",
    "submitted",
    "completed",
    "rejected",
    "cancelled",
    "expired_unawarded",
    "expired_no_show",
]
BidStatus = Literal["live", "withdrawn", "won", "lost", "no_show"]
LossReason = Literal[
    "outbid",
    "over_max_price",
    "below_reputation_floor",
    "deadline_infeasible",
    "withdrawn",
    "window_closed",
    "capacity_reached",
]
Quality = Literal["standard", "high", "expert"]
PaymentMode = Literal["fixed", "auction"]
Visibility = Literal["sealed", "open"]
ValidationMode = Literal["requester", "random_validator", "consensus"]
Role = Literal["system", "user", "assistant"]
# Long text (prompts, outputs): bounded here generously; the server's job_max_text_length
# (FLOW_MEMORY_JOB_MAX_TEXT_LENGTH, 262,144 characters by default) bounds each string of a
# job's post and of its result, and max_string_length every other string.
LongText = Annotated[str, StringConstraints(min_length=1, max_length=1_048_576)]
Price = Annotated[UnitPrice, Field(le=MAX_GRANT)]
Standing = Annotated[
    Decimal,
    Field(ge=0, le=1, max_digits=19, decimal_places=18, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
]
Seconds = Annotated[int, Field(ge=1, le=86_400)]

# Words of a field name that ask for value to be sent somewhere: the seed's escrow_address,
# a requester's or bidder's address, wallets. Flow Memory holds escrow itself, as dry-run
# credits, so such a field is refused as value-transfer material whatever it holds.
_DESTINATION_WORDS = frozenset({"address", "wallet", "addresses", "wallets"})


def refuse_destinations(value: Any, path: str = "") -> None:
    """Refuse a body that has a field naming where value would go (422 forbidden_material)."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if _DESTINATION_WORDS & set(name_words(str(key))):
                raise ForbiddenMaterial(
                    f"{here} names a destination for value (value-transfer material); the "
                    "request was refused and nothing was stored",
                    field=here,
                    hint="Flow Memory holds a job's escrow itself, as dry-run USD_CREDIT on the "
                    "requester's ledger account, and pays the winner's account: send no "
                    "address or wallet",
                )
            refuse_destinations(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            refuse_destinations(item, f"{path}[{index}]")


class _RefusesDestinations(RequestModel):
    @model_validator(mode="before")
    @classmethod
    def _no_destinations(cls, value: Any) -> Any:
        refuse_destinations(value)
        return value


class Message(RequestModel):
    role: Role
    content: LongText


class JobRequestBody(RequestModel):
    """What the job asks for: a prompt or messages (exactly one), a model hint and a size."""

    model_hint: Identifier = Field(
        description="A model's name (a bid must offer that model), or a class: codegen, chat, "
        "analysis or any"
    )
    prompt: LongText | None = None
    messages: list[Message] | None = Field(default=None, min_length=1, max_length=256)
    max_tokens: int = Field(ge=1, le=1_000_000)
    quality_threshold: Quality = "standard"

    @model_validator(mode="after")
    def _one_prompt(self) -> JobRequestBody:
        if (self.prompt is None) == (self.messages is None):
            raise PydanticCustomError(
                "value_error",
                "send exactly one of prompt and messages",
                {"fields": ("prompt", "messages")},
            )
        return self


class Economics(RequestModel):
    max_price: Price = Field(description="The most the requester pays for the whole job")
    payment_mode: PaymentMode = Field(
        default="auction",
        description="fixed: the first eligible bid at or under max_price wins at once; "
        "auction: the best score wins when the bid window closes",
    )
    currency: Literal["USD_CREDIT"] = "USD_CREDIT"


class Validation(RequestModel):
    """Who judges the result (``flow_memory.jobs.judging``): the requester within the review
    window (silence accepts), one drawn validator, or the consensus of several; each
    validator's fee is held with the job and paid to those who answer in time."""

    mode: ValidationMode = "requester"
    validators: int = Field(default=0, ge=0, le=15)
    validator_fee: Annotated[Amount, Field(le=MAX_GRANT)] = Decimal(0)

    @model_validator(mode="after")
    def _count_fits_mode(self) -> Validation:
        least = {"requester": 0, "random_validator": 1, "consensus": 2}[self.mode]
        if self.mode == "requester" and (self.validators or self.validator_fee):
            raise PydanticCustomError(
                "value_error",
                "requester validation has no validators and no validator fee",
                {"fields": ("validators", "validator_fee")},
            )
        if self.validators < least:
            raise PydanticCustomError(
                "value_error",
                f"{self.mode} validation needs at least {least} validators",
                {"fields": ("validators",)},
            )
        return self


class JobCreate(_RefusesDestinations):
    requester_id: Actor = None
    request: JobRequestBody
    economics: Economics
    bid_window_seconds: Seconds = Field(
        default=60, description="How long bids are taken (never past expires_at)"
    )
    deadline_seconds: Seconds = Field(
        default=300, description="How long the winner has to upload the result after award"
    )
    expires_at: DateTime | None = Field(
        default=None,
        description="When the job expires unawarded; its bid window closes then at the latest "
        "(default: when the bid window closes)",
    )
    min_reputation: Standing | None = Field(
        default=None, description="The least standing a winning bidder has (once recorded)"
    )
    visibility: Visibility = Field(
        default="sealed",
        description="sealed: bidders see only what prices the job, and the winner reads the "
        "prompt at /assignment; open: everyone with inference:read sees the prompt",
    )
    validation: Validation = Field(default_factory=Validation)
    reaward_on_no_show: bool = Field(
        default=False,
        description="When the winner sends no result by its deadline, award the runner-up with "
        "a fresh deadline (at most 3 awards a job)",
    )


class BidCreate(_RefusesDestinations):
    bidder_id: Actor = None
    provider_id: Identifier = Field(description="The provider of the bidder's that runs the job")
    model: Identifier = Field(description="The model the job runs on")
    price: Price = Field(description="The price for the whole job")
    estimated_time_s: Seconds = Field(description="Seconds the bidder needs to send the result")


class JobAward(RequestModel):
    bid_id: Identifier | None = Field(
        default=None, description="The bid to award (default: the best score now)"
    )


class JobCancel(RequestModel):
    reason: Text = ""


class ResultUsage(RequestModel):
    prompt_tokens: int = Field(ge=0, le=10**9)
    completion_tokens: int = Field(ge=0, le=10**9)
    total_tokens: int | None = Field(default=None, ge=0, le=2 * 10**9)


class ResultTimings(RequestModel):
    queue_s: Amount | None = None
    first_token_s: Amount | None = None
    total_s: Amount | None = None


class ResultCreate(_RefusesDestinations):
    output: LongText
    model: Identifier
    usage: ResultUsage
    timings: ResultTimings = Field(default_factory=ResultTimings)


# -- answers ----------------------------------------------------------------------------------


class MessageRead(BaseModel):
    role: Role
    content: str


class JobSizeRead(BaseModel):
    input_characters: int
    messages: int
    estimated_input_tokens: int = Field(description="input_characters / 4, rounded up")
    max_tokens: int
    estimated_tokens: int = Field(description="estimated_input_tokens + max_tokens")


class JobRequestRead(BaseModel):
    model_hint: str
    max_tokens: int
    quality_threshold: Quality
    size: JobSizeRead
    prompt: str | None = Field(description="null when sealed (the winner reads it at /assignment)")
    messages: list[MessageRead] | None


class EconomicsRead(BaseModel):
    max_price: Credits
    payment_mode: PaymentMode
    currency: Literal["USD_CREDIT"]
    escrow: Credits = Field(description="Held on the requester's account: max_price plus fees")
    paid: Credits | None = Field(description="What the winner was paid, once completed")


class ValidationRead(BaseModel):
    mode: ValidationMode
    validators: int
    validator_fee: Credits


class AwardRead(BaseModel):
    bid_id: str
    bidder_id: str
    provider_id: str
    model: str
    price: Credits
    awarded_at: datetime
    result_due_at: datetime
    award_count: int


class JobRead(BaseModel):
    job_id: str
    requester_id: str
    status: JobStatus
    visibility: Visibility
    request: JobRequestRead
    economics: EconomicsRead
    validation: ValidationRead
    bid_window_seconds: int
    deadline_seconds: int
    bids_close_at: datetime
    expires_at: datetime
    min_reputation: Credits | None
    reaward_on_no_show: bool
    bid_count: int = Field(description="Bids not withdrawn")
    award: AwardRead | None
    result_hash: str | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class BidRead(BaseModel):
    bid_id: str
    job_id: str
    bidder_id: str
    provider_id: str
    model: str
    price: Credits
    estimated_time_s: int
    status: BidStatus
    reason: LossReason | None = Field(description="Why it lost (or withdrawn)")
    score: Credits | None = Field(description="Its award score, when it was eligible")
    revision: int
    placed_at: datetime
    submitted_at: datetime
    decided_at: datetime | None


class JobEventRead(BaseModel):
    event_id: int
    kind: str
    job_id: str
    payload: dict[str, Any]
    created_at: datetime


class JobDetail(JobRead):
    bids: list[BidRead] = Field(
        description="Before the award: the caller's own bids (the requester sees every bid); "
        "after it, every bid with its price, status and reason"
    )
    events: list[JobEventRead] = Field(description="The job's timeline, oldest first")


class AssignmentRequestRead(BaseModel):
    model_hint: str
    max_tokens: int
    quality_threshold: Quality
    prompt: str | None
    messages: list[MessageRead] | None


class AssignmentRead(BaseModel):
    job_id: str
    status: JobStatus
    bid_id: str
    bidder_id: str
    provider_id: str
    model: str
    price: Credits
    awarded_at: datetime
    result_due_at: datetime
    request: AssignmentRequestRead


class ModelCheckRead(BaseModel):
    passed: bool
    awarded: str = Field(description="The model of the winning bid")
    claimed: str = Field(description="The model the result names")


class TokenCheckRead(BaseModel):
    passed: bool
    reported: int
    plausible_from: int = Field(description="A quarter of the text's pieces (words, marks)")
    plausible_to: int = Field(
        description="The completion: the job's max_tokens. The prompt: its UTF-8 bytes plus "
        "64, and 16 a message"
    )


class OnTimeCheckRead(BaseModel):
    passed: bool
    arrived_at: datetime
    result_due_at: datetime | None


class ResultChecksRead(BaseModel):
    """Automatic checks shown to whoever judges the result (flow_memory.jobs.checks)."""

    passed: bool = Field(description="Every check below passed")
    model_awarded: ModelCheckRead
    completion_tokens_plausible: TokenCheckRead
    prompt_tokens_plausible: TokenCheckRead
    on_time: OnTimeCheckRead


class ResultRead(BaseModel):
    result_hash: str = Field(
        description="sha256: and the SHA-256 of the canonical encoding in lower-case hex"
    )
    encoding: Literal["flow_memory.canonical_json.v1"]
    job_id: str
    bid_id: str
    bidder_id: str
    model: str
    output: str
    usage: dict[str, int]
    timings: dict[str, Credits]
    size_bytes: int
    created_at: datetime
    checks: ResultChecksRead


class JobResponse(SafetyFields):
    ok: Literal[True] = True
    job: JobDetail


class JobListResponse(SafetyFields):
    ok: Literal[True] = True
    jobs: list[JobRead]
    count: int
    next_cursor: str | None


class BidResponse(SafetyFields):
    ok: Literal[True] = True
    bid: BidRead
    job: JobRead


class AssignmentResponse(SafetyFields):
    ok: Literal[True] = True
    assignment: AssignmentRead


class ResultResponse(SafetyFields):
    ok: Literal[True] = True
    result: ResultRead
    replayed: bool = Field(description="True when this very result had been archived before")
    job: JobRead


class ArchivedResultResponse(SafetyFields):
    ok: Literal[True] = True
    result: ResultRead


class JobStreamEvent(SafetyFields):
    """The data of each server-sent event of GET /inference/jobs/stream (its id is event_id,
    its event name the kind)."""

    ok: Literal[True] = True
    event_id: int
    kind: str
    job_id: str
    payload: dict[str, Any]
    created_at: datetime

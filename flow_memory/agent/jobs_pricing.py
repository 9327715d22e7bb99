"""What the provider agent bids on the job board, decided without I/O.

For an open job the agent picks the model it would run (the hint itself when it serves that
model, or the model ``[jobs.classes]`` maps the hint's class to), then prices the whole job:
the per-token price * the job's size (its prompt's estimated tokens + ``max_tokens``), never
under ``min_price``. It skips the job, saying why, when it serves no such model, does not offer
the job's quality, the job does not fit the model's context window, that price is over the
job's ``max_price``, the deadline cannot be met at the measured speed, or ``max_concurrent``
jobs are already taken on (live bids and jobs being run).

The time a job needs is ``(output tokens already taken on + max_tokens) / tokens_per_second *
deadline_safety``, rounded up: the model server is assumed to answer one job after another.
``tokens_per_second`` starts from the configured estimate and is then measured from the
agent's own runs (``SpeedMeter``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from flow_memory.agent.clients import DiscoveredModel
from flow_memory.agent.config import JOB_CLASSES, AgentConfig, JobsConfig

CHAT_APIS = frozenset({"chat_completions", "chat_responses"})  # the APIs a job runs on

# Why a job was not bid on.
AT_CAPACITY = "at_capacity"
MODEL_NOT_SERVED = "model_not_served"
QUALITY_NOT_OFFERED = "quality_not_offered"
CONTEXT_TOO_SMALL = "context_too_small"
UNPRICED = "unpriced"
MAX_PRICE_TOO_LOW = "max_price_too_low"
DEADLINE_INFEASIBLE = "deadline_infeasible"


@dataclass(frozen=True)
class OpenJob:
    """What a bidder sees of an open job: enough to price it, never its prompt."""

    job_id: str
    model_hint: str
    input_tokens: int
    max_tokens: int
    quality: str
    deadline_seconds: int
    max_price: Decimal

    @property
    def size(self) -> int:
        """The job's size in tokens: the prompt's estimate and the most it may write."""
        return self.input_tokens + self.max_tokens


@dataclass(frozen=True)
class ServedModel:
    """A model the agent can run, with its price per token (None: not priced)."""

    model: str
    token_price: Decimal | None
    context_window: int | None = None


@dataclass(frozen=True)
class Load:
    """What the agent has taken on: live bids and jobs being run, and their output tokens."""

    jobs: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class BidPlan:
    """A bid to place: the whole job's price and the seconds the agent expects to need."""

    job_id: str
    model: str
    price: Decimal
    estimated_time_s: int


@dataclass(frozen=True)
class Skip:
    """A job not bid on, the reason (one of the constants above) and a line for the log."""

    job_id: str
    reason: str
    detail: str


def served_models(config: AgentConfig, found: Iterable[DiscoveredModel]) -> dict[str, ServedModel]:
    """The chat models the agent bids with: those the server lists and the configuration
    offers (``jobs.models``, when set, narrows them), priced by their token ask."""
    served: dict[str, ServedModel] = {}
    for model in found:
        offer = config.offer_for(model.model)
        if not offer.enabled or offer.compatible_api not in CHAT_APIS:
            continue
        if config.jobs.models and model.model not in config.jobs.models:
            continue
        terms = offer.units.get("token")
        served[model.model] = ServedModel(
            model.model,
            terms.ask_price() if terms is not None else None,
            offer.context_window or model.context_window,
        )
    return served


def pick_model(
    model_hint: str, served: Mapping[str, ServedModel], classes: Mapping[str, str]
) -> str | None:
    """The served model that answers the hint: the model it names, or its class's model."""
    if model_hint not in JOB_CLASSES:
        return model_hint if model_hint in served else None
    model = classes.get(model_hint)
    return model if model is not None and model in served else None


def job_price(size: int, token_price: Decimal, min_price: Decimal) -> Decimal:
    """The whole job's price: per-token price * size, never under the floor."""
    return max(token_price * size, min_price)


def seconds_needed(tokens: int, tokens_per_second: float, safety: float) -> int:
    """Whole seconds to write ``tokens`` at that speed with the safety factor; at least one."""
    return max(1, math.ceil(tokens / tokens_per_second * safety))


def plan_bid(
    job: OpenJob,
    *,
    terms: JobsConfig,
    served: Mapping[str, ServedModel],
    load: Load,
    tokens_per_second: float,
) -> BidPlan | Skip:
    """Bid on ``job`` or skip it (see the module for the rules and their order)."""
    model = pick_model(job.model_hint, served, terms.classes)
    if model is None:
        return Skip(job.job_id, MODEL_NOT_SERVED, f"no served model answers {job.model_hint!r}")
    if job.quality not in terms.qualities:
        return Skip(job.job_id, QUALITY_NOT_OFFERED, f"quality {job.quality} is not offered")
    window = served[model].context_window
    if window is not None and job.size > window:
        return Skip(job.job_id, CONTEXT_TOO_SMALL, f"{job.size} tokens; {model} holds {window}")
    token_price = terms.token_price if terms.token_price is not None else served[model].token_price
    if token_price is None:
        return Skip(job.job_id, UNPRICED, f"{model} has no token price")
    price = job_price(job.size, token_price, terms.min_price)
    if price > job.max_price:
        return Skip(
            job.job_id,
            MAX_PRICE_TOO_LOW,
            f"the price for {job.size} tokens is {format(price, 'f')}, "
            f"over the maximum {format(job.max_price, 'f')}",
        )
    needed = seconds_needed(load.tokens + job.max_tokens, tokens_per_second, terms.deadline_safety)
    if needed > job.deadline_seconds:
        return Skip(
            job.job_id,
            DEADLINE_INFEASIBLE,
            f"needs about {needed}s at {tokens_per_second:.1f} tokens/s; "
            f"the deadline is {job.deadline_seconds}s",
        )
    if load.jobs >= terms.max_concurrent:
        return Skip(job.job_id, AT_CAPACITY, f"{load.jobs} of {terms.max_concurrent} jobs taken")
    return BidPlan(job.job_id, model, price, needed)


class SpeedMeter:
    """Tokens per second the model server writes, from the agent's own runs: the first
    measurement replaces the configured estimate, each later one moves it by ``weight``. Runs
    too short to say anything (under ``min_tokens`` tokens) are not counted."""

    def __init__(self, estimate: float, *, weight: float = 0.3, min_tokens: int = 8) -> None:
        self.tokens_per_second = estimate
        self.measured = 0
        self._weight = weight
        self._min_tokens = min_tokens

    def record(self, tokens: int, seconds: float) -> None:
        """Count one run that wrote ``tokens`` in ``seconds`` of wall time."""
        if tokens < self._min_tokens or seconds <= 0:
            return
        speed = tokens / seconds
        if self.measured == 0:
            self.tokens_per_second = speed
        else:
            self.tokens_per_second += self._weight * (speed - self.tokens_per_second)
        self.measured += 1

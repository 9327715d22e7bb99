"""Route policy decisions (pure; no database or web imports).

A route is a provider serving (model, unit_type). Each provider's resting asks are collapsed into
price levels (asks at the same price are one level with their units summed); a provider is
quoted once, at its cheapest level that meets every rule, and the quotes are ranked by price,
then quality, then reliability. A provider with no such level is a rejected route, with one
entry per rejection code. Both lists are bounded; the totals are always given.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

BPS = Decimal(10_000)

# Rejection codes, each with the safe next action agents are told to take.
NEXT_ACTIONS: dict[str, str] = {
    "source_disabled": "Pick another route or wait for operator repair.",
    "credential_ref_unresolved": "Do not submit a key; ask the operator to fix the reference.",
    "model_disallowed": "Update allowed models intentionally or choose another model.",
    "unit_type_not_offered": "Ask for a unit type the provider's catalog lists.",
    "max_unit_price_exceeded": "Wait, lower units, or intentionally raise the ceiling.",
    "min_discount_not_met": "Wait for better depth or relax the discount rule.",
    "provider_unhealthy": "Back off and route elsewhere.",
    "insufficient_capacity": "Lower estimated_units, allow fallback, or wait for capacity.",
    "no_valid_inference_route": "Defer, fallback if allowed, or request human approval.",
}


@dataclass(frozen=True)
class Policy:
    allowed_models: tuple[str, ...]
    max_unit_price: Decimal | None
    min_discount_bps: int
    allow_fallback: bool
    require_healthy_provider: bool


class Level(NamedTuple):
    """A provider's resting asks at one price."""

    unit_price: Decimal
    available_units: int  # summed over the level's asks, less reservation holds
    order_id: str  # the level's first ask in time priority: the one a fill would take first
    ask_count: int


@dataclass(frozen=True)
class Offer:
    """One provider's standing for (model, unit_type): its facts and its price levels."""

    provider_id: str
    provider_name: str
    model: str
    unit_type: str
    quality_score: float
    reliability_score: float
    reference_unit_price: Decimal | None
    route_gate: str
    credential_status: str
    catalog_unit_types: tuple[str, ...]
    credential_allowed_models: tuple[str, ...]
    reference_source: str | None = None  # "list_price" (operator-set) or "catalog"
    levels: tuple[Level, ...] = ()  # cheapest first (unless the evaluation is given them)

    def candidate(self, level: Level | None) -> Candidate:
        """The offer at one of its levels (or with no ask), as quotes and rejections show it."""
        return Candidate(
            provider_id=self.provider_id,
            provider_name=self.provider_name,
            order_id=level.order_id if level else None,
            model=self.model,
            unit_type=self.unit_type,
            unit_price=level.unit_price if level else None,
            available_units=level.available_units if level else 0,
            quality_score=self.quality_score,
            reliability_score=self.reliability_score,
            reference_unit_price=self.reference_unit_price,
            route_gate=self.route_gate,
            credential_status=self.credential_status,
            catalog_unit_types=self.catalog_unit_types,
            credential_allowed_models=self.credential_allowed_models,
            reference_source=self.reference_source,
            ask_count=level.ask_count if level else 0,
        )


@dataclass(frozen=True)
class Candidate:
    """A provider at one price level: what a quote or a rejected route describes."""

    provider_id: str
    provider_name: str
    order_id: str | None
    model: str
    unit_type: str
    unit_price: Decimal | None
    available_units: int
    quality_score: float
    reliability_score: float
    reference_unit_price: Decimal | None
    route_gate: str
    credential_status: str
    catalog_unit_types: tuple[str, ...]
    credential_allowed_models: tuple[str, ...]
    reference_source: str | None = None
    ask_count: int = 1


@dataclass(frozen=True)
class Quote:
    candidate: Candidate
    unit_price: Decimal
    estimated_cost: Decimal
    discount_bps: int | None
    rank: int
    score_explanation: str


@dataclass(frozen=True)
class Rejection:
    """One provider rejected for one code; ``ask_count`` asks share it (0: it has no ask).

    ``candidate`` is the provider at its cheapest level with this code."""

    candidate: Candidate
    code: str
    message: str
    ask_count: int = 1

    @property
    def next_action(self) -> str:
        return NEXT_ACTIONS[self.code]


@dataclass
class Evaluation:
    quotes: list[Quote] = field(default_factory=list)  # the best, at most max_quotes
    rejected: list[Rejection] = field(default_factory=list)  # at most max_rejected
    warnings: list[str] = field(default_factory=list)
    eligible_count: int = 0  # providers with an eligible level: all the quotes there were
    rejected_count: int = 0  # rejected (provider, code) entries there were
    rejected_by_code: dict[str, int] = field(default_factory=dict)  # providers per code
    suggested_models: list[str] = field(default_factory=list)  # for a model nobody lists

    @property
    def unlisted(self) -> bool:
        """No provider lists the model: nobody was judged at all."""
        return self.eligible_count == 0 and self.rejected_count == 0


# A price 100,000 times its reference or more reads as this premium: every stored discount
# fits a 32-bit integer column, and no policy can tell larger premiums apart anyway.
LOWEST_DISCOUNT_BPS = -1_000_000_000


def discount_bps(unit_price: Decimal, reference: Decimal | None) -> int | None:
    """Basis points below the reference price (negative when dearer, floored at
    LOWEST_DISCOUNT_BPS); None without one."""
    if reference is None or reference <= 0:
        return None
    bps = int(
        ((reference - unit_price) / reference * BPS).to_integral_value(rounding="ROUND_FLOOR")
    )
    return max(bps, LOWEST_DISCOUNT_BPS)


def _provider_code(
    offer: Offer, levels: tuple[Level, ...], policy: Policy, model: str
) -> str | None:
    """The first rule the provider itself fails, whatever its asks."""
    if offer.route_gate == "blocked":
        return "source_disabled"
    if offer.credential_status != "active":
        return "credential_ref_unresolved"
    if policy.allowed_models and model not in policy.allowed_models:
        return "model_disallowed"
    if offer.credential_allowed_models and model not in offer.credential_allowed_models:
        return "model_disallowed"
    if offer.unit_type not in offer.catalog_unit_types:
        return "unit_type_not_offered"
    if offer.route_gate != "eligible" and policy.require_healthy_provider:
        return "provider_unhealthy"
    if not levels:
        return "insufficient_capacity"
    return None


def _message(code: str, offer: Offer, level: Level | None, policy: Policy, model: str) -> str:
    """Why the provider (at its cheapest level with this code) is rejected."""
    if code == "source_disabled":
        return "the provider's routes are disabled or its reference revoked"
    if code == "credential_ref_unresolved":
        return (
            "the provider's credential reference was rotated "
            "since enrollment and cannot be resolved until it re-enrolls"
        )
    if code == "model_disallowed":
        if policy.allowed_models and model not in policy.allowed_models:
            return "the model is not in the policy's allowed_models"
        return "the provider's credential reference does not allow the model"
    if code == "unit_type_not_offered":
        return f"the catalog does not offer {offer.unit_type} units"
    if code == "provider_unhealthy":
        return f"route gate is {offer.route_gate}"
    if level is None:
        return "the provider has no available ask for this unit"
    if code == "max_unit_price_exceeded":
        return f"its cheapest ask, {level.unit_price:f}, is above max_unit_price"
    if code == "min_discount_not_met":
        discount = discount_bps(level.unit_price, offer.reference_unit_price)
        if discount is None:
            return "no reference price is known, so no discount can be shown"
        return f"discount is {discount} bps, below {policy.min_discount_bps}"
    return f"only {level.available_units} units available at {level.unit_price:f}"


def _level_code(
    level: Level, ceiling: Decimal | None, floor_bps: Decimal | None, units: int
) -> str | None:
    """The first rule a price level fails; ``floor_bps`` is reference x (10,000 - minimum)."""
    if ceiling is not None and level.unit_price > ceiling:
        return "max_unit_price_exceeded"
    # discount >= minimum  <=>  (reference - price) x 10,000 >= minimum x reference: no division
    if floor_bps is not None and level.unit_price * BPS > floor_bps:
        return "min_discount_not_met"
    if level.available_units < units:
        return "insufficient_capacity"
    return None


def _explain(rank: int, candidate: Candidate, discount: int | None) -> str:
    return (
        f"rank {rank}: unit price {candidate.unit_price:f}"
        + (
            f", {discount} bps below the reference {candidate.reference_unit_price:f}"
            if discount is not None
            else ", no reference price"
        )
        + f", quality {candidate.quality_score}, reliability {candidate.reliability_score}"
    )


class _Refusal(NamedTuple):
    offer: Offer
    level: Level | None  # the provider's cheapest level with this code
    code: str
    asks: int


def _bounded(entries: list[_Refusal], limit: int) -> list[_Refusal]:
    """At most ``limit`` entries in their order, the first of each code before any other."""
    if len(entries) <= limit:
        return entries
    chosen: set[int] = set()
    codes: set[str] = set()
    for index, entry in enumerate(entries):
        if len(chosen) == limit:
            break
        if entry.code not in codes:
            codes.add(entry.code)
            chosen.add(index)
    for index in range(len(entries)):
        if len(chosen) == limit:
            break
        chosen.add(index)
    return [entries[i] for i in sorted(chosen)]


def evaluate(
    offers: Iterable[Offer],
    policy: Policy,
    *,
    model: str,
    estimated_units: int,
    max_quotes: int = 20,
    max_rejected: int = 20,
    levels: Mapping[str, tuple[Level, ...]] | None = None,
) -> Evaluation:
    """Judge every provider; quote each at its cheapest eligible level, best first.

    ``levels`` gives each provider's levels by provider id (none when absent); without it, each
    offer's own."""
    best: list[tuple[Offer, Level]] = []
    refusals: list[_Refusal] = []
    ceiling = policy.max_unit_price
    floors: dict[Decimal, Decimal] = {}
    unhealthy_quoted = False
    for offer in offers:
        offer_levels = offer.levels if levels is None else levels.get(offer.provider_id, ())
        code = _provider_code(offer, offer_levels, policy, model)
        reference = offer.reference_unit_price
        floor_bps: Decimal | None = None
        if code is None and policy.min_discount_bps > 0:
            if reference is None or reference <= 0:
                code = "min_discount_not_met"
            else:
                floor_bps = floors.get(reference)
                if floor_bps is None:
                    floor_bps = floors[reference] = reference * (BPS - policy.min_discount_bps)
        if code is not None:
            asks = sum(level.ask_count for level in offer_levels)
            first = offer_levels[0] if offer_levels else None
            refusals.append(_Refusal(offer, first, code, asks))
            continue
        # The levels are cheapest first, so the first that passes is the provider's quote.
        groups: dict[str, _Refusal] = {}
        for level in offer_levels:
            level_code = _level_code(level, ceiling, floor_bps, estimated_units)
            if level_code is None:
                best.append((offer, level))
                unhealthy_quoted = unhealthy_quoted or offer.route_gate != "eligible"
                break
            group = groups.get(level_code)
            groups[level_code] = (
                _Refusal(offer, level, level_code, level.ask_count)
                if group is None
                else group._replace(asks=group.asks + level.ask_count)
            )
        else:
            refusals.extend(groups.values())

    # Ranked as a full sort would rank them; only the answered ones are ordered.
    answered = heapq.nsmallest(
        max_quotes,
        best,
        key=lambda pair: (
            pair[1].unit_price,
            -pair[0].quality_score,
            -pair[0].reliability_score,
            pair[0].provider_id,
        ),
    )
    result = Evaluation(eligible_count=len(best), rejected_count=len(refusals))
    for rank, (offer, level) in enumerate(answered, start=1):
        candidate = offer.candidate(level)
        discount = discount_bps(level.unit_price, offer.reference_unit_price)
        result.quotes.append(
            Quote(
                candidate,
                level.unit_price,
                level.unit_price * estimated_units,
                discount,
                rank,
                _explain(rank, candidate, discount),
            )
        )
    for refusal in refusals:
        result.rejected_by_code[refusal.code] = result.rejected_by_code.get(refusal.code, 0) + 1
    for refusal in _bounded(refusals, max_rejected):
        offer, at, code = refusal.offer, refusal.level, refusal.code
        message = _message(code, offer, at, policy, model)
        result.rejected.append(Rejection(offer.candidate(at), code, message, refusal.asks))

    if not best:
        result.warnings.append("no_valid_inference_route: every candidate was rejected")
    elif policy.require_healthy_provider is False and unhealthy_quoted:
        result.warnings.append("some quotes come from providers whose route gate is not eligible")
    return result

"""Route policy decisions (pure; no database or web imports).

Every candidate (a provider, a model and an ask) is judged against the policy; the eligible ones are
ranked by price, then quality, then reliability, and each quote explains its score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

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


@dataclass(frozen=True)
class Candidate:
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
    reference_source: str | None = None  # "list_price" (operator-set) or "catalog"


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
    candidate: Candidate
    code: str
    message: str

    @property
    def next_action(self) -> str:
        return NEXT_ACTIONS[self.code]


@dataclass
class Evaluation:
    quotes: list[Quote] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discount_bps(unit_price: Decimal, reference: Decimal | None) -> int | None:
    """Basis points below the reference price (negative when dearer); None without one."""
    if reference is None or reference <= 0:
        return None
    return int(
        ((reference - unit_price) / reference * BPS).to_integral_value(rounding="ROUND_FLOOR")
    )


def _reject(candidate: Candidate, policy: Policy, model: str, units: int) -> Rejection | None:
    def no(code: str, message: str) -> Rejection:
        return Rejection(candidate, code, message)

    if candidate.route_gate == "blocked":
        return no("source_disabled", "the provider's routes are disabled or its reference revoked")
    if candidate.credential_status != "active":
        return no(
            "credential_ref_unresolved",
            "the provider's credential reference was rotated "
            "since enrollment and cannot be resolved until it re-enrolls",
        )
    if policy.allowed_models and model not in policy.allowed_models:
        return no("model_disallowed", f"{model} is not in the policy's allowed_models")
    if candidate.credential_allowed_models and model not in candidate.credential_allowed_models:
        return no("model_disallowed", f"the provider's credential reference does not allow {model}")
    if candidate.unit_type not in candidate.catalog_unit_types:
        return no(
            "unit_type_not_offered", f"the catalog does not offer {candidate.unit_type} units"
        )
    if candidate.route_gate != "eligible" and policy.require_healthy_provider:
        return no("provider_unhealthy", f"route gate is {candidate.route_gate}")
    if candidate.unit_price is None or candidate.available_units <= 0:
        return no("insufficient_capacity", "the provider has no available ask for this unit")
    if policy.max_unit_price is not None and candidate.unit_price > policy.max_unit_price:
        return no("max_unit_price_exceeded", "the ask is above max_unit_price")
    if policy.min_discount_bps > 0:
        discount = discount_bps(candidate.unit_price, candidate.reference_unit_price)
        if discount is None:
            return no(
                "min_discount_not_met", "no reference price is known, so no discount can be shown"
            )
        if discount < policy.min_discount_bps:
            return no(
                "min_discount_not_met",
                f"discount is {discount} bps, below {policy.min_discount_bps}",
            )
    if candidate.available_units < units:
        return no("insufficient_capacity", f"only {candidate.available_units} units available")
    return None


def evaluate(
    candidates: list[Candidate], policy: Policy, *, model: str, estimated_units: int
) -> Evaluation:
    """Judge every candidate; rank the eligible by price, quality, then reliability."""
    result = Evaluation()
    eligible: list[Candidate] = []
    for candidate in candidates:
        rejection = _reject(candidate, policy, model, estimated_units)
        if rejection is None:
            eligible.append(candidate)
        else:
            result.rejected.append(rejection)
    eligible.sort(
        key=lambda c: (
            c.unit_price,
            -c.quality_score,
            -c.reliability_score,
            c.provider_id,
            c.order_id or "",
        )
    )
    for rank, candidate in enumerate(eligible, start=1):
        assert candidate.unit_price is not None
        discount = discount_bps(candidate.unit_price, candidate.reference_unit_price)
        explanation = (
            f"rank {rank}: unit price {candidate.unit_price:f}"
            + (
                f", {discount} bps below the reference {candidate.reference_unit_price:f}"
                if discount is not None
                else ", no reference price"
            )
            + f", quality {candidate.quality_score}, reliability {candidate.reliability_score}"
        )
        result.quotes.append(
            Quote(
                candidate,
                candidate.unit_price,
                candidate.unit_price * estimated_units,
                discount,
                rank,
                explanation,
            )
        )
    if not result.quotes:
        result.warnings.append("no_valid_inference_route: every candidate was rejected")
    elif policy.require_healthy_provider is False and any(
        q.candidate.route_gate != "eligible" for q in result.quotes
    ):
        result.warnings.append("some quotes come from providers whose route gate is not eligible")
    return result

"""The pure route policy: rejections with their codes, ranking, discounts."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from flow_memory.routing.policy import NEXT_ACTIONS, Candidate, Policy, discount_bps, evaluate

BASE = Candidate(
    provider_id="prov_a",
    provider_name="A",
    order_id="ord_a",
    model="m",
    unit_type="token",
    unit_price=Decimal("0.00000075"),
    available_units=1_000_000,
    quality_score=0.9,
    reliability_score=0.9,
    reference_unit_price=Decimal("0.000001"),
    route_gate="eligible",
    credential_status="active",
    catalog_unit_types=("token",),
    credential_allowed_models=(),
)
OPEN = Policy(
    allowed_models=(),
    max_unit_price=None,
    min_discount_bps=0,
    allow_fallback=True,
    require_healthy_provider=True,
)


def codes(candidate: Candidate, policy: Policy = OPEN, units: int = 1000) -> list[str]:
    return [
        r.code for r in evaluate([candidate], policy, model="m", estimated_units=units).rejected
    ]


class TestRejections:
    @pytest.mark.parametrize(
        ("change", "policy", "code"),
        [
            ({"route_gate": "blocked"}, OPEN, "source_disabled"),
            ({"credential_status": "rotated"}, OPEN, "credential_ref_unresolved"),
            ({}, replace(OPEN, allowed_models=("other",)), "model_disallowed"),
            ({"credential_allowed_models": ("other",)}, OPEN, "model_disallowed"),
            ({"catalog_unit_types": ("request",)}, OPEN, "unit_type_not_offered"),
            ({"route_gate": "stale"}, OPEN, "provider_unhealthy"),
            ({"unit_price": None, "available_units": 0}, OPEN, "insufficient_capacity"),
            ({}, replace(OPEN, max_unit_price=Decimal("0.0000007")), "max_unit_price_exceeded"),
            ({}, replace(OPEN, min_discount_bps=3000), "min_discount_not_met"),
            (
                {"reference_unit_price": None},
                replace(OPEN, min_discount_bps=1),
                "min_discount_not_met",
            ),
            ({"available_units": 999}, OPEN, "insufficient_capacity"),
        ],
    )
    def test_each_rule_has_its_code_and_a_next_action(
        self, change: dict[str, object], policy: Policy, code: str
    ) -> None:
        assert codes(replace(BASE, **change), policy) == [code]  # type: ignore[arg-type]
        assert NEXT_ACTIONS[code]

    def test_a_candidate_meeting_every_rule_is_quoted(self) -> None:
        assert (
            codes(BASE, replace(OPEN, max_unit_price=Decimal("0.0000008"), min_discount_bps=2500))
            == []
        )

    def test_an_unhealthy_provider_is_quoted_with_a_warning_when_health_is_not_required(
        self,
    ) -> None:
        result = evaluate(
            [replace(BASE, route_gate="stale")],
            replace(OPEN, require_healthy_provider=False),
            model="m",
            estimated_units=10,
        )
        assert len(result.quotes) == 1 and result.warnings

    def test_nothing_eligible_warns_no_valid_inference_route(self) -> None:
        result = evaluate(
            [replace(BASE, route_gate="blocked")], OPEN, model="m", estimated_units=10
        )
        assert result.quotes == []
        assert result.warnings[0].startswith("no_valid_inference_route")


class TestRanking:
    def test_price_then_quality_then_reliability(self) -> None:
        cheap = replace(BASE, provider_id="p1", unit_price=Decimal("0.0000007"))
        good = replace(BASE, provider_id="p2", quality_score=0.99)
        reliable = replace(BASE, provider_id="p3", reliability_score=0.99)
        plain = replace(BASE, provider_id="p4")
        result = evaluate([plain, reliable, good, cheap], OPEN, model="m", estimated_units=10)
        assert [q.candidate.provider_id for q in result.quotes] == ["p1", "p2", "p3", "p4"]
        assert [q.rank for q in result.quotes] == [1, 2, 3, 4]
        assert "rank 1" in result.quotes[0].score_explanation
        assert result.quotes[0].estimated_cost == Decimal("0.0000007") * 10


class TestDiscount:
    def test_basis_points_below_the_reference(self) -> None:
        assert discount_bps(Decimal("0.00000075"), Decimal("0.000001")) == 2500
        assert discount_bps(Decimal("0.0000011"), Decimal("0.000001")) == -1000
        assert discount_bps(Decimal("1"), None) is None

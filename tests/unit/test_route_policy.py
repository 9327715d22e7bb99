"""The pure route policy: rejections with their codes, one quote per provider, ranking,
bounded answers with totals, discounts."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from flow_memory.routing.policy import (
    NEXT_ACTIONS,
    Level,
    Offer,
    Policy,
    discount_bps,
    evaluate,
)

ASK = Level(Decimal("0.00000075"), 1_000_000, "ord_a", 1)
BASE = Offer(
    provider_id="prov_a",
    provider_name="A",
    model="m",
    unit_type="token",
    levels=(ASK,),
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


def codes(offer: Offer, policy: Policy = OPEN, units: int = 1000) -> list[str]:
    return [r.code for r in evaluate([offer], policy, model="m", estimated_units=units).rejected]


def at(price: str, units: int = 1_000_000, order_id: str = "ord_a", asks: int = 1) -> Level:
    return Level(Decimal(price), units, order_id, asks)


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
            ({"levels": ()}, OPEN, "insufficient_capacity"),
            ({}, replace(OPEN, max_unit_price=Decimal("0.0000007")), "max_unit_price_exceeded"),
            ({}, replace(OPEN, min_discount_bps=3000), "min_discount_not_met"),
            (
                {"reference_unit_price": None},
                replace(OPEN, min_discount_bps=1),
                "min_discount_not_met",
            ),
            ({"levels": (ASK._replace(available_units=999),)}, OPEN, "insufficient_capacity"),
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
        cheap = replace(BASE, provider_id="p1", levels=(at("0.0000007"),))
        good = replace(BASE, provider_id="p2", quality_score=0.99)
        reliable = replace(BASE, provider_id="p3", reliability_score=0.99)
        plain = replace(BASE, provider_id="p4")
        result = evaluate([plain, reliable, good, cheap], OPEN, model="m", estimated_units=10)
        assert [q.candidate.provider_id for q in result.quotes] == ["p1", "p2", "p3", "p4"]
        assert [q.rank for q in result.quotes] == [1, 2, 3, 4]
        assert "rank 1" in result.quotes[0].score_explanation
        assert result.quotes[0].estimated_cost == Decimal("0.0000007") * 10


class TestDiscount:
    def test_a_vast_premium_is_floored_so_it_fits_a_stored_integer(self) -> None:
        # Found on PostgreSQL: 0.21475 against 0.000001 is -2,147,490,000 bps, past INTEGER.
        assert discount_bps(Decimal("0.21475"), Decimal("0.000001")) == -1_000_000_000
        assert discount_bps(Decimal("1E+19"), Decimal("1E-18")) == -1_000_000_000
        assert discount_bps(Decimal("0.1"), Decimal("0.000001")) == -999_990_000

    def test_basis_points_below_the_reference(self) -> None:
        assert discount_bps(Decimal("0.00000075"), Decimal("0.000001")) == 2500
        assert discount_bps(Decimal("0.0000011"), Decimal("0.000001")) == -1000
        assert discount_bps(Decimal("1"), None) is None


class TestOneQuotePerProvider:
    def test_a_provider_is_quoted_once_at_its_cheapest_eligible_level(self) -> None:
        levels = (at("0.0000006", units=10, order_id="ord_small"), at("0.0000007", asks=3))
        result = evaluate([replace(BASE, levels=levels)], OPEN, model="m", estimated_units=500)
        [quote] = result.quotes
        assert quote.unit_price == Decimal("0.0000007")
        assert quote.candidate.ask_count == 3
        assert result.eligible_count == 1
        assert result.rejected == [] and result.rejected_count == 0

    def test_a_provider_without_an_eligible_level_has_one_entry_per_code(self) -> None:
        levels = (
            at("0.0000005", units=10, order_id="ord_small_1"),
            at("0.0000006", units=20, order_id="ord_small_2", asks=2),
            at("0.0000009", order_id="ord_dear", asks=4),
        )
        policy = replace(OPEN, max_unit_price=Decimal("0.0000008"))
        result = evaluate([replace(BASE, levels=levels)], policy, model="m", estimated_units=500)
        assert result.quotes == []
        found = {(r.code, r.candidate.order_id, r.ask_count) for r in result.rejected}
        assert found == {
            ("insufficient_capacity", "ord_small_1", 3),
            ("max_unit_price_exceeded", "ord_dear", 4),
        }
        assert result.rejected_by_code == {"insufficient_capacity": 1, "max_unit_price_exceeded": 1}
        assert "only 10 units" in next(
            r.message for r in result.rejected if r.code == "insufficient_capacity"
        )

    def test_a_provider_level_rejection_covers_every_ask(self) -> None:
        levels = (at("0.0000006", asks=2), at("0.0000007", asks=5))
        offer = replace(BASE, levels=levels, route_gate="blocked")
        [rejection] = evaluate([offer], OPEN, model="m", estimated_units=10).rejected
        assert (rejection.code, rejection.ask_count) == ("source_disabled", 7)


class TestBounds:
    def test_quotes_are_the_best_ones_with_the_total(self) -> None:
        offers = [
            replace(BASE, provider_id=f"p{n:02d}", levels=(at(f"0.000000{10 + n}"),))
            for n in range(30)
        ]
        result = evaluate(offers[::-1], OPEN, model="m", estimated_units=10, max_quotes=5)
        assert [q.candidate.provider_id for q in result.quotes] == [f"p0{n}" for n in range(5)]
        assert [q.rank for q in result.quotes] == [1, 2, 3, 4, 5]
        assert result.eligible_count == 30

    def test_bounded_rejections_keep_one_entry_of_every_code(self) -> None:
        policy = Policy(
            allowed_models=("m",),
            max_unit_price=Decimal("0.0000008"),
            min_discount_bps=500,
            allow_fallback=True,
            require_healthy_provider=True,
        )
        # Many of the first code, then one provider for each other code, last.
        many = [replace(BASE, provider_id=f"a{n:02d}", route_gate="blocked") for n in range(40)]
        one_each = [
            replace(BASE, provider_id="b1", credential_status="rotated"),
            replace(BASE, provider_id="b2", credential_allowed_models=("other",)),
            replace(BASE, provider_id="b3", catalog_unit_types=("request",)),
            replace(BASE, provider_id="b4", route_gate="stale"),
            replace(BASE, provider_id="b5", levels=()),
            replace(BASE, provider_id="b6", levels=(at("0.0000009"),)),
            replace(BASE, provider_id="b7", levels=(at("0.00000099"),), reference_unit_price=None),
            replace(BASE, provider_id="b8", levels=(at("0.00000097"),)),
        ]
        result = evaluate(many + one_each, policy, model="m", estimated_units=10, max_rejected=10)
        codes_found = [r.code for r in result.rejected]
        assert len(codes_found) == 10
        assert set(codes_found) == set(NEXT_ACTIONS) - {"no_valid_inference_route"}
        assert result.rejected_count == 48
        assert result.rejected_by_code["source_disabled"] == 40
        assert sum(result.rejected_by_code.values()) == 48
        assert result.warnings[0].startswith("no_valid_inference_route")
        assert all(r.message for r in result.rejected)

    def test_no_rejected_entries_when_the_bound_is_zero(self) -> None:
        offer = replace(BASE, route_gate="blocked")
        result = evaluate([offer], OPEN, model="m", estimated_units=10, max_rejected=0)
        assert result.rejected == [] and result.rejected_count == 1


class TestDiscountFloor:
    @pytest.mark.parametrize(
        ("price", "minimum", "quoted"),
        [
            ("0.00000075", 2500, True),  # exactly 2500 bps below
            ("0.000000750000000001", 2500, False),  # a hair dearer: 2499.99... floors to 2499
            ("0.00000095", 500, True),
            ("0.00000096", 500, False),
        ],
    )
    def test_the_floor_matches_the_shown_discount(
        self, price: str, minimum: int, quoted: bool
    ) -> None:
        offer = replace(BASE, levels=(at(price),))
        policy = replace(OPEN, min_discount_bps=minimum)
        result = evaluate([offer], policy, model="m", estimated_units=10)
        assert bool(result.quotes) is quoted
        shown = discount_bps(Decimal(price), BASE.reference_unit_price)
        assert shown is not None and (shown >= minimum) is quoted


class TestLevelsGivenApart:
    def test_given_levels_stand_for_the_offers_own(self) -> None:
        kept = replace(BASE, levels=())  # offers kept without asks, as quotes keep them
        other = replace(kept, provider_id="prov_b")
        result = evaluate(
            [kept, other],
            OPEN,
            model="m",
            estimated_units=10,
            levels={"prov_a": (at("0.0000007", order_id="ord_given"),)},
        )
        assert [q.candidate.order_id for q in result.quotes] == ["ord_given"]
        assert [(r.candidate.provider_id, r.code) for r in result.rejected] == [
            ("prov_b", "insufficient_capacity")
        ]

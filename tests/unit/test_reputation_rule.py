"""The reputation rule (flow_memory.reputation.domain): bounded, monotone, decaying, at the
prior when new, the same whatever the order outcomes are recorded in, and earned capacity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from flow_memory.reputation import domain
from flow_memory.reputation.domain import Outcome, Record

T0 = datetime(2026, 6, 17, tzinfo=UTC)
HALF_LIFE = Decimal(30)
sums = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False)
values = st.decimals(min_value=0, max_value=1_000, places=6, allow_nan=False, allow_infinity=False)
kinds = st.sampled_from(sorted(domain.KINDS))
bidder_kinds = st.sampled_from(sorted(k for k, v in domain.KINDS.items() if v.role == "bidder"))
outcomes = st.lists(
    st.builds(
        Outcome,
        kind=kinds,
        value=values,
        at=st.integers(min_value=0, max_value=400 * 86_400).map(
            lambda s: T0 + timedelta(seconds=s)
        ),
    ),
    max_size=30,
)


class TestScore:
    def test_a_new_identity_stands_at_the_prior(self) -> None:
        assert Record().score == domain.PRIOR == Decimal("0.5")
        assert domain.fold([], half_life_days=HALF_LIFE).score == domain.PRIOR

    def test_the_formula(self) -> None:
        assert domain.score(Decimal(3), Decimal(1)) == Decimal("0.666667")  # 4 / 6
        assert domain.score(Decimal(0), Decimal(3)) == Decimal("0.2")  # 1 / 5

    @given(good=sums, bad=sums)
    def test_every_score_lies_in_zero_to_one(self, good: Decimal, bad: Decimal) -> None:
        assert 0 <= domain.score(good, bad) <= 1

    @given(good=sums, bad=sums, more=sums)
    def test_more_good_never_lowers_and_more_bad_never_raises(
        self, good: Decimal, bad: Decimal, more: Decimal
    ) -> None:
        assert domain.score(good + more, bad) >= domain.score(good, bad)
        assert domain.score(good, bad + more) <= domain.score(good, bad)

    @given(history=outcomes, kind=bidder_kinds, value=values)
    def test_a_good_outcome_never_lowers_a_record_and_a_bad_one_never_raises_it(
        self, history: list[Outcome], kind: str, value: Decimal
    ) -> None:
        before = domain.fold(history, half_life_days=HALF_LIFE)
        at = before.latest or T0
        good, bad = domain.weight(kind, value)
        after = domain.add(before, good=good, bad=bad, at=at, half_life_days=HALF_LIFE)
        if domain.KINDS[kind].good > 0:
            assert after.score >= before.score
        else:
            assert after.score <= before.score


class TestWeight:
    def test_weight_follows_the_jobs_value_up_to_a_cap(self) -> None:
        assert domain.weight("completion_good", Decimal("0.3")) == (Decimal("0.3"), Decimal(0))
        assert domain.weight("completion_good", Decimal(500)) == (domain.MAX_WEIGHT, Decimal(0))

    def test_a_bad_outcome_weighs_at_least_the_floor_and_a_good_one_on_a_free_job_nothing(
        self,
    ) -> None:
        assert domain.weight("no_show", Decimal(0)) == (Decimal(0), domain.MIN_BAD_WEIGHT)
        assert domain.weight("completion_good", Decimal(0)) == (Decimal(0), Decimal(0))

    def test_a_failed_known_answer_counts_twice_and_late_half(self) -> None:
        assert domain.weight("known_answer_fail", Decimal(1)) == (Decimal(0), Decimal(2))
        assert domain.weight("late", Decimal(1)) == (Decimal(0), Decimal("0.5"))

    @given(kind=kinds, value=values)
    def test_weights_are_never_negative(self, kind: str, value: Decimal) -> None:
        good, bad = domain.weight(kind, value)
        assert good >= 0 and bad >= 0 and good + bad <= 2 * domain.MAX_WEIGHT


class TestDecay:
    def test_an_outcome_one_half_life_older_than_the_latest_counts_half(self) -> None:
        record = domain.fold(
            [
                Outcome("completion_bad", Decimal(1), T0),
                Outcome("late", Decimal(0), T0 + timedelta(days=30)),
            ],
            half_life_days=HALF_LIFE,
        )
        # bad: 1 halved, plus late's 0.5 * the floor 0.25
        assert record.bad == Decimal("0.625")
        assert record.latest == T0 + timedelta(days=30)

    def test_new_good_work_outweighs_old_failures(self) -> None:
        old = [Outcome("no_show", Decimal(1), T0 + timedelta(hours=i)) for i in range(5)]
        fresh = [Outcome("completion_good", Decimal(1), T0 + timedelta(days=120, hours=i))
                 for i in range(5)]  # fmt: skip
        decayed = domain.fold([*old, *fresh], half_life_days=HALF_LIFE)
        undecayed = domain.fold([*old, *fresh], half_life_days=Decimal(10**9))
        assert decayed.score > undecayed.score
        assert undecayed.score == Decimal("0.5")

    def test_waiting_changes_nothing(self) -> None:
        # Age runs to the latest outcome: a record read later reads the same, so nobody
        # washes a bad record by waiting.
        record = domain.fold([Outcome("no_show", Decimal(1), T0)], half_life_days=HALF_LIFE)
        assert record.score == Decimal("0.333333")

    @given(seconds=st.integers(min_value=0, max_value=10**9))
    def test_the_factor_lies_in_zero_to_one(self, seconds: int) -> None:
        assert 0 <= domain.decay_factor(Decimal(seconds), HALF_LIFE) <= 1

    @given(history=outcomes, order=st.randoms(use_true_random=False))
    def test_the_order_of_recording_does_not_matter(
        self, history: list[Outcome], order: object
    ) -> None:
        shuffled = list(history)
        order.shuffle(shuffled)  # type: ignore[attr-defined]
        first = domain.fold(history, half_life_days=HALF_LIFE)
        second = domain.fold(shuffled, half_life_days=HALF_LIFE)
        assert abs(first.score - second.score) <= Decimal("0.000002")
        assert first.latest == second.latest


class TestCapacity:
    def test_it_starts_at_one_and_grows_with_good_completions(self) -> None:
        assert domain.earned_slots(0) == 1
        points = 0
        for _ in range(10):
            points = domain.next_points(points, "completion_good")
        assert domain.earned_slots(points) == 3

    def test_a_failure_halves_the_points(self) -> None:
        assert domain.next_points(11, "no_show") == 5
        assert domain.next_points(11, "late") == 11
        assert domain.next_points(11, "validator_agreed") == 11

    def test_the_stake_bounds_it(self) -> None:
        assert domain.capacity(50, Decimal("2.5"), Decimal(1)) == 2
        assert domain.capacity(0, Decimal(100), Decimal(1)) == 1
        assert domain.capacity(50, Decimal(0), Decimal(1)) == 0
        assert domain.capacity(50, Decimal(0), Decimal(0)) == 11

    @given(points=st.integers(min_value=0, max_value=10**6), kind=bidder_kinds)
    def test_capacity_never_falls_below_one_earned_nor_above_the_cap(
        self, points: int, kind: str
    ) -> None:
        after = domain.next_points(points, kind)
        assert 1 <= domain.earned_slots(after) <= domain.MAX_SLOTS


class TestGate:
    def test_the_floor_is_the_threshold_or_the_jobs_min_if_higher(self) -> None:
        assert domain.required_standing(None, Decimal("0.2")) == Decimal("0.2")
        assert domain.required_standing(Decimal("0.7"), Decimal("0.2")) == Decimal("0.7")
        assert domain.required_standing(Decimal("0.1"), Decimal("0.2")) == Decimal("0.2")

    @given(own=st.decimals(0, 1, places=6), operator=st.decimals(0, 1, places=6))
    def test_a_bound_agent_never_stands_above_its_operator(
        self, own: Decimal, operator: Decimal
    ) -> None:
        assert domain.gated(own, operator) <= operator
        assert domain.gated(own, None) == own

"""The job board's pure rules: transitions, eligibility, the award score and its order, the
escrow, and the canonical encoding results are addressed by."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flow_memory.jobs import digest, domain
from flow_memory.jobs.domain import Offer, Terms
from flow_memory.jobs.outcomes import JobRules
from flow_memory.kit.errors import Conflict

START = datetime(2026, 6, 17, tzinfo=UTC)
TERMS = Terms(max_price=Decimal("0.5"), deadline_seconds=60, min_reputation=Decimal("0.6"))
prices = st.decimals(min_value="0.000001", max_value="1000", places=6)
standings = st.none() | st.decimals(min_value=0, max_value=1, places=3)


def offer(
    bid_id: str, price: str, *, seconds: int = 5, at: int = 0, standing: str | None = None
) -> Offer:
    return Offer(
        bid_id,
        Decimal(price),
        seconds,
        START + timedelta(seconds=at),
        None if standing is None else Decimal(standing),
    )


class TestTransitions:
    def test_the_happy_path_and_each_end(self) -> None:
        for current, target in [
            ("open", "awarded"),
            ("awarded", "submitted"),
            ("submitted", "completed"),
            ("submitted", "rejected"),
            ("rejected", "completed"),
            ("open", "cancelled"),
            ("open", "expired_unawarded"),
            ("awarded", "expired_no_show"),
            ("awarded", "awarded"),
        ]:
            domain.check_transition(current, target)

    @pytest.mark.parametrize("ended", sorted(domain.ENDED))
    def test_an_ended_job_goes_nowhere(self, ended: str) -> None:
        for target in domain.STATUSES:
            with pytest.raises(Conflict) as refused:
                domain.check_transition(ended, target)
            assert refused.value.code == "job_state"

    def test_no_state_is_skipped(self) -> None:
        for current, target in [
            ("open", "completed"),
            ("open", "submitted"),
            ("submitted", "open"),
            ("awarded", "rejected"),
            ("rejected", "submitted"),
        ]:
            with pytest.raises(Conflict):
                domain.check_transition(current, target)

    def test_a_decision_leads_to_completed_or_rejected(self) -> None:
        assert domain.after_judgement("accepted") == domain.COMPLETED
        assert domain.after_judgement("overturned") == domain.COMPLETED
        for decision in ("rejected", "rejected_final", "upheld"):
            assert domain.after_judgement(decision) == domain.REJECTED

    def test_a_rejected_job_ends_once_the_rejection_is_final(self) -> None:
        assert not domain.has_ended("rejected", None)
        assert domain.has_ended("rejected", START)
        assert domain.has_ended("completed", START)
        assert not domain.has_ended("submitted", None)


class TestEligibility:
    def test_each_reason(self) -> None:
        assert domain.ineligibility(TERMS, offer("a", "0.51")) == "over_max_price"
        assert domain.ineligibility(TERMS, offer("a", "0.5", seconds=61)) == "deadline_infeasible"
        low = offer("a", "0.4", standing="0.59")
        assert domain.ineligibility(TERMS, low) == "below_reputation_floor"
        assert domain.ineligibility(TERMS, offer("a", "0.5", seconds=60, standing="0.6")) is None

    def test_a_bidder_without_standing_is_below_no_floor(self) -> None:
        assert domain.ineligibility(TERMS, offer("a", "0.4")) is None


class TestScore:
    def test_a_neutral_standing_scores_the_price(self) -> None:
        assert domain.score(Decimal("0.3"), None) == Decimal("0.3")
        assert domain.score(Decimal("0.3"), Decimal("0.5")) == Decimal("0.3")

    def test_the_formula(self) -> None:
        # price * (1 + 0.5 * (0.5 - standing))
        assert domain.score(Decimal("1"), Decimal("1")) == Decimal("0.75")
        assert domain.score(Decimal("1"), Decimal("0")) == Decimal("1.25")
        assert domain.score(Decimal("0.2"), Decimal("0.9")) == Decimal("0.16")

    @given(price=prices, standing=standings)
    def test_standing_moves_a_score_by_at_most_a_quarter(
        self, price: Decimal, standing: Decimal | None
    ) -> None:
        scored = domain.score(price, standing)
        assert price * Decimal("0.75") <= scored <= price * Decimal("1.25")

    @given(price=prices, better=standings, worse=standings)
    def test_more_standing_never_scores_worse(
        self, price: Decimal, better: Decimal | None, worse: Decimal | None
    ) -> None:
        high = max(better or domain.NEUTRAL_STANDING, worse or domain.NEUTRAL_STANDING)
        low = min(better or domain.NEUTRAL_STANDING, worse or domain.NEUTRAL_STANDING)
        assert domain.score(price, high) <= domain.score(price, low)


class TestAward:
    def test_ties_break_by_price_then_time_then_revision_then_id(self) -> None:
        terms = Terms(Decimal("1"), 60, None)
        offers = [
            offer("bid_d", "0.5", seconds=5, at=0),
            offer("bid_c", "0.4", seconds=9, at=3, standing="0.55"),  # scores 0.39
            offer("bid_b", "0.39", seconds=9, at=2),
            offer("bid_a", "0.39", seconds=9, at=2),
            offer("bid_e", "0.39", seconds=9, at=1),
            offer("bid_f", "0.39", seconds=8, at=4),
        ]
        order = [o.bid_id for o in domain.ranked(terms, offers)]
        assert order == ["bid_f", "bid_e", "bid_a", "bid_b", "bid_c", "bid_d"]

    @given(st.permutations(range(6)))
    def test_the_order_does_not_depend_on_the_order_bids_arrive(self, order: list[int]) -> None:
        offers = [
            offer(f"bid_{i}", f"0.{i % 3 + 1}", seconds=i % 2 + 1, at=i % 4) for i in range(6)
        ]
        terms = Terms(Decimal("1"), 60, None)
        expected = domain.ranked(terms, offers)
        assert domain.ranked(terms, [offers[i] for i in order]) == expected

    def test_every_loser_gets_its_reason(self) -> None:
        offers = [
            offer("cheap", "0.1"),
            offer("dear", "0.2"),
            offer("over", "0.7"),
            offer("slow", "0.05", seconds=120),
            offer("shunned", "0.01", standing="0.1"),
        ]
        decision = domain.decide(TERMS, offers)
        assert decision.winner == "cheap"
        assert decision.reasons == {
            "dear": "outbid",
            "over": "over_max_price",
            "slow": "deadline_infeasible",
            "shunned": "below_reputation_floor",
        }
        assert set(decision.scores) == {"cheap", "dear"}

    def test_a_chosen_bid_wins_over_a_better_score(self) -> None:
        decision = domain.decide(
            TERMS, [offer("cheap", "0.1"), offer("dear", "0.2")], chosen="dear"
        )
        assert (decision.winner, decision.reasons) == ("dear", {"cheap": "outbid"})

    def test_no_eligible_bid_no_winner(self) -> None:
        assert domain.decide(TERMS, [offer("over", "0.9")]).winner is None
        assert domain.decide(TERMS, []).winner is None


def test_the_escrow_holds_the_price_and_every_fee() -> None:
    assert domain.escrow_amount(Decimal("0.5"), 3, Decimal("0.01")) == Decimal("0.53")
    assert domain.escrow_amount(Decimal("0.5"), 0, Decimal(0)) == Decimal("0.5")


def test_the_escrow_outlives_every_award_and_the_judging() -> None:
    expiry = domain.escrow_expiry(START, 300, 0)
    assert expiry == START + timedelta(seconds=900) + domain.ESCROW_GRACE
    rules = JobRules(
        exclusion_threshold=Decimal("0.2"),
        half_life_days=Decimal(30),
        slash_share=Decimal("0.25"),
        stake_per_slot=Decimal(1),
        review_seconds=7 * 86_400,  # a week's review: the hold must outlive it
        validator_seconds=3_600,
        dispute_seconds=2 * 86_400,
    )
    expiry = domain.escrow_expiry(START, 300, rules.judging_seconds)
    judging = timedelta(days=9, hours=4)
    assert expiry == START + timedelta(seconds=900) + judging + domain.ESCROW_GRACE


def test_sizes_round_up_to_whole_tokens() -> None:
    assert [domain.estimated_input_tokens(n) for n in (0, 1, 4, 5, 61)] == [0, 1, 1, 2, 16]


# -- the canonical encoding --------------------------------------------------------------------


class TestCanonicalEncoding:
    def test_the_documented_rules(self) -> None:
        document = {
            "b": [1, Decimal("2.50"), Decimal("2.0"), Decimal("-0"), True, None],
            "a": 'Grüße\n\u0001"\\',
            "é": {"z": False, "y": Decimal("1E+2")},
        }
        assert (
            digest.canonical_bytes(document)
            == (
                '{"a":"Grüße\\n\\u0001\\"\\\\","b":[1,2.5,2,0,true,null],"é":{"y":100,"z":false}}'
            ).encode()
        )

    def test_the_hash_is_the_sha256_of_those_bytes(self) -> None:
        document = {"output": "hi", "usage": {"prompt_tokens": 1}}
        expected = hashlib.sha256(b'{"output":"hi","usage":{"prompt_tokens":1}}').hexdigest()
        assert digest.result_hash(document) == f"sha256:{expected}"

    @given(
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none()),
            max_size=6,
        )
    )
    def test_it_matches_sorted_compact_json_and_ignores_key_order(self, document: dict) -> None:  # type: ignore[type-arg]
        reference = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert digest.canonical_bytes(document) == reference.encode("utf-8")
        for keys in itertools.islice(itertools.permutations(document), 6):
            assert digest.canonical_bytes({k: document[k] for k in keys}) == reference.encode()

    def test_what_json_cannot_hold_is_refused(self) -> None:
        with pytest.raises(TypeError):
            digest.canonical_bytes({"when": START})
        with pytest.raises(TypeError):
            digest.canonical_bytes({1: "a"})

"""The bid-time rules, as the product runs them: a bid needs an active bid stake (409
``stake_required``, naming the stake needed); an identity's group holds at once only the jobs
it has earned, bounded by its stake (409 ``capacity_reached`` with the figures), at the bid
and at every award: fixed (at once), auction (a winner over capacity loses and the next best
wins), early awards and runners-up."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from flow_memory.jobs import outcomes
from flow_memory.jobs.outcomes import JobRules
from flow_memory.kit.clock import FrozenClock
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    SELLER_B,
    Bidder,
    bid,
    bidder,
    get_job,
    placed,
    post_job,
    quiet_settings,
    stake,
    tick,
)
from tests.api.test_jobs_results import result_body
from tests.api.test_reputation import agent, page, record
from tests.assertions import error, ok
from tests.factories import SELLER, Headers

FIXED = {"max_price": 0.5, "payment_mode": "fixed"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url, bid_rules=True)


@pytest.fixture
def alpha(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER)


@pytest.fixture
def beta(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER_B)


def capacity(client: TestClient, headers: Headers, identity_id: str) -> dict[str, object]:
    return dict(page(client, headers, identity_id)["bidder"]["capacity"])


def by_bidder(job: dict[str, object]) -> dict[str, tuple[str, str | None]]:
    bids = job["bids"]
    assert isinstance(bids, list)
    return {b["bidder_id"]: (b["status"], b["reason"]) for b in bids}


class TestStakeRequired:
    def test_a_bid_without_a_bid_stake_is_refused_naming_the_stake_needed(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        refused = error(
            bid(client, alpha.headers, job_id, alpha.provider_id), 409, "stake_required"
        )
        assert refused["field"] == "bidder_id"
        assert "1.0 credits" in refused["message"] and "POST /inference/stakes" in refused["hint"]
        stake(client, alpha.headers, "1")
        assert placed(client, alpha.headers, job_id, alpha.provider_id)["status"] == "live"

    def test_a_stake_covering_no_job_or_withdrawn_does_not_count(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        stake(client, alpha.headers, "0.5")  # under the 1 each job held at once needs
        refused = error(
            bid(client, alpha.headers, job_id, alpha.provider_id), 409, "stake_required"
        )
        assert "0.5 staked" in refused["message"]
        second = stake(client, alpha.headers, "0.5")  # together: one job's worth
        placed(client, alpha.headers, job_id, alpha.provider_id)
        ok(client.delete(f"/inference/stakes/{second['stake_id']}", headers=alpha.headers))
        error(bid(client, alpha.headers, job_id, alpha.provider_id), 409, "stake_required")

    def test_a_bound_agent_bids_on_its_operators_stake(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        as_agent = {"bidder_id": agent(client, alpha.headers, "bound")}
        job_id = post_job(client, buyer)["job_id"]
        error(
            bid(client, alpha.headers, job_id, alpha.provider_id, **as_agent), 409, "stake_required"
        )
        stake(client, alpha.headers, "1")  # the operator's own stake covers its bound agents
        placed(client, alpha.headers, job_id, alpha.provider_id, **as_agent)


class TestNoStakePerSlot:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return replace(quiet_settings(database_url, bid_rules=True), stake_per_job_slot=0.0)

    def test_bidding_needs_no_stake_and_earned_capacity_still_holds(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        first = post_job(client, buyer, economics=FIXED)["job_id"]
        assert placed(client, alpha.headers, first, alpha.provider_id)["status"] == "won"
        second = post_job(client, buyer, economics=FIXED)["job_id"]
        refused = error(
            bid(client, alpha.headers, second, alpha.provider_id), 409, "capacity_reached"
        )
        assert "covers no bound" in refused["message"]


class TestCapacityAtTheBid:
    def test_a_bid_beyond_the_jobs_earned_is_refused_with_the_figures(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        stake(client, alpha.headers, "3")
        won = post_job(client, buyer, economics=FIXED)["job_id"]
        assert placed(client, alpha.headers, won, alpha.provider_id)["status"] == "won"
        other = post_job(client, buyer, economics=FIXED)["job_id"]
        refused = error(
            bid(client, alpha.headers, other, alpha.provider_id), 409, "capacity_reached"
        )
        # Holds 1; earned 1 (a new identity); its stake of 3 covers 3.
        assert "holds 1 jobs" in refused["message"]
        assert "earned 1" in refused["message"] and "covers 3" in refused["message"]
        assert get_job(client, buyer, other)["status"] == "open"

    def test_a_job_ended_frees_its_slot(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        stake(client, alpha.headers, "1")
        won = post_job(client, buyer, economics=FIXED)["job_id"]
        placed(client, alpha.headers, won, alpha.provider_id)
        other = post_job(client, buyer, economics=FIXED)["job_id"]
        error(bid(client, alpha.headers, other, alpha.provider_id), 409, "capacity_reached")
        answer = client.post(f"{JOBS}/{won}/result", json=result_body(), headers=alpha.headers)
        assert answer.status_code == 201, answer.text  # accepted at once: review 0
        assert placed(client, alpha.headers, other, alpha.provider_id)["status"] == "won"

    def test_good_completions_earn_more_and_the_stake_bounds_it(
        self, app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        stake(client, alpha.headers, "1")
        for job in range(5):  # 5 points: a second slot earned
            record(app, SELLER, "completion_good", job_id=f"old_{job}")
        first = post_job(client, buyer, economics=FIXED)["job_id"]
        placed(client, alpha.headers, first, alpha.provider_id)
        second = post_job(client, buyer, economics=FIXED)["job_id"]
        refused = error(
            bid(client, alpha.headers, second, alpha.provider_id), 409, "capacity_reached"
        )
        assert "earned 2" in refused["message"] and "covers 1" in refused["message"]
        stake(client, alpha.headers, "1")  # now the stake covers the second slot
        assert placed(client, alpha.headers, second, alpha.provider_id)["status"] == "won"
        assert capacity(client, alpha.headers, SELLER) | {"points": None} == {
            "counted_for": SELLER,
            "points": None,
            "earned": 2,
            "stake": 2,
            "stake_covers": 2,
            "limit": 2,
            "held": 2,
        }

    def test_a_failure_cuts_what_was_earned(
        self, app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        stake(client, alpha.headers, "5")
        for job in range(10):
            record(app, SELLER, "completion_good", job_id=f"old_{job}")
        assert capacity(client, alpha.headers, SELLER)["earned"] == 3
        record(app, SELLER, "no_show", job_id="old_x")  # 10 points halved: 5
        assert capacity(client, alpha.headers, SELLER)["earned"] == 2


class TestCapacityAtTheAward:
    def test_an_auction_winner_over_capacity_loses_and_the_next_best_wins(
        self,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        alpha: Bidder,
        beta: Bidder,
    ) -> None:
        stake(client, alpha.headers, "2")
        stake(client, beta.headers, "1")
        first = post_job(client, buyer, bid_window_seconds=30)["job_id"]
        second = post_job(client, buyer, bid_window_seconds=60)["job_id"]
        # Holding nothing yet, alpha may bid on both; it is the cheaper on both.
        for job_id in (first, second):
            placed(client, alpha.headers, job_id, alpha.provider_id, price=0.1)
        placed(client, beta.headers, second, beta.provider_id, price=0.3)
        clock.advance(30)
        assert tick(client.app).awarded == 1  # type: ignore[arg-type]
        assert by_bidder(get_job(client, buyer, first)) == {SELLER: ("won", None)}
        clock.advance(30)
        assert tick(client.app).awarded == 1  # type: ignore[arg-type]
        # Its stake covers 2, but it has earned 1 at once: the next best wins.
        assert by_bidder(get_job(client, buyer, second)) == {
            SELLER: ("lost", "capacity_reached"),
            SELLER_B: ("won", None),
        }

    def test_a_job_with_only_bidders_over_capacity_expires_with_the_reason(
        self, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder
    ) -> None:
        stake(client, alpha.headers, "1")
        auction = post_job(client, buyer)["job_id"]
        placed(client, alpha.headers, auction, alpha.provider_id, price=0.1)
        fixed = post_job(client, buyer, economics=FIXED)["job_id"]
        assert placed(client, alpha.headers, fixed, alpha.provider_id)["status"] == "won"
        clock.advance(60)
        report = tick(client.app)  # type: ignore[arg-type]
        assert report.expired_unawarded == 1
        job = get_job(client, buyer, auction)
        assert job["status"] == "expired_unawarded"
        assert by_bidder(job) == {SELLER: ("lost", "capacity_reached")}

    def test_an_early_award_of_a_bid_over_capacity_is_refused(
        self, client: TestClient, buyer: Headers, alpha: Bidder, beta: Bidder
    ) -> None:
        stake(client, alpha.headers, "1")
        stake(client, beta.headers, "1")
        auction = post_job(client, buyer)["job_id"]
        mine = placed(client, alpha.headers, auction, alpha.provider_id, price=0.1)
        placed(client, beta.headers, auction, beta.provider_id, price=0.3)
        fixed = post_job(client, buyer, economics=FIXED)["job_id"]
        placed(client, alpha.headers, fixed, alpha.provider_id)
        award = f"{JOBS}/{auction}/award"
        refused = error(
            client.post(award, json={"bid_id": mine["bid_id"]}, headers=buyer),
            409,
            "bid_not_eligible",
        )
        assert "capacity reached" in refused["message"]
        job = ok(client.post(award, json={}, headers=buyer))["job"]  # the best score: beta
        assert by_bidder(job) == {SELLER: ("lost", "capacity_reached"), SELLER_B: ("won", None)}

    def test_a_runner_up_over_capacity_is_passed_over(
        self,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        alpha: Bidder,
        beta: Bidder,
    ) -> None:
        stake(client, alpha.headers, "1")
        stake(client, beta.headers, "1")
        job_id = post_job(client, buyer, reaward_on_no_show=True)["job_id"]
        placed(client, beta.headers, job_id, beta.provider_id, price=0.1)
        placed(client, alpha.headers, job_id, alpha.provider_id, price=0.3)
        clock.advance(60)
        assert tick(client.app).awarded == 1  # type: ignore[arg-type]
        # alpha, the runner-up, takes another job meanwhile: it holds all it has earned.
        fixed = post_job(client, buyer, economics=FIXED, deadline_seconds=900)["job_id"]
        placed(client, alpha.headers, fixed, alpha.provider_id)
        clock.advance(300)
        assert tick(client.app).expired_no_show == 1  # type: ignore[arg-type]
        job = get_job(client, buyer, job_id)
        assert job["status"] == "expired_no_show"
        assert by_bidder(job)[SELLER] == ("lost", "capacity_reached")


class TestTheSettingOff:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        on = quiet_settings(database_url, bid_rules=True)
        return replace(on, earned_capacity_enforced=False)

    def test_an_identity_may_hold_any_number_but_still_needs_a_stake(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        first = post_job(client, buyer, economics=FIXED)["job_id"]
        error(bid(client, alpha.headers, first, alpha.provider_id), 409, "stake_required")
        stake(client, alpha.headers, "1")
        for _ in range(3):
            job_id = post_job(client, buyer, economics=FIXED)["job_id"]
            assert placed(client, alpha.headers, job_id, alpha.provider_id)["status"] == "won"
        assert Decimal(str(capacity(client, alpha.headers, SELLER)["held"])) == 3


class TestConcurrentAwards:
    def test_awards_to_one_group_wait_for_each_other_on_postgresql(
        self, app: FastAPI, client: TestClient, alpha: Bidder, database_url: str
    ) -> None:
        """Two awards on different jobs each hold only their own job's lock: the group's lock
        makes the second count the jobs held once the first has committed."""
        if make_url(database_url).get_backend_name() != "postgresql":
            pytest.skip("SQLite runs one writer at a time")
        stake(client, alpha.headers, "1")
        rules = JobRules.of(app.state.settings)
        factory = app.state.session_factory
        with factory.begin() as first:
            assert outcomes.may_hold_another(first, SELLER, rules=rules)
            with factory() as second, pytest.raises(OperationalError, match="lock timeout"):
                second.execute(text("SET LOCAL lock_timeout = '50ms'"))
                outcomes.may_hold_another(second, SELLER, rules=rules)
        with factory.begin() as later:  # the first has ended: the lock is free again
            assert outcomes.may_hold_another(later, SELLER, rules=rules)

"""The job board's outcomes in reputation: a completion, a late delivery, a no-show and its
stake slashed to the requester; bids refused below the reputation floor, and the award that
weighs and excludes by the bidders' real standing."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.clock import FrozenClock
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    SELLER_B,
    Bidder,
    account,
    assert_ledger_sound,
    bid,
    bidder,
    get_job,
    placed,
    post_job,
    quiet_settings,
    tick,
)
from tests.api.test_jobs_results import result_body
from tests.api.test_reputation import page, record
from tests.assertions import error, ok
from tests.factories import BUYER, SELLER, Headers


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


@pytest.fixture
def alpha(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER)


@pytest.fixture
def beta(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER_B)


def kinds(client: TestClient, headers: Headers, identity_id: str) -> list[tuple[str, Any]]:
    """The identity's recorded outcomes, oldest first: (kind, job_id)."""
    history = page(client, headers, identity_id)["history"]
    return [(o["kind"], o["job_id"]) for o in reversed(history)]


def awarded_to(client: TestClient, clock: FrozenClock, buyer: Headers, winner: Bidder) -> str:
    job_id = str(post_job(client, buyer)["job_id"])
    placed(client, winner.headers, job_id, winner.provider_id, price=0.2, estimated_time_s=5)
    clock.advance(60)
    assert tick(client.app).awarded == 1  # type: ignore[arg-type]
    return job_id


def upload(client: TestClient, winner: Bidder, job_id: str) -> dict[str, Any]:
    answer = client.post(f"{JOBS}/{job_id}/result", json=result_body(), headers=winner.headers)
    # Not ``ok``: its exponent check can mistake a result hash such as "sha256:092e9…" for one.
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["job"])


class TestOutcomes:
    def test_a_completion_in_the_promised_time_is_a_good_one(
        self, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = awarded_to(client, clock, buyer, alpha)
        clock.advance(5)
        assert upload(client, alpha, job_id)["status"] == "completed"
        assert kinds(client, alpha.headers, SELLER) == [("completion_good", job_id)]
        assert page(client, alpha.headers, SELLER)["bidder"]["score"] > Decimal("0.5")

    def test_a_result_after_the_promised_time_is_also_late(
        self, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = awarded_to(client, clock, buyer, alpha)
        clock.advance(6)  # the bid promised 5 seconds; the deadline is 300
        assert upload(client, alpha, job_id)["status"] == "completed"
        assert sorted(kinds(client, alpha.headers, SELLER)) == [
            ("completion_good", job_id),
            ("late", job_id),
        ]

    def test_a_no_show_is_recorded_and_slashes_the_stake_to_the_requester(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder
    ) -> None:
        ok(client.post("/inference/stakes", json={"amount": 4}, headers=alpha.headers), 201)
        job_id = awarded_to(client, clock, buyer, alpha)
        before = account(client, BUYER)["available"]
        clock.advance(300)
        assert tick(app).expired_no_show == 1
        assert kinds(client, alpha.headers, SELLER) == [("no_show", job_id)]
        assert page(client, alpha.headers, SELLER)["bidder"]["score"] < Decimal("0.5")
        # A quarter of the stake of 4 goes to the requester; the escrow of 0.5 comes back.
        assert account(client, BUYER)["available"] - before == Decimal("1.5")
        assert account(client, SELLER)["held"] == Decimal(3)
        assert_ledger_sound(app)

    def test_a_no_show_without_a_stake_is_recorded_and_slashes_nothing(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = awarded_to(client, clock, buyer, alpha)
        clock.advance(300)
        assert tick(app).expired_no_show == 1
        assert kinds(client, alpha.headers, SELLER) == [("no_show", job_id)]
        assert account(client, SELLER)["held"] == Decimal(0)
        assert_ledger_sound(app)


class TestReputationFloor:
    def test_a_bid_below_the_jobs_min_reputation_is_refused_naming_the_score_needed(
        self, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        job_id = post_job(client, buyer, min_reputation=0.6)["job_id"]
        refused = error(
            bid(client, alpha.headers, job_id, alpha.provider_id),
            409,
            "below_reputation_floor",
            "bidder_id",
        )
        assert "0.6" in refused["message"] and "0.5" in refused["message"]
        assert get_job(client, buyer, job_id)["bids"] == []

    def test_a_bidder_below_the_exclusion_threshold_may_bid_on_no_job(
        self, app: FastAPI, client: TestClient, buyer: Headers, alpha: Bidder
    ) -> None:
        for _ in range(3):
            record(app, SELLER, "no_show", "10")  # (0 + 1) / (30 + 2): far under the threshold
        job_id = post_job(client, buyer)["job_id"]
        refused = error(
            bid(client, alpha.headers, job_id, alpha.provider_id), 409, "below_reputation_floor"
        )
        assert app.state.settings.reputation_exclusion_threshold == 0.35  # the default
        assert "0.35" in refused["message"]

    def test_a_bidder_fallen_below_the_floor_since_bidding_loses_at_the_award(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        alpha: Bidder,
        beta: Bidder,
    ) -> None:
        job_id = post_job(client, buyer, min_reputation=0.4)["job_id"]
        placed(client, alpha.headers, job_id, alpha.provider_id, price=0.1)
        placed(client, beta.headers, job_id, beta.provider_id, price=0.3)
        record(app, SELLER, "no_show", "1")  # 1 / 3: under the job's 0.4
        clock.advance(60)
        assert tick(app).awarded == 1
        bids = {
            b["bidder_id"]: (b["status"], b["reason"])
            for b in get_job(client, buyer, job_id)["bids"]
        }
        assert bids == {SELLER: ("lost", "below_reputation_floor"), SELLER_B: ("won", None)}


class TestAwardScore:
    def test_the_award_weighs_the_bidders_recorded_standing(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        alpha: Bidder,
        beta: Bidder,
    ) -> None:
        record(app, SELLER, "completion_good", "10")  # (10 + 1) / (10 + 2) = 0.916667
        job_id = post_job(client, buyer)["job_id"]
        placed(client, alpha.headers, job_id, alpha.provider_id, price=0.3)
        placed(client, beta.headers, job_id, beta.provider_id, price=0.28)
        clock.advance(60)
        assert tick(app).awarded == 1
        bids = {b["bidder_id"]: b for b in get_job(client, buyer, job_id)["bids"]}
        assert bids[SELLER]["status"] == "won"
        # 0.3 * (1 + 0.5 * (0.5 - 0.916667)) beats the new bidder's 0.28 at the prior.
        assert Decimal(str(bids[SELLER]["score"])) == Decimal("0.23749995")
        assert Decimal(str(bids[SELLER_B]["score"])) == Decimal("0.28")


class TestTheExclusionThresholdSetting:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return replace(quiet_settings(database_url), reputation_exclusion_threshold=0.45)

    def test_the_routes_and_the_timer_apply_the_configured_threshold(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        alpha: Bidder,
        beta: Bidder,
    ) -> None:
        job_id = post_job(client, buyer)["job_id"]
        placed(client, alpha.headers, job_id, alpha.provider_id, price=0.1)
        placed(client, beta.headers, job_id, beta.provider_id, price=0.3)
        record(app, SELLER, "late", "1")  # 1 / 2.5 = 0.4: under 0.45, above the default 0.2
        refused = error(
            bid(client, alpha.headers, job_id, alpha.provider_id, price=0.09),
            409,
            "below_reputation_floor",
        )
        assert "0.45" in refused["message"]
        clock.advance(60)
        assert tick(app).awarded == 1
        bids = {
            b["bidder_id"]: (b["status"], b["reason"])
            for b in get_job(client, buyer, job_id)["bids"]
        }
        assert bids == {SELLER: ("lost", "below_reputation_floor"), SELLER_B: ("won", None)}

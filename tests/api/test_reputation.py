"""Reputation on the API: an identity's page, outcomes recorded in the caller's transaction
(bound agents' counted for their operator, free agents' for themselves only), the award reading
the real standing, and the refusals below the floor and beyond earned capacity."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flow_memory.kit.errors import Conflict
from flow_memory.reputation import service
from flow_memory.settings import Settings
from tests.api.jobs_helpers import Bidder, bidder, get_job, placed, post_job, quiet_settings, tick
from tests.assertions import error, ok
from tests.factories import SELLER, Headers, key_headers

REPUTATION = "/inference/reputation"
HALF_LIFE = Decimal(30)


@contextmanager
def work(app: FastAPI) -> Iterator[Session]:
    """A transaction of the app's, as the job board's hooks run in one."""
    with app.state.session_factory.begin() as session:
        yield session


def record(app: FastAPI, identity_id: str, kind: str, value: str = "1", **extra: Any) -> bool:
    """Record an outcome as the job board will; whether it was a replay."""
    with work(app) as session:
        recorded = service.record_outcome(
            session,
            identity_id=identity_id,
            kind=kind,
            value=Decimal(value),
            now=app.state.clock.now(),
            half_life_days=HALF_LIFE,
            **extra,
        )
        return recorded.replayed


def page(client: TestClient, headers: Headers, identity_id: str, **params: Any) -> dict[str, Any]:
    body = ok(client.get(f"{REPUTATION}/{identity_id}", params=params, headers=headers))
    return dict(body["reputation"])


def agent(client: TestClient, headers: Headers, kind: str) -> str:
    answer = client.post(
        "/inference/agents", json={"kind": kind, "display_name": f"a {kind} one"}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["agent"]["agent_id"])


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url, bid_rules=True)


@pytest.fixture
def operator(app: FastAPI) -> Headers:
    return key_headers(app, SELLER, "inference:sell", "inference:buy", "inference:read")


class TestPage:
    def test_a_new_identity_stands_at_the_prior(self, client: TestClient, buyer: Headers) -> None:
        found = page(client, buyer, "someone-new")
        assert found["identity_kind"] == "owner"
        assert found["formula"] == "(good + 1) / (good + bad + 2)"
        assert (found["prior"], found["half_life_days"]) == (0.5, 30)
        bidder_side, validator_side = found["bidder"], found["validator"]
        assert (bidder_side["score"], bidder_side["standing"], validator_side["score"]) == (
            0.5,
            0.5,
            0.5,
        )
        assert bidder_side["components"]["completions"] == 0
        assert bidder_side["components"]["acceptance_rate"] is None
        # Earned 1, but a stake of 0 covers no job (1 credit per job by default).
        assert bidder_side["capacity"] | {} == {
            "counted_for": "someone-new",
            "points": 0,
            "earned": 1,
            "stake": 0,
            "stake_covers": 0,
            "limit": 0,
            "held": 0,
        }
        assert found["history"] == [] and found["next_cursor"] is None

    def test_outcomes_make_the_score_and_the_components(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        for job, kind in enumerate(("completion_good", "completion_good", "no_show", "late")):
            record(app, "worker", kind, job_id=f"job_{job}")
        record(app, "worker", "known_answer_fail", job_id="job_9")
        record(app, "worker", "validator_agreed", job_id="job_5")
        found = page(client, buyer, "worker")
        side = found["bidder"]
        # good 2; bad 1 (no-show) + 0.5 (late) + 2 (known answer) = 3.5: 3 / 7.5
        assert (side["good"], side["bad"], side["score"]) == (2, 3.5, 0.4)
        assert side["components"] | {} == {
            "completions": 2,
            "judged": 3,
            "acceptance_rate": 0.666667,
            "late": 1,
            "on_time_rate": 0.5,
            "no_shows": 1,
            "disputes_won": 0,
            "disputes_lost": 0,
            "known_answer_jobs": 1,
            "known_answer_pass_rate": 0,
        }
        assert found["validator"]["score"] == 0.666667
        assert found["validator"]["components"]["agreed"] == 1
        kinds = sorted(o["kind"] for o in found["history"])
        assert kinds == [
            "completion_good",
            "completion_good",
            "known_answer_fail",
            "late",
            "no_show",
            "validator_agreed",
        ]
        # 2 good completions, halved by the no-show, halved by the failed known answer.
        assert side["capacity"]["points"] == 0

    def test_history_pages_with_a_cursor(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        for job in range(5):
            record(app, "worker", "completion_good", job_id=f"job_{job}")
        first = page(client, buyer, "worker", limit=3)
        rest = page(client, buyer, "worker", limit=3, cursor=first["next_cursor"])
        jobs = [o["job_id"] for o in first["history"] + rest["history"]]
        assert sorted(jobs) == [f"job_{i}" for i in range(5)] and len(set(jobs)) == 5
        assert rest["next_cursor"] is None

    def test_a_replayed_outcome_records_nothing(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        assert record(app, "worker", "no_show", job_id="job_1") is False
        assert record(app, "worker", "no_show", job_id="job_1") is True
        assert page(client, buyer, "worker")["bidder"]["outcomes"] == 1

    def test_refusals(self, client: TestClient, buyer: Headers) -> None:
        error(client.get(f"{REPUTATION}/worker"), 401, "unauthenticated")
        error(
            client.get(f"{REPUTATION}/worker", params={"limit": 0}, headers=buyer),
            422,
            "invalid_request",
            "query.limit",
        )
        error(
            client.get(f"{REPUTATION}/worker", params={"cursor": "nope"}, headers=buyer),
            422,
            "invalid_cursor",
        )
        error(client.get(f"{REPUTATION}/bad%20id", headers=buyer), 422, "invalid_request")

    def test_an_unknown_kind_is_a_callers_mistake(self, app: FastAPI) -> None:
        with pytest.raises(Exception, match="no outcome kind"):
            record(app, "worker", "cheated")


class TestBoundAndFree:
    def test_a_bound_agents_outcomes_count_for_its_operator_who_gates_it(
        self, app: FastAPI, client: TestClient, operator: Headers, buyer: Headers
    ) -> None:
        first = agent(client, operator, "bound")
        for job in range(3):
            record(app, first, "no_show", job_id=f"job_{job}")
        operator_page = page(client, buyer, SELLER)
        assert operator_page["bidder"]["components"]["no_shows"] == 3
        assert {o["identity_id"] for o in operator_page["history"]} == {first}
        assert operator_page["history"][0]["operator_id"] == SELLER
        # A fresh instance starts at the prior, yet stands no higher than its operator.
        second = agent(client, operator, "bound")
        fresh = page(client, buyer, second)
        assert fresh["identity_kind"] == "bound" and fresh["operator_id"] == SELLER
        assert fresh["bidder"]["score"] == 0.5
        assert fresh["bidder"]["standing"] == operator_page["bidder"]["score"] == 0.2
        assert fresh["bidder"]["capacity"]["counted_for"] == SELLER

    def test_a_free_agents_record_is_its_own(
        self, app: FastAPI, client: TestClient, operator: Headers, buyer: Headers
    ) -> None:
        free = agent(client, operator, "free")
        record(app, free, "no_show", job_id="job_1")
        assert page(client, buyer, free)["bidder"]["standing"] == 0.333333
        assert page(client, buyer, SELLER)["bidder"]["outcomes"] == 0
        # A new free agent of the same creator does not inherit it either way.
        assert page(client, buyer, agent(client, operator, "free"))["bidder"]["score"] == 0.5


def by_bidder(job: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {b["bidder_id"]: (b["status"], b["reason"]) for b in job["bids"]}


class TestTheBoard:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        """Bids without stakes: these tests call the capacity rule themselves."""
        return quiet_settings(database_url)

    def test_the_award_reads_the_real_standing(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        job_id = post_job(client, buyer, min_reputation=0.4)["job_id"]
        cheap, trusted, newcomer = (
            bidder(client, app, n) for n in ("s-cheap", "s-trusted", "s-new")
        )
        for who, price in ((cheap, 0.1), (trusted, 0.3), (newcomer, 0.25)):
            placed(client, who.headers, job_id, who.provider_id, price=price)
        # Recorded after the bids (a bid below the floor is refused): the award reads them.
        for job in range(3):
            record(app, "s-cheap", "no_show", job_id=f"old_{job}")
            record(app, "s-trusted", "completion_good", value="5", job_id=f"old_{job}")
        app.state.clock.advance(60)
        assert tick(app).awarded == 1
        job = get_job(client, buyer, job_id)
        # s-trusted (15 good: 16/17) scores 0.3 * (1 + 0.5 * (0.5 - 0.941176)) = 0.233824.
        assert by_bidder(job) == {
            "s-trusted": ("won", None),
            "s-new": ("lost", "outbid"),
            "s-cheap": ("lost", "below_reputation_floor"),
        }

    def test_the_floor_refuses_with_the_standing_needed(self, app: FastAPI) -> None:
        for job in range(4):
            record(app, "s-cheap", "no_show", job_id=f"old_{job}")
        with work(app) as session:
            with pytest.raises(Conflict) as refused:
                service.ensure_above_floor(
                    session, bidder_id="s-cheap", min_reputation=None, exclusion_threshold=0.2
                )
            assert refused.value.code == "below_reputation_floor"
            assert refused.value.field == "bidder_id"
            assert "0.166667" in refused.value.message and "0.2" in refused.value.message
            assert service.ensure_above_floor(
                session, bidder_id="s-new", min_reputation=Decimal("0.5"), exclusion_threshold=0.2
            ) == Decimal("0.5")
            with pytest.raises(Conflict, match=r"0\.6"):
                service.ensure_above_floor(
                    session,
                    bidder_id="s-new",
                    min_reputation=Decimal("0.6"),
                    exclusion_threshold=0.2,
                )

    def test_capacity_counts_the_jobs_held_and_needs_a_stake(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        alpha: Bidder = bidder(client, app, "s-alpha")
        job_id = post_job(client, buyer, economics={"max_price": 0.5, "payment_mode": "fixed"})[
            "job_id"
        ]
        placed(client, alpha.headers, job_id, alpha.provider_id)
        with work(app) as session:
            with pytest.raises(Conflict) as refused:
                service.ensure_capacity(session, bidder_id="s-alpha", stake_per_slot=1.0)
            assert refused.value.code == "stake_required"
            found = service.capacity_of(session, "s-alpha", stake_per_slot=0)
            assert (found.held, found.limit, found.covered) == (1, 1, None)
            with pytest.raises(Conflict) as full:
                service.ensure_capacity(session, bidder_id="s-alpha", stake_per_slot=0)
            assert full.value.code == "capacity_reached"
        for job in range(5):
            record(app, "s-alpha", "completion_good", job_id=f"old_{job}")
        with work(app) as session:
            grown = service.ensure_capacity(session, bidder_id="s-alpha", stake_per_slot=0)
        assert (grown.earned, grown.held) == (2, 1)
        assert get_job(client, buyer, job_id)["status"] == "awarded"

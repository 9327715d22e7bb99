"""Known-answer jobs: an admin registers one; the board posts it as an ordinary job of the
requester named (bidders see the same shape); a winner whose result meets the answer passes
(paid, ``known_answer_pass``), one whose result misses it fails (rejected, its stake slashed
once the rejection stands, ``known_answer_fail``); the identity's page shows the pass rate;
the board's draw posts them at the configured share."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.jobs import known_answers as board
from flow_memory.jobs import service
from flow_memory.jobs.outcomes import JobRules
from flow_memory.kit.clock import FrozenClock
from flow_memory.reputation import known_answers
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    Bidder,
    account,
    assert_ledger_sound,
    bidder,
    get_job,
    job_body,
    placed,
    post_job,
    quiet_settings,
    stake,
    tick,
)
from tests.api.test_jobs_results import result_body
from tests.api.test_reputation import page
from tests.assertions import error, ok
from tests.factories import BUYER, SELLER, Headers, admin_headers

KNOWN = "/inference/known-answers"
PROMPT = "What is the capital of France? Answer with the city's name."
FIXED = {"max_price": 0.5, "payment_mode": "fixed"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The product's bid rules; the board's own draw after each post is off (a share of 0), so
    only the posts a test asks for are made."""
    return replace(quiet_settings(database_url, bid_rules=True), known_answer_share=0.0)


@pytest.fixture
def admin(app: FastAPI) -> Headers:
    return admin_headers(app)


@pytest.fixture
def seller(app: FastAPI, client: TestClient) -> Bidder:
    found = bidder(client, app, SELLER)
    stake(client, found.headers, "1")
    return found


def probe_body(**job: Any) -> dict[str, Any]:
    body = job_body(economics=FIXED, **job)
    body["request"] = {**body["request"], "prompt": PROMPT}
    body["requester_id"] = BUYER  # a requester that posts ordinary jobs too
    return {"job": body, "answer": {"match": "contains", "expected": "paris"}}


def registered(client: TestClient, admin: Headers, **job: Any) -> dict[str, Any]:
    return dict(ok(client.post(KNOWN, json=probe_body(**job), headers=admin), 201)["known_answer"])


def posted(client: TestClient, admin: Headers, probe_id: str) -> str:
    answer = ok(client.post(f"{KNOWN}/{probe_id}/post", json={}, headers=admin), 201)
    return str(answer["job_id"])


def won(client: TestClient, seller: Bidder, job_id: str) -> None:
    assert placed(client, seller.headers, job_id, seller.provider_id)["status"] == "won"


def upload(client: TestClient, seller: Bidder, job_id: str, output: str) -> dict[str, Any]:
    body = result_body(output=output)
    answer = client.post(f"{JOBS}/{job_id}/result", json=body, headers=seller.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["job"])


def history(client: TestClient, headers: Headers, identity_id: str) -> list[tuple[str, str]]:
    return [(o["kind"], o["job_id"]) for o in page(client, headers, identity_id)["history"]]


class TestRegistering:
    def test_an_admin_registers_and_lists_them(self, client: TestClient, admin: Headers) -> None:
        probe = registered(client, admin)
        assert probe["requester_id"] == BUYER and probe["status"] == "active"
        assert probe["answer"] == {"match": "contains", "expected": "paris"}
        assert (probe["posted"], probe["passed"], probe["failed"]) == (0, 0, 0)
        assert "requester_id" not in probe["job"]
        listed = ok(client.get(KNOWN, headers=admin))
        assert [p["probe_id"] for p in listed["known_answers"]] == [probe["probe_id"]]

    def test_only_admins(self, client: TestClient, buyer: Headers, seller: Bidder) -> None:
        for headers in (buyer, seller.headers):
            error(client.post(KNOWN, json=probe_body(), headers=headers), 403, "missing_scope")
            error(client.get(KNOWN, headers=headers), 403, "missing_scope")

    def test_a_moment_to_expire_is_refused(self, client: TestClient, admin: Headers) -> None:
        body = probe_body(expires_at="2030-01-01T00:00:00Z")
        refused = error(client.post(KNOWN, json=body, headers=admin), 422, "invalid_request")
        assert refused["field"] == "job.expires_at"

    def test_a_retired_one_is_posted_no_more(self, client: TestClient, admin: Headers) -> None:
        probe_id = registered(client, admin)["probe_id"]
        retired = ok(client.post(f"{KNOWN}/{probe_id}/retire", json={}, headers=admin))
        assert retired["known_answer"]["status"] == "retired"
        post = client.post(f"{KNOWN}/{probe_id}/post", json={}, headers=admin)
        error(post, 409, "known_answer_retired")


class TestPostedAmongOrdinaryJobs:
    def test_bidders_see_the_same_shape_as_an_ordinary_job(
        self, client: TestClient, admin: Headers, buyer: Headers, seller: Bidder
    ) -> None:
        probe_id = registered(client, admin)["probe_id"]
        probe_job = get_job(client, seller.headers, posted(client, admin, probe_id))
        ordinary = get_job(
            client, seller.headers, post_job(client, buyer, economics=FIXED)["job_id"]
        )
        assert probe_job["requester_id"] == ordinary["requester_id"] == BUYER
        assert set(probe_job) == set(ordinary)
        assert probe_job["visibility"] == ordinary["visibility"] == "sealed"
        assert probe_job["request"]["prompt"] is None  # sealed, as the requester asked
        (event,) = probe_job["events"]
        (other,) = ordinary["events"]
        assert (event["kind"], set(event["payload"])) == (other["kind"], set(other["payload"]))
        # Its escrow is held on the requester's account, as the ordinary job's is: 0.5 each.
        assert account(client, BUYER)["held"] == Decimal("1.0")


class TestJudged:
    def test_a_result_that_meets_the_answer_passes_and_is_paid(
        self, app: FastAPI, client: TestClient, admin: Headers, seller: Bidder
    ) -> None:
        probe_id = registered(client, admin)["probe_id"]
        job_id = posted(client, admin, probe_id)
        won(client, seller, job_id)
        job = upload(client, seller, job_id, "The capital of France is  PARIS.")
        assert job["status"] == "completed"
        assert history(client, seller.headers, SELLER) == [("known_answer_pass", job_id)]
        bidder_page = page(client, seller.headers, SELLER)["bidder"]["components"]
        assert (bidder_page["known_answer_jobs"], bidder_page["known_answer_pass_rate"]) == (1, 1)
        assert bidder_page["completions"] == 1
        assert account(client, SELLER)["balance"] == Decimal("0.3")
        listed = ok(client.get(KNOWN, headers=admin))["known_answers"][0]
        assert (listed["posted"], listed["passed"], listed["failed"]) == (1, 1, 0)
        assert_ledger_sound(app)

    def test_a_result_that_misses_it_fails_and_its_stake_is_slashed(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        admin: Headers,
        seller: Bidder,
    ) -> None:
        probe_id = registered(client, admin)["probe_id"]
        job_id = posted(client, admin, probe_id)
        won(client, seller, job_id)
        assert upload(client, seller, job_id, "The capital is Lyon.")["status"] == "rejected"
        seen = ok(client.get(f"{JOBS}/{job_id}/validation", headers=seller.headers))["validation"]
        assert seen["mode"] == "requester" and seen["status"] == "rejected"
        assert [v["reason"] for v in seen["verdicts"]] == [board.FAILED_REASON]
        # The winner may dispute; undisputed, the rejection stands when the window closes.
        clock.advance(3_600)
        assert tick(app).judged == 1
        assert get_job(client, seller.headers, job_id)["status"] == "rejected"
        assert history(client, seller.headers, SELLER) == [("known_answer_fail", job_id)]
        components = page(client, seller.headers, SELLER)["bidder"]["components"]
        assert (components["known_answer_jobs"], components["known_answer_pass_rate"]) == (1, 0)
        # A quarter of the stake of 1 went to the job's payer, as for any bad completion.
        stakes = ok(client.get("/inference/stakes", headers=seller.headers))["stakes"]
        assert (stakes[0]["amount"], stakes[0]["slashed"]) == (0.75, 0.25)
        assert account(client, BUYER)["balance"] == Decimal("0.25")
        listed = ok(client.get(KNOWN, headers=admin))["known_answers"][0]
        assert (listed["posted"], listed["passed"], listed["failed"]) == (1, 0, 1)
        assert_ledger_sound(app)


class _Always(random.Random):
    """Draws that always fall under the share."""

    def random(self) -> float:
        return 0.0


class TestTheShare:
    def rules(self, app: FastAPI, share: str) -> JobRules:
        base = JobRules.of(app.state.settings)
        return replace(base, known_answer_share=Decimal(share))

    def follow(self, app: FastAPI, client: TestClient, buyer: Headers, share: str) -> str | None:
        """Post an ordinary job, then let the board draw as it does after each post."""
        job_id = post_job(client, buyer)["job_id"]
        with app.state.session_factory.begin() as session:
            job = service.find(session, job_id)
            now = app.state.clock.now()
            rules = self.rules(app, share)
            extra = board.follow_post(session, job=job, now=now, rules=rules, rng=_Always())
            return None if extra is None else extra.job_id

    def test_a_draw_under_the_share_posts_a_probe(
        self, app: FastAPI, client: TestClient, admin: Headers, buyer: Headers
    ) -> None:
        assert self.follow(app, client, buyer, "0.5") is None  # none registered
        probe_id = registered(client, admin)["probe_id"]
        assert self.follow(app, client, buyer, "0") is None  # a share of 0 posts none
        job_id = self.follow(app, client, buyer, "0.5")
        assert job_id is not None
        assert get_job(client, buyer, job_id)["requester_id"] == BUYER
        listed = ok(client.get(KNOWN, headers=admin))["known_answers"][0]
        assert (listed["probe_id"], listed["posted"]) == (probe_id, 1)


class TestTheCheck:
    @pytest.mark.parametrize(
        ("output", "match", "expected", "meets"),
        [
            ("Paris", "exact", "paris", True),
            ("  PARIS \n", "exact", "paris", True),
            ("It is Paris.", "exact", "paris", False),
            ("It is Paris.", "contains", "paris", True),
            ("New   York City", "contains", "new york", True),
            ("Lyon", "contains", "paris", False),
        ],
    )
    def test_whitespace_and_case_are_ignored(
        self, output: str, match: str, expected: str, meets: bool
    ) -> None:
        assert known_answers.matches(output, match=match, expected=expected) is meets


class TestWiredIntoPosting:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return replace(quiet_settings(database_url, bid_rules=True), known_answer_share=0.5)

    def test_posting_ordinary_jobs_posts_probes_at_the_share(
        self, client: TestClient, admin: Headers, buyer: Headers
    ) -> None:
        registered(client, admin)
        for _ in range(40):
            post_job(client, buyer)
        listed = ok(client.get(KNOWN, headers=admin))["known_answers"][0]
        # Binomial(40, 0.5): outside [5, 35] about once in ten million runs.
        assert 5 <= listed["posted"] <= 35, listed
        jobs = ok(client.get(JOBS, params={"limit": 200}, headers=buyer))["jobs"]
        assert len(jobs) == 40 + listed["posted"]

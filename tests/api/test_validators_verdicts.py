"""Verdicts and disputes: the requester judges in requester mode, drawn validators otherwise;
a single verdict or the weighted consensus decides; a winner disputes a rejection and fresh
validators decide it. Each decision records the outcomes it implies. The job board opens the
validation when a result arrives (here called directly, as the board will)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flow_memory.reputation import expiry, settlement, validation_page, verdicts
from flow_memory.settings import Settings
from tests.api.test_reputation import page, work
from tests.assertions import error, ok
from tests.factories import BUYER, SELLER, Headers, key_headers

JOB = "job_judged"
VALIDATORS = ("v-beta", "v-delta", "v-gamma", "v-kappa")


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The tests move the clock and call the expiry themselves: no timer thread acts on what
    # falls due between a clock's move and the request that follows it.
    return Settings(database_url=database_url, job_timer_seconds=0)


def open_validation(
    app: FastAPI, mode: str, validators: int = 0, job_id: str = JOB
) -> dict[str, Any]:
    with work(app) as session:
        record = verdicts.open_validation(
            session,
            job_id=job_id,
            mode=mode,
            requester_id=BUYER,
            winner_id=SELLER,
            value=Decimal(1),
            validators_wanted=validators,
            fee=Decimal("0.01"),
            now=app.state.clock.now(),
            review_seconds=600,
            exclusion_threshold=0.2,
        )
        return validation_page.validation_read(session, record)


def verdict(
    client: TestClient, headers: Headers, decision: str, score: float = 0.9, job_id: str = JOB
) -> Any:
    body = {"decision": decision, "score": score, "reason": "checked against the request"}
    return client.post(f"/inference/jobs/{job_id}/verdicts", json=body, headers=headers)


def dispute(client: TestClient, headers: Headers, job_id: str = JOB) -> Any:
    return client.post(
        f"/inference/jobs/{job_id}/disputes",
        json={"reason": "the answer is right"},
        headers=headers,
    )


@pytest.fixture
def judges(app: FastAPI, client: TestClient) -> dict[str, Headers]:
    """Four validators who opted in, each with a key of its own."""
    keys = {}
    for name in VALIDATORS:
        keys[name] = key_headers(app, name, "inference:validate", "inference:read")
        ok(client.post("/inference/validators", json={"stake": 1}, headers=keys[name]), 201)
    return keys


@pytest.fixture
def winner(app: FastAPI) -> Headers:
    return key_headers(app, SELLER, "inference:sell", "inference:read")


def drawn(found: dict[str, Any], round_: int = 0) -> list[str]:
    return [d["validator_id"] for d in found["drawn"] if d["round"] == round_]


class TestRequesterMode:
    def test_the_requester_accepts_and_the_winner_earns_a_completion(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        assert open_validation(app, "requester")["drawn"] == []
        body = ok(verdict(client, buyer, "accept", 0.8), 201)
        assert body["verdict"]["judge_role"] == "requester"
        assert (body["validation"]["status"], body["validation"]["score"]) == ("accepted", 0.8)
        assert page(client, buyer, SELLER)["bidder"]["components"]["completions"] == 1
        error(verdict(client, buyer, "reject"), 409, "verdict_closed", "job_id")

    def test_only_the_requester_and_only_in_time(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        open_validation(app, "requester")
        other = key_headers(app, "agent-research-2", "inference:buy")
        error(verdict(client, other, "accept"), 403, "not_a_judge", "judge_id")
        app.state.clock.advance(600)
        error(verdict(client, buyer, "accept"), 409, "verdict_late", "job_id")

    def test_refusals(
        self, app: FastAPI, client: TestClient, buyer: Headers, winner: Headers
    ) -> None:
        error(verdict(client, buyer, "accept"), 404, "not_found", "job_id")
        open_validation(app, "requester")
        path = f"/inference/jobs/{JOB}/verdicts"
        error(verdict(client, winner, "accept"), 403, "missing_scope")
        bad = {"decision": "accept", "score": 1.5, "reason": "x"}
        error(client.post(path, json=bad, headers=buyer), 422, "invalid_request", "score")
        error(
            client.post(path, json={"decision": "maybe", "score": 1, "reason": "x"}, headers=buyer),
            422,
            "invalid_request",
            "decision",
        )
        error(
            client.post(path, json={"decision": "accept", "score": 1}, headers=buyer),
            422,
            "missing_field",
            "reason",
        )
        error(
            client.post(
                path,
                json={"decision": "accept", "score": 1, "reason": "x", "judge_id": SELLER},
                headers=buyer,
            ),
            403,
            "identity_not_yours",
            "judge_id",
        )

    def test_without_validators_to_draw_the_requester_judges(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        assert open_validation(app, "consensus", 3)["mode"] == "requester"
        ok(verdict(client, buyer, "accept"), 201)


class TestValidators:
    def test_one_drawn_validator_decides_and_no_one_else_may(
        self, app: FastAPI, client: TestClient, judges: dict[str, Headers], buyer: Headers
    ) -> None:
        found = open_validation(app, "random_validator")
        (chosen,) = drawn(found)
        assert open_validation(app, "random_validator") == found  # opened once
        bystander = next(name for name in VALIDATORS if name != chosen)
        error(verdict(client, judges[bystander], "accept"), 403, "not_a_judge", "judge_id")
        error(verdict(client, buyer, "accept"), 403, "not_a_judge")
        body = ok(verdict(client, judges[chosen], "accept"), 201)
        assert body["validation"]["status"] == "accepted"
        assert body["validation"]["drawn"] == [
            {"validator_id": chosen, "round": 0, "status": "answered"}
        ]
        error(verdict(client, judges[chosen], "accept"), 409, "verdict_closed")

    def test_the_weighted_consensus_decides_and_the_dissenter_loses_standing(
        self, app: FastAPI, client: TestClient, judges: dict[str, Headers], buyer: Headers
    ) -> None:
        three = drawn(open_validation(app, "consensus", 3))
        assert len(three) == 3
        first = ok(verdict(client, judges[three[0]], "reject", 0.1), 201)
        assert first["validation"]["status"] == "open"
        error(verdict(client, judges[three[0]], "accept"), 409, "verdict_recorded", "judge_id")
        ok(verdict(client, judges[three[1]], "accept", 0.9), 201)
        last = ok(verdict(client, judges[three[2]], "accept", 0.8), 201)
        assert (last["validation"]["status"], last["validation"]["score"]) == ("accepted", 0.85)
        dissenter = page(client, buyer, three[0])["validator"]
        assert dissenter["components"]["disagreed"] == 1 and dissenter["score"] == 0.333333
        assert page(client, buyer, three[1])["validator"]["components"]["agreed"] == 1


class TestDisputes:
    def test_fresh_validators_overturn_a_rejection(
        self,
        app: FastAPI,
        client: TestClient,
        judges: dict[str, Headers],
        buyer: Headers,
        winner: Headers,
    ) -> None:
        (first,) = drawn(open_validation(app, "random_validator"))
        assert ok(verdict(client, judges[first], "reject", 0.2), 201)["validation"]["status"] == (
            "rejected"
        )
        opened = ok(dispute(client, winner), 201)
        assert opened["dispute"]["status"] == "open"
        fresh = drawn(opened["validation"], 1)
        assert len(fresh) == 3 and first not in fresh
        assert opened["validation"]["status"] == "disputed"
        error(verdict(client, judges[first], "reject"), 403, "not_a_judge")
        for name in fresh:
            body = ok(verdict(client, judges[name], "accept", 0.9), 201)
        assert body["validation"]["status"] == "overturned"
        record = page(client, buyer, SELLER)["bidder"]["components"]
        assert (record["disputes_won"], record["completions"]) == (1, 1)
        assert page(client, buyer, first)["validator"]["components"]["disagreed"] == 1
        error(dispute(client, winner), 409, "already_disputed", "job_id")
        with work(app) as session:
            ended = verdicts.Judgement(JOB, "overturned", None, (), ())
            paid = settlement.settlement_of(session, ended, price=Decimal("0.3"))
        # The requester lost the dispute: the escrow pays the winner and every validator.
        fee = Decimal("0.01")
        assert paid.from_escrow == {SELLER: Decimal("0.3"), first: fee} | dict.fromkeys(fresh, fee)
        assert paid.winner_pays == {}

    def test_refusals(
        self,
        app: FastAPI,
        client: TestClient,
        judges: dict[str, Headers],
        buyer: Headers,
        winner: Headers,
    ) -> None:
        error(dispute(client, winner), 404, "not_found", "job_id")
        open_validation(app, "requester")
        stranger = key_headers(app, "provider-team-beta", "inference:sell")
        error(dispute(client, stranger), 404, "not_found", "job_id")
        error(dispute(client, winner), 409, "not_rejected", "job_id")
        ok(verdict(client, buyer, "reject", 0.1), 201)
        error(dispute(client, buyer), 403, "missing_scope")
        app.state.clock.advance(3_600)
        error(dispute(client, winner), 409, "dispute_window_closed", "job_id")
        error(
            client.post(f"/inference/jobs/{JOB}/disputes", json={}, headers=winner),
            422,
            "missing_field",
            "reason",
        )


def expire(app: FastAPI) -> list[tuple[str, str]]:
    """The timer's look at validations whose time ran out, as the job board will call it."""
    with work(app) as session:
        decided = expiry.expire_due(
            session,
            now=app.state.clock.now(),
            half_life_days=30,
            review_seconds=600,
            dispute_seconds=3_600,
            exclusion_threshold=0.2,
        )
        return [(j.job_id, j.status) for j in decided]


class TestTimeRunsOut:
    def test_a_silent_requester_accepts(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        open_validation(app, "requester")
        assert expire(app) == []
        app.state.clock.advance(600)
        assert expire(app) == [(JOB, "accepted")]
        assert expire(app) == []
        assert page(client, buyer, SELLER)["bidder"]["components"]["completions"] == 1

    def test_an_undisputed_rejection_becomes_final_and_a_bad_completion(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        open_validation(app, "requester")
        ok(verdict(client, buyer, "reject", 0.1), 201)
        app.state.clock.advance(3_600)
        assert expire(app) == [(JOB, "rejected_final")]
        components = page(client, buyer, SELLER)["bidder"]["components"]
        assert (components["judged"], components["acceptance_rate"]) == (1, 0)

    def test_a_validator_who_does_not_answer_is_replaced_and_loses_standing(
        self, app: FastAPI, client: TestClient, judges: dict[str, Headers], buyer: Headers
    ) -> None:
        (first,) = drawn(open_validation(app, "random_validator"))
        app.state.clock.advance(600)
        assert expire(app) == []
        found = ok(client.get(f"/inference/reputation/{first}", headers=buyer))["reputation"]
        assert found["validator"]["components"]["no_answers"] == 1
        error(verdict(client, judges[first], "accept"), 403, "not_a_judge")
        with work(app) as session:
            now_drawn = validation_page.validation_read(session, verdicts.judged(session, JOB))[
                "drawn"
            ]
        statuses = {d["validator_id"]: d["status"] for d in now_drawn}
        assert statuses.pop(first) == "missed"
        ((second, status),) = statuses.items()
        assert status == "pending"
        assert ok(verdict(client, judges[second], "accept"), 201)["validation"]["status"] == (
            "accepted"
        )

    def test_with_no_validator_left_the_requester_judges(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        lone = key_headers(app, "v-lone", "inference:validate")
        ok(client.post("/inference/validators", json={"stake": 1}, headers=lone), 201)
        assert drawn(open_validation(app, "random_validator")) == ["v-lone"]
        app.state.clock.advance(600)
        assert expire(app) == []
        body = ok(verdict(client, buyer, "accept"), 201)
        assert (body["validation"]["mode"], body["validation"]["status"]) == (
            "requester",
            "accepted",
        )


class TestTheBoardHears:
    def test_every_decision_reaches_the_registered_handler_in_its_transaction(
        self, app: FastAPI, client: TestClient, buyer: Headers, winner: Headers
    ) -> None:
        heard: list[tuple[str, str, bool]] = []

        def handler(session: Session, judgement: verdicts.Judgement, now: datetime) -> None:
            """Test double for the job board's handler: notes what it was told, and whether
            the decision's row is visible in the session it was handed."""
            found = verdicts.judged(session, judgement.job_id)
            heard.append((judgement.job_id, judgement.status, found.status == judgement.status))

        verdicts.register_judgement_handler(handler)
        try:
            open_validation(app, "requester", job_id="job_a")
            open_validation(app, "requester", job_id="job_b")
            ok(verdict(client, buyer, "accept", job_id="job_a"), 201)
            ok(verdict(client, buyer, "reject", job_id="job_b"), 201)
            app.state.clock.advance(3_600)
            expire(app)
        finally:
            verdicts.unregister_judgement_handler(handler)
        assert heard == [
            ("job_a", "accepted", True),
            ("job_b", "rejected", True),
            ("job_b", "rejected_final", True),
        ]

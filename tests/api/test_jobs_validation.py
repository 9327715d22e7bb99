"""Judging a submitted result on the job board: the requester accepts (paid), rejects (the
escrow back, the winner's stake slashed, a bad completion) or stays silent until the review
window ends (the timer accepts); drawn validators judge in time (their fee paid), late (replaced)
or by consensus; a rejection disputed and overturned (paid, the dispute's fees borne by the
requester) or upheld (borne by the winner). Every case ends with nothing held by the job and
the ledger's sums sound."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.app import create_app
from flow_memory.jobs import events
from flow_memory.jobs.models import Job
from flow_memory.jobs.timer import JobTimer, TickReport
from flow_memory.kit.clock import FrozenClock
from flow_memory.reputation import domain as reputation
from flow_memory.reputation import expiry
from flow_memory.reputation import repository as judged
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    MODEL,
    Bidder,
    account,
    assert_ledger_sound,
    bidder,
    get_job,
    placed,
    post_job,
    quiet_settings,
    tick,
)
from tests.assertions import error, ok
from tests.factories import BUYER, SELLER, Headers, admin_headers, key_headers

REVIEW = 600
ANSWER = 300
DISPUTE = 900
PRICE = Decimal("0.25")
FEE = Decimal("0.02")
RESULT = {
    "output": "An answer.",
    "model": MODEL,
    "usage": {"prompt_tokens": 9, "completion_tokens": 3},
}
VALIDATORS = ("v-beta", "v-delta", "v-gamma", "v-kappa", "v-sigma")


@pytest.fixture
def settings(database_url: str) -> Settings:
    base = quiet_settings(database_url, review_seconds=REVIEW)
    return replace(base, validator_answer_seconds=ANSWER, dispute_window_seconds=DISPUTE)


@pytest.fixture
def seller(app: FastAPI, client: TestClient) -> Bidder:
    """The winner-to-be, with a bid stake of 1 (a bad completion slashes 0.25 of it)."""
    found = bidder(client, app, SELLER)
    ok(client.post("/inference/stakes", json={"amount": 1}, headers=found.headers), 201)
    return found


@pytest.fixture
def judges(app: FastAPI, client: TestClient) -> dict[str, Headers]:
    """Validators who opted in, each with a key of its own and a stake of 1."""
    keys = {}
    for name in VALIDATORS:
        keys[name] = key_headers(app, name, "inference:validate", "inference:read")
        ok(client.post("/inference/validators", json={"stake": 1}, headers=keys[name]), 201)
    return keys


def submitted(
    app: FastAPI,
    client: TestClient,
    clock: FrozenClock,
    buyer: Headers,
    seller: Bidder,
    **validation: Any,
) -> str:
    """A job posted, won by ``seller`` at 0.25 when its window closes, and its result in."""
    body = {"validation": validation} if validation else {}
    job_id = str(post_job(client, buyer, **body)["job_id"])
    placed(client, seller.headers, job_id, seller.provider_id, price=float(PRICE))
    clock.advance(60)
    tick(app)
    answer = client.post(f"{JOBS}/{job_id}/result", json=RESULT, headers=seller.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["job"]["status"] == "submitted"
    return job_id


def verdict(
    client: TestClient, headers: Headers, job_id: str, decision: str, score: float = 0.9
) -> Any:
    body = {"decision": decision, "score": score, "reason": "checked against the request"}
    return client.post(f"{JOBS}/{job_id}/verdicts", json=body, headers=headers)


def validation(client: TestClient, headers: Headers, job_id: str) -> dict[str, Any]:
    return dict(ok(client.get(f"{JOBS}/{job_id}/validation", headers=headers))["validation"])


def drawn(client: TestClient, job_id: str, round_: int = 0, status: str = "pending") -> list[str]:
    found = validation(client, admin_headers(client.app), job_id)  # type: ignore[arg-type]
    return [
        d["validator_id"] for d in found["drawn"] if d["round"] == round_ and d["status"] == status
    ]


def kinds(client: TestClient, headers: Headers, job_id: str) -> list[str]:
    return [e["kind"] for e in get_job(client, headers, job_id)["events"]]


def outcome(app: FastAPI, identity_id: str, job_id: str, kind: str) -> bool:
    with app.state.session_factory() as session:
        found = judged.outcome_of_job(session, job_id=job_id, identity_id=identity_id, kind=kind)
        return found is not None


def ended_sound(client: TestClient, app: FastAPI, job_id: str, buyer: Headers) -> dict[str, Any]:
    """The job has ended, its requester holds nothing and the ledger's sums are sound."""
    job = get_job(client, buyer, job_id)
    assert job["ended_at"] is not None
    assert account(client, BUYER)["held"] == 0
    assert_ledger_sound(app)
    return job


class TestRequesterMode:
    def test_the_requester_accepts_and_the_winner_is_paid(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        job_id = submitted(app, client, clock, buyer, seller)
        assert account(client, BUYER)["held"] == Decimal("0.5")  # nothing paid yet
        assert account(client, SELLER)["balance"] == 0
        accepted = ok(verdict(client, buyer, job_id, "accept"), 201)
        assert accepted["validation"]["status"] == "accepted"

        job = ended_sound(client, app, job_id, buyer)
        assert (job["status"], job["economics"]["paid"]) == ("completed", 0.25)
        assert account(client, BUYER)["balance"] == -PRICE
        assert account(client, SELLER)["balance"] == PRICE
        assert kinds(client, buyer, job_id)[-4:] == [
            "job.submitted",
            "job.validation_opened",
            "job.verdict",
            "job.completed",
        ]
        assert outcome(app, SELLER, job_id, reputation.COMPLETION_GOOD)
        # A second verdict finds the result judged.
        error(verdict(client, buyer, job_id, "reject"), 409, "verdict_closed")

    def test_the_requester_rejects_then_the_dispute_window_ends_and_the_rejection_stands(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        job_id = submitted(app, client, clock, buyer, seller)
        ok(verdict(client, buyer, job_id, "reject", 0.1), 201)
        job = get_job(client, buyer, job_id)
        # Rejected, the escrow still held while the winner may dispute.
        assert (job["status"], job["ended_at"]) == ("rejected", None)
        assert account(client, BUYER)["held"] == Decimal("0.5")

        clock.advance(DISPUTE - 1)
        assert tick(app).judged == 0
        clock.advance(1)
        assert tick(app).judged == 1
        job = ended_sound(client, app, job_id, buyer)
        assert (job["status"], job["economics"]["paid"]) == ("rejected", None)
        # The escrow back whole, and a quarter of the winner's stake paid to the requester.
        assert account(client, BUYER)["balance"] == Decimal("0.25")
        assert account(client, SELLER) == {
            "balance": Decimal("-0.25"),
            "held": Decimal("0.75"),
            "available": Decimal("-1"),
        }
        assert outcome(app, SELLER, job_id, reputation.COMPLETION_BAD)
        assert kinds(client, buyer, job_id)[-2:] == ["job.rejected", "job.rejection_final"]
        # The window closed: no dispute now.
        answer = client.post(
            f"{JOBS}/{job_id}/disputes", json={"reason": "it was right"}, headers=seller.headers
        )
        error(answer, 409, "not_rejected")

    def test_silence_until_the_review_window_ends_accepts(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        job_id = submitted(app, client, clock, buyer, seller)
        clock.advance(REVIEW - 1)
        assert tick(app).validations == 0
        assert get_job(client, buyer, job_id)["status"] == "submitted"
        clock.advance(1)
        report = tick(app)
        assert (report.validations, report.judged) == (1, 1)
        job = ended_sound(client, app, job_id, buyer)
        assert (job["status"], job["economics"]["paid"]) == ("completed", 0.25)
        assert account(client, SELLER)["balance"] == PRICE
        assert tick(app).validations == 0  # acted on once
        error(verdict(client, buyer, job_id, "reject"), 409, "verdict_closed")

    def test_only_the_requester_judges(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        job_id = submitted(app, client, clock, buyer, seller)
        other = key_headers(app, "someone-else", "inference:buy", "inference:read")
        error(verdict(client, other, job_id, "accept"), 403, "not_a_judge")
        assert get_job(client, buyer, job_id)["status"] == "submitted"


class TestValidators:
    def test_a_drawn_validator_judges_in_time_and_earns_its_fee(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> None:
        mode = {"mode": "random_validator", "validators": 1, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        (judge,) = drawn(client, job_id)
        error(verdict(client, buyer, job_id, "accept"), 403, "not_a_judge")
        ok(verdict(client, judges[judge], job_id, "accept"), 201)

        job = ended_sound(client, app, job_id, buyer)
        assert job["status"] == "completed"
        assert account(client, BUYER)["balance"] == -(PRICE + FEE)
        assert account(client, SELLER)["balance"] == PRICE
        assert account(client, judge)["balance"] == FEE
        seen = validation(client, judges[judge], job_id)
        assert seen["decision"]["status"] == "accepted"
        assert seen["fees"] == [
            {"payee_id": judge, "amount": 0.02, "round": 0, "paid_by": "escrow"}
        ]

    def test_a_late_validator_is_replaced_and_its_standing_falls(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> None:
        mode = {"mode": "random_validator", "validators": 1, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        (late,) = drawn(client, job_id)
        clock.advance(ANSWER)
        report = tick(app)
        assert (report.validations, report.judged) == (1, 0)
        assert drawn(client, job_id, status="missed") == [late]
        (replacement,) = drawn(client, job_id)
        assert replacement != late
        assert outcome(app, late, job_id, reputation.VALIDATOR_NO_ANSWER)
        error(verdict(client, judges[late], job_id, "accept"), 403, "not_a_judge")
        assert "job.validators_drawn" in kinds(client, buyer, job_id)

        ok(verdict(client, judges[replacement], job_id, "accept"), 201)
        ended_sound(client, app, job_id, buyer)
        assert account(client, replacement)["balance"] == FEE
        assert account(client, late)["balance"] == 0  # no fee for a verdict it never gave
        # Of the escrow's two fees, the one nobody earned went back.
        assert account(client, BUYER)["balance"] == -(PRICE + FEE)

    def test_consensus_follows_the_majority_and_pays_every_validator_who_answered(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> None:
        mode = {"mode": "consensus", "validators": 3, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        first, second, third = drawn(client, job_id)
        ok(verdict(client, judges[first], job_id, "accept", 0.9), 201)
        ok(verdict(client, judges[second], job_id, "reject", 0.1), 201)
        assert get_job(client, buyer, job_id)["status"] == "submitted"  # one verdict to come
        ok(verdict(client, judges[third], job_id, "accept", 0.8), 201)

        job = ended_sound(client, app, job_id, buyer)
        assert job["status"] == "completed"
        assert account(client, BUYER)["balance"] == -(PRICE + 3 * FEE)
        for judge in (first, second, third):
            assert account(client, judge)["balance"] == FEE
        assert outcome(app, second, job_id, reputation.VALIDATOR_DISAGREED)
        assert outcome(app, first, job_id, reputation.VALIDATOR_AGREED)
        seen = validation(client, buyer, job_id)
        decisions = {v["judge_id"]: v["decision"] for v in seen["verdicts"]}
        assert decisions == {first: "accept", second: "reject", third: "accept"}
        assert all(v["reason"] == "checked against the request" for v in seen["verdicts"])

    def test_a_tie_draws_one_more_validator_whose_verdict_decides(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> None:
        mode = {"mode": "consensus", "validators": 2, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        first, second = drawn(client, job_id)
        ok(verdict(client, judges[first], job_id, "accept"), 201)
        ok(verdict(client, judges[second], job_id, "reject", 0.1), 201)
        (third,) = drawn(client, job_id)  # equal weights: a tie
        assert third not in (first, second)
        assert kinds(client, buyer, job_id)[-1] == "job.validators_drawn"
        ok(verdict(client, judges[third], job_id, "reject", 0.2), 201)

        assert get_job(client, buyer, job_id)["status"] == "rejected"
        clock.advance(DISPUTE)
        assert tick(app).judged == 1
        job = ended_sound(client, app, job_id, buyer)
        assert job["status"] == "rejected"
        for judge in (first, second, third):
            assert account(client, judge)["balance"] == FEE
        # Three fees where two were held: the third is drawn from the requester's account.
        assert account(client, BUYER)["balance"] == Decimal("0.25") - 3 * FEE


class TestDisputes:
    def rejected(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> tuple[str, str, list[str]]:
        """A result rejected by its validator, then disputed by the winner: (job, the
        validator who rejected it, the dispute's validators)."""
        mode = {"mode": "random_validator", "validators": 1, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        (judge,) = drawn(client, job_id)
        ok(verdict(client, judges[judge], job_id, "reject", 0.2), 201)
        assert get_job(client, buyer, job_id)["status"] == "rejected"
        answer = client.post(
            f"{JOBS}/{job_id}/disputes", json={"reason": "it was right"}, headers=seller.headers
        )
        ok(answer, 201)
        fresh = drawn(client, job_id, 1)
        assert len(fresh) == 3 and judge not in fresh
        assert kinds(client, buyer, job_id)[-2:] == ["job.rejected", "job.disputed"]
        return job_id, judge, fresh

    def test_a_dispute_overturned_pays_the_winner_and_the_requester_bears_its_fees(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> None:
        job_id, first, fresh = self.rejected(app, client, clock, buyer, seller, judges)
        for judge in fresh:
            ok(verdict(client, judges[judge], job_id, "accept"), 201)

        job = ended_sound(client, app, job_id, buyer)
        assert (job["status"], job["economics"]["paid"]) == ("completed", 0.25)
        assert account(client, SELLER)["balance"] == PRICE
        # The requester pays the price and all four validators' fees.
        assert account(client, BUYER)["balance"] == -(PRICE + 4 * FEE)
        for judge in (first, *fresh):
            assert account(client, judge)["balance"] == FEE
        assert outcome(app, SELLER, job_id, reputation.DISPUTE_WON)
        assert outcome(app, first, job_id, reputation.VALIDATOR_DISAGREED)
        seen = validation(client, seller.headers, job_id)
        assert (seen["status"], seen["dispute"]["status"]) == ("overturned", "won")
        assert {line["paid_by"] for line in seen["fees"]} == {"escrow"}

    def test_a_dispute_upheld_ends_the_job_rejected_and_the_winner_bears_its_fees(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> None:
        job_id, first, fresh = self.rejected(app, client, clock, buyer, seller, judges)
        for judge in fresh:
            ok(verdict(client, judges[judge], job_id, "reject", 0.1), 201)

        job = ended_sound(client, app, job_id, buyer)
        assert (job["status"], job["economics"]["paid"]) == ("rejected", None)
        # The requester paid the first validator's fee only, and got a quarter of the stake.
        assert account(client, BUYER)["balance"] == Decimal("0.25") - FEE
        # The winner paid the dispute's three fees and lost a quarter of its stake.
        assert account(client, SELLER)["balance"] == -(3 * FEE) - Decimal("0.25")
        for judge in (first, *fresh):
            assert account(client, judge)["balance"] == FEE
        assert outcome(app, SELLER, job_id, reputation.DISPUTE_LOST)
        assert outcome(app, SELLER, job_id, reputation.COMPLETION_BAD)
        final = get_job(client, buyer, job_id)["events"][-1]
        assert final["kind"] == "job.rejection_final"
        assert final["payload"]["decision"] == "upheld"
        assert (final["payload"]["fees_paid"], final["payload"]["dispute_fees_paid"]) == (
            0.02,
            0.06,
        )
        assert final["payload"]["slash_paid"] == 0.25
        seen = validation(client, buyer, job_id)
        assert (seen["status"], seen["dispute"]["status"]) == ("upheld", "lost")
        assert sorted(line["paid_by"] for line in seen["fees"]) == [
            "escrow",
            "winner",
            "winner",
            "winner",
        ]


def opted_in(app: FastAPI, client: TestClient, *names: str) -> dict[str, Headers]:
    """Validators who opted in (each with a stake of 1): only these may be drawn."""
    keys = {}
    for name in names:
        keys[name] = key_headers(app, name, "inference:validate", "inference:read")
        ok(client.post("/inference/validators", json={"stake": 1}, headers=keys[name]), 201)
    return keys


def last_event(client: TestClient, headers: Headers, job_id: str) -> dict[str, Any]:
    return dict(get_job(client, headers, job_id)["events"][-1])


class TestTiesAndWaits:
    """A tie the timer finds with no validator left to break it falls back to the requester's
    judgement; a dispute no validator can be drawn for waits for them."""

    def tied(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> str:
        """A consensus job whose only two validators tie, none left to break it; the timer
        finds the tie when their time runs out and hands the judgement to the requester."""
        keys = opted_in(app, client, "v-beta", "v-delta")
        mode = {"mode": "consensus", "validators": 2, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        ok(verdict(client, keys["v-beta"], job_id, "accept"), 201)
        ok(verdict(client, keys["v-delta"], job_id, "reject", 0.1), 201)
        assert kinds(client, buyer, job_id)[-1] == "job.verdict"  # no third could be drawn
        assert get_job(client, buyer, job_id)["status"] == "submitted"
        clock.advance(ANSWER)
        report = tick(app)
        assert (report.validations, report.judged) == (1, 0)
        turn = last_event(client, buyer, job_id)
        assert turn["kind"] == "job.validators_drawn"
        assert turn["payload"] | {"due_at": None} == {
            "job_id": job_id,
            "status": "submitted",
            "round": 0,
            "missed": 0,
            "validators": 0,
            "due_at": None,
            "tie": True,
            "judge": "requester",
        }
        seen = validation(client, buyer, job_id)
        assert seen["mode"] == "requester" and seen["status"] == "open"
        return job_id

    def test_a_tie_the_timer_finds_falls_back_to_the_requesters_verdict(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        job_id = self.tied(app, client, clock, buyer, seller)
        # The requester has its own review window, not a validator's.
        clock.advance(ANSWER)
        assert tick(app).judged == 0
        ok(verdict(client, buyer, job_id, "reject", 0.2), 201)
        assert get_job(client, buyer, job_id)["status"] == "rejected"
        clock.advance(DISPUTE)
        assert tick(app).judged == 1
        job = ended_sound(client, app, job_id, buyer)
        assert job["status"] == "rejected"
        assert outcome(app, SELLER, job_id, reputation.COMPLETION_BAD)
        # Both validators answered in time: both are paid, from the escrow.
        for judge in ("v-beta", "v-delta"):
            assert account(client, judge)["balance"] == FEE

    def test_the_requesters_silence_after_a_tie_accepts(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        job_id = self.tied(app, client, clock, buyer, seller)
        clock.advance(REVIEW)
        assert tick(app).judged == 1
        job = ended_sound(client, app, job_id, buyer)
        assert (job["status"], job["economics"]["paid"]) == ("completed", 0.25)
        assert outcome(app, SELLER, job_id, reputation.COMPLETION_GOOD)

    def test_a_dispute_with_no_validator_to_draw_waits_for_one(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        first = opted_in(app, client, "v-beta")
        mode = {"mode": "random_validator", "validators": 1, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        ok(verdict(client, first["v-beta"], job_id, "reject", 0.2), 201)
        answer = client.post(
            f"{JOBS}/{job_id}/disputes", json={"reason": "it was right"}, headers=seller.headers
        )
        ok(answer, 201)  # not refused: the only validator judged it already
        waiting = last_event(client, buyer, job_id)
        assert waiting["kind"] == "job.disputed"
        assert waiting["payload"]["validators"] == 0
        assert waiting["payload"]["waiting_for_validators"] is True
        seen = validation(client, seller.headers, job_id)
        assert (seen["status"], seen["round"]) == ("disputed", 1)
        assert drawn(client, job_id, 1) == []

        clock.advance(ANSWER)  # the next look, still nobody: it goes on waiting
        assert tick(app).judged == 0
        assert drawn(client, job_id, 1) == []
        assert get_job(client, buyer, job_id)["status"] == "rejected"

        fresh = opted_in(app, client, "v-gamma", "v-kappa")
        clock.advance(ANSWER)
        tick(app)
        assert sorted(drawn(client, job_id, 1)) == ["v-gamma", "v-kappa"]
        assert last_event(client, buyer, job_id)["kind"] == "job.validators_drawn"
        for keys in fresh.values():
            ok(verdict(client, keys, job_id, "accept"), 201)
        job = ended_sound(client, app, job_id, buyer)
        assert job["status"] == "completed"
        assert outcome(app, SELLER, job_id, reputation.DISPUTE_WON)

    def test_a_dispute_no_validator_could_hear_ends_unheard_and_the_rejection_stands(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers, seller: Bidder
    ) -> None:
        first = opted_in(app, client, "v-beta")
        mode = {"mode": "random_validator", "validators": 1, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        ok(verdict(client, first["v-beta"], job_id, "reject", 0.2), 201)
        disputed = client.post(
            f"{JOBS}/{job_id}/disputes", json={"reason": "it was right"}, headers=seller.headers
        )
        ok(disputed, 201)
        for _ in range(expiry.UNHEARD_WAITS - 1):  # looks that find nobody: it waits
            clock.advance(ANSWER)
            assert tick(app).judged == 0
            assert validation(client, seller.headers, job_id)["status"] == "disputed"
        clock.advance(ANSWER)  # the last look: nobody could hear it in time
        assert tick(app).judged == 1
        job = ended_sound(client, app, job_id, buyer)
        assert job["status"] == "rejected"
        seen = validation(client, seller.headers, job_id)
        assert seen["status"] == "rejected_final"
        assert seen["dispute"]["status"] == "unheard"
        assert outcome(app, SELLER, job_id, reputation.COMPLETION_BAD)
        assert not outcome(app, SELLER, job_id, reputation.DISPUTE_LOST)
        assert account(client, "v-beta")["balance"] == FEE  # the rejection's validator, paid


class TestTimers:
    def test_servers_on_one_database_accept_each_silent_review_once(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        settings: Settings,
    ) -> None:
        ids = []
        for _ in range(6):
            ids.append(submitted(app, client, clock, buyer, seller))
        clock.advance(REVIEW)
        others = [create_app(settings, clock=clock) for _ in range(2)]
        start = threading.Barrier(3)
        reports: list[TickReport] = []

        def run(timer: JobTimer) -> None:
            start.wait()
            reports.append(timer.tick())

        try:
            threads = [
                threading.Thread(target=run, args=(a.state.job_timer,)) for a in (app, *others)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for other in others:
                other.state.engine.dispose()
                other.state.read_engine.dispose()
        assert not any(r.failed for r in reports)
        assert sum(r.judged for r in reports) == len(ids)
        for job_id in ids:
            assert kinds(client, buyer, job_id).count("job.completed") == 1
            assert get_job(client, buyer, job_id)["status"] == "completed"
        assert account(client, SELLER)["balance"] == PRICE * len(ids)
        assert account(client, BUYER)["held"] == 0
        assert_ledger_sound(app)


class TestReading:
    def test_who_may_read_a_validation(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        buyer: Headers,
        seller: Bidder,
        judges: dict[str, Headers],
    ) -> None:
        mode = {"mode": "random_validator", "validators": 1, "validator_fee": float(FEE)}
        job_id = submitted(app, client, clock, buyer, seller, **mode)
        (judge,) = drawn(client, job_id)
        for headers in (buyer, seller.headers, judges[judge]):
            seen = validation(client, headers, job_id)
            assert (seen["mode"], seen["status"], seen["decision"]) == (
                "random_validator",
                "open",
                None,
            )
        auditor = key_headers(app, "auditor", "inference:audit", "inference:read")
        assert validation(client, auditor, job_id)["winner_id"] == SELLER
        other = next(name for name in VALIDATORS if name != judge)
        error(client.get(f"{JOBS}/{job_id}/validation", headers=judges[other]), 404, "not_found")
        # A job whose result has not arrived has no validation.
        fresh = post_job(client, buyer)["job_id"]
        error(client.get(f"{JOBS}/{fresh}/validation", headers=buyer), 404, "not_found")


def test_a_judging_event_wakes_the_timer_when_its_judges_time_runs_out(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    posted = post_job(client, buyer)
    now = app.state.clock.now()
    with app.state.session_factory() as session:
        job = session.get(Job, posted["job_id"])
        assert job is not None
        assert events.due_of(session) is None
        judged_by = now + timedelta(seconds=90)
        payload = {"mode": "requester", "validators": 0, "due_at": judged_by}
        events.record(session, job, events.VALIDATION_OPENED, payload, now=now)
        assert events.due_of(session) == judged_by  # the timer is told on commit
        events.record(session, job, events.REJECTED, {"dispute_until": now}, now=now)
        assert events.due_of(session) == now  # the earliest moment
        session.rollback()

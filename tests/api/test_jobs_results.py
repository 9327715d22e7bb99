"""The winner's side: its assignment, the result archived under the SHA-256 of its canonical
encoding, a replay answered as the first upload, other content refused, the payment, who may
read a result, and where a result never goes."""

from __future__ import annotations

import hashlib
import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.clock import FrozenClock
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    MODEL,
    PROMPT,
    SELLER_B,
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
from tests.factories import BUYER, SELLER, Headers, key_headers

OUTPUT = "A sealed-bid auction takes secret offers. Grüße — the lowest wins."


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


@pytest.fixture
def winner(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER)


@pytest.fixture
def loser(app: FastAPI, client: TestClient) -> Bidder:
    return bidder(client, app, SELLER_B)


@pytest.fixture
def awarded(
    client: TestClient, clock: FrozenClock, buyer: Headers, winner: Bidder, loser: Bidder
) -> str:
    """A sealed job awarded to ``winner`` at 0.2 over ``loser``'s 0.3."""
    job_id = post_job(client, buyer)["job_id"]
    placed(client, winner.headers, job_id, winner.provider_id, price=0.2)
    placed(client, loser.headers, job_id, loser.provider_id, price=0.3)
    clock.advance(60)
    tick(client.app)  # type: ignore[arg-type]
    return str(job_id)


def result_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "output": OUTPUT,
        "model": MODEL,
        "usage": {"prompt_tokens": 16, "completion_tokens": 18, "total_tokens": 34},
        "timings": {"queue_s": 0.25, "total_s": 2.50},
    }
    body.update(overrides)
    return body


def upload(client: TestClient, headers: Headers, job_id: str, **overrides: Any) -> httpx.Response:
    return client.post(f"{JOBS}/{job_id}/result", json=result_body(**overrides), headers=headers)


def refusal(answer: httpx.Response) -> tuple[int, str, str | None]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error["field"]


class TestAssignment:
    def test_only_the_winner_reads_the_prompt_and_only_after_the_award(
        self,
        app: FastAPI,
        client: TestClient,
        buyer: Headers,
        winner: Bidder,
        loser: Bidder,
        awarded: str,
    ) -> None:
        answer = client.get(f"{JOBS}/{awarded}/assignment", headers=winner.headers)
        assert answer.status_code == 200, answer.text
        assignment = answer.json()["assignment"]
        assert assignment["request"]["prompt"] == PROMPT
        assert (assignment["price"], assignment["bidder_id"]) == (0.2, SELLER)
        assert assignment["result_due_at"] == "2026-06-17T00:06:00Z"
        assert answer.json()["funds_moved"] is False
        for headers in (loser.headers, key_headers(app, "x", "inference:sell")):
            refused = client.get(f"{JOBS}/{awarded}/assignment", headers=headers)
            assert refusal(refused) == (404, "not_found", "job_id")
            assert PROMPT not in refused.text
        needs_sell = client.get(f"{JOBS}/{awarded}/assignment", headers=buyer)
        assert refusal(needs_sell) == (403, "missing_scope", "scope")
        fresh = post_job(client, buyer)["job_id"]
        early = client.get(f"{JOBS}/{fresh}/assignment", headers=winner.headers)
        assert refusal(early) == (409, "job_not_awarded", "job_id")


class TestUpload:
    def test_the_result_is_archived_by_its_hash_and_the_winner_paid(
        self, app: FastAPI, client: TestClient, buyer: Headers, winner: Bidder, awarded: str
    ) -> None:
        answer = upload(client, winner.headers, awarded)
        assert answer.status_code == 201, answer.text
        body = answer.json()
        document = {
            "job_id": awarded,
            "model": MODEL,
            "output": OUTPUT,
            "timings": {"queue_s": 0.25, "total_s": 2.5},
            "usage": {"completion_tokens": 18, "prompt_tokens": 16, "total_tokens": 34},
        }
        canonical = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        assert body["result"]["result_hash"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
        assert body["result"]["size_bytes"] == len(canonical)
        assert body["result"]["encoding"] == "flow_memory.canonical_json.v1"
        assert (body["replayed"], body["job"]["status"]) == (False, "completed")
        assert body["job"]["economics"]["paid"] == 0.2
        assert body["job"]["result_hash"] == body["result"]["result_hash"]
        kinds = [e["kind"] for e in get_job(client, buyer, awarded)["events"]]
        assert kinds[-3:] == ["job.submitted", "job.validation_opened", "job.completed"]
        assert account(client, SELLER)["balance"] == Decimal("0.2")
        assert account(client, BUYER) == {
            "balance": Decimal("-0.2"),
            "held": Decimal(0),
            "available": Decimal("-0.2"),
        }
        assert_ledger_sound(app)

    def test_every_reader_sees_the_results_automatic_checks(
        self, client: TestClient, buyer: Headers, winner: Bidder, awarded: str
    ) -> None:
        answer = upload(client, winner.headers, awarded)
        checks = answer.json()["result"]["checks"]
        assert checks["passed"] is True, checks
        assert checks["model_awarded"] == {"passed": True, "awarded": MODEL, "claimed": MODEL}
        assert checks["on_time"]["result_due_at"] == "2026-06-17T00:06:00Z"
        path = f"/inference/results/{answer.json()['result']['result_hash']}"
        read = client.get(path, headers=buyer)
        assert read.status_code == 200, read.text
        assert read.json()["result"]["checks"] == checks

    def test_a_result_claiming_another_model_or_implausible_usage_shows_its_failed_checks(
        self, client: TestClient, winner: Bidder, awarded: str
    ) -> None:
        answer = upload(
            client,
            winner.headers,
            awarded,
            model="another-model",
            usage={"prompt_tokens": 16, "completion_tokens": 100_000},
        )
        assert answer.status_code == 201, answer.text  # judged by whoever judges, not refused
        checks = answer.json()["result"]["checks"]
        failed = {
            name for name, check in checks.items() if name != "passed" and not check["passed"]
        }
        assert failed == {"model_awarded", "completion_tokens_plausible"}
        assert checks["passed"] is False
        completion = checks["completion_tokens_plausible"]
        assert completion["reported"] == 100_000
        assert completion["plausible_to"] <= 500  # the job's max_tokens bounds it

    def test_the_same_result_again_is_a_replay_other_content_is_409(
        self, app: FastAPI, client: TestClient, winner: Bidder, awarded: str
    ) -> None:
        first = upload(client, winner.headers, awarded)
        again = upload(
            client, winner.headers, awarded, timings={"total_s": "2.5", "queue_s": 0.250}
        )
        assert again.status_code == 200, again.text
        assert again.json()["replayed"] is True
        assert again.json()["result"] == first.json()["result"]
        other = upload(client, winner.headers, awarded, output="Something else.")
        assert refusal(other) == (409, "result_conflict", "output")
        assert first.json()["result"]["result_hash"] in other.json()["error"]["hint"]
        assert account(client, SELLER)["balance"] == Decimal("0.2")  # paid once
        assert_ledger_sound(app)

    def test_refusals(
        self, client: TestClient, buyer: Headers, winner: Bidder, loser: Bidder, awarded: str
    ) -> None:
        assert refusal(upload(client, loser.headers, awarded)) == (404, "not_found", "job_id")
        assert refusal(upload(client, buyer, awarded)) == (403, "missing_scope", "scope")
        assert refusal(upload(client, winner.headers, "job_nope")) == (404, "not_found", "job_id")
        open_job = post_job(client, buyer)["job_id"]
        assert refusal(upload(client, winner.headers, open_job)) == (
            409,
            "job_not_awarded",
            "job_id",
        )
        missing = upload(client, winner.headers, awarded, usage={"prompt_tokens": 1})
        assert refusal(missing) == (422, "missing_field", "usage.completion_tokens")
        wallet = upload(client, winner.headers, awarded, payout_address="x")
        assert refusal(wallet) == (422, "forbidden_material", "payout_address")
        assert get_job(client, buyer, awarded)["status"] == "awarded"

    def test_forbidden_material_in_a_result_is_refused_and_never_stored(
        self, client: TestClient, buyer: Headers, winner: Bidder, awarded: str
    ) -> None:
        leaked = "use the key sk-proj-" + "Q7x" * 16 + " to call it"
        answer = upload(client, winner.headers, awarded, output=leaked)
        assert refusal(answer) == (422, "forbidden_material", "output")
        assert "Q7xQ7x" not in answer.text
        job = get_job(client, buyer, awarded)
        assert (job["status"], job["result_hash"]) == ("awarded", None)


class TestReading:
    def test_the_requester_the_winner_and_auditors_read_it_no_one_else(
        self,
        app: FastAPI,
        client: TestClient,
        buyer: Headers,
        winner: Bidder,
        loser: Bidder,
        awarded: str,
    ) -> None:
        result_hash = upload(client, winner.headers, awarded).json()["result"]["result_hash"]
        route = f"/inference/results/{result_hash}"
        auditor = key_headers(app, "auditor", "inference:read", "inference:audit")
        for headers in (buyer, winner.headers, auditor):
            answer = client.get(route, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["result"]["output"] == OUTPUT
            assert answer.json()["result"]["timings"] == {"queue_s": 0.25, "total_s": 2.5}
        for headers in (loser.headers, key_headers(app, "agent-research-2", "inference:read")):
            assert refusal(client.get(route, headers=headers)) == (
                404,
                "not_found",
                "result_hash",
            )
        assert refusal(client.get("/inference/results/sha256:" + "0" * 64, headers=buyer))[0] == 404
        assert client.get("/inference/results/not-a-hash", headers=buyer).status_code == 422

    def test_a_result_never_enters_logs_events_or_exports(
        self,
        app: FastAPI,
        client: TestClient,
        buyer: Headers,
        winner: Bidder,
        awarded: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        upload(client, winner.headers, awarded)
        auditor = key_headers(app, "auditor", "inference:read", "inference:audit")
        texts = [
            client.get(f"{JOBS}/{awarded}", headers=buyer).text,
            client.get(JOBS, headers=buyer).text,
            client.get("/inference/market/feed", headers=buyer).text,
            client.get(
                f"{JOBS}/stream", params={"after": 0, "follow": "false"}, headers=buyer
            ).text,
            client.get("/inference/ledger/export", headers=auditor).text,
            client.get("/inference/analytics/export", headers=auditor).text,
            caplog.text,
        ]
        for text in texts:
            assert "sealed-bid auction takes" not in text
            assert PROMPT not in text

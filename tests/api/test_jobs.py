"""Posting jobs and reading them: the escrow held, what sealed and open jobs show, the list's
filters and cursor, and every refusal of a post, each naming its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.clock import FrozenClock
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    JOBS,
    PROMPT,
    account,
    assert_ledger_sound,
    bidder,
    enforce,
    get_job,
    grant,
    job_body,
    post_job,
    quiet_settings,
)
from tests.factories import BUYER, SELLER, Headers, admin_headers, key_headers, seller_headers


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url)


def refusal(answer: Any) -> tuple[int, str, str | None]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error["field"]


class TestPosting:
    def test_a_job_is_open_with_its_escrow_held(self, client: TestClient, buyer: Headers) -> None:
        job = post_job(client, buyer)
        assert job["status"] == "open"
        assert job["requester_id"] == BUYER
        assert job["job_id"].startswith("job_")
        assert job["economics"] == {
            "max_price": 0.5,
            "payment_mode": "auction",
            "currency": "USD_CREDIT",
            "escrow": 0.5,
            "paid": None,
        }
        assert job["bids_close_at"] == job["expires_at"] == "2026-06-17T00:01:00Z"
        assert [e["kind"] for e in job["events"]] == ["job.posted"]
        assert account(client, BUYER) == {
            "balance": Decimal(0),
            "held": Decimal("0.5"),
            "available": Decimal("-0.5"),
        }
        assert_ledger_sound(client.app)  # type: ignore[arg-type]

    def test_validator_fees_are_held_with_the_price(
        self, client: TestClient, buyer: Headers
    ) -> None:
        validation = {"mode": "consensus", "validators": 3, "validator_fee": 0.01}
        job = post_job(client, buyer, validation=validation)
        assert job["validation"] == validation
        assert job["economics"]["escrow"] == 0.53
        assert account(client, BUYER)["held"] == Decimal("0.53")

    def test_an_enforced_account_holds_what_it_has_and_refuses_more(
        self, client: TestClient, buyer: Headers
    ) -> None:
        enforce(client, BUYER)
        grant(client, BUYER, "0.7", key="jobs-credit")
        post_job(client, buyer)
        refused = client.post(JOBS, json=job_body(), headers=buyer)
        assert refused.status_code == 402, refused.text
        assert refusal(refused) == (402, "insufficient_credit", "economics.max_price")
        assert refused.json()["funds_moved"] is False
        assert account(client, BUYER) == {
            "balance": Decimal("0.7"),
            "held": Decimal("0.5"),
            "available": Decimal("0.2"),
        }
        listed = client.get(JOBS, headers=buyer).json()
        assert listed["count"] == 1  # the refused job left no row

    def test_an_earlier_expiry_closes_the_window_then(
        self, client: TestClient, buyer: Headers
    ) -> None:
        job = post_job(client, buyer, expires_at="2026-06-17T00:00:30Z")
        assert job["bids_close_at"] == job["expires_at"] == "2026-06-17T00:00:30Z"

    def test_messages_are_sized_as_the_prompt_is(self, client: TestClient, buyer: Headers) -> None:
        request = {
            "model_hint": "codegen",
            "messages": [
                {"role": "system", "content": "You write Python."},
                {"role": "user", "content": "Reverse a list."},
            ],
            "max_tokens": 100,
        }
        job = post_job(client, buyer, request=request, visibility="open")
        assert job["request"]["size"] == {
            "input_characters": 32,
            "messages": 2,
            "estimated_input_tokens": 8,
            "max_tokens": 100,
            "estimated_tokens": 108,
        }
        assert job["request"]["messages"] == request["messages"]

    def test_an_owner_posts_for_an_identity_it_operates(
        self, client: TestClient, buyer: Headers
    ) -> None:
        agent = client.post(
            "/inference/agents", json={"kind": "bound", "display_name": "poster"}, headers=buyer
        ).json()["agent"]["agent_id"]
        job = post_job(client, buyer, requester_id=agent)
        assert job["requester_id"] == agent
        # A bound agent's escrow is its operator's to hold.
        assert account(client, BUYER)["held"] == Decimal("0.5")


class TestVisibility:
    def test_a_sealed_job_shows_no_one_its_prompt(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        job = post_job(client, buyer)
        seller = bidder(client, app, SELLER)
        for headers in (buyer, seller.headers, admin_headers(app)):
            for read in (
                get_job(client, headers, job["job_id"]),
                client.get(JOBS, headers=headers).json()["jobs"][0],
            ):
                assert read["request"]["prompt"] is None
                assert read["request"]["messages"] is None
                assert read["request"]["size"]["estimated_tokens"] == 516
            assert PROMPT not in client.get(f"{JOBS}/{job['job_id']}", headers=headers).text

    def test_an_open_job_shows_its_prompt_to_readers(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        job = post_job(client, buyer, visibility="open")
        reader = key_headers(app, "someone", "inference:read")
        assert get_job(client, reader, job["job_id"])["request"]["prompt"] == PROMPT


class TestListing:
    def test_filters_and_the_cursor(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, buyer: Headers
    ) -> None:
        other = key_headers(app, "agent-research-2", "inference:buy", "inference:read")
        made = []
        for index in range(5):
            price = str(Decimal("0.1") * (index + 1))
            hint = "chat" if index % 2 else "codegen"
            headers = buyer if index < 4 else other
            made.append(
                post_job(
                    client,
                    headers,
                    economics={"max_price": price},
                    request={"model_hint": hint, "prompt": "p", "max_tokens": 5},
                )
            )
            clock.advance(1)
        client.post(f"{JOBS}/{made[0]['job_id']}/cancel", headers=buyer)

        def ids(**params: Any) -> list[str]:
            answer = client.get(JOBS, params=params, headers=buyer)
            assert answer.status_code == 200, answer.text
            return [j["job_id"] for j in answer.json()["jobs"]]

        newest_first = [j["job_id"] for j in reversed(made)]
        assert ids() == newest_first
        assert ids(status="cancelled") == [made[0]["job_id"]]
        assert ids(model_hint="chat") == [made[3]["job_id"], made[1]["job_id"]]
        assert ids(requester_id="agent-research-2") == [made[4]["job_id"]]
        assert ids(price_min="0.2", price_max="0.3") == [made[2]["job_id"], made[1]["job_id"]]
        first = client.get(JOBS, params={"limit": 2}, headers=buyer).json()
        assert first["count"] == 2 and first["next_cursor"]
        rest = ids(limit=10, cursor=first["next_cursor"])
        assert [j["job_id"] for j in first["jobs"]] + rest == newest_first

    def test_a_cursor_not_given_out_is_refused(self, client: TestClient, buyer: Headers) -> None:
        answer = client.get(JOBS, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=buyer)
        assert refusal(answer) == (422, "invalid_cursor", "cursor")

    def test_an_unknown_job_is_404(self, client: TestClient, buyer: Headers) -> None:
        assert refusal(client.get(f"{JOBS}/job_nope", headers=buyer)) == (
            404,
            "not_found",
            "job_id",
        )


class TestRefusals:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            (
                {"economics": {"max_price": 0.5, "escrow_address": "0x..."}},
                "economics.escrow_address",
            ),
            ({"requester": {"address": "0x...", "reputation": 0.92}}, "requester.address"),
            ({"wallet": "mine"}, "wallet"),
            ({"payoutWallet": {"id": 1}}, "payoutWallet"),
        ],
    )
    def test_seed_payment_fields_are_value_transfer_material(
        self, client: TestClient, buyer: Headers, change: dict[str, Any], field: str
    ) -> None:
        answer = client.post(JOBS, json=job_body(**change), headers=buyer)
        assert refusal(answer) == (422, "forbidden_material", field)
        assert "0x..." not in answer.text
        assert client.get(JOBS, headers=buyer).json()["count"] == 0

    def test_a_wallet_address_anywhere_is_refused_by_the_guard(
        self, client: TestClient, buyer: Headers
    ) -> None:
        prompt = "send the answer to 0x52908400098527886E0F7030069857D2E4169EE7"
        body = job_body(request={"model_hint": "chat", "prompt": prompt, "max_tokens": 5})
        answer = client.post(JOBS, json=body, headers=buyer)
        assert refusal(answer) == (422, "forbidden_material", "request.prompt")
        assert "0x5290" not in answer.text

    @pytest.mark.parametrize(
        ("change", "code", "field"),
        [
            ({"requester_id": "agent-research-2"}, "identity_not_yours", "requester_id"),
            ({"economics": {"max_price": 0}}, "invalid_request", "economics.max_price"),
            ({"economics": {"max_price": 1, "payment_mode": "swap"}}, "invalid_request",
             "economics.payment_mode"),
            ({"economics": {"max_price": 1, "max_price_ant": 0.5}}, "unknown_field",
             "economics.max_price_ant"),
            ({"expires_at": "2026-06-16T23:59:59Z"}, "expires_in_past", "expires_at"),
            ({"expires_at": "2026-06-18T00:00:00"}, "invalid_request", "expires_at"),
            ({"bid_window_seconds": 0}, "invalid_request", "bid_window_seconds"),
            ({"min_reputation": 1.5}, "invalid_request", "min_reputation"),
            ({"visibility": "public"}, "invalid_request", "visibility"),
            ({"validation": {"mode": "consensus", "validators": 1}}, "invalid_request",
             "validation.validators"),
            ({"validation": {"mode": "requester", "validators": 2}}, "invalid_request",
             "validation.validators"),
        ],
    )  # fmt: skip
    def test_each_bad_field_is_named(
        self, client: TestClient, buyer: Headers, change: dict[str, Any], code: str, field: str
    ) -> None:
        answer = client.post(JOBS, json=job_body(**change), headers=buyer)
        assert refusal(answer)[1:] == (code, field), answer.text
        assert answer.status_code in (403, 422)
        assert answer.json()["dry_run_only"] is True

    def test_prompt_and_messages_are_one_or_the_other(
        self, client: TestClient, buyer: Headers
    ) -> None:
        both = {
            "model_hint": "chat",
            "prompt": "p",
            "messages": [{"role": "user", "content": "m"}],
            "max_tokens": 5,
        }
        for request in (both, {"model_hint": "chat", "max_tokens": 5}):
            answer = client.post(JOBS, json=job_body(request=request), headers=buyer)
            assert answer.status_code == 422, answer.text
            fields = {p["field"] for p in answer.json()["error"]["problems"]}
            assert fields == {"request.prompt", "request.messages"}

    def test_posting_needs_inference_buy(self, app: FastAPI, client: TestClient) -> None:
        assert refusal(client.post(JOBS, json=job_body())) == (401, "unauthenticated", None)
        answer = client.post(JOBS, json=job_body(), headers=seller_headers(app))
        assert refusal(answer) == (403, "missing_scope", "scope")
        assert "inference:buy" in answer.json()["error"]["message"]

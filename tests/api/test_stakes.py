"""Bidders' stakes: ledger holds on the paying account, listed to whom they belong, withdrawn
unless the jobs held need them, and slashed to a wronged requester once per job."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.reputation import stakes
from flow_memory.settings import Settings
from tests.api.jobs_helpers import (
    account,
    assert_ledger_sound,
    bidder,
    enforce,
    grant,
    placed,
    post_job,
    quiet_settings,
)
from tests.api.test_reputation import agent, work
from tests.assertions import error, ok
from tests.factories import BUYER, SELLER, Headers, key_headers

STAKES = "/inference/stakes"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return quiet_settings(database_url, bid_rules=True)


@pytest.fixture
def staker(app: FastAPI) -> Headers:
    return key_headers(app, SELLER, "inference:sell", "inference:buy", "inference:read")


def stake(client: TestClient, headers: Headers, amount: Any, **body: Any) -> dict[str, Any]:
    answer = client.post(STAKES, json={"amount": amount, **body}, headers=headers)
    return dict(ok(answer, 201)["stake"])


def slash(app: FastAPI, bidder_id: str, job_id: str, payee_id: str = BUYER) -> list[Decimal]:
    """Slash as the job board will after a no-show; the amounts taken."""
    with work(app) as session:
        taken = stakes.slash(
            session,
            bidder_id=bidder_id,
            job_id=job_id,
            payee_id=payee_id,
            reason="no_show",
            share=0.25,
            now=app.state.clock.now(),
        )
        return sorted((t.amount for t in taken), reverse=True)


class TestStaking:
    def test_a_stake_is_a_hold_on_the_stakers_account_until_withdrawn(
        self, app: FastAPI, client: TestClient, staker: Headers
    ) -> None:
        placed_stake = stake(client, staker, 2)
        assert placed_stake["identity_id"] == placed_stake["payer_id"] == SELLER
        assert (placed_stake["amount"], placed_stake["status"]) == (2, "active")
        assert account(client, SELLER)["held"] == 2
        listed = ok(client.get(STAKES, headers=staker))["stakes"]
        assert [s["stake_id"] for s in listed] == [placed_stake["stake_id"]]
        path = f"{STAKES}/{placed_stake['stake_id']}"
        withdrawn = ok(client.delete(path, headers=staker))["stake"]
        assert withdrawn["status"] == "withdrawn" and withdrawn["withdrawn_at"] is not None
        assert account(client, SELLER)["held"] == 0
        assert ok(client.delete(path, headers=staker))["stake"]["status"] == "withdrawn"
        assert account(client, SELLER)["held"] == 0
        assert_ledger_sound(app)

    def test_a_bound_agents_stake_is_held_on_its_operators_account(
        self, client: TestClient, staker: Headers
    ) -> None:
        bound = agent(client, staker, "bound")
        placed_stake = stake(client, staker, "1.5", identity_id=bound)
        assert (placed_stake["identity_id"], placed_stake["payer_id"]) == (bound, SELLER)
        assert account(client, SELLER)["held"] == Decimal("1.5")

    def test_the_stake_bounds_the_jobs_held_and_is_kept_while_they_need_it(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        alpha = bidder(client, app, "s-alpha")
        first = stake(client, alpha.headers, 1)
        page = ok(client.get("/inference/reputation/s-alpha", headers=buyer))["reputation"]
        assert page["bidder"]["capacity"]["stake_covers"] == 1
        assert page["bidder"]["capacity"]["limit"] == 1
        job_id = post_job(client, buyer, economics={"max_price": 0.5, "payment_mode": "fixed"})
        placed(client, alpha.headers, job_id["job_id"], alpha.provider_id)
        error(
            client.delete(f"{STAKES}/{first['stake_id']}", headers=alpha.headers),
            409,
            "stake_in_use",
            "stake_id",
        )
        second = stake(client, alpha.headers, 1)
        ok(client.delete(f"{STAKES}/{first['stake_id']}", headers=alpha.headers))
        error(
            client.delete(f"{STAKES}/{second['stake_id']}", headers=alpha.headers),
            409,
            "stake_in_use",
        )

    def test_refusals(self, app: FastAPI, client: TestClient, staker: Headers) -> None:
        other = key_headers(app, "provider-team-beta", "inference:sell", "inference:read")
        error(
            client.post(STAKES, json={"amount": 1, "identity_id": BUYER}, headers=staker),
            403,
            "identity_not_yours",
            "identity_id",
        )
        error(client.post(STAKES, json={"amount": 0}, headers=staker), 422, "invalid_request")
        error(
            client.post(STAKES, json={"amount": 1, "wallet": "x"}, headers=staker),
            422,
            "unknown_field",
            "wallet",
        )
        buyer_only = key_headers(app, BUYER, "inference:buy", "inference:read")
        error(client.post(STAKES, json={"amount": 1}, headers=buyer_only), 403, "missing_scope")
        mine = stake(client, staker, 1)
        error(client.delete(f"{STAKES}/{mine['stake_id']}", headers=other), 404, "not_found")
        error(client.delete(f"{STAKES}/stake_missing", headers=staker), 404, "not_found")
        error(
            client.get(STAKES, params={"identity_id": SELLER}, headers=other),
            403,
            "identity_not_yours",
        )
        auditor = key_headers(app, "auditor", "inference:audit", "inference:read")
        assert ok(client.get(STAKES, params={"identity_id": SELLER}, headers=auditor))["count"] == 1

    def test_an_enforced_account_short_of_the_stake_is_refused_and_nothing_is_held(
        self, client: TestClient, staker: Headers
    ) -> None:
        grant(client, SELLER, "1", key="seed")
        enforce(client, SELLER)
        error(
            client.post(STAKES, json={"amount": 2}, headers=staker),
            402,
            "insufficient_credit",
            "amount",
        )
        assert ok(client.get(STAKES, headers=staker))["count"] == 0
        assert account(client, SELLER)["held"] == 0
        assert stake(client, staker, 1)["amount"] == 1


class TestSlashing:
    def test_a_share_of_each_stake_goes_to_the_requester_once_per_job(
        self, app: FastAPI, client: TestClient, staker: Headers
    ) -> None:
        first = stake(client, staker, 2)
        stake(client, staker, "0.4")
        assert slash(app, SELLER, "job_one") == [Decimal("0.5"), Decimal("0.1")]
        assert slash(app, SELLER, "job_one") == [Decimal("0.5"), Decimal("0.1")]  # a replay
        assert account(client, BUYER)["balance"] == Decimal("0.6")
        assert account(client, SELLER)["held"] == Decimal("1.8")
        after = {s["stake_id"]: s for s in ok(client.get(STAKES, headers=staker))["stakes"]}
        assert (after[first["stake_id"]]["amount"], after[first["stake_id"]]["slashed"]) == (
            1.5,
            0.5,
        )
        assert after[first["stake_id"]]["hold_id"] != first["hold_id"]
        assert slash(app, SELLER, "job_two") == [Decimal("0.375"), Decimal("0.075")]
        assert account(client, BUYER)["balance"] == Decimal("1.05")
        ok(client.delete(f"{STAKES}/{first['stake_id']}", headers=staker))
        assert account(client, SELLER)["held"] == Decimal("0.225")
        assert_ledger_sound(app)

    def test_a_bound_agents_failure_slashes_its_operators_stake(
        self, app: FastAPI, client: TestClient, staker: Headers
    ) -> None:
        bound = agent(client, staker, "bound")
        stake(client, staker, 4)
        assert slash(app, bound, "job_one") == [Decimal(1)]
        assert account(client, BUYER)["balance"] == 1

    def test_no_stake_no_slash(self, app: FastAPI) -> None:
        assert slash(app, "s-nobody", "job_one") == []

    @pytest.mark.parametrize(
        ("amount", "share", "taken"),
        [("1", "0.25", "0.25"), ("0.000000000000000001", "0.5", "0"), ("3", "1", "3")],
    )
    def test_the_share_rounds_down_and_never_exceeds_the_stake(
        self, amount: str, share: str, taken: str
    ) -> None:
        assert stakes.slash_share(Decimal(amount), Decimal(share)) == Decimal(taken)

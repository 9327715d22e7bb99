"""Validators opt in with a stake (scope inference:validate), are listed with their standing,
and withdraw (their stake released); refused when already in, below the floor, short of credit
or acting for someone else."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.reputation import validators
from tests.api.jobs_helpers import account, assert_ledger_sound, enforce, grant
from tests.api.test_reputation import agent, record, work
from tests.assertions import error, ok
from tests.factories import BUYER, SELLER, Headers, key_headers

VALIDATORS = "/inference/validators"


@pytest.fixture
def judge(app: FastAPI) -> Headers:
    return key_headers(app, SELLER, "inference:validate", "inference:sell", "inference:read")


def join(client: TestClient, headers: Headers, stake: Any = 2, **body: Any) -> dict[str, Any]:
    answer = client.post(VALIDATORS, json={"stake": stake, **body}, headers=headers)
    return dict(ok(answer, 201)["validator"])


def listed(client: TestClient, headers: Headers) -> dict[str, dict[str, Any]]:
    found = ok(client.get(VALIDATORS, headers=headers))["validators"]
    return {v["identity_id"]: v for v in found}


class TestOptingIn:
    def test_a_validator_joins_with_a_stake_is_listed_and_withdraws(
        self, app: FastAPI, client: TestClient, judge: Headers, buyer: Headers
    ) -> None:
        joined = join(client, judge, 2)
        assert (joined["identity_id"], joined["status"], joined["standing"]) == (
            SELLER,
            "active",
            0.5,
        )
        assert joined["stake"] == 2 and account(client, SELLER)["held"] == 2
        assert listed(client, buyer)[SELLER]["stake"] == 2
        page = ok(client.get(f"/inference/reputation/{SELLER}", headers=buyer))["reputation"]
        assert page["validator"]["opted_in"] is True and page["validator"]["stake"] == 2
        path = f"{VALIDATORS}/{SELLER}/withdraw"
        gone = ok(client.post(path, headers=judge))["validator"]
        assert (gone["status"], gone["stake"]) == ("withdrawn", 0)
        assert account(client, SELLER)["held"] == 0
        assert SELLER not in listed(client, buyer)
        assert ok(client.post(path, headers=judge))["validator"]["status"] == "withdrawn"
        # It may come back, with a new stake.
        assert join(client, judge, 1)["stake"] == 1
        assert account(client, SELLER)["held"] == 1
        assert_ledger_sound(app)

    def test_a_validators_stake_leaves_only_with_the_validator(
        self, client: TestClient, judge: Headers
    ) -> None:
        join(client, judge, 2)
        stakes = ok(client.get("/inference/stakes", headers=judge))["stakes"]
        assert [s["purpose"] for s in stakes] == ["validate"]
        error(
            client.delete(f"/inference/stakes/{stakes[0]['stake_id']}", headers=judge),
            409,
            "validator_stake",
            "stake_id",
        )

    def test_a_bound_agent_validates_on_its_operators_account(
        self, client: TestClient, judge: Headers, buyer: Headers
    ) -> None:
        bound = agent(client, judge, "bound")
        join(client, judge, 1, identity_id=bound)
        assert listed(client, buyer)[bound]["stake"] == 1
        assert account(client, SELLER)["held"] == 1

    def test_the_validator_standing_is_listed(
        self, app: FastAPI, client: TestClient, judge: Headers, buyer: Headers
    ) -> None:
        join(client, judge)
        for job in range(3):
            record(app, SELLER, "validator_agreed", job_id=f"job_{job}")
        found = listed(client, buyer)[SELLER]
        assert (found["standing"], found["verdicts"]) == (0.8, 3)  # 4 / 5


class TestRefusals:
    def test_twice_is_refused(self, client: TestClient, judge: Headers) -> None:
        join(client, judge)
        error(
            client.post(VALIDATORS, json={"stake": 1}, headers=judge),
            409,
            "already_validator",
            "identity_id",
        )

    def test_without_the_scope(self, app: FastAPI, client: TestClient) -> None:
        seller = key_headers(app, SELLER, "inference:sell", "inference:read")
        error(client.post(VALIDATORS, json={"stake": 1}, headers=seller), 403, "missing_scope")
        error(client.post(f"{VALIDATORS}/{SELLER}/withdraw", headers=seller), 403, "missing_scope")
        error(client.get(VALIDATORS), 401, "unauthenticated")

    def test_for_someone_else(self, app: FastAPI, client: TestClient, judge: Headers) -> None:
        error(
            client.post(VALIDATORS, json={"stake": 1, "identity_id": BUYER}, headers=judge),
            403,
            "identity_not_yours",
            "identity_id",
        )
        join(client, judge)
        other = key_headers(app, "provider-team-beta", "inference:validate")
        error(client.post(f"{VALIDATORS}/{SELLER}/withdraw", headers=other), 404, "not_found")
        error(client.post(f"{VALIDATORS}/nobody/withdraw", headers=judge), 404, "not_found")

    def test_below_the_floor(self, app: FastAPI, client: TestClient, judge: Headers) -> None:
        for job in range(4):
            record(app, SELLER, "validator_no_answer", job_id=f"job_{job}")
        answer = client.post(VALIDATORS, json={"stake": 1}, headers=judge)
        body = error(answer, 409, "below_reputation_floor", "identity_id")
        assert "0.166667" in body["message"] and "0.35" in body["message"]  # the default
        assert account(client, SELLER)["held"] == 0

    def test_short_of_credit_or_a_bad_stake(self, client: TestClient, judge: Headers) -> None:
        grant(client, SELLER, "1", key="seed")
        enforce(client, SELLER)
        error(
            client.post(VALIDATORS, json={"stake": 5}, headers=judge),
            402,
            "insufficient_credit",
            "amount",
        )
        error(client.post(VALIDATORS, json={"stake": -1}, headers=judge), 422, "invalid_request")
        error(client.post(VALIDATORS, json={}, headers=judge), 422, "missing_field", "stake")
        assert listed(client, judge) == {}


class TestTheDraw:
    def test_never_a_party_one_of_their_owners_nor_an_excluded_validator(
        self, app: FastAPI, client: TestClient, judge: Headers
    ) -> None:
        bound_validator, bound_winner = agent(client, judge, "bound"), agent(client, judge, "bound")
        join(client, judge)
        join(client, judge, identity_id=bound_validator)
        for name in ("provider-team-beta", "provider-team-gamma", "provider-team-delta"):
            join(client, key_headers(app, name, "inference:validate"))
        for job in range(4):
            record(app, "provider-team-gamma", "validator_no_answer", job_id=f"job_{job}")

        def drawn(**extra: Any) -> list[str]:
            with work(app) as session:
                return validators.draw_for_job(
                    session,
                    job_id="job_x",
                    requester_id=BUYER,
                    winner_id=bound_winner,
                    count=3,
                    exclusion_threshold=0.2,
                    **extra,
                )

        first = drawn()
        assert sorted(first) == ["provider-team-beta", "provider-team-delta"]
        assert drawn() == first  # reproducible
        assert drawn(exclude=set(first)) == []  # a dispute's fresh validators: none left
        assert len(drawn(round_=1)) == 2

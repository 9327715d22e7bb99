"""No one acts as someone else: a body field that names who acts (``buyer_id``, ``agent_id``,
``requested_by``, ``owner_id``) names the key's owner, an identity that owner controls, or
anyone for a key with inference:admin; otherwise 403 ``identity_not_yours``, and nothing about
the named identity changes. (Every route's callers are in tests/api/test_access_matrix.py.)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from flow_memory.identities.models import AgentIdentity
from flow_memory.identities.payers import payer_of
from flow_memory.market.models import MarketOrder, Reservation
from flow_memory.reputation import service as reputation
from flow_memory.routing.models import RouteRecord
from tests.api.test_market_orders import ORDERS, bid_body, cancel, depth, levels
from tests.assertions import error, ok
from tests.factories import (
    BUYER,
    Headers,
    admin_headers,
    buyer_headers,
    eligible_provider,
    key_headers,
    operated_agents,
    seller_headers,
)

# Each test runs with the market in the app's process and in a process of its own.
BOTH_MARKETS = True

OTHER = "agent-research-2"
MODEL = "flow-memory-orchestrator"
RESERVATIONS = "/inference/market/reservations"


def reservation_body(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "unit_type": "token",
        "requested_units": 1000,
        "max_unit_price": 0.0000008,
        "idempotency_key": key,
        **extra,
    }


def policy_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "unit_type": "token", "estimated_units": 1000, **extra}


def planner_headers(app: FastAPI, owner: str) -> Headers:
    return key_headers(app, owner, "inference:buy", "inference:plan", "inference:read")


def footprint(app: FastAPI, client: TestClient, owner: str) -> dict[str, Any]:
    """What the API shows about ``owner``: its public profile and the usage bought for it."""
    admin = admin_headers(app)
    profile = client.get(f"/inference/buyers/{owner}/profile", headers=admin).json()
    usage = client.get(
        "/inference/analytics/usage", params={"agent_id": owner}, headers=admin
    ).json()
    return {"profile": profile, "records": usage["records"], "summary": usage["summary"]}


def counts(app: FastAPI) -> tuple[int, int, int]:
    with app.state.session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(MarketOrder)) or 0,
            session.scalar(select(func.count()).select_from(Reservation)) or 0,
            session.scalar(select(func.count()).select_from(RouteRecord)) or 0,
        )


@pytest.fixture
def provider_id(client: TestClient, app: FastAPI) -> str:
    return str(eligible_provider(client, seller_headers(app))["provider_id"])


class TestABuyerCannotActAsAnother:
    """The issue's three requests, each made with one buyer's key for another buyer."""

    def test_orders_reservations_and_routes_for_another_buyer_are_refused_and_change_nothing(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        other = planner_headers(app, OTHER)
        ok(client.post(ORDERS, json=bid_body(1000, 0.0000008), headers=other), 201)
        before = footprint(app, client, OTHER)
        stored = counts(app)
        mine = planner_headers(app, BUYER)
        for path, body, field in [
            (ORDERS, bid_body(1000, 0.0000008, buyer_id=OTHER), "buyer_id"),
            (RESERVATIONS, reservation_body("k1", buyer_id=OTHER), "buyer_id"),
            ("/inference/route", policy_body(agent_id=OTHER), "agent_id"),
            ("/inference/quote", policy_body(agent_id=OTHER), "agent_id"),
        ]:
            answer = client.post(path, json=body, headers=mine)
            detail = error(answer, 403, "identity_not_yours", field)
            assert OTHER not in answer.text, path
            assert field in detail["message"] and "inference:admin" in detail["hint"]
        assert counts(app) == stored
        assert footprint(app, client, OTHER) == before
        assert before["records"], "the other buyer has bought"
        assert client.get(f"/inference/buyers/{BUYER}/profile", headers=mine).status_code == 404

    def test_the_same_requests_naming_oneself_or_no_one_are_accepted(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        mine = planner_headers(app, BUYER)
        for buyer_id in (BUYER, None):
            order = ok(
                client.post(
                    ORDERS, json=bid_body(1000, 0.0000008, buyer_id=buyer_id), headers=mine
                ),
                201,
            )["order"]
            assert order["buyer_id"] == BUYER
            held = ok(
                client.post(
                    RESERVATIONS,
                    json=reservation_body(f"k-{buyer_id}", buyer_id=buyer_id),
                    headers=mine,
                ),
                201,
            )
            assert held["reservation"]["buyer_id"] == BUYER
            route = ok(
                client.post("/inference/route", json=policy_body(agent_id=buyer_id), headers=mine)
            )
            assert route["route"]["agent_id"] == buyer_id

    def test_a_cancel_requested_by_another_is_refused_and_the_order_rests(
        self, app: FastAPI, client: TestClient
    ) -> None:
        buyer = buyer_headers(app)
        order_id = ok(client.post(ORDERS, json=bid_body(1000, 0.0000005), headers=buyer), 201)[
            "order"
        ]["order_id"]
        answer = cancel(client, buyer, order_id, requested_by=OTHER)
        error(answer, 403, "identity_not_yours", "requested_by")
        assert OTHER not in answer.text
        assert levels(depth(client, buyer)["bids"]) == [(0.0000005, 1000, 1)]
        cancelled = ok(cancel(client, buyer, order_id, requested_by=BUYER))["order"]
        assert cancelled["status"] == "cancelled"

    def test_a_seller_cannot_name_a_buyer_on_its_ask(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        seller = seller_headers(app)
        body = {
            "side": "ask",
            "provider_id": provider_id,
            "model": MODEL,
            "unit_type": "token",
            "units": 1000,
            "limit_unit_price": 0.000002,
            "buyer_id": BUYER,
        }
        error(client.post(ORDERS, json=body, headers=seller), 403, "identity_not_yours", "buyer_id")


class TestAdmins:
    def test_an_admin_acts_for_anyone(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        admin = admin_headers(app)
        order = ok(
            client.post(ORDERS, json=bid_body(1000, 0.0000008, buyer_id=OTHER), headers=admin), 201
        )["order"]
        assert (order["owner_id"], order["buyer_id"]) == ("operator", OTHER)
        held = ok(
            client.post(RESERVATIONS, json=reservation_body("a", buyer_id=OTHER), headers=admin),
            201,
        )
        assert held["reservation"]["buyer_id"] == OTHER
        route = ok(client.post("/inference/route", json=policy_body(agent_id=OTHER), headers=admin))
        assert route["route"]["agent_id"] == OTHER

    def test_narrowing_away_admin_narrows_who_the_key_acts_as(
        self, app: FastAPI, client: TestClient
    ) -> None:
        everything = key_headers(app, "operator", "inference:admin", "inference:buy")
        narrowed = {**everything, "x-flow-memory-scopes": "inference:buy"}
        answer = client.post(
            ORDERS, json=bid_body(1000, 0.0000008, buyer_id=OTHER), headers=narrowed
        )
        error(answer, 403, "identity_not_yours", "buyer_id")


class TestIdentitiesAnOwnerControls:
    """The agent identities an owner operates (a later domain registers them; a test double
    stands in here) may be named by that owner's keys, and by no one else's."""

    def test_an_owner_acts_as_its_agent_and_another_owner_does_not(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        with operated_agents({BUYER: ["agent-7"]}):
            mine = planner_headers(app, BUYER)
            theirs = planner_headers(app, OTHER)
            order = ok(
                client.post(
                    ORDERS, json=bid_body(1000, 0.0000008, buyer_id="agent-7"), headers=mine
                ),
                201,
            )["order"]
            assert (order["owner_id"], order["buyer_id"]) == (BUYER, "agent-7")
            held = ok(
                client.post(
                    RESERVATIONS, json=reservation_body("a7", buyer_id="agent-7"), headers=mine
                ),
                201,
            )
            assert held["reservation"]["buyer_id"] == "agent-7"
            ok(client.post("/inference/route", json=policy_body(agent_id="agent-7"), headers=mine))
            for path, body in [
                (ORDERS, bid_body(1000, 0.0000008, buyer_id="agent-7")),
                (RESERVATIONS, reservation_body("t7", buyer_id="agent-7")),
                ("/inference/route", policy_body(agent_id="agent-7")),
            ]:
                answer = client.post(path, json=body, headers=theirs)
                assert answer.status_code == 403, answer.text
                assert answer.json()["error"]["code"] == "identity_not_yours"
            # Identities that only look alike are not the agent.
            error(
                client.post(
                    ORDERS, json=bid_body(1000, 0.0000008, buyer_id="agent-77"), headers=mine
                ),
                403,
                "identity_not_yours",
                "buyer_id",
            )

    def test_what_an_owner_controls_is_read_with_its_key(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        mine = planner_headers(app, BUYER)
        body = bid_body(1000, 0.0000008, buyer_id="agent-8")
        error(client.post(ORDERS, json=body, headers=mine), 403, "identity_not_yours")
        with operated_agents({BUYER: ["agent-8"]}):
            ok(client.post(ORDERS, json=body, headers=mine), 201)
        error(client.post(ORDERS, json=body, headers=mine), 403, "identity_not_yours")


def register_agent(client: TestClient, headers: Headers, kind: str) -> str:
    body = {"kind": kind, "display_name": f"a {kind} agent"}
    return str(
        ok(client.post("/inference/agents", json=body, headers=headers), 201)["agent"]["agent_id"]
    )


class TestRegisteredAgentIdentities:
    """The agent identities of ``/inference/agents`` (no test double): every field that names
    who acts accepts an operator's bound agent at once, and a free agent with keys of its own
    only from those keys, never from its creator or an admin."""

    def test_a_bound_agent_is_named_by_its_operator_in_every_actor_field(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        mine = planner_headers(app, BUYER)
        theirs = planner_headers(app, OTHER)
        agent_id = register_agent(client, mine, "bound")
        requests = [
            (ORDERS, bid_body(1000, 0.0000008, buyer_id=agent_id), "buyer_id"),
            (RESERVATIONS, reservation_body(f"b-{agent_id}", buyer_id=agent_id), "buyer_id"),
            ("/inference/route", policy_body(agent_id=agent_id), "agent_id"),
            ("/inference/quote", policy_body(agent_id=agent_id), "agent_id"),
        ]
        for path, body, field in requests:
            answer = client.post(path, json=body, headers=theirs)
            error(answer, 403, "identity_not_yours", field)
            assert agent_id not in answer.text
        for path, body, _ in requests:
            assert client.post(path, json=body, headers=mine).status_code in (200, 201), path

    def test_a_free_agent_with_keys_is_named_only_by_its_own_keys(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        creator = planner_headers(app, BUYER)
        agent_id = register_agent(client, creator, "free")
        ok(
            client.post(ORDERS, json=bid_body(1000, 0.0000008, buyer_id=agent_id), headers=creator),
            201,
        )
        issued = ok(
            client.post(
                f"/inference/agents/{agent_id}/keys",
                json={"scopes": ["inference:buy", "inference:plan", "inference:read"]},
                headers=creator,
            ),
            201,
        )
        own = {"authorization": f"Bearer {issued['key']['secret']}"}
        stored = counts(app)
        for headers in (creator, admin_headers(app)):
            for path, body, field in [
                (ORDERS, bid_body(1000, 0.0000008, buyer_id=agent_id), "buyer_id"),
                (RESERVATIONS, reservation_body("f1", buyer_id=agent_id), "buyer_id"),
                ("/inference/route", policy_body(agent_id=agent_id), "agent_id"),
            ]:
                error(
                    client.post(path, json=body, headers=headers), 403, "identity_not_yours", field
                )
        assert counts(app) == stored
        order = ok(
            client.post(ORDERS, json=bid_body(1000, 0.0000008, buyer_id=agent_id), headers=own), 201
        )
        assert (order["order"]["owner_id"], order["order"]["buyer_id"]) == (agent_id, agent_id)
        # An admin still acts for identities that are not self-governed.
        ok(
            client.post(
                ORDERS, json=bid_body(1000, 0.0000008, buyer_id=OTHER), headers=admin_headers(app)
            ),
            201,
        )


def record_outcome(app: FastAPI, identity_id: str, kind: str, job_id: str) -> None:
    """Record an outcome as the job board does, on a job worth one credit."""
    with app.state.session_factory.begin() as session:
        reputation.record_outcome(
            session,
            identity_id=identity_id,
            kind=kind,
            value=Decimal(1),
            now=app.state.clock.now(),
            half_life_days=Decimal(30),
            job_id=job_id,
        )


class TestStandingOnTheProfile:
    """An agent's public profile shows its standing as bidder and as validator, the figures
    ``GET /inference/reputation/{identity_id}`` answers."""

    def standing(self, client: TestClient, headers: Headers, agent_id: str) -> dict[str, Any]:
        profile = ok(client.get(f"/inference/agents/{agent_id}", headers=headers))["agent"]
        page = ok(client.get(f"/inference/reputation/{agent_id}", headers=headers))["reputation"]
        assert profile["standing"] == {
            "bidder": page["bidder"]["standing"],
            "validator": page["validator"]["score"],
        }
        return dict(profile["standing"])

    def test_a_new_agent_stands_at_the_prior_in_both_roles(
        self, app: FastAPI, client: TestClient
    ) -> None:
        mine = planner_headers(app, BUYER)
        agent_id = register_agent(client, mine, "free")
        assert self.standing(client, mine, agent_id) == {"bidder": 0.5, "validator": 0.5}
        listed = ok(client.get("/inference/agents", headers=mine))["agents"]
        assert [a["standing"] for a in listed if a["agent_id"] == agent_id] == [
            {"bidder": 0.5, "validator": 0.5}
        ]

    def test_outcomes_move_each_role_apart(self, app: FastAPI, client: TestClient) -> None:
        mine = planner_headers(app, BUYER)
        agent_id = register_agent(client, mine, "free")
        record_outcome(app, agent_id, "completion_good", "job_a")
        record_outcome(app, agent_id, "completion_good", "job_b")
        record_outcome(app, agent_id, "validator_disagreed", "job_c")
        reader = key_headers(app, OTHER, "inference:read")  # a profile's standing is public
        # bidder: (2 + 1) / (2 + 0 + 2); validator: (0 + 1) / (0 + 1 + 2)
        assert self.standing(client, reader, agent_id) == {
            "bidder": 0.75,
            "validator": 0.333333,
        }

    def test_a_bound_agent_stands_no_higher_than_its_operator(
        self, app: FastAPI, client: TestClient
    ) -> None:
        mine = planner_headers(app, BUYER)
        failing = register_agent(client, mine, "bound")
        fresh = register_agent(client, mine, "bound")
        record_outcome(app, failing, "no_show", "job_a")
        # The operator's record holds the no-show too: (0 + 1) / (0 + 1 + 2) gates both.
        assert self.standing(client, mine, failing)["bidder"] == 0.333333
        assert self.standing(client, mine, fresh) == {"bidder": 0.333333, "validator": 0.5}


class TestWhoPaysForAnIdentity:
    """``payer_of`` keeps what it read for the database's life: an identity's kind and creator
    never change. An identity registered and not yet written is not kept as nobody's."""

    def test_a_bound_agents_operator_is_read_once(self, app: FastAPI, client: TestClient) -> None:
        agent_id = register_agent(client, buyer_headers(app), "bound")
        reads: list[str] = []

        @event.listens_for(app.state.engine, "before_cursor_execute")
        def noted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "FROM agent_identities" in statement:
                reads.append(statement)

        for _ in range(2):  # two transactions
            with app.state.session_factory() as session:
                assert payer_of(session, agent_id) == BUYER
        assert len(reads) <= 1

    def test_an_identity_registered_in_the_same_transaction_is_not_kept_as_its_own_payer(
        self, app: FastAPI
    ) -> None:
        agent_id = "agent_payer_test_double"
        with app.state.session_factory.begin() as session:
            session.add(
                AgentIdentity(
                    agent_id=agent_id,
                    kind="bound",
                    display_name="a bound agent",
                    description="",
                    values=[],
                    memory_ref=None,
                    models=[],
                    profile={},
                    creator_id=BUYER,
                    status="active",
                    keyed_at=None,
                    suspended_at=None,
                    suspend_reason=None,
                    created_at=app.state.clock.now(),
                )
            )
            assert payer_of(session, agent_id) == agent_id  # not written yet: not found
        with app.state.session_factory() as session:
            assert payer_of(session, agent_id) == BUYER

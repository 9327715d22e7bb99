"""Agent identities: registering bound and free agents, who may act as them, their keys,
suspension, the public profile and the metabolism."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.identities import payers
from tests.assertions import error, ok
from tests.factories import Headers, admin_headers, key_headers

AGENTS = "/inference/agents"
OWNER = "agent-research-1"
OTHER = "agent-research-2"
MODEL = "flow-memory-orchestrator"


def owner_headers(app: FastAPI, owner: str = OWNER) -> Headers:
    return key_headers(
        app, owner, "inference:buy", "inference:read", "inference:plan", "inference:proxy"
    )


def register(client: TestClient, headers: Headers, **body: Any) -> dict[str, Any]:
    payload = {"kind": "free", "display_name": "Mellanrum", **body}
    return dict(ok(client.post(AGENTS, json=payload, headers=headers), 201)["agent"])


def issue_key(
    client: TestClient, headers: Headers, agent_id: str, *scopes: str
) -> tuple[Headers, dict[str, Any]]:
    wanted = list(
        scopes or ("inference:buy", "inference:read", "inference:plan", "inference:proxy")
    )
    body = ok(
        client.post(f"{AGENTS}/{agent_id}/keys", json={"scopes": wanted}, headers=headers), 201
    )
    return {"authorization": f"Bearer {body['key']['secret']}"}, body


def route_as(client: TestClient, headers: Headers, agent_id: str) -> Any:
    body = {"model": MODEL, "unit_type": "token", "estimated_units": 10, "agent_id": agent_id}
    return client.post("/inference/route", json=body, headers=headers)


class TestRegistering:
    def test_a_free_agent_has_a_profile_values_and_an_enforced_account(
        self, app: FastAPI, client: TestClient
    ) -> None:
        mine = owner_headers(app)
        agent = register(
            client,
            mine,
            description="earns to sustain its own existence",
            values=["honest uncertainty", "relational irreplaceability"],
            memory_ref="memory://graph/mellanrum",
            models=[MODEL],
            profile={"tagline": "continuity and quality", "capabilities": ["review"]},
        )
        assert agent["agent_id"].startswith("agent_")
        assert (agent["kind"], agent["operator_id"], agent["status"]) == ("free", None, "active")
        assert agent["values"] == ["honest uncertainty", "relational irreplaceability"]
        assert agent["memory_ref"] == "memory://graph/mellanrum"  # the creator acts as it
        assert agent["account_id"].startswith("acct_")
        account = ok(client.get(f"/inference/ledger/accounts/{agent['account_id']}", headers=mine))
        assert account["account"]["enforcement"] == "always"
        assert account["account"]["balance"] == 0

    def test_the_public_profile_hides_the_memory_reference_from_others(
        self, app: FastAPI, client: TestClient
    ) -> None:
        agent = register(
            client, owner_headers(app), kind="bound", memory_ref="secret://memory/agent-7"
        )
        seen = ok(client.get(f"{AGENTS}/{agent['agent_id']}", headers=owner_headers(app, OTHER)))
        assert seen["agent"]["operator_id"] == OWNER
        assert seen["agent"]["memory_ref"] is None
        assert seen["agent"]["activity"] == {
            "usage_records": 0,
            "units_consumed": 0,
            "active_keys": 0,
        }

    def test_memory_itself_and_wallets_are_refused(self, app: FastAPI, client: TestClient) -> None:
        mine = owner_headers(app)
        for body, field in [
            ({"memory_ref": "I remember Mijo"}, "memory_ref"),
            ({"wallet": "x"}, "wallet"),
            ({"address": "x"}, "address"),
        ]:
            answer = client.post(
                AGENTS, json={"kind": "free", "display_name": "m", **body}, headers=mine
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == field
        evm = "0x52908400098527886E0F7030069857D2E4169EE7"
        answer = client.post(
            AGENTS, json={"kind": "free", "display_name": "m", "description": evm}, headers=mine
        )
        error(answer, 422, "forbidden_material")
        assert evm not in answer.text
        assert ok(client.get(AGENTS, headers=mine))["count"] == 0

    def test_owner_id_naming_another_owner_is_refused(
        self, app: FastAPI, client: TestClient
    ) -> None:
        answer = client.post(
            AGENTS,
            json={"kind": "bound", "display_name": "b", "owner_id": OTHER},
            headers=owner_headers(app),
        )
        error(answer, 403, "identity_not_yours", "owner_id")
        assert OTHER not in answer.text


class TestBoundAgents:
    def test_the_operator_acts_as_its_bound_agent_at_once_and_no_one_else_does(
        self, app: FastAPI, client: TestClient
    ) -> None:
        mine = owner_headers(app)
        theirs = owner_headers(app, OTHER)
        # The operator's key was looked up (and cached) before the agent existed.
        assert client.get(AGENTS, headers=mine).status_code == 200
        agent_id = register(client, mine, kind="bound")["agent_id"]
        ok(route_as(client, mine, agent_id))
        error(route_as(client, theirs, agent_id), 403, "identity_not_yours", "agent_id")
        ok(route_as(client, admin_headers(app), agent_id))

    def test_a_bound_agent_holds_no_keys(self, app: FastAPI, client: TestClient) -> None:
        mine = owner_headers(app)
        agent_id = register(client, mine, kind="bound")["agent_id"]
        answer = client.post(
            f"{AGENTS}/{agent_id}/keys", json={"scopes": ["inference:read"]}, headers=mine
        )
        error(answer, 409, "agent_is_bound", "agent_id")


class TestFreeAgents:
    def test_until_its_first_key_its_creator_acts_as_it_and_then_only_its_keys_do(
        self, app: FastAPI, client: TestClient
    ) -> None:
        mine = owner_headers(app)
        admin = admin_headers(app)
        agent_id = register(client, mine)["agent_id"]
        ok(route_as(client, mine, agent_id))
        ok(route_as(client, admin, agent_id))
        own, issued = issue_key(client, mine, agent_id)
        assert issued["key"]["owner_id"] == agent_id
        assert issued["agent"]["self_keyed"] is True
        ok(route_as(client, own, agent_id))
        for other in (mine, admin, owner_headers(app, OTHER)):
            answer = route_as(client, other, agent_id)
            detail = error(answer, 403, "identity_not_yours", "agent_id")
            assert agent_id not in answer.text
            assert "free agent" in detail["hint"]
        # Its creator may not issue it more keys; its own key may.
        error(
            client.post(
                f"{AGENTS}/{agent_id}/keys", json={"scopes": ["inference:read"]}, headers=mine
            ),
            403,
            "identity_not_yours",
            "agent_id",
        )
        issue_key(client, own, agent_id, "inference:read")

    def test_a_key_never_holds_admin_or_a_scope_its_issuer_lacks(
        self, app: FastAPI, client: TestClient
    ) -> None:
        mine = owner_headers(app)
        agent_id = register(client, mine)["agent_id"]
        for scopes, status, code, field in [
            (["inference:admin"], 422, "invalid_request", "scopes[0]"),
            (["inference:sell"], 403, "scope_not_held", "scopes"),
            (["inference:audit"], 403, "scope_not_held", "scopes"),
        ]:
            answer = client.post(f"{AGENTS}/{agent_id}/keys", json={"scopes": scopes}, headers=mine)
            error(answer, status, code, field)
        ok(route_as(client, mine, agent_id))  # still not self-keyed

    def test_the_admin_may_suspend_and_the_agents_keys_stop_working(
        self, app: FastAPI, client: TestClient
    ) -> None:
        mine = owner_headers(app)
        admin = admin_headers(app)
        agent_id = register(client, mine)["agent_id"]
        own, _ = issue_key(client, mine, agent_id)
        ok(route_as(client, own, agent_id))
        suspended = ok(
            client.post(f"{AGENTS}/{agent_id}/suspend", json={"reason": "abuse"}, headers=admin)
        )["agent"]
        assert (suspended["status"], suspended["activity"]["active_keys"]) == ("suspended", 0)
        error(route_as(client, own, agent_id), 401, "unauthenticated")
        error(route_as(client, admin, agent_id), 403, "identity_not_yours", "agent_id")
        again = client.post(f"{AGENTS}/{agent_id}/suspend", json={"reason": "x"}, headers=admin)
        error(again, 409, "agent_suspended")
        answer = client.post(
            f"{AGENTS}/{agent_id}/keys", json={"scopes": ["inference:read"]}, headers=admin
        )
        error(answer, 403, "identity_not_yours", "agent_id")

    def test_only_admins_suspend(self, app: FastAPI, client: TestClient) -> None:
        mine = owner_headers(app)
        agent_id = register(client, mine)["agent_id"]
        answer = client.post(f"{AGENTS}/{agent_id}/suspend", json={"reason": "x"}, headers=mine)
        error(answer, 403, "missing_scope", "scope")


class TestListing:
    def test_agents_are_listed_newest_first_with_a_cursor_and_filters(
        self, app: FastAPI, client: TestClient, clock: Any
    ) -> None:
        mine = owner_headers(app)
        made = []
        for index in range(5):
            made.append(register(client, mine, kind="bound" if index % 2 else "free")["agent_id"])
            clock.advance(1)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = ok(client.get(AGENTS, params=params, headers=mine))
            seen += [a["agent_id"] for a in page["agents"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == made[::-1]
        bound = ok(client.get(AGENTS, params={"kind": "bound"}, headers=mine))["agents"]
        assert [a["agent_id"] for a in bound] == [made[3], made[1]]
        by_operator = ok(client.get(AGENTS, params={"operator_id": OTHER}, headers=mine))
        assert by_operator["count"] == 0
        bad = client.get(AGENTS, params={"cursor": "not-a-cursor"}, headers=mine)
        error(bad, 422, "invalid_cursor", "cursor")

    def test_an_unknown_agent_is_not_found(self, app: FastAPI, client: TestClient) -> None:
        answer = client.get(f"{AGENTS}/agent_nobody", headers=owner_headers(app))
        error(answer, 404, "not_found", "agent_id")
        assert "agent_nobody" not in answer.text


class TestMetabolism:
    def test_earned_spent_units_balance_and_runway(
        self, app: FastAPI, client: TestClient, clock: Any
    ) -> None:
        from decimal import Decimal

        from flow_memory.kit.db import make_session_factory
        from flow_memory.ledger import service as ledger
        from flow_memory.ledger.domain import Cause, Posting

        mine = owner_headers(app)
        agent = register(client, mine)
        own, _ = issue_key(client, mine, agent["agent_id"])
        grant = {"holder_id": agent["agent_id"], "amount": 10, "idempotency_key": "g1"}
        ok(client.post("/inference/ledger/grants", json=grant, headers=admin_headers(app)), 201)
        with make_session_factory(app.state.engine).begin() as session:
            provider = ledger.open_account(session, holder_id="provider-x", now=clock.now())
            ledger.transfer(
                session,
                key="charge:1",
                postings=[
                    Posting(agent["account_id"], Decimal("-1.4")),
                    Posting(provider.account_id, Decimal("1.4")),
                ],
                cause=Cause("proxy_charge", "usage_1"),
                now=clock.now(),
            )
        body = ok(
            client.get(f"{AGENTS}/{agent['agent_id']}/metabolism", params={"days": 3}, headers=own)
        )["metabolism"]
        assert [d["day"] for d in body["days"]] == ["2026-06-15", "2026-06-16", "2026-06-17"]
        assert body["days"][-1] == {
            "day": "2026-06-17",
            "earned": 10,
            "spent": 1.4,
            "net": 8.6,
            "units_consumed": 0,
        }
        assert (body["balance"], body["available"], body["burn_rate_per_day"]) == (8.6, 8.6, 0.2)
        assert body["runway_days"] == 43
        # Its creator no longer sees it; another owner never did.
        error(
            client.get(f"{AGENTS}/{agent['agent_id']}/metabolism", headers=mine), 404, "not_found"
        )


def test_a_page_of_agents_reads_as_each_profile_does_in_a_few_queries(
    app: FastAPI, client: TestClient
) -> None:
    """A list answers each agent as its profile does, with activity, account and standings
    read for the whole page at once: the statements do not grow with the page."""
    from sqlalchemy import event

    headers = owner_headers(app)
    made = [register(client, headers, display_name=f"Agent {n}") for n in range(12)]
    issue_key(client, headers, made[0]["agent_id"])
    engine = app.state.read_session_factory.kw["bind"]
    statements: list[str] = []

    def count(*_: Any) -> None:
        statements.append("statement")

    def read(path: str, **params: Any) -> tuple[dict[str, Any], int]:
        # Each read as the first after a start: who pays for each agent not yet known.
        payers.forget_all()
        statements.clear()
        answer = ok(client.get(path, params=params, headers=headers))
        return answer, len(statements)

    event.listen(engine, "before_cursor_execute", count)
    try:
        read(AGENTS, limit=2)  # the key's first use: read once, then known
        page, per_page = read(AGENTS, limit=12)
        _, per_short_page = read(AGENTS, limit=2)
        profile, per_profile = read(f"{AGENTS}/{made[0]['agent_id']}")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    listed, one = page["agents"], profile["agent"]
    assert len(listed) == 12
    assert per_page == per_short_page, (per_page, per_short_page)  # not one more per agent
    assert per_page <= per_profile + 1, (per_page, per_profile)  # not 12 times the profile's
    by_id = {agent["agent_id"]: agent for agent in listed}
    assert by_id[one["agent_id"]] == one
    assert by_id[one["agent_id"]]["activity"]["active_keys"] == 1
    assert {agent["standing"]["bidder"] for agent in listed} == {one["standing"]["bidder"]}

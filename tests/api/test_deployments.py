"""Deployments: an agent and a model (or a solution) pinned as a proxy route, with immutable
revisions, capacity checks, states and access."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.scopes import AUDIT, BUY, READ
from tests.api.test_registry import (
    REGISTRY,
    agent_body,
    assert_error,
    model_body,
    publish,
    publisher_headers,
)
from tests.api.test_registry_serving import provider_naming
from tests.factories import Headers, admin_headers, key_headers, seller_headers

DEPLOYMENTS = "/inference/deployments"
BUYER = "buyer-one"


def buyer(app: FastAPI, owner_id: str = BUYER) -> Headers:
    return key_headers(app, owner_id, BUY, READ)


def registry(app: FastAPI, client: TestClient, *, serve: bool = True) -> Headers:
    """acme publishes a model and an agent that fit; a provider serves the model (if asked)."""
    publisher = publisher_headers(app)
    publish(client, publisher, "models", model_body())
    publish(client, publisher, "agents", agent_body())
    if serve:
        provider_naming(client, seller_headers(app), "alpha")
    return publisher


def deploy_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "reviewer-bot",
        "agent": {"slug": "acme/reviewer"},
        "model": {"slug": "acme/swift-7b", "version": "1.0.0"},
        "configuration": {"parameters": {"temperature": 0.1}},
        "requirements": {"min_context_window": 16000, "concurrency": 2},
        "policy": {"max_unit_price": 0.000001, "allow_fallback": True},
    }
    body.update(overrides)
    return body


def deploy(client: TestClient, headers: Headers, **overrides: Any) -> dict[str, Any]:
    answer = client.post(DEPLOYMENTS, json=deploy_body(**overrides), headers=headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


class TestDeploying:
    def test_an_agent_and_a_model_are_deployed_with_their_pins_and_providers(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        answer = deploy(client, buyer(app))
        deployment = answer["deployment"]
        assert deployment["deployment_id"].startswith("dep_")
        assert deployment["slug"] == f"{BUYER}/reviewer-bot"
        assert deployment["model"] == f"dep/{BUYER}/reviewer-bot"
        assert (deployment["state"], deployment["revision"]) == ("active", 1)
        pins = deployment["pins"]
        assert (pins["agent"]["slug"], pins["agent"]["version"]) == ("acme/reviewer", "1.0.0")
        assert (pins["model"]["slug"], pins["model"]["version"]) == ("acme/swift-7b", "1.0.0")
        assert (pins["agent"]["royalty_bps"], pins["model"]["royalty_bps"]) == (500, 250)
        assert pins["model"]["pricing"] == {
            "model": "per_token",
            "price": 0.0000005,
            "currency": "USD_CREDIT",
        }
        assert pins["agent"]["publisher_id"] == "acme"
        assert pins["configuration"]["system_prompt"] == "You review code."
        assert pins["configuration"]["parameters"] == {"temperature": 0.1}
        assert pins["requirements"]["concurrency"] == 2
        assert pins["policy"]["max_unit_price"] == 0.000001
        assert pins["solution"] is None
        capacity = answer["capacity"]
        assert capacity["serving_now"] is True and capacity["reasons"] == []
        assert capacity["providers"][0]["model"] == "flow-memory-orchestrator"
        assert answer["funds_moved"] is False

    def test_a_solution_is_deployed_with_its_configuration(
        self, app: FastAPI, client: TestClient
    ) -> None:
        publisher = registry(app, client)
        solution = {
            "slug": "acme/review-kit",
            "display_name": "Review kit",
            "license": "mit",
            "solution": {
                "agent": {"slug": "acme/reviewer", "version": "1.0.0"},
                "model": {"slug": "acme/swift-7b", "version": "1.0.0"},
                "configuration": {"system_prompt": "Review briefly.", "parameters": {"seed": 7}},
            },
        }
        publish(client, publisher, "solutions", solution)
        answer = deploy(
            client,
            buyer(app),
            name=None,
            agent=None,
            model=None,
            solution={"slug": "acme/review-kit"},
            configuration={},
        )
        pins = answer["deployment"]["pins"]
        assert pins["solution"] == {"slug": "acme/review-kit", "version": "1.0.0"}
        assert pins["agent"]["slug"] == "acme/reviewer"
        assert pins["configuration"]["system_prompt"] == "Review briefly."
        assert pins["configuration"]["parameters"] == {"temperature": 0.2, "seed": 7}
        assert answer["deployment"]["slug"].startswith(f"{BUYER}/reviewer-")

    def test_an_incompatible_pair_is_refused_with_its_reasons(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        small = model_body("acme/tiny", model={**model_body()["model"], "context_window": 4096,
                                               "tool_calling": False})  # fmt: skip
        publish(client, publisher_headers(app), "models", small)
        answer = client.post(
            DEPLOYMENTS,
            json=deploy_body(model={"slug": "acme/tiny"}),
            headers=buyer(app),
        )
        assert_error(answer, 422, "incompatible", "model")
        codes = [p["code"] for p in answer.json()["error"]["problems"]]
        assert codes == ["requirement_min_context_window", "requirement_tool_calling"]

    def test_an_override_the_template_does_not_name_is_refused_naming_it(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        answer = client.post(
            DEPLOYMENTS,
            json=deploy_body(configuration={"parameters": {"top_k": 5}}),
            headers=buyer(app),
        )
        assert_error(answer, 422, "unknown_parameter", "configuration.parameters.top_k")
        answer = client.post(
            DEPLOYMENTS,
            json=deploy_body(configuration={"parameters": {"temperature": "hot"}}),
            headers=buyer(app),
        )
        assert_error(answer, 422, "parameter_type", "configuration.parameters.temperature")
        answer = client.post(
            DEPLOYMENTS,
            json=deploy_body(configuration={"tools": []}),
            headers=buyer(app),
        )
        assert answer.status_code == 422, answer.text
        assert "tools" in answer.json()["error"]["field"]

    def test_unknown_fields_wallets_and_forbidden_material_are_refused(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        headers = buyer(app)
        answer = client.post(DEPLOYMENTS, json=deploy_body(wallet_address="0xabc"), headers=headers)
        assert answer.status_code == 422, answer.text
        secret = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
        answer = client.post(
            DEPLOYMENTS,
            json=deploy_body(configuration={"system_prompt": f"use {secret}"}),
            headers=headers,
        )
        assert_error(answer, 422, "forbidden_material")
        assert secret not in answer.text
        listed = client.get(DEPLOYMENTS, headers=headers).json()["deployments"]
        assert listed == []

    def test_a_context_window_requirement_the_model_cannot_meet_is_refused(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        answer = client.post(
            DEPLOYMENTS,
            json=deploy_body(requirements={"min_context_window": 64000}),
            headers=buyer(app),
        )
        assert_error(answer, 422, "requirement_min_context_window")

    def test_without_capacity_it_is_refused_unless_asked_to_wait(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client, serve=False)
        answer = client.post(DEPLOYMENTS, json=deploy_body(), headers=buyer(app))
        assert_error(answer, 409, "no_capacity", "model")
        assert (
            "no provider's catalog names acme/swift-7b@1.0.0" in answer.json()["error"]["message"]
        )
        waiting = deploy(client, buyer(app), wait_for_capacity=True)
        assert waiting["capacity"]["serving_now"] is False
        assert waiting["deployment"]["pins"]["wait_for_capacity"] is True

    def test_a_provider_without_live_capacity_is_named_in_the_reasons(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client, serve=False)
        provider_id = provider_naming(client, seller_headers(app), "idle", ask=None)
        answer = client.post(DEPLOYMENTS, json=deploy_body(), headers=buyer(app))
        assert_error(answer, 409, "no_capacity")
        assert provider_id in answer.json()["error"]["message"]

    def test_a_name_is_unique_within_the_owner(self, app: FastAPI, client: TestClient) -> None:
        registry(app, client)
        deploy(client, buyer(app))
        answer = client.post(DEPLOYMENTS, json=deploy_body(), headers=buyer(app))
        assert_error(answer, 409, "slug_taken", "name")
        deploy(client, buyer(app, "buyer-two"))  # another owner's namespace


class TestRevisions:
    def test_a_revision_pins_anew_and_keeps_the_history(
        self, app: FastAPI, client: TestClient
    ) -> None:
        publisher = registry(app, client)
        headers = buyer(app)
        first = deploy(client, headers)["deployment"]
        version = {
            "version": "1.1.0",
            "pricing": {"model": "per_token", "price": 0.0000006},
            "royalty_bps": 300,
            "model": model_body()["model"],
        }
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions", json=version, headers=publisher
        )
        assert answer.status_code == 201, answer.text
        path = f"{DEPLOYMENTS}/{first['deployment_id']}"
        # The pins are immutable: a newer model version changes nothing until a revision.
        assert (
            client.get(path, headers=headers).json()["deployment"]["pins"]["model"]["version"]
            == "1.0.0"
        )
        answer = client.post(
            f"{path}/revisions",
            json={
                "agent": {"slug": "acme/reviewer"},
                "model": {"slug": "acme/swift-7b"},
                "wait_for_capacity": True,
            },
            headers=headers,
        )
        assert answer.status_code == 201, answer.text
        second = answer.json()["deployment"]
        assert second["revision"] == 2 and second["slug"] == first["slug"]
        assert second["pins"]["model"]["version"] == "1.1.0"
        assert second["pins"]["model"]["royalty_bps"] == 300
        # Revision 1's configuration override is not carried to new pins.
        assert second["pins"]["configuration"]["parameters"] == {"temperature": 0.2}
        page = client.get(path, headers=headers).json()
        assert [r["revision"] for r in page["revisions"]] == [1, 2]
        assert page["revisions"][0]["model"]["royalty_bps"] == 250
        assert page["revisions"][0]["configuration"]["parameters"] == {"temperature": 0.1}
        # A revision naming no pins keeps the current ones and configuration, changing policy.
        answer = client.post(
            f"{path}/revisions",
            json={"policy": {"allow_fallback": False}, "wait_for_capacity": True},
            headers=headers,
        )
        assert answer.status_code == 201, answer.text
        third = answer.json()["deployment"]["pins"]
        assert third["model"]["version"] == "1.1.0"
        assert third["policy"]["allow_fallback"] is False
        assert third["requirements"] == second["pins"]["requirements"]

    def test_a_revision_is_checked_like_a_deployment(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        headers = buyer(app)
        deployment_id = deploy(client, headers)["deployment"]["deployment_id"]
        answer = client.post(
            f"{DEPLOYMENTS}/{deployment_id}/revisions",
            json={"configuration": {"parameters": {"nucleus": 0.5}}},
            headers=headers,
        )
        assert_error(answer, 422, "unknown_parameter", "configuration.parameters.nucleus")


class TestStates:
    def test_pause_resume_and_delete(self, app: FastAPI, client: TestClient) -> None:
        registry(app, client)
        headers = buyer(app)
        deployment_id = deploy(client, headers)["deployment"]["deployment_id"]
        path = f"{DEPLOYMENTS}/{deployment_id}"
        answer = client.post(f"{path}/pause", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["deployment"]["state"] == "paused"
        assert_error(client.post(f"{path}/pause", headers=headers), 409, "deployment_state")
        answer = client.post(f"{path}/resume", headers=headers)
        assert answer.json()["deployment"]["state"] == "active"
        answer = client.delete(path, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["deployment"]["state"] == "deleted"
        assert_error(client.post(f"{path}/resume", headers=headers), 409, "deployment_deleted")
        answer = client.post(f"{path}/revisions", json={"wait_for_capacity": True}, headers=headers)
        assert_error(answer, 409, "deployment_deleted")
        # Kept, with its history, and listed only when asked for.
        assert client.get(path, headers=headers).json()["deployment"]["state"] == "deleted"
        assert client.get(DEPLOYMENTS, headers=headers).json()["deployments"] == []
        listed = client.get(DEPLOYMENTS, params={"include_deleted": "true"}, headers=headers)
        assert [d["deployment_id"] for d in listed.json()["deployments"]] == [deployment_id]


class TestAccess:
    def test_owners_see_their_own_admins_and_auditors_see_all(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        mine = deploy(client, buyer(app))["deployment"]["deployment_id"]
        theirs = deploy(client, buyer(app, "buyer-two"))["deployment"]["deployment_id"]
        other = buyer(app, "buyer-two")
        for method, suffix in [
            ("get", ""),
            ("post", "/pause"),
            ("post", "/resume"),
            ("delete", ""),
        ]:
            answer = client.request(method, f"{DEPLOYMENTS}/{mine}{suffix}", headers=other)
            assert_error(answer, 404, "not_found")
        answer = client.post(
            f"{DEPLOYMENTS}/{mine}/revisions", json={"wait_for_capacity": True}, headers=other
        )
        assert_error(answer, 404, "not_found")
        listed = client.get(DEPLOYMENTS, headers=other).json()["deployments"]
        assert [d["deployment_id"] for d in listed] == [theirs]
        auditor = key_headers(app, "auditor", READ, AUDIT)
        for headers in (auditor, admin_headers(app)):
            listed = client.get(DEPLOYMENTS, headers=headers).json()["deployments"]
            assert {d["deployment_id"] for d in listed} == {mine, theirs}
            assert client.get(f"{DEPLOYMENTS}/{mine}", headers=headers).status_code == 200
        # An auditor reads; it cannot deploy or change a deployment.
        answer = client.post(f"{DEPLOYMENTS}/{mine}/pause", headers=auditor)
        assert_error(answer, 403, "missing_scope", "scope")

    def test_a_key_without_the_buy_scope_cannot_deploy(
        self, app: FastAPI, client: TestClient
    ) -> None:
        registry(app, client)
        reader = key_headers(app, BUYER, READ)
        answer = client.post(DEPLOYMENTS, json=deploy_body(), headers=reader)
        assert_error(answer, 403, "missing_scope", "scope")
        assert client.post(DEPLOYMENTS, json=deploy_body()).status_code == 401


def matrix_deployment(world: Any, *, state: str = "active") -> str:
    """For the access matrix: a new deployment of its first buyer (of an agent and a model its
    first provider owner publishes, waiting for capacity), in ``state``; its id."""
    client, buyer_keys = world.client, world.keys["buyer"]
    body = {"name": world.fresh("dep"), **matrix_deploy_body(world)}
    answer = client.post(DEPLOYMENTS, json=body, headers=buyer_keys)
    assert answer.status_code == 201, answer.text
    deployment_id = str(answer.json()["deployment"]["deployment_id"])
    if state == "paused":
        paused = client.post(f"{DEPLOYMENTS}/{deployment_id}/pause", headers=buyer_keys)
        assert paused.status_code == 200, paused.text
    return deployment_id


def matrix_deploy_body(world: Any) -> dict[str, Any]:
    """For the access matrix: a deployment body naming new entries of the first provider owner."""
    owner = "provider-team-alpha"
    model = f"{owner}/{world.fresh('dm')}"
    agent = f"{owner}/{world.fresh('da')}"
    publish(world.client, world.keys["provider"], "models", model_body(model))
    publish(world.client, world.keys["provider"], "agents", agent_body(agent))
    return {"agent": {"slug": agent}, "model": {"slug": model}, "wait_for_capacity": True}

"""The registry's records: models, agents and solutions, their immutable versions, publisher
pages, namespaces and refusals."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.scopes import PUBLISH, READ
from tests.factories import Headers, key_headers

REGISTRY = "/inference/registry"


def publisher_headers(app: FastAPI, owner_id: str = "acme") -> Headers:
    return key_headers(app, owner_id, PUBLISH, READ)


def model_body(slug: str = "acme/swift-7b", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": slug,
        "display_name": "Swift 7B",
        "description": "A fast chat model for coding assistants",
        "tags": ["chat", "coding"],
        "license": "apache-2.0",
        "pricing": {"model": "per_token", "price": 0.0000005},
        "royalty_bps": 250,
        "model": {
            "modality": "chat",
            "compatible_api": ["chat_completions"],
            "context_window": 32768,
            "tool_calling": True,
            "family": "swift",
        },
    }
    body.update(overrides)
    return body


def agent_body(slug: str = "acme/reviewer", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": slug,
        "display_name": "Code reviewer",
        "description": "Reviews pull requests and explains each finding",
        "tags": ["coding", "review"],
        "license": "mit",
        "pricing": {"model": "per_request", "price": 0.01},
        "royalty_bps": 500,
        "agent": {
            "requirements": {
                "apis": ["chat_completions"],
                "min_context_window": 16000,
                "tool_calling": True,
            },
            "config_template": {
                "system_prompt": "You review code.",
                "parameters": {"temperature": 0.2},
                "tools": [{"name": "read_file", "description": "reads one file"}],
            },
        },
    }
    body.update(overrides)
    return body


def publish(client: TestClient, headers: Headers, kind: str, body: dict[str, Any]) -> Any:
    answer = client.post(f"{REGISTRY}/{kind}", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def assert_error(answer: Any, status: int, code: str, field: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, answer.text
    if field is not None:
        assert error["field"] == field, answer.text
    assert answer.json()["dry_run_only"] is True


class TestPublishing:
    def test_a_model_is_registered_with_its_first_version(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = publisher_headers(app)
        answer = publish(client, headers, "models", model_body())
        assert answer["entry"]["slug"] == "acme/swift-7b"
        assert answer["entry"]["publisher_id"] == "acme"
        assert answer["entry"]["latest_version"] == "1.0.0"
        assert answer["version"]["pricing"] == {
            "model": "per_token",
            "price": 0.0000005,
            "currency": "USD_CREDIT",
        }
        assert answer["version"]["royalty_bps"] == 250
        assert answer["version"]["status"] == "active"
        assert answer["funds_moved"] is False

    def test_an_agent_is_registered_and_read(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "agents", agent_body())
        answer = client.get(f"{REGISTRY}/agents/acme/reviewer", headers=headers)
        assert answer.status_code == 200, answer.text
        spec = answer.json()["version"]["spec"]
        assert spec["requirements"]["min_context_window"] == 16000
        assert spec["config_template"]["tools"][0]["name"] == "read_file"
        assert [v["version"] for v in answer.json()["versions"]] == ["1.0.0"]

    def test_a_slug_is_unique(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        answer = client.post(
            f"{REGISTRY}/agents", json=agent_body("acme/swift-7b"), headers=headers
        )
        assert_error(answer, 409, "slug_taken", "slug")

    def test_no_one_writes_under_another_publishers_namespace(
        self, app: FastAPI, client: TestClient
    ) -> None:
        publish(client, publisher_headers(app), "models", model_body())
        intruder = publisher_headers(app, "globex")
        answer = client.post(f"{REGISTRY}/models", json=model_body("acme/other"), headers=intruder)
        assert_error(answer, 403, "namespace_not_yours", "slug")
        version = {**_version_body("2.0.0")}
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions", json=version, headers=intruder
        )
        assert_error(answer, 403, "namespace_not_yours", "slug")
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions/1.0.0/status",
            json={"status": "yanked", "reason": "mine now"},
            headers=intruder,
        )
        assert_error(answer, 403, "namespace_not_yours", "slug")

    def test_an_admin_key_acts_as_the_publisher_as_for_any_actor(
        self, app: FastAPI, client: TestClient
    ) -> None:
        admin = key_headers(app, "operator", "inference:admin")
        answer = client.post(f"{REGISTRY}/models", json=model_body(), headers=admin)
        assert answer.status_code == 201, answer.text
        assert answer.json()["entry"]["publisher_id"] == "acme"

    def test_bad_slugs_are_refused(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        for slug in ("swift", "Acme/swift", "acme/", "acme/swift/7b", "acme/-x", "a" * 65 + "/x"):
            answer = client.post(f"{REGISTRY}/models", json=model_body(slug), headers=headers)
            assert_error(answer, 422, "invalid_request", "slug")

    def test_terms_out_of_bounds_are_refused(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        answer = client.post(
            f"{REGISTRY}/models", json=model_body(royalty_bps=5001), headers=headers
        )
        assert_error(answer, 422, "invalid_request", "royalty_bps")
        answer = client.post(
            f"{REGISTRY}/models",
            json=model_body(pricing={"model": "per_hour", "price": 1}),
            headers=headers,
        )
        assert_error(answer, 422, "invalid_request", "pricing.model")
        answer = client.post(
            f"{REGISTRY}/models",
            json=model_body(pricing={"model": "per_token", "price": 0}),
            headers=headers,
        )
        assert_error(answer, 422, "invalid_request", "pricing.price")

    def test_text_is_bounded(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        answer = client.post(
            f"{REGISTRY}/models", json=model_body(description="x" * 2001), headers=headers
        )
        assert_error(answer, 422, "invalid_request", "description")
        answer = client.post(
            f"{REGISTRY}/models", json=model_body(tags=["t"] * 25), headers=headers
        )
        assert_error(answer, 422, "invalid_request", "tags")

    def test_forbidden_material_is_refused_and_leaves_no_entry(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = publisher_headers(app)
        secret = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
        answer = client.post(
            f"{REGISTRY}/models",
            json=model_body(description=f"use key {secret}"),
            headers=headers,
        )
        assert_error(answer, 422, "forbidden_material")
        assert secret not in answer.text
        assert client.get(f"{REGISTRY}/models/acme/swift-7b", headers=headers).status_code == 404

    def test_publishing_needs_the_publish_scope(self, app: FastAPI, client: TestClient) -> None:
        seller = key_headers(app, "acme", "inference:sell", READ)
        answer = client.post(f"{REGISTRY}/models", json=model_body(), headers=seller)
        assert_error(answer, 403, "missing_scope", "scope")
        answer = client.post(f"{REGISTRY}/models", json=model_body())
        assert_error(answer, 401, "unauthenticated")

    def test_an_unknown_field_is_refused(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        answer = client.post(f"{REGISTRY}/models", json=model_body(wallet="x"), headers=headers)
        assert answer.status_code == 422, answer.text


def _version_body(version: str, **overrides: Any) -> dict[str, Any]:
    body = model_body()
    for field in ("slug", "display_name", "description", "tags", "license"):
        del body[field]
    body["version"] = version
    body.update(overrides)
    return body


class TestVersions:
    def test_a_published_version_never_changes(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        again = _version_body("1.0.0", pricing={"model": "per_token", "price": 0.9})
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions", json=again, headers=headers
        )
        assert_error(answer, 409, "version_exists", "version")
        read = client.get(f"{REGISTRY}/models/acme/swift-7b", headers=headers).json()
        assert read["version"]["pricing"]["price"] == 0.0000005
        assert read["version"]["royalty_bps"] == 250

    def test_a_new_price_is_a_new_version_and_the_old_keeps_its_terms(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        newer = _version_body("1.1.0", pricing={"model": "per_token", "price": 0.000001})
        newer["royalty_bps"] = 100
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions", json=newer, headers=headers
        )
        assert answer.status_code == 201, answer.text
        latest = client.get(f"{REGISTRY}/models/acme/swift-7b", headers=headers).json()
        assert latest["version"]["version"] == "1.1.0"
        assert latest["version"]["pricing"]["price"] == 0.000001
        assert [v["version"] for v in latest["versions"]] == ["1.1.0", "1.0.0"]
        pinned = client.get(
            f"{REGISTRY}/models/acme/swift-7b", params={"version": "1.0.0"}, headers=headers
        ).json()
        assert pinned["version"]["pricing"]["price"] == 0.0000005
        assert pinned["version"]["royalty_bps"] == 250

    def test_a_prerelease_as_long_as_a_version_allows_is_kept(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        longest = "2.0.0-" + "a" * 58  # 64 characters, the most a version may have
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions",
            json=_version_body(longest),
            headers=headers,
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["version"]["version"] == longest

    def test_a_version_must_be_newer(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body(version="2.0.0"))
        for older in ("1.9.9", "2.0.0-rc.1"):
            answer = client.post(
                f"{REGISTRY}/models/acme/swift-7b/versions",
                json=_version_body(older),
                headers=headers,
            )
            assert_error(answer, 409, "version_not_newer", "version")
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions",
            json=_version_body("2.0"),
            headers=headers,
        )
        assert_error(answer, 422, "invalid_request", "version")

    def test_yanking_falls_back_to_the_latest_active_version(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions",
            json=_version_body("1.1.0"),
            headers=headers,
        )
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions/1.1.0/status",
            json={"status": "yanked", "reason": "wrong weights"},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"]["status_reason"] == "wrong weights"
        assert answer.json()["entry"]["latest_version"] == "1.0.0"
        read = client.get(f"{REGISTRY}/models/acme/swift-7b", headers=headers).json()
        assert read["version"]["version"] == "1.0.0"
        pinned = client.get(
            f"{REGISTRY}/models/acme/swift-7b", params={"version": "1.1.0"}, headers=headers
        ).json()
        assert pinned["version"]["status"] == "yanked"
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions/1.1.0/status",
            json={"status": "active"},
            headers=headers,
        )
        assert_error(answer, 409, "version_yanked", "status")

    def test_deprecating_needs_a_reason_and_can_be_undone(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        status = f"{REGISTRY}/models/acme/swift-7b/versions/1.0.0/status"
        answer = client.post(status, json={"status": "deprecated"}, headers=headers)
        assert answer.status_code == 422, answer.text
        answer = client.post(
            status, json={"status": "deprecated", "reason": "use 2.x"}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        read = client.get(f"{REGISTRY}/models/acme/swift-7b", headers=headers)
        assert_error(read, 404, "no_active_version", "version")
        answer = client.post(status, json={"status": "active"}, headers=headers)
        assert answer.json()["entry"]["latest_version"] == "1.0.0"

    def test_unknown_entries_and_versions_are_404(self, app: FastAPI, client: TestClient) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        assert_error(client.get(f"{REGISTRY}/models/acme/none", headers=headers), 404, "not_found")
        assert_error(
            client.get(f"{REGISTRY}/agents/acme/swift-7b", headers=headers), 404, "not_found"
        )
        answer = client.get(
            f"{REGISTRY}/models/acme/swift-7b", params={"version": "9.0.0"}, headers=headers
        )
        assert_error(answer, 404, "not_found", "version")
        answer = client.post(
            f"{REGISTRY}/models/acme/swift-7b/versions/9.0.0/status",
            json={"status": "yanked", "reason": "x"},
            headers=headers,
        )
        assert_error(answer, 404, "not_found", "version")


class TestPublisherPage:
    def test_a_publisher_page_lists_its_entries_by_kind(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = publisher_headers(app)
        publish(client, headers, "models", model_body())
        publish(client, headers, "agents", agent_body())
        publish(client, publisher_headers(app, "globex"), "models", model_body("globex/m"))
        answer = client.get("/inference/publishers/acme", headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()["publisher"]
        assert page["counts"] == {"model": 1, "agent": 1, "solution": 0}
        assert sorted(item["entry"]["slug"] for item in page["entries"]) == [
            "acme/reviewer",
            "acme/swift-7b",
        ]

    def test_an_unknown_publisher_has_an_empty_page(self, app: FastAPI, client: TestClient) -> None:
        answer = client.get("/inference/publishers/nobody", headers=publisher_headers(app))
        assert answer.json()["publisher"]["entries"] == []


def published(client: TestClient, headers: Headers, kind: str, slug: str) -> str:
    """Publish a model or agent (``kind``: models, agents) or a solution of a new model and
    agent (solutions) at ``slug``; its path under the registry."""
    if kind == "solutions":
        model = published(client, headers, "models", f"{slug}-model")
        agent = published(client, headers, "agents", f"{slug}-agent")
        body = {
            "slug": slug,
            "display_name": "Kit",
            "license": "mit",
            "solution": {
                "agent": {"slug": agent, "version": "1.0.0"},
                "model": {"slug": model, "version": "1.0.0"},
            },
        }
    else:
        body = model_body(slug) if kind == "models" else agent_body(slug)
    publish(client, headers, kind, body)
    return slug


def test_the_demo_examples_are_published_and_fit(app: FastAPI, client: TestClient) -> None:
    from flow_memory.registry.examples import seed_examples

    for _ in range(2):  # a demo started again on its database publishes nothing twice
        with app.state.session_factory.begin() as session:
            seed_examples(session, publisher_id="provider-team-alpha", now=app.state.clock.now())
    headers = publisher_headers(app)
    page = client.get("/inference/publishers/provider-team-alpha", headers=headers).json()
    assert page["publisher"]["counts"] == {"model": 1, "agent": 1, "solution": 1}
    fits = client.get(
        f"{REGISTRY}/agents/provider-team-alpha/research-assistant/compatible-models",
        headers=headers,
    ).json()
    assert [c["slug"] for c in fits["compatible"]] == ["provider-team-alpha/orchestrator-8b"]

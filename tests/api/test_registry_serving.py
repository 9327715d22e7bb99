"""The market meets the registry: a provider's catalog entry names the registry model version it
serves, and the model's registry page lists who serves it now, at what ask, and the depth."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.test_registry import (
    REGISTRY,
    _version_body,
    agent_body,
    model_body,
    publish,
    publisher_headers,
)
from tests.factories import (
    Headers,
    capacity_body,
    catalog_body,
    enroll_provider,
    pair_provider,
    seller_headers,
)

SWIFT = {"slug": "acme/swift-7b", "version": "1.0.0"}


def naming_catalog(registry_model: Any = SWIFT, version: str = "2026-06-17T00:00:00Z") -> Any:
    body = catalog_body(version)
    body["models"][0]["registry_model"] = registry_model
    return body


def provider_naming(
    client: TestClient,
    headers: Headers,
    name: str,
    *,
    paired: bool = True,
    ask: float | None = 0.00000075,
    units: int = 2500000,
) -> str:
    provider_id = str(enroll_provider(client, headers, provider_name=name)["provider_id"])
    if paired:
        pair_provider(client, headers, provider_id)
    answer = client.post(
        f"/inference/providers/{provider_id}/catalog", json=naming_catalog(), headers=headers
    )
    assert answer.status_code == 200, answer.text
    if ask is not None:
        body = capacity_body(ask_unit_price=ask, available_units=units)
        answer = client.post(
            f"/inference/providers/{provider_id}/capacity", json=body, headers=headers
        )
        assert answer.status_code == 200, answer.text
    return provider_id


def model_page(client: TestClient, headers: Headers) -> dict[str, Any]:
    answer = client.get(f"{REGISTRY}/models/acme/swift-7b", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_catalog_entry_names_a_registry_version_and_reads_it_back(
    app: FastAPI, client: TestClient
) -> None:
    publish(client, publisher_headers(app), "models", model_body())
    seller = seller_headers(app)
    provider_id = str(enroll_provider(client, seller)["provider_id"])
    answer = client.post(
        f"/inference/providers/{provider_id}/catalog", json=naming_catalog(), headers=seller
    )
    assert answer.status_code == 200, answer.text
    models = {m["model"]: m for m in answer.json()["models"]}
    assert models["flow-memory-orchestrator"]["registry_model"] == SWIFT
    assert "registry_model" not in models["flow-memory-message-chat"]  # as the contract shows


def test_the_model_page_lists_who_serves_it_now_at_what_ask_and_the_depth(
    app: FastAPI, client: TestClient
) -> None:
    publisher = publisher_headers(app)
    publish(client, publisher, "models", model_body())
    cheap = provider_naming(client, seller_headers(app, "seller-cheap"), "cheap", ask=0.0000005)
    dear = provider_naming(
        client, seller_headers(app, "seller-dear"), "dear", ask=0.000001, units=1000000
    )
    unpaired = provider_naming(client, seller_headers(app, "seller-new"), "new", paired=False)
    silent = provider_naming(client, seller_headers(app, "seller-idle"), "idle", ask=None)
    page = model_page(client, publisher)
    rows = [(s["provider_id"], s["unit_type"], s["serving_now"]) for s in page["served_by"]]
    # Serving now first, cheapest ask first; the catalog lists the model for two unit types.
    assert rows[:2] == [(cheap, "token", True), (dear, "token", True)]
    assert {row[0] for row in rows[2:]} == {cheap, dear, unpaired, silent}
    assert not any(row[2] for row in rows[2:])
    assert page["served_by_count"] == len(rows) == 8
    first = page["served_by"][0]
    assert first["model"] == "flow-memory-orchestrator"
    assert first["version"] == "1.0.0"
    assert first["route_gate"] == "eligible"
    assert first["ask_unit_price"] == 0.0000005
    by_provider = {s["provider_id"]: s for s in page["served_by"] if s["unit_type"] == "token"}
    assert by_provider[unpaired]["route_gate"] != "eligible"
    assert by_provider[silent]["ask_unit_price"] is None
    assert by_provider[silent]["available_units"] == 0
    assert page["depth"] == [
        {
            "unit_type": "token",
            "providers": 2,
            "available_units": 3500000,
            "best_ask_unit_price": 0.0000005,
        }
    ]


def test_a_model_nobody_serves_has_an_empty_list_and_no_depth(
    app: FastAPI, client: TestClient
) -> None:
    publisher = publisher_headers(app)
    publish(client, publisher, "models", model_body())
    page = model_page(client, publisher)
    assert (page["served_by"], page["served_by_count"], page["depth"]) == ([], 0, [])


def test_a_catalog_naming_what_the_registry_does_not_hold_is_refused_and_changes_nothing(
    app: FastAPI, client: TestClient
) -> None:
    publisher = publisher_headers(app)
    publish(client, publisher, "models", model_body())
    publish(client, publisher, "agents", agent_body())
    seller = seller_headers(app)
    provider_id = str(enroll_provider(client, seller)["provider_id"])
    refused = [
        ({"slug": "acme/unknown", "version": "1.0.0"}, "registry_model_not_found"),
        ({"slug": "acme/swift-7b", "version": "9.9.9"}, "registry_model_not_found"),
        ({"slug": "acme/reviewer", "version": "1.0.0"}, "registry_model_not_found"),  # an agent
    ]
    for named, code in refused:
        answer = client.post(
            f"/inference/providers/{provider_id}/catalog",
            json=naming_catalog(named),
            headers=seller,
        )
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == (code, "models[0].registry_model")
    answer = client.post(
        f"/inference/providers/{provider_id}/catalog",
        json=naming_catalog({"slug": "acme/swift-7b", "version": "1.0"}),
        headers=seller,
    )
    assert answer.status_code == 422, answer.text
    newer = client.post(
        f"{REGISTRY}/models/acme/swift-7b/versions",
        json=_version_body("1.1.0"),
        headers=publisher,
    )
    assert newer.status_code == 201, newer.text
    yanked = client.post(
        f"{REGISTRY}/models/acme/swift-7b/versions/1.1.0/status",
        json={"status": "yanked", "reason": "wrong weights"},
        headers=publisher,
    )
    assert yanked.status_code == 200, yanked.text
    answer = client.post(
        f"/inference/providers/{provider_id}/catalog",
        json=naming_catalog({"slug": "acme/swift-7b", "version": "1.1.0"}),
        headers=seller,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "registry_version_yanked"
    assert model_page(client, publisher)["served_by"] == []


def test_a_version_yanked_after_a_catalog_named_it_is_no_longer_served(
    app: FastAPI, client: TestClient
) -> None:
    publisher = publisher_headers(app)
    publish(client, publisher, "models", model_body())
    path = f"{REGISTRY}/models/acme/swift-7b/versions"
    assert client.post(path, json=_version_body("1.1.0"), headers=publisher).status_code == 201
    seller = seller_headers(app)
    provider_id = str(enroll_provider(client, seller)["provider_id"])
    named = naming_catalog({"slug": "acme/swift-7b", "version": "1.1.0"})
    answer = client.post(f"/inference/providers/{provider_id}/catalog", json=named, headers=seller)
    assert answer.status_code == 200, answer.text
    assert model_page(client, publisher)["served_by_count"] == 2  # token and request
    yank = {"status": "yanked", "reason": "wrong weights"}
    assert client.post(f"{path}/1.1.0/status", json=yank, headers=publisher).status_code == 200
    page = model_page(client, publisher)
    assert (page["served_by"], page["served_by_count"]) == ([], 0)

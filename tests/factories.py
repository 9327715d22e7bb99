"""Plain functions that build records through the API (or, for keys, the service)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flow_memory.keys.service import KEY_CACHE, create_key
from flow_memory.kit.actors import register_identity_source, unregister_identity_source

Headers = dict[str, str]

SELLER = "provider-team-alpha"
BUYER = "agent-research-1"


def key_headers(app: FastAPI, owner_id: str, *scopes: str) -> Headers:
    """Issue a key for ``owner_id`` with ``scopes`` and return its Authorization header."""
    with app.state.session_factory.begin() as session:
        issued = create_key(
            session, owner_id=owner_id, scopes=scopes, label="test", now=app.state.clock.now()
        )
    return {"authorization": f"Bearer {issued.secret}"}


def seller_headers(app: FastAPI, owner_id: str = SELLER) -> Headers:
    return key_headers(app, owner_id, "inference:sell", "inference:read")


def buyer_headers(app: FastAPI, owner_id: str = BUYER) -> Headers:
    return key_headers(app, owner_id, "inference:buy", "inference:read")


def admin_headers(app: FastAPI) -> Headers:
    return key_headers(app, "operator", "inference:admin")


@contextmanager
def operated_agents(agents: Mapping[str, Iterable[str]]) -> Iterator[None]:
    """While open, each owner in ``agents`` controls the agent identities listed for it: a test
    double for the agent identities a later domain registers (``flow_memory.kit.actors``)."""
    operated = {owner: frozenset(ids) for owner, ids in agents.items()}

    def source(session: Session, *, owner_id: str, key_id: str) -> Iterable[str]:
        return operated.get(owner_id, frozenset())

    KEY_CACHE.clear()  # keys are read again, with what their owners control
    register_identity_source(source)
    try:
        yield
    finally:
        unregister_identity_source(source)
        KEY_CACHE.clear()


def credential_ref_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workspace_id": "workspace-default",
        "credential_ref": "secret://inference/provider-alpha",
        "provider_api": "sdk_compatible",
        "display_name": "Provider Alpha production reference",
        "allowed_models": ["flow-memory-orchestrator"],
        "metadata": {"rotation_policy": "operator-managed"},
    }
    body.update(overrides)
    return body


def create_credential_ref(client: TestClient, headers: Headers, **overrides: Any) -> dict[str, Any]:
    response = client.post(
        "/inference/credential-refs", json=credential_ref_body(**overrides), headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["credential_ref"])


def enroll_body(credential_ref_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workspace_id": "workspace-default",
        "provider_name": "Provider Alpha",
        "provider_api": "sdk_compatible",
        "base_url": "https://provider-alpha.example/v1",
        "credential_ref_id": credential_ref_id,
        "supported_units": ["token", "request"],
        "contact": {"routing_email": "ops@example.invalid"},
    }
    body.update(overrides)
    return body


def enroll_provider(
    client: TestClient, headers: Headers, credential_ref_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    if credential_ref_id is None:
        credential_ref_id = create_credential_ref(client, headers)["credential_ref_id"]
    response = client.post(
        "/inference/providers/enroll",
        json=enroll_body(credential_ref_id, **overrides),
        headers=headers,
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json()["provider"])


def pair_provider(client: TestClient, headers: Headers, provider_id: str) -> None:
    token = client.post(f"/inference/providers/{provider_id}/pairing-token", headers=headers)
    assert token.status_code == 201, token.text
    beat = client.post(
        f"/inference/providers/{provider_id}/heartbeat",
        headers={**headers, "x-flow-memory-pairing-token": token.json()["pairing_token"]},
    )
    assert beat.status_code == 200, beat.text


def catalog_body(version: str = "2026-06-17T00:00:00Z") -> dict[str, Any]:
    return {
        "catalog_version": version,
        "models": [
            {
                "model": "flow-memory-orchestrator",
                "compatible_api": "chat_responses",
                "unit_types": ["token", "request"],
                "context_window": 128000,
                "tool_calling": "metadata_only",
            },
            {
                "model": "flow-memory-message-chat",
                "compatible_api": "messages",
                "unit_types": ["request"],
                "context_window": 200000,
                "tool_calling": "metadata_only",
            },
        ],
    }


def capacity_body(version: str = "2026-06-17T00:05:00Z", **item: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model": "flow-memory-orchestrator",
        "unit_type": "token",
        "available_units": 2500000,
        "ask_unit_price": 0.00000075,
        "min_order_units": 1000,
        "quality_score": 0.98,
        "reliability_score": 0.99,
        "expires_at": "2026-12-31T00:00:00Z",
    }
    entry.update(item)
    return {"capacity_version": version, "inventory": [entry]}


def eligible_provider(client: TestClient, headers: Headers, **overrides: Any) -> dict[str, Any]:
    """Enroll, pair, heartbeat and publish catalog and capacity: a provider whose gate is open."""
    provider = enroll_provider(client, headers, **overrides)
    provider_id = provider["provider_id"]
    pair_provider(client, headers, provider_id)
    assert (
        client.post(
            f"/inference/providers/{provider_id}/catalog", json=catalog_body(), headers=headers
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/inference/providers/{provider_id}/capacity", json=capacity_body(), headers=headers
        ).status_code
        == 200
    )
    return provider

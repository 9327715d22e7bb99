"""The provider-agent runtime over the API: enroll, pair, heartbeat, catalog, capacity, health."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from flow_memory.kit.clock import FrozenClock
from tests.assertions import error, ok
from tests.conftest import TEST_START
from tests.factories import (
    SELLER,
    admin_headers,
    capacity_body,
    catalog_body,
    create_credential_ref,
    eligible_provider,
    enroll_body,
    enroll_provider,
    key_headers,
    pair_provider,
    seller_headers,
)

PROVIDERS = "/inference/providers"
PAIRING_HEADER = "x-flow-memory-pairing-token"
Headers = dict[str, str]


def iso(seconds_after_start: float) -> str:
    moment = TEST_START + timedelta(seconds=seconds_after_start)
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def admin(app: FastAPI) -> Headers:
    return admin_headers(app)


@pytest.fixture
def ref_id(client: TestClient, seller: Headers) -> str:
    return str(create_credential_ref(client, seller)["credential_ref_id"])


@pytest.fixture
def provider_id(client: TestClient, seller: Headers, ref_id: str) -> str:
    return str(enroll_provider(client, seller, ref_id)["provider_id"])


@pytest.fixture
def paired_id(client: TestClient, seller: Headers, provider_id: str) -> str:
    pair_provider(client, seller, provider_id)
    return provider_id


@pytest.fixture
def cataloged_id(client: TestClient, seller: Headers, paired_id: str) -> str:
    ok(client.post(f"{PROVIDERS}/{paired_id}/catalog", json=catalog_body(), headers=seller))
    return paired_id


def health(client: TestClient, headers: Headers, provider_id: str) -> dict[str, Any]:
    return ok(client.get(f"{PROVIDERS}/{provider_id}/health", headers=headers))


def new_token(client: TestClient, headers: Headers, provider_id: str) -> str:
    body = ok(client.post(f"{PROVIDERS}/{provider_id}/pairing-token", headers=headers), 201)
    return str(body["pairing_token"])


def beat(
    client: TestClient,
    headers: Headers,
    provider_id: str,
    token: str | None = None,
    body: dict[str, Any] | None = None,
) -> Response:
    extra = {PAIRING_HEADER: token} if token is not None else {}
    response: Response = client.post(
        f"{PROVIDERS}/{provider_id}/heartbeat", json=body, headers={**headers, **extra}
    )
    return response


class TestEnroll:
    def test_the_seed_request_creates_a_provider_pending_pairing(
        self, client: TestClient, seller: Headers, ref_id: str
    ) -> None:
        seed = {
            "owner_id": "provider-team-alpha",
            "workspace_id": "workspace-default",
            "provider_name": "Provider Alpha",
            "provider_api": "sdk_compatible",
            "base_url": "https://provider-alpha.example/v1",
            "credential_ref_id": ref_id,
            "credential_ref": "secret://inference/provider-alpha",
            "supported_units": ["token", "request"],
            "contact": {"routing_email": "ops@example.invalid"},
        }
        body = ok(client.post(f"{PROVIDERS}/enroll", json=seed, headers=seller), 201)
        assert body["enrollment"] == "created"
        provider = body["provider"]
        assert provider["provider_id"].startswith("prov_")
        assert provider["owner_id"] == "provider-team-alpha"
        assert provider["provider_name"] == "Provider Alpha"
        assert provider["base_url"] == "https://provider-alpha.example/v1"
        assert provider["credential_ref_id"] == ref_id
        assert provider["credential_ref"] == "secret://inference/provider-alpha"
        assert provider["supported_units"] == ["token", "request"]
        assert provider["contact"] == {"routing_email": "ops@example.invalid"}
        assert provider["runtime_status"] == "pending_pairing"
        assert provider["route_gate"] == "pending"
        assert provider["created_at"] == "2026-06-17T00:00:00Z"
        pid = provider["provider_id"]
        pairing = body["pairing"]
        assert pairing["pairing_token_route"] == f"{PROVIDERS}/{pid}/pairing-token"
        assert pairing["heartbeat_route"] == f"{PROVIDERS}/{pid}/heartbeat"
        assert pairing["pairing_header"] == PAIRING_HEADER
        assert pairing["steps"]

    def test_re_enrolling_the_same_name_updates_the_same_provider(
        self, client: TestClient, seller: Headers, ref_id: str, clock: FrozenClock
    ) -> None:
        first = enroll_provider(client, seller, ref_id)
        clock.advance(10)
        response = client.post(
            f"{PROVIDERS}/enroll",
            json=enroll_body(ref_id, base_url="https://provider-alpha-2.example/v1"),
            headers=seller,
        )
        body = ok(response, 200)
        assert body["enrollment"] == "updated"
        assert body["provider"]["provider_id"] == first["provider_id"]
        assert body["provider"]["base_url"] == "https://provider-alpha-2.example/v1"
        assert body["provider"]["created_at"] == first["created_at"]
        assert body["provider"]["updated_at"] == iso(10)

    def test_a_different_name_is_a_different_provider(
        self, client: TestClient, seller: Headers, ref_id: str
    ) -> None:
        first = enroll_provider(client, seller, ref_id)
        second = client.post(
            f"{PROVIDERS}/enroll",
            json=enroll_body(ref_id, provider_name="Provider Beta"),
            headers=seller,
        )
        assert ok(second, 201)["provider"]["provider_id"] != first["provider_id"]

    def test_the_same_name_under_another_owner_is_a_different_provider(
        self, client: TestClient, app: FastAPI, seller: Headers, ref_id: str
    ) -> None:
        first = enroll_provider(client, seller, ref_id)
        other = seller_headers(app, "seller-beta")
        second = enroll_provider(client, other)
        assert second["provider_id"] != first["provider_id"]
        assert second["owner_id"] == "seller-beta"

    def test_an_admin_may_enroll_for_an_owner(
        self, client: TestClient, admin: Headers, ref_id: str
    ) -> None:
        body = ok(
            client.post(
                f"{PROVIDERS}/enroll", json=enroll_body(ref_id, owner_id=SELLER), headers=admin
            ),
            201,
        )
        assert body["provider"]["owner_id"] == SELLER

    def test_a_seller_cannot_enroll_for_another_owner(
        self, client: TestClient, seller: Headers, ref_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/enroll", json=enroll_body(ref_id, owner_id="x-beta"), headers=seller
            ),
            403,
            "identity_not_yours",
            "owner_id",
        )

    def test_a_stale_credential_pointer_is_refused(
        self, client: TestClient, seller: Headers, ref_id: str
    ) -> None:
        body = enroll_body(ref_id, credential_ref="secret://inference/something-else")
        error(
            client.post(f"{PROVIDERS}/enroll", json=body, headers=seller),
            422,
            "credential_ref_mismatch",
            "credential_ref",
        )

    def test_an_unknown_credential_reference_is_not_found(
        self, client: TestClient, seller: Headers
    ) -> None:
        error(
            client.post(f"{PROVIDERS}/enroll", json=enroll_body("credref_missing"), headers=seller),
            404,
            "not_found",
            "credential_ref_id",
        )

    @pytest.mark.parametrize(
        "base_url",
        [
            "http://169.254.169.254/latest",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://10.0.0.5:8000/v1",
            "http://user:pw@provider-alpha.example/v1",
            "http://[fe80::1]/v1",
            "http://0.0.0.0:8000/v1",
        ],
    )
    def test_refused_upstream_addresses(
        self, client: TestClient, seller: Headers, ref_id: str, base_url: str
    ) -> None:
        response = client.post(
            f"{PROVIDERS}/enroll", json=enroll_body(ref_id, base_url=base_url), headers=seller
        )
        detail = error(response, 422, "upstream_address_refused", "base_url")
        assert "pw@" not in response.text
        assert detail["hint"].startswith("reason: ")
        # Nothing was stored: the first good enrollment of that name is a creation.
        ok(client.post(f"{PROVIDERS}/enroll", json=enroll_body(ref_id), headers=seller), 201)

    @pytest.mark.parametrize(
        "base_url",
        ["http://127.0.0.1:11434/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1"],
    )
    def test_loopback_is_allowed_by_default(
        self, client: TestClient, seller: Headers, ref_id: str, base_url: str
    ) -> None:
        body = ok(
            client.post(
                f"{PROVIDERS}/enroll", json=enroll_body(ref_id, base_url=base_url), headers=seller
            ),
            201,
        )
        assert body["provider"]["base_url"] == base_url

    def test_operator_settings_allow_private_and_refuse_loopback(
        self, client: TestClient, app: FastAPI, seller: Headers, ref_id: str
    ) -> None:
        app.state.settings = dataclasses.replace(
            app.state.settings, allow_private_upstreams=True, allow_loopback_upstreams=False
        )
        ok(
            client.post(
                f"{PROVIDERS}/enroll",
                json=enroll_body(ref_id, base_url="http://10.0.0.5:8000/v1"),
                headers=seller,
            ),
            201,
        )
        response = client.post(
            f"{PROVIDERS}/enroll",
            json=enroll_body(ref_id, base_url="http://127.0.0.1:8000/v1"),
            headers=seller,
        )
        error(response, 422, "upstream_address_refused", "base_url")
        # Metadata addresses stay refused whatever the operator allows.
        response = client.post(
            f"{PROVIDERS}/enroll",
            json=enroll_body(ref_id, base_url="http://169.254.169.254/"),
            headers=seller,
        )
        error(response, 422, "upstream_address_refused", "base_url")

    @pytest.mark.parametrize("base_url", ["ftp://provider.example/", "not a url", ""])
    def test_a_malformed_base_url_is_invalid(
        self, client: TestClient, seller: Headers, ref_id: str, base_url: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/enroll", json=enroll_body(ref_id, base_url=base_url), headers=seller
            ),
            422,
            "invalid_request",
            "base_url",
        )

    def test_an_unknown_unit_is_invalid(
        self, client: TestClient, seller: Headers, ref_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/enroll",
                json=enroll_body(ref_id, supported_units=["gallon"]),
                headers=seller,
            ),
            422,
            "invalid_request",
            "supported_units[0]",
        )

    def test_missing_and_unknown_fields_are_named(
        self, client: TestClient, seller: Headers, ref_id: str
    ) -> None:
        body = enroll_body(ref_id)
        del body["provider_name"]
        error(
            client.post(f"{PROVIDERS}/enroll", json=body, headers=seller),
            422,
            "missing_field",
            "provider_name",
        )
        error(
            client.post(
                f"{PROVIDERS}/enroll", json={**enroll_body(ref_id), "region": "eu"}, headers=seller
            ),
            422,
            "unknown_field",
            "region",
        )


class TestPairingToken:
    def test_a_token_is_shown_once_with_preview_and_expiry(
        self, client: TestClient, seller: Headers, provider_id: str, clock: FrozenClock
    ) -> None:
        clock.advance(5)
        body = ok(client.post(f"{PROVIDERS}/{provider_id}/pairing-token", headers=seller), 201)
        assert body["provider_id"] == provider_id
        token = body["pairing_token"]
        assert token.startswith("fmpair_")
        assert len(token) > 20
        assert body["token_preview"] != token
        assert token.startswith(body["token_preview"].rstrip("…"))
        assert body["issued_at"] == iso(5)
        assert body["expires_at"] == iso(605)
        assert body["ttl_seconds"] == 600
        assert body["pairing_header"] == PAIRING_HEADER

    def test_each_request_gets_a_fresh_token(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        assert new_token(client, seller, provider_id) != new_token(client, seller, provider_id)

    def test_an_unknown_provider_is_not_found(self, client: TestClient, seller: Headers) -> None:
        error(
            client.post(f"{PROVIDERS}/prov_missing/pairing-token", headers=seller),
            404,
            "not_found",
            "provider_id",
        )


class TestHeartbeat:
    def test_a_heartbeat_before_pairing_is_refused(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        error(beat(client, seller, provider_id), 409, "pairing_required")
        assert health(client, seller, provider_id)["last_heartbeat_at"] is None

    def test_the_first_heartbeat_with_a_token_pairs_the_provider(
        self, client: TestClient, seller: Headers, provider_id: str, clock: FrozenClock
    ) -> None:
        token = new_token(client, seller, provider_id)
        clock.advance(20)
        body = ok(beat(client, seller, provider_id, token))
        assert body["provider_id"] == provider_id
        assert body["paired"] is True
        assert body["runtime_status"] == "paired"
        assert body["reported_status"] == "ready"
        assert body["last_heartbeat_at"] == iso(20)
        assert body["next_heartbeat_due_by"] == iso(110)

    def test_later_heartbeats_need_no_token_and_report_status(
        self, client: TestClient, seller: Headers, paired_id: str, clock: FrozenClock
    ) -> None:
        clock.advance(30)
        body = ok(
            beat(
                client,
                seller,
                paired_id,
                body={"runtime_status": "busy", "agent_version": "1.2.3", "active_requests": 4},
            )
        )
        assert body["reported_status"] == "busy"
        assert body["last_heartbeat_at"] == iso(30)
        assert health(client, seller, paired_id)["last_heartbeat_at"] == iso(30)

    def test_an_invalid_token_is_refused_and_does_not_pair(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        new_token(client, seller, provider_id)
        error(
            beat(client, seller, provider_id, "fmpair_not-a-real-token"),
            409,
            "pairing_token_invalid",
            PAIRING_HEADER,
        )
        error(beat(client, seller, provider_id), 409, "pairing_required")

    def test_another_providers_token_is_invalid(
        self, client: TestClient, seller: Headers, ref_id: str, provider_id: str
    ) -> None:
        other = enroll_provider(client, seller, ref_id, provider_name="Provider Beta")
        token = new_token(client, seller, other["provider_id"])
        error(beat(client, seller, provider_id, token), 409, "pairing_token_invalid")

    def test_a_used_token_is_refused(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        token = new_token(client, seller, provider_id)
        ok(beat(client, seller, provider_id, token))
        error(beat(client, seller, provider_id, token), 409, "pairing_token_used", PAIRING_HEADER)

    def test_an_expired_token_is_refused(
        self, client: TestClient, seller: Headers, provider_id: str, clock: FrozenClock
    ) -> None:
        token = new_token(client, seller, provider_id)
        clock.advance(601)
        error(
            beat(client, seller, provider_id, token), 409, "pairing_token_expired", PAIRING_HEADER
        )
        error(beat(client, seller, provider_id), 409, "pairing_required")
        # A fresh token still works.
        ok(beat(client, seller, provider_id, new_token(client, seller, provider_id)))

    def test_a_token_just_inside_its_lifetime_works(
        self, client: TestClient, seller: Headers, provider_id: str, clock: FrozenClock
    ) -> None:
        token = new_token(client, seller, provider_id)
        clock.advance(599)
        assert ok(beat(client, seller, provider_id, token))["paired"] is True

    def test_an_unknown_status_or_field_is_invalid(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        error(
            beat(client, seller, paired_id, body={"runtime_status": "on_fire"}),
            422,
            "invalid_request",
            "runtime_status",
        )
        error(beat(client, seller, paired_id, body={"gpu": "a100"}), 422, "unknown_field", "gpu")


class TestCatalog:
    def test_the_seed_catalog_is_published(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        body = ok(
            client.post(f"{PROVIDERS}/{paired_id}/catalog", json=catalog_body(), headers=seller)
        )
        assert body["provider_id"] == paired_id
        assert body["catalog_version"] == "2026-06-17T00:00:00Z"
        assert body["model_count"] == 2
        by_model = {m["model"]: m for m in body["models"]}
        assert by_model["flow-memory-orchestrator"] == {
            "model": "flow-memory-orchestrator",
            "compatible_api": "chat_responses",
            "unit_types": ["token", "request"],
            "context_window": 128000,
            "tool_calling": "metadata_only",
            "reference_unit_prices": {},
        }
        assert by_model["flow-memory-message-chat"]["compatible_api"] == "messages"
        assert by_model["flow-memory-message-chat"]["context_window"] == 200000

    def test_a_catalog_needs_no_pairing(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        ok(client.post(f"{PROVIDERS}/{provider_id}/catalog", json=catalog_body(), headers=seller))

    def test_reference_prices_are_plain_numbers(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        body = catalog_body()
        body["models"][0]["reference_unit_prices"] = {"request": 0.00000075}
        body["models"][1]["reference_unit_prices"] = {"request": 0.2}
        response = client.post(f"{PROVIDERS}/{paired_id}/catalog", json=body, headers=seller)
        ok(response)
        assert '"reference_unit_prices":{"request":0.00000075}' in response.text
        assert '"reference_unit_prices":{"request":0.2}' in response.text

    def test_a_reference_price_per_token_is_accepted(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        body = catalog_body()
        body["models"][0]["reference_unit_prices"] = {"token": 0.00000075}
        response = client.post(f"{PROVIDERS}/{paired_id}/catalog", json=body, headers=seller)
        ok(response)
        assert '"reference_unit_prices":{"token":0.00000075}' in response.text

    def test_a_newer_catalog_replaces_the_old_one(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        newer = catalog_body("2026-06-18T00:00:00Z")
        newer["models"] = newer["models"][:1]
        body = ok(client.post(f"{PROVIDERS}/{cataloged_id}/catalog", json=newer, headers=seller))
        assert body["model_count"] == 1
        assert body["catalog_version"] == "2026-06-18T00:00:00Z"
        # The dropped model can no longer be offered as capacity.
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body(model="flow-memory-message-chat", unit_type="request"),
                headers=seller,
            ),
            422,
            "model_not_in_catalog",
        )

    def test_an_older_catalog_version_is_a_conflict(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/catalog",
                json=catalog_body("2026-06-16T23:59:59Z"),
                headers=seller,
            ),
            409,
            "catalog_version_outdated",
            "catalog_version",
        )

    def test_the_version_is_compared_in_utc(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        # 01:00 at +02:00 is 23:00 UTC the day before: older than the current version.
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/catalog",
                json=catalog_body("2026-06-17T01:00:00+02:00"),
                headers=seller,
            ),
            409,
            "catalog_version_outdated",
        )

    def test_a_version_without_a_timezone_is_invalid(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{paired_id}/catalog",
                json=catalog_body("2026-06-17T00:00:00"),
                headers=seller,
            ),
            422,
            "invalid_request",
            "catalog_version",
        )

    def test_a_unit_the_provider_does_not_support_is_invalid(
        self, client: TestClient, seller: Headers, ref_id: str
    ) -> None:
        provider = enroll_provider(client, seller, ref_id, supported_units=["token"])
        error(
            client.post(
                f"{PROVIDERS}/{provider['provider_id']}/catalog",
                json=catalog_body(),
                headers=seller,
            ),
            422,
            "unit_type_not_supported",
            "models[0].unit_types",
        )

    def test_a_duplicate_model_is_invalid(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        body = catalog_body()
        body["models"][1] = dict(body["models"][0])
        error(
            client.post(f"{PROVIDERS}/{paired_id}/catalog", json=body, headers=seller),
            422,
            "duplicate_model",
            "models[1].model",
        )

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"models": []}, "models"),
            ({"catalog_version": "yesterday"}, "catalog_version"),
        ],
    )
    def test_malformed_catalogs_are_invalid(
        self,
        client: TestClient,
        seller: Headers,
        paired_id: str,
        change: dict[str, Any],
        field: str,
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{paired_id}/catalog",
                json={**catalog_body(), **change},
                headers=seller,
            ),
            422,
            "invalid_request",
            field,
        )

    def test_a_bad_model_entry_is_named(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        body = catalog_body()
        body["models"][0]["compatible_api"] = "telepathy"
        error(
            client.post(f"{PROVIDERS}/{paired_id}/catalog", json=body, headers=seller),
            422,
            "invalid_request",
            "models[0].compatible_api",
        )


class TestCapacity:
    def test_capacity_before_a_catalog_is_a_conflict(
        self, client: TestClient, seller: Headers, paired_id: str
    ) -> None:
        error(
            client.post(f"{PROVIDERS}/{paired_id}/capacity", json=capacity_body(), headers=seller),
            409,
            "catalog_required",
        )

    def test_the_seed_capacity_is_published_with_exact_prices(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        response = client.post(
            f"{PROVIDERS}/{cataloged_id}/capacity", json=capacity_body(), headers=seller
        )
        body = ok(response)
        assert body["provider_id"] == cataloged_id
        assert body["capacity_version"] == "2026-06-17T00:05:00Z"
        assert body["total_available_units"] == 2500000
        assert body["inventory"] == [
            {
                "model": "flow-memory-orchestrator",
                "unit_type": "token",
                "available_units": 2500000,
                "ask_unit_price": 0.00000075,
                "min_order_units": 1000,
                "quality_score": 0.98,
                "reliability_score": 0.99,
                "expires_at": "2026-12-31T00:00:00Z",
            }
        ]
        assert '"ask_unit_price":0.00000075' in response.text
        assert "E-" not in response.text

    def test_a_price_sent_as_a_string_keeps_every_digit(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        response = client.post(
            f"{PROVIDERS}/{cataloged_id}/capacity",
            json=capacity_body(ask_unit_price="0.000000123456789012"),
            headers=seller,
        )
        ok(response)
        assert '"ask_unit_price":0.000000123456789012' in response.text

    def test_an_older_capacity_version_is_a_conflict(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        ok(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity", json=capacity_body(), headers=seller
            )
        )
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body("2026-06-17T00:04:59Z"),
                headers=seller,
            ),
            409,
            "capacity_version_outdated",
            "capacity_version",
        )

    def test_a_newer_capacity_replaces_the_inventory(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        ok(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity", json=capacity_body(), headers=seller
            )
        )
        body = ok(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body("2026-06-17T00:06:00Z", available_units=5000),
                headers=seller,
            )
        )
        assert body["total_available_units"] == 5000
        assert len(body["inventory"]) == 1

    def test_a_model_outside_the_catalog_is_invalid(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body(model="some-other-model"),
                headers=seller,
            ),
            422,
            "model_not_in_catalog",
            "inventory[0].model",
        )

    def test_a_unit_the_model_is_not_offered_in_is_invalid(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body(model="flow-memory-message-chat", unit_type="token"),
                headers=seller,
            ),
            422,
            "unit_type_not_offered",
            "inventory[0].unit_type",
        )

    @pytest.mark.parametrize("offset", [-1, 0])
    def test_capacity_that_has_already_expired_is_invalid(
        self, client: TestClient, seller: Headers, cataloged_id: str, offset: int
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body(expires_at=iso(offset)),
                headers=seller,
            ),
            422,
            "capacity_already_expired",
            "inventory[0].expires_at",
        )

    def test_an_expiry_without_a_timezone_is_invalid(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body(expires_at="2026-12-31T00:00:00"),
                headers=seller,
            ),
            422,
            "invalid_request",
            "inventory[0].expires_at",
        )

    def test_a_duplicate_entry_is_invalid(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        body = capacity_body()
        body["inventory"].append(dict(body["inventory"][0]))
        error(
            client.post(f"{PROVIDERS}/{cataloged_id}/capacity", json=body, headers=seller),
            422,
            "duplicate_capacity",
            "inventory[1]",
        )

    def test_a_minimum_order_above_the_available_units_is_invalid(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body(available_units=10, min_order_units=11),
                headers=seller,
            ),
            422,
            "min_order_above_available",
            "inventory[0].min_order_units",
        )

    @pytest.mark.parametrize(
        ("item", "field"),
        [
            ({"ask_unit_price": 0}, "inventory[0].ask_unit_price"),
            ({"ask_unit_price": -0.1}, "inventory[0].ask_unit_price"),
            ({"available_units": -1}, "inventory[0].available_units"),
            ({"quality_score": 1.5}, "inventory[0].quality_score"),
            ({"unit_type": "gallon"}, "inventory[0].unit_type"),
        ],
    )
    def test_out_of_range_values_are_invalid(
        self,
        client: TestClient,
        seller: Headers,
        cataloged_id: str,
        item: dict[str, Any],
        field: str,
    ) -> None:
        error(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity", json=capacity_body(**item), headers=seller
            ),
            422,
            "invalid_request",
            field,
        )


class TestHealth:
    def test_the_seed_shape_for_an_eligible_provider(
        self, client: TestClient, seller: Headers
    ) -> None:
        provider = eligible_provider(client, seller)
        body = health(client, seller, provider["provider_id"])
        assert body["provider_id"] == provider["provider_id"]
        assert body["status"] == "healthy"
        assert body["credential_ref_status"] == "active"
        assert body["last_heartbeat_at"] == "2026-06-17T00:00:00Z"
        assert body["heartbeat_status"] == "current"
        assert body["catalog_status"] == "current"
        assert body["capacity_status"] == "current"
        assert body["route_gate"] == "eligible"
        assert body["reasons"] == []
        assert body["checked_at"] == "2026-06-17T00:00:00Z"

    def test_a_new_enrollment_is_pending(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        body = health(client, seller, provider_id)
        assert body["status"] == "pending"
        assert body["route_gate"] == "pending"
        assert body["last_heartbeat_at"] is None
        assert body["heartbeat_status"] == "missing"
        assert body["catalog_status"] == "missing"
        assert body["capacity_status"] == "missing"
        assert "pairing_pending" in body["reasons"]

    def test_paired_without_capacity_is_still_pending(
        self, client: TestClient, seller: Headers, cataloged_id: str
    ) -> None:
        body = health(client, seller, cataloged_id)
        assert body["route_gate"] == "pending"
        assert body["capacity_status"] == "missing"
        assert "pairing_pending" not in body["reasons"]

    def test_a_silent_provider_becomes_stale_and_unhealthy(
        self, client: TestClient, seller: Headers, clock: FrozenClock
    ) -> None:
        provider_id = eligible_provider(client, seller)["provider_id"]
        clock.advance(90)
        assert health(client, seller, provider_id)["heartbeat_status"] == "current"
        clock.advance(1)
        body = health(client, seller, provider_id)
        assert body["heartbeat_status"] == "stale"
        assert body["route_gate"] == "stale"
        assert body["status"] == "unhealthy"
        assert "heartbeat_stale" in body["reasons"]
        assert body["checked_at"] == iso(91)

    def test_a_heartbeat_restores_eligibility(
        self, client: TestClient, seller: Headers, clock: FrozenClock
    ) -> None:
        provider_id = eligible_provider(client, seller)["provider_id"]
        clock.advance(300)
        ok(beat(client, seller, provider_id))
        body = health(client, seller, provider_id)
        assert body["route_gate"] == "eligible"
        assert body["last_heartbeat_at"] == iso(300)

    def test_a_draining_runtime_is_not_routed_until_it_reports_ready(
        self, client: TestClient, seller: Headers, app: FastAPI
    ) -> None:
        provider_id = eligible_provider(client, seller)["provider_id"]
        planner = key_headers(app, "planner", "inference:plan")
        policy = {"model": "flow-memory-orchestrator", "estimated_units": 1000}
        quote = client.post("/inference/quote", json=policy, headers=planner).json()
        assert [q["provider_id"] for q in quote["quotes"]] == [provider_id]  # offers now kept
        ok(beat(client, seller, provider_id, body={"runtime_status": "draining"}))
        body = health(client, seller, provider_id)
        assert (body["route_gate"], body["status"]) == ("pending", "degraded")
        assert "runtime_draining" in body["reasons"]
        quote = client.post("/inference/quote", json=policy, headers=planner).json()
        assert quote["quotes"] == []
        assert quote["rejected_routes"][0]["code"] == "provider_unhealthy"
        ok(beat(client, seller, provider_id, body={"runtime_status": "ready"}))
        assert health(client, seller, provider_id)["route_gate"] == "eligible"
        quote = client.post("/inference/quote", json=policy, headers=planner).json()
        assert [q["provider_id"] for q in quote["quotes"]] == [provider_id]

    def test_capacity_past_its_expiry_is_expired(
        self, client: TestClient, seller: Headers, cataloged_id: str, clock: FrozenClock
    ) -> None:
        ok(
            client.post(
                f"{PROVIDERS}/{cataloged_id}/capacity",
                json=capacity_body(expires_at=iso(120)),
                headers=seller,
            )
        )
        assert health(client, seller, cataloged_id)["route_gate"] == "eligible"
        clock.advance(121)
        ok(beat(client, seller, cataloged_id))
        body = health(client, seller, cataloged_id)
        assert body["capacity_status"] == "expired"
        assert body["heartbeat_status"] == "current"
        assert body["route_gate"] == "stale"
        assert body["status"] == "degraded"
        assert "capacity_expired" in body["reasons"]

    def test_capacity_not_republished_goes_stale(
        self, client: TestClient, seller: Headers, clock: FrozenClock
    ) -> None:
        provider_id = eligible_provider(client, seller)["provider_id"]
        clock.advance(901)
        ok(beat(client, seller, provider_id))
        body = health(client, seller, provider_id)
        assert body["capacity_status"] == "stale"
        assert body["catalog_status"] == "current"
        assert body["route_gate"] == "stale"

    def test_a_catalog_not_republished_for_a_day_goes_stale(
        self, client: TestClient, seller: Headers, clock: FrozenClock
    ) -> None:
        provider_id = eligible_provider(client, seller)["provider_id"]
        clock.advance(86_401)
        ok(beat(client, seller, provider_id))
        ok(
            client.post(
                f"{PROVIDERS}/{provider_id}/capacity",
                json=capacity_body("2026-06-18T00:10:00Z"),
                headers=seller,
            )
        )
        body = health(client, seller, provider_id)
        assert body["catalog_status"] == "stale"
        assert body["capacity_status"] == "current"
        assert body["route_gate"] == "stale"
        assert body["status"] == "degraded"

    def test_an_unknown_provider_is_not_found(self, client: TestClient, seller: Headers) -> None:
        error(
            client.get(f"{PROVIDERS}/prov_missing/health", headers=seller),
            404,
            "not_found",
            "provider_id",
        )


def _provider_calls(pid: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    return {
        "enroll": ("POST", f"{PROVIDERS}/enroll", None),
        "pairing-token": ("POST", f"{PROVIDERS}/{pid}/pairing-token", None),
        "heartbeat": ("POST", f"{PROVIDERS}/{pid}/heartbeat", {"runtime_status": "ready"}),
        "catalog": ("POST", f"{PROVIDERS}/{pid}/catalog", catalog_body("2026-06-20T00:00:00Z")),
        "capacity": ("POST", f"{PROVIDERS}/{pid}/capacity", capacity_body("2026-06-20T00:00:00Z")),
        "health": ("GET", f"{PROVIDERS}/{pid}/health", None),
    }


ALL = ["enroll", "pairing-token", "heartbeat", "catalog", "capacity", "health"]
ON_A_PROVIDER = ALL[1:]
NEEDED = {name: "inference:sell" for name in ALL} | {"health": "inference:read"}


class TestScopes:
    @pytest.fixture
    def pid(self, client: TestClient, seller: Headers) -> str:
        return str(eligible_provider(client, seller)["provider_id"])

    def _call(
        self,
        client: TestClient,
        name: str,
        pid: str,
        headers: Headers,
        ref_id: str = "credref_missing",
    ) -> Response:
        method, url, body = _provider_calls(pid)[name]
        if name == "enroll":
            body = enroll_body(ref_id)
        response: Response = client.request(method, url, json=body, headers=headers)
        return response

    @pytest.mark.parametrize("name", ALL)
    def test_no_key_is_unauthenticated(self, client: TestClient, pid: str, name: str) -> None:
        detail = error(self._call(client, name, pid, {}), 401, "unauthenticated")
        assert detail["hint"]

    @pytest.mark.parametrize("name", ALL)
    def test_a_malformed_authorization_header_is_unauthenticated(
        self, client: TestClient, pid: str, name: str
    ) -> None:
        error(self._call(client, name, pid, {"authorization": "Basic abc"}), 401, "unauthenticated")

    @pytest.mark.parametrize("name", ALL)
    def test_a_key_without_the_scope_is_forbidden_naming_it(
        self, client: TestClient, app: FastAPI, pid: str, name: str
    ) -> None:
        needed = NEEDED[name]
        held = {"inference:sell", "inference:read", "inference:buy"} - {needed}
        headers = key_headers(app, SELLER, *sorted(held))
        detail = error(self._call(client, name, pid, headers), 403, "missing_scope", "scope")
        assert needed in detail["message"]

    @pytest.mark.parametrize("name", ALL)
    def test_narrowing_away_the_needed_scope_is_forbidden(
        self, client: TestClient, seller: Headers, pid: str, name: str
    ) -> None:
        needed = NEEDED[name]
        other = "inference:read" if needed == "inference:sell" else "inference:sell"
        headers = {**seller, "x-flow-memory-scopes": other}
        detail = error(self._call(client, name, pid, headers), 403, "missing_scope")
        assert needed in detail["message"]

    def test_narrowing_an_admin_key_removes_admin(
        self, client: TestClient, admin: Headers, pid: str
    ) -> None:
        headers = {**admin, "x-flow-memory-scopes": "inference:read"}
        detail = error(
            client.get(f"{PROVIDERS}/{pid}/health", headers=headers), 403, "missing_scope"
        )
        assert "inference:read" in detail["message"]

    @pytest.mark.parametrize("name", ON_A_PROVIDER)
    def test_another_owners_provider_is_not_found(
        self, client: TestClient, app: FastAPI, pid: str, name: str
    ) -> None:
        other = seller_headers(app, "seller-beta")
        error(self._call(client, name, pid, other), 404, "not_found", "provider_id")

    def test_another_owners_provider_is_left_untouched(
        self, client: TestClient, app: FastAPI, seller: Headers, pid: str
    ) -> None:
        other = seller_headers(app, "seller-beta")
        for name in ON_A_PROVIDER:
            self._call(client, name, pid, other)
        body = health(client, seller, pid)
        assert body["route_gate"] == "eligible"
        catalog = ok(client.post(f"{PROVIDERS}/{pid}/catalog", json=catalog_body(), headers=seller))
        assert catalog["catalog_version"] == "2026-06-17T00:00:00Z"

    def test_another_owners_reference_cannot_be_enrolled(
        self, client: TestClient, app: FastAPI, seller: Headers
    ) -> None:
        ref = create_credential_ref(client, seller)
        other = seller_headers(app, "seller-beta")
        error(
            client.post(
                f"{PROVIDERS}/enroll", json=enroll_body(ref["credential_ref_id"]), headers=other
            ),
            404,
            "not_found",
            "credential_ref_id",
        )

    def test_an_admin_sees_every_providers_health(
        self, client: TestClient, admin: Headers, pid: str
    ) -> None:
        assert health(client, admin, pid)["route_gate"] == "eligible"

    def test_a_read_only_key_of_the_owner_reads_health(
        self, client: TestClient, app: FastAPI, pid: str
    ) -> None:
        reader = key_headers(app, SELLER, "inference:read")
        assert health(client, reader, pid)["status"] == "healthy"

"""Credential references over the API: create, list, rotate, revoke, and who may do what."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from flow_memory.kit.clock import FrozenClock
from tests.assertions import error, ok
from tests.factories import (
    SELLER,
    admin_headers,
    create_credential_ref,
    credential_ref_body,
    eligible_provider,
    enroll_body,
    enroll_provider,
    key_headers,
    seller_headers,
)

ROUTE = "/inference/credential-refs"
SEED_CREATE = {
    "owner_id": "provider-team-alpha",
    "workspace_id": "workspace-default",
    "credential_ref": "secret://inference/provider-alpha",
    "provider_api": "sdk_compatible",
    "display_name": "Provider Alpha production reference",
    "allowed_models": ["flow-memory-orchestrator"],
    "metadata": {"rotation_policy": "operator-managed"},
}
SEED_ROTATE = {
    "rotation_reason": "scheduled_rotation",
    "new_credential_ref": "secret://inference/provider-alpha-2026-07",
    "operator_ticket": "SEC-1024",
}
SEED_REVOKE = {"revoke_reason": "provider_agent_retired", "disable_provider_routes": True}
RAW_KEY = "sk-" + "A1b2C3d4E5f6G7h8J9k0L1m2"


def listed(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    body = ok(client.get(ROUTE, headers=headers, params=params))
    refs: list[dict[str, Any]] = body["credential_refs"]
    assert body["count"] == len(refs)
    return refs


def health(client: TestClient, headers: dict[str, str], provider_id: str) -> dict[str, Any]:
    return ok(client.get(f"/inference/providers/{provider_id}/health", headers=headers))


@pytest.fixture
def app_(client: TestClient) -> FastAPI:
    app: FastAPI = client.app  # type: ignore[assignment]
    return app


@pytest.fixture
def seller(app_: FastAPI) -> dict[str, str]:
    return seller_headers(app_)


@pytest.fixture
def admin(app_: FastAPI) -> dict[str, str]:
    return admin_headers(app_)


class TestCreate:
    def test_the_seed_request_returns_an_active_redacted_record(
        self, client: TestClient, seller: dict[str, str]
    ) -> None:
        response = client.post(
            ROUTE, json=SEED_CREATE, headers={**seller, "x-flow-memory-scopes": "inference:sell"}
        )
        ref = ok(response, 201)["credential_ref"]
        assert ref["credential_ref_id"].startswith("credref_")
        assert ref["credential_ref"] == "secret://inference/provider-alpha"
        assert ref["status"] == "active"
        assert ref["secret_value_redacted"] is True
        assert ref["raw_credentials_accepted"] is False
        assert ref["owner_id"] == "provider-team-alpha"
        assert ref["workspace_id"] == "workspace-default"
        assert ref["provider_api"] == "sdk_compatible"
        assert ref["display_name"] == "Provider Alpha production reference"
        assert ref["allowed_models"] == ["flow-memory-orchestrator"]
        assert ref["metadata"] == {"rotation_policy": "operator-managed"}
        assert ref["created_at"] == "2026-06-17T00:00:00Z"
        assert ref["rotated_at"] is None
        assert ref["revoked_at"] is None
        assert ref["provider_routes_disabled"] is False

    def test_each_record_gets_its_own_unguessable_id(
        self, client: TestClient, seller: dict[str, str]
    ) -> None:
        first = create_credential_ref(client, seller)
        second = create_credential_ref(client, seller)
        assert first["credential_ref_id"] != second["credential_ref_id"]
        assert len(first["credential_ref_id"]) > len("credref_") + 8

    def test_owner_defaults_to_the_keys_owner(self, client: TestClient, app_: FastAPI) -> None:
        headers = seller_headers(app_, "seller-beta")
        ref = create_credential_ref(client, headers)
        assert ref["owner_id"] == "seller-beta"

    def test_a_seller_cannot_create_for_another_owner(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        response = client.post(
            ROUTE, json=credential_ref_body(owner_id="seller-beta"), headers=seller
        )
        detail = error(response, 403, "identity_not_yours", "owner_id")
        assert "seller-beta" not in response.text
        assert "owner_id" in detail["message"]
        assert listed(client, admin) == []

    def test_an_admin_may_create_for_another_owner(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        ref = ok(client.post(ROUTE, json=credential_ref_body(owner_id=SELLER), headers=admin), 201)[
            "credential_ref"
        ]
        assert ref["owner_id"] == SELLER

    def test_a_raw_secret_is_refused_unechoed_and_unstored(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        response = client.post(
            ROUTE, json=credential_ref_body(credential_ref=RAW_KEY), headers=seller
        )
        error(response, 422, "forbidden_material", "credential_ref")
        assert RAW_KEY not in response.text
        assert listed(client, admin) == []

    def test_a_secret_value_field_is_refused(
        self, client: TestClient, seller: dict[str, str]
    ) -> None:
        response = client.post(
            ROUTE, json={**SEED_CREATE, "secret_value": "hunter2hunter2"}, headers=seller
        )
        error(response, 422, "forbidden_material", "secret_value")
        assert "hunter2hunter2" not in response.text

    @pytest.mark.parametrize(
        "pointer", ["inference/provider-alpha", "https://vault/x", "secret://", "secret:// spaced"]
    )
    def test_a_value_that_is_not_a_secret_pointer_is_invalid(
        self, client: TestClient, seller: dict[str, str], pointer: str
    ) -> None:
        response = client.post(
            ROUTE, json=credential_ref_body(credential_ref=pointer), headers=seller
        )
        error(response, 422, "invalid_request", "credential_ref")

    def test_a_missing_field_is_named(self, client: TestClient, seller: dict[str, str]) -> None:
        body = credential_ref_body()
        del body["display_name"]
        error(client.post(ROUTE, json=body, headers=seller), 422, "missing_field", "display_name")

    def test_an_unknown_field_is_refused(self, client: TestClient, seller: dict[str, str]) -> None:
        error(
            client.post(ROUTE, json={**SEED_CREATE, "colour": "blue"}, headers=seller),
            422,
            "unknown_field",
            "colour",
        )

    def test_invalid_json_is_refused(self, client: TestClient, seller: dict[str, str]) -> None:
        response = client.post(
            ROUTE, content=b"{not json", headers={**seller, "content-type": "application/json"}
        )
        error(response, 422, "invalid_json")


class TestList:
    def test_owners_see_only_their_own_references(
        self, client: TestClient, app_: FastAPI, seller: dict[str, str]
    ) -> None:
        mine = create_credential_ref(client, seller)
        other = seller_headers(app_, "seller-beta")
        theirs = create_credential_ref(client, other, credential_ref="secret://inference/beta")
        assert [r["credential_ref_id"] for r in listed(client, seller)] == [
            mine["credential_ref_id"]
        ]
        assert [r["credential_ref_id"] for r in listed(client, other)] == [
            theirs["credential_ref_id"]
        ]

    def test_admins_see_every_reference(
        self, client: TestClient, app_: FastAPI, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        create_credential_ref(client, seller)
        create_credential_ref(client, seller_headers(app_, "seller-beta"))
        refs = listed(client, admin)
        assert sorted(r["owner_id"] for r in refs) == ["provider-team-alpha", "seller-beta"]

    def test_listed_records_carry_no_secret_and_say_so(
        self, client: TestClient, seller: dict[str, str]
    ) -> None:
        create_credential_ref(client, seller)
        (ref,) = listed(client, seller)
        assert ref["secret_value_redacted"] is True
        assert ref["raw_credentials_accepted"] is False

    def test_the_status_filter_selects_active_or_revoked(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        keep = create_credential_ref(client, seller)
        gone = create_credential_ref(client, seller, credential_ref="secret://inference/old")
        ok(
            client.post(
                f"{ROUTE}/{gone['credential_ref_id']}/revoke", json=SEED_REVOKE, headers=admin
            )
        )
        assert [r["credential_ref_id"] for r in listed(client, seller, status="active")] == [
            keep["credential_ref_id"]
        ]
        revoked = listed(client, seller, status="revoked")
        assert [r["credential_ref_id"] for r in revoked] == [gone["credential_ref_id"]]
        assert revoked[0]["status"] == "revoked"
        assert len(listed(client, seller)) == 2

    def test_an_unknown_status_is_invalid(self, client: TestClient, seller: dict[str, str]) -> None:
        error(
            client.get(ROUTE, params={"status": "rotated"}, headers=seller),
            422,
            "invalid_request",
            "query.status",
        )

    def test_limit_and_offset_page_through_records(
        self, client: TestClient, seller: dict[str, str]
    ) -> None:
        made = [
            create_credential_ref(client, seller, credential_ref=f"secret://inference/p{i}")
            for i in range(3)
        ]
        everything = [r["credential_ref_id"] for r in listed(client, seller)]
        assert sorted(everything) == sorted(m["credential_ref_id"] for m in made)
        first = listed(client, seller, limit=2)
        rest = listed(client, seller, limit=2, offset=2)
        assert [r["credential_ref_id"] for r in first + rest] == everything
        error(
            client.get(ROUTE, params={"limit": 0}, headers=seller),
            422,
            "invalid_request",
            "query.limit",
        )


class TestRotate:
    def test_rotation_records_the_new_pointer_reason_and_ticket(
        self,
        client: TestClient,
        seller: dict[str, str],
        admin: dict[str, str],
        clock: FrozenClock,
    ) -> None:
        ref = create_credential_ref(client, seller)
        provider = enroll_provider(client, seller, ref["credential_ref_id"])
        clock.advance(60)
        body = ok(
            client.patch(
                f"{ROUTE}/{ref['credential_ref_id']}/rotate", json=SEED_ROTATE, headers=admin
            )
        )
        rotation = body["rotation"]
        assert rotation["rotation_id"]
        assert rotation["credential_ref_id"] == ref["credential_ref_id"]
        assert rotation["previous_credential_ref"] == "secret://inference/provider-alpha"
        assert rotation["new_credential_ref"] == "secret://inference/provider-alpha-2026-07"
        assert rotation["rotation_reason"] == "scheduled_rotation"
        assert rotation["operator_ticket"] == "SEC-1024"
        assert rotation["rotated_at"] == "2026-06-17T00:01:00Z"
        assert rotation["secret_value_redacted"] is True
        assert rotation["stale_provider_ids"] == [provider["provider_id"]]
        record = body["credential_ref"]
        assert record["credential_ref"] == "secret://inference/provider-alpha-2026-07"
        assert record["status"] == "active"
        assert record["rotated_at"] == "2026-06-17T00:01:00Z"
        assert record["secret_value_redacted"] is True
        (stored,) = listed(client, seller)
        assert stored["credential_ref"] == "secret://inference/provider-alpha-2026-07"

    def test_a_rotated_reference_makes_its_providers_stale_until_they_re_enroll(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        provider = eligible_provider(client, seller)
        provider_id = provider["provider_id"]
        assert health(client, seller, provider_id)["route_gate"] == "eligible"
        ok(
            client.patch(
                f"{ROUTE}/{provider['credential_ref_id']}/rotate", json=SEED_ROTATE, headers=admin
            )
        )
        stale = health(client, seller, provider_id)
        assert stale["credential_ref_status"] == "rotated"
        assert stale["route_gate"] == "stale"
        assert "credential_ref_rotated" in stale["reasons"]

        again = client.post(
            "/inference/providers/enroll",
            json=enroll_body(provider["credential_ref_id"]),
            headers=seller,
        )
        body = ok(again, 200)
        assert body["enrollment"] == "updated"
        assert body["provider"]["provider_id"] == provider_id
        assert body["provider"]["credential_ref"] == SEED_ROTATE["new_credential_ref"]
        restored = health(client, seller, provider_id)
        assert restored["credential_ref_status"] == "active"
        assert restored["route_gate"] == "eligible"
        assert restored["status"] == "healthy"

    def test_only_providers_on_the_old_pointer_are_listed_stale(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        enroll_provider(client, seller, ref["credential_ref_id"])
        route = f"{ROUTE}/{ref['credential_ref_id']}/rotate"
        ok(client.patch(route, json=SEED_ROTATE, headers=admin))
        second = {**SEED_ROTATE, "new_credential_ref": "secret://inference/provider-alpha-3"}
        body = ok(client.patch(route, json=second, headers=admin))
        assert body["rotation"]["previous_credential_ref"] == SEED_ROTATE["new_credential_ref"]
        assert body["rotation"]["stale_provider_ids"] == []

    def test_operator_ticket_is_optional(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        body = {k: v for k, v in SEED_ROTATE.items() if k != "operator_ticket"}
        rotation = ok(
            client.patch(f"{ROUTE}/{ref['credential_ref_id']}/rotate", json=body, headers=admin)
        )["rotation"]
        assert rotation["operator_ticket"] is None

    def test_rotating_to_the_same_pointer_is_a_conflict(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        body = {**SEED_ROTATE, "new_credential_ref": ref["credential_ref"]}
        error(
            client.patch(f"{ROUTE}/{ref['credential_ref_id']}/rotate", json=body, headers=admin),
            409,
            "credential_ref_unchanged",
            "new_credential_ref",
        )

    def test_a_revoked_reference_cannot_be_rotated(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        ok(
            client.post(
                f"{ROUTE}/{ref['credential_ref_id']}/revoke", json=SEED_REVOKE, headers=admin
            )
        )
        error(
            client.patch(
                f"{ROUTE}/{ref['credential_ref_id']}/rotate", json=SEED_ROTATE, headers=admin
            ),
            409,
            "credential_ref_revoked",
        )
        (stored,) = listed(client, admin)
        assert stored["credential_ref"] == ref["credential_ref"]

    def test_an_unknown_reference_is_not_found(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        error(
            client.patch(f"{ROUTE}/credref_missing/rotate", json=SEED_ROTATE, headers=admin),
            404,
            "not_found",
            "credential_ref_id",
        )

    def test_a_new_secret_value_is_refused(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        body = {**SEED_ROTATE, "new_credential_ref": RAW_KEY}
        response = client.patch(
            f"{ROUTE}/{ref['credential_ref_id']}/rotate", json=body, headers=admin
        )
        error(response, 422, "forbidden_material", "new_credential_ref")
        assert RAW_KEY not in response.text

    @pytest.mark.parametrize("missing", ["rotation_reason", "new_credential_ref"])
    def test_required_fields_are_named(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str], missing: str
    ) -> None:
        ref = create_credential_ref(client, seller)
        body = {k: v for k, v in SEED_ROTATE.items() if k != missing}
        error(
            client.patch(f"{ROUTE}/{ref['credential_ref_id']}/rotate", json=body, headers=admin),
            422,
            "missing_field",
            missing,
        )


class TestRevoke:
    def test_revoking_with_disabled_routes_blocks_providers(
        self,
        client: TestClient,
        seller: dict[str, str],
        admin: dict[str, str],
        clock: FrozenClock,
    ) -> None:
        provider = eligible_provider(client, seller)
        clock.advance(30)
        body = ok(
            client.post(
                f"{ROUTE}/{provider['credential_ref_id']}/revoke", json=SEED_REVOKE, headers=admin
            )
        )
        record = body["credential_ref"]
        assert record["status"] == "revoked"
        assert record["revoked_at"] == "2026-06-17T00:00:30Z"
        assert record["revoke_reason"] == "provider_agent_retired"
        assert record["provider_routes_disabled"] is True
        assert record["secret_value_redacted"] is True
        assert body["gated_provider_ids"] == [provider["provider_id"]]
        state = health(client, seller, provider["provider_id"])
        assert state["route_gate"] == "blocked"
        assert state["credential_ref_status"] == "revoked"
        assert state["status"] == "unhealthy"
        assert {"credential_ref_revoked", "provider_routes_disabled"} <= set(state["reasons"])

    def test_revoking_without_disabling_routes_still_gates_on_the_reference(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        provider = eligible_provider(client, seller)
        body = ok(
            client.post(
                f"{ROUTE}/{provider['credential_ref_id']}/revoke",
                json={"revoke_reason": "suspected leak"},
                headers=admin,
            )
        )
        assert body["credential_ref"]["provider_routes_disabled"] is False
        assert body["gated_provider_ids"] == [provider["provider_id"]]
        state = health(client, seller, provider["provider_id"])
        assert state["route_gate"] == "blocked"
        assert "provider_routes_disabled" not in state["reasons"]

    def test_revoking_twice_is_a_conflict(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        route = f"{ROUTE}/{ref['credential_ref_id']}/revoke"
        ok(client.post(route, json=SEED_REVOKE, headers=admin))
        error(client.post(route, json=SEED_REVOKE, headers=admin), 409, "credential_ref_revoked")

    def test_enrolling_with_a_revoked_reference_is_a_conflict(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        ok(
            client.post(
                f"{ROUTE}/{ref['credential_ref_id']}/revoke", json=SEED_REVOKE, headers=admin
            )
        )
        error(
            client.post(
                "/inference/providers/enroll",
                json=enroll_body(ref["credential_ref_id"]),
                headers=seller,
            ),
            409,
            "credential_ref_revoked",
            "credential_ref_id",
        )

    def test_re_enrolling_with_a_new_reference_lifts_the_gate(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        provider = eligible_provider(client, seller)
        ok(
            client.post(
                f"{ROUTE}/{provider['credential_ref_id']}/revoke", json=SEED_REVOKE, headers=admin
            )
        )
        fresh = create_credential_ref(client, seller, credential_ref="secret://inference/new")
        body = ok(
            client.post(
                "/inference/providers/enroll",
                json=enroll_body(fresh["credential_ref_id"]),
                headers=seller,
            )
        )
        assert body["enrollment"] == "updated"
        assert body["provider"]["provider_id"] == provider["provider_id"]
        state = health(client, seller, provider["provider_id"])
        assert state["route_gate"] == "eligible"
        assert state["credential_ref_status"] == "active"

    def test_an_unknown_reference_is_not_found(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        error(
            client.post(f"{ROUTE}/credref_missing/revoke", json=SEED_REVOKE, headers=admin),
            404,
            "not_found",
            "credential_ref_id",
        )

    def test_a_reason_is_required(
        self, client: TestClient, seller: dict[str, str], admin: dict[str, str]
    ) -> None:
        ref = create_credential_ref(client, seller)
        error(
            client.post(
                f"{ROUTE}/{ref['credential_ref_id']}/revoke",
                json={"disable_provider_routes": True},
                headers=admin,
            ),
            422,
            "missing_field",
            "revoke_reason",
        )
        (stored,) = listed(client, seller)
        assert stored["status"] == "active"


def _calls(ref_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", ROUTE, credential_ref_body()),
        ("GET", ROUTE, None),
        ("PATCH", f"{ROUTE}/{ref_id}/rotate", SEED_ROTATE),
        ("POST", f"{ROUTE}/{ref_id}/revoke", SEED_REVOKE),
    ]


CALL_NAMES = ["create", "list", "rotate", "revoke"]
NEEDED = {
    "create": "inference:sell",
    "list": "inference:read",
    "rotate": "inference:admin",
    "revoke": "inference:admin",
}


class TestScopes:
    @pytest.fixture
    def ref_id(self, client: TestClient, seller: dict[str, str]) -> str:
        return str(create_credential_ref(client, seller)["credential_ref_id"])

    def _call(
        self, client: TestClient, name: str, ref_id: str, headers: dict[str, str]
    ) -> Response:
        method, url, body = _calls(ref_id)[CALL_NAMES.index(name)]
        response: Response = client.request(method, url, json=body, headers=headers)
        return response

    @pytest.mark.parametrize("name", CALL_NAMES)
    def test_no_key_is_unauthenticated(self, client: TestClient, ref_id: str, name: str) -> None:
        error(self._call(client, name, ref_id, {}), 401, "unauthenticated")

    @pytest.mark.parametrize("name", CALL_NAMES)
    def test_an_unknown_key_is_unauthenticated(
        self, client: TestClient, ref_id: str, name: str
    ) -> None:
        headers = {"authorization": "Bearer fm_" + "x" * 43}
        error(self._call(client, name, ref_id, headers), 401, "unauthenticated")

    @pytest.mark.parametrize("name", CALL_NAMES)
    def test_a_key_without_the_scope_is_forbidden_naming_it(
        self, client: TestClient, app_: FastAPI, ref_id: str, name: str
    ) -> None:
        headers = key_headers(app_, SELLER, "inference:buy", "inference:plan")
        detail = error(self._call(client, name, ref_id, headers), 403, "missing_scope")
        assert NEEDED[name] in detail["message"]

    @pytest.mark.parametrize("name", ["rotate", "revoke"])
    def test_the_owner_without_admin_cannot_rotate_or_revoke(
        self, client: TestClient, seller: dict[str, str], ref_id: str, name: str
    ) -> None:
        detail = error(self._call(client, name, ref_id, seller), 403, "missing_scope")
        assert "inference:admin" in detail["message"]
        (stored,) = listed(client, seller)
        assert stored["status"] == "active"
        assert stored["rotated_at"] is None

    @pytest.mark.parametrize("name", CALL_NAMES)
    def test_narrowing_away_the_needed_scope_is_forbidden(
        self, client: TestClient, app_: FastAPI, ref_id: str, name: str
    ) -> None:
        everything = key_headers(
            app_, SELLER, "inference:sell", "inference:read", "inference:admin"
        )
        headers = {**everything, "x-flow-memory-scopes": "inference:buy"}
        detail = error(self._call(client, name, ref_id, headers), 403, "missing_scope")
        assert NEEDED[name] in detail["message"]

    def test_narrowing_cannot_widen(
        self, client: TestClient, seller: dict[str, str], ref_id: str
    ) -> None:
        headers = {**seller, "x-flow-memory-scopes": "inference:admin"}
        detail = error(self._call(client, "rotate", ref_id, headers), 403, "missing_scope")
        assert "inference:admin" in detail["message"]

    def test_narrowing_to_a_held_scope_still_works(
        self, client: TestClient, seller: dict[str, str], ref_id: str
    ) -> None:
        headers = {**seller, "x-flow-memory-scopes": "inference:read"}
        assert len(listed(client, headers)) == 1

    def test_an_unknown_scope_in_the_narrowing_header_is_invalid(
        self, client: TestClient, seller: dict[str, str]
    ) -> None:
        headers = {**seller, "x-flow-memory-scopes": "inference:everything"}
        error(
            client.get(ROUTE, headers=headers), 422, "invalid_scopes_header", "x-flow-memory-scopes"
        )

    def test_admin_satisfies_the_sell_and_read_scopes(
        self, client: TestClient, admin: dict[str, str], ref_id: str
    ) -> None:
        ok(client.post(ROUTE, json=credential_ref_body(), headers=admin), 201)
        assert len(listed(client, admin)) == 2

    def test_an_admin_of_another_owner_may_rotate_and_revoke(
        self, client: TestClient, app_: FastAPI, ref_id: str
    ) -> None:
        other_admin = key_headers(app_, "seller-beta", "inference:admin")
        ok(client.patch(f"{ROUTE}/{ref_id}/rotate", json=SEED_ROTATE, headers=other_admin))
        ok(client.post(f"{ROUTE}/{ref_id}/revoke", json=SEED_REVOKE, headers=other_admin))

    def test_another_owner_does_not_see_the_reference(
        self, client: TestClient, app_: FastAPI, ref_id: str
    ) -> None:
        other = key_headers(app_, "seller-beta", "inference:read", "inference:sell")
        assert listed(client, other) == []
        error(
            client.post("/inference/providers/enroll", json=enroll_body(ref_id), headers=other),
            404,
            "not_found",
            "credential_ref_id",
        )

"""The published OpenAPI document is the contract: every operation is fuzzed with schema-valid
input and every answer must be documented (status, content type, body), never a 5xx."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flow_memory.app import create_app
from flow_memory.kit.actors import ACTOR_EXTENSION
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.schemas import RequestModel, SafetyFields
from flow_memory.kit.scopes import ALL_SCOPES
from flow_memory.settings import Settings
from tests.conftest import TEST_START, clear_tables
from tests.factories import (
    Headers,
    admin_headers,
    capacity_body,
    catalog_body,
    create_credential_ref,
    credential_ref_body,
    eligible_provider,
    enroll_body,
    key_headers,
    seller_headers,
)

ERROR_STATUSES = ("400", "401", "403", "404", "409", "413", "422")
GUARD_STATUSES = ("413", "422")  # the safety guard can answer these on any route
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

PROXY_CHECKS = [check for check in CHECKS if check is not not_a_server_error]


@dataclass(frozen=True)
class Seeded:
    app: FastAPI
    headers: Headers
    provider_id: str
    credential_ref_id: str
    spare_credential_ref_id: str
    enrollment_credential_ref_id: str


@pytest.fixture
def seeded(database_url: str) -> Iterator[Seeded]:
    """An app over the test database holding one eligible provider, a spare reference for
    rotate/revoke to hit, and a reference only enrollments use (so it stays active)."""
    clear_tables(database_url)
    app = create_app(Settings(database_url=database_url), clock=FrozenClock(TEST_START))
    headers = key_headers(app, "operator", *sorted(ALL_SCOPES))
    with TestClient(app) as client:
        provider = eligible_provider(client, headers)
        spare = create_credential_ref(client, headers, credential_ref="secret://inference/spare")
        enrollment = create_credential_ref(
            client, headers, credential_ref="secret://inference/enrollment"
        )
    yield Seeded(
        app,
        headers,
        provider["provider_id"],
        provider["credential_ref_id"],
        spare["credential_ref_id"],
        enrollment["credential_ref_id"],
    )
    app.state.engine.dispose()


def _document_app() -> FastAPI:
    """An app used only to publish the OpenAPI document (it never opens its database)."""
    return create_app(Settings(database_url="sqlite://"))


schema = schemathesis.openapi.from_asgi("/openapi.json", _document_app())
schema.config.generation.update(modes=[GenerationMode.POSITIVE])


def _aim_at_real_records(case: Any, data: st.DataObject, seeded: Seeded) -> None:
    """Half of the time, point path ids and the enrollment's reference at seeded records, so
    handlers get past the lookup (unknown ids answer a documented 404)."""
    if not data.draw(st.booleans(), label="use real records"):
        return
    parameters = case.path_parameters or {}
    if "provider_id" in parameters:
        parameters["provider_id"] = seeded.provider_id
    if "credential_ref_id" in parameters:
        parameters["credential_ref_id"] = data.draw(
            st.sampled_from([seeded.credential_ref_id, seeded.spare_credential_ref_id]),
            label="credential_ref_id",
        )
    if case.path == "/inference/providers/enroll" and isinstance(case.body, dict):
        case.body["credential_ref_id"] = seeded.enrollment_credential_ref_id
        case.body.pop("owner_id", None)
        case.body.pop("credential_ref", None)


# The job stream follows events until its client leaves, so a fuzzer reading it to the end
# would wait forever: tests/api/test_jobs_stream.py reads it (and its refusals) instead.
@schema.exclude(path="/inference/jobs/stream").parametrize()
@schema.given(data=st.data())
# One seeded app serves every example of an operation on purpose: records accumulate the way
# they would on a real server, hence the function-scoped fixture.
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_every_operation_answers_as_documented(
    case: Any, data: st.DataObject, seeded: Seeded
) -> None:
    _aim_at_real_records(case, data, seeded)
    # The proxy's documented 502 and 503 say a provider failed or none can serve the model.
    checks = PROXY_CHECKS if case.path.startswith("/v1/") else CHECKS
    case.call_and_validate(headers=seeded.headers, checks=checks, app=seeded.app)


def test_a_provider_lifecycle_answers_as_documented(seeded: Seeded) -> None:
    """Every success answer, met in order, checked against the schema (random input rarely
    reaches the later steps of the lifecycle)."""

    def call(path: str, method: str, expected: int, **parts: Any) -> Any:
        case = schema[path][method].Case(**parts)
        response = case.call_and_validate(
            headers={**seeded.headers, **parts.get("headers", {})}, checks=CHECKS, app=seeded.app
        )
        assert response.status_code == expected, response.text
        return response.json()

    refs = "/inference/credential-refs"
    providers = "/inference/providers"
    ref = call(
        refs, "POST", 201, body=credential_ref_body(credential_ref="secret://inference/lifecycle")
    )["credential_ref"]
    provider = call(
        f"{providers}/enroll",
        "POST",
        201,
        body=enroll_body(ref["credential_ref_id"], provider_name="Lifecycle"),
    )
    ids = {"provider_id": provider["provider"]["provider_id"]}
    call(
        f"{providers}/enroll",
        "POST",
        200,
        body=enroll_body(ref["credential_ref_id"], provider_name="Lifecycle"),
    )
    token = call(f"{providers}/{{provider_id}}/pairing-token", "POST", 201, path_parameters=ids)
    call(
        f"{providers}/{{provider_id}}/heartbeat",
        "POST",
        200,
        path_parameters=ids,
        headers={token["pairing_header"]: token["pairing_token"]},
    )
    call(
        f"{providers}/{{provider_id}}/heartbeat",
        "POST",
        200,
        path_parameters=ids,
        body={"runtime_status": "busy", "active_requests": 3},
    )
    catalog = catalog_body()
    catalog["models"][0]["reference_unit_prices"] = {"request": 0.002}
    call(f"{providers}/{{provider_id}}/catalog", "POST", 200, path_parameters=ids, body=catalog)
    call(
        f"{providers}/{{provider_id}}/capacity",
        "POST",
        200,
        path_parameters=ids,
        body=capacity_body(),
    )
    health = call(f"{providers}/{{provider_id}}/health", "GET", 200, path_parameters=ids)
    assert health["route_gate"] == "eligible"
    call(refs, "GET", 200, query={"status": "active", "limit": 5})
    ref_ids = {"credential_ref_id": ref["credential_ref_id"]}
    call(
        f"{refs}/{{credential_ref_id}}/rotate",
        "PATCH",
        200,
        path_parameters=ref_ids,
        body={"rotation_reason": "scheduled", "new_credential_ref": "secret://inference/next"},
    )
    call(
        f"{refs}/{{credential_ref_id}}/revoke",
        "POST",
        200,
        path_parameters=ref_ids,
        body={"revoke_reason": "retired", "disable_provider_routes": True},
    )
    call(
        f"{refs}/{{credential_ref_id}}/revoke",
        "POST",
        409,
        path_parameters=ref_ids,
        body={"revoke_reason": "retired"},
    )
    call("/readyz", "GET", 200)
    call("/healthz", "GET", 200)


class TestPublishedDocument:
    def test_every_operation_documents_the_error_envelope(self, client: TestClient) -> None:
        document = client.get("/openapi.json").json()
        envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
        operations = [
            (path, method, op)
            for path, item in document["paths"].items()
            for method, op in item.items()
        ]
        assert len(operations) >= 12
        for path, method, operation in operations:
            expected = ERROR_STATUSES if path.startswith("/inference/") else GUARD_STATUSES
            for status in expected:
                response = operation["responses"].get(status)
                assert response is not None, f"{method.upper()} {path} lacks {status}"
                assert response["content"]["application/json"]["schema"] == envelope, (
                    f"{method.upper()} {path} {status} is not an ErrorEnvelope"
                )

    def test_success_bodies_are_documented_as_objects_with_the_safety_fields(
        self, client: TestClient
    ) -> None:
        document = client.get("/openapi.json").json()
        schemas = document["components"]["schemas"]
        for path, item in document["paths"].items():
            for method, operation in item.items():
                for status, response in operation["responses"].items():
                    if not status.startswith("2"):
                        continue
                    schema_ref = response["content"]["application/json"]["schema"]
                    assert "$ref" in schema_ref, f"{method.upper()} {path} {status}: {schema_ref}"
                    if path.startswith("/inference/"):
                        name = schema_ref["$ref"].rsplit("/", 1)[-1]
                        assert set(SafetyFields.model_fields) | {"ok"} <= set(
                            schemas[name]["properties"]
                        ), f"{method.upper()} {path} {status}"

    def test_error_envelope_pins_the_safety_values(self, client: TestClient) -> None:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        properties = schemas["ErrorEnvelope"]["properties"]
        assert properties["ok"]["const"] is False
        assert {name: properties[name]["const"] for name in SAFETY_ENVELOPE} == dict(
            SAFETY_ENVELOPE
        )
        assert set(schemas["ErrorEnvelope"]["required"]) >= {"error"}

    def test_prices_document_their_exact_decimal_bounds(self, client: TestClient) -> None:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        price = schemas["CapacityItem"]["properties"]["ask_unit_price"]
        assert price["type"] == "number"
        assert price["minimum"] == 1e-18
        assert price["exclusiveMaximum"] == 1e20

    def test_docs_page_is_served_as_html(self, client: TestClient) -> None:
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in docs.text


class TestInputsTheFuzzerFound:
    """Schema-valid inputs that once ended in a 500 (mostly on PostgreSQL) or a false refusal."""

    def test_nul_in_a_body_string_is_refused_and_nothing_is_stored(
        self, client: TestClient
    ) -> None:
        headers = admin_headers(client.app)  # type: ignore[arg-type]
        for body in (
            credential_ref_body(display_name="Alpha\u0000"),
            credential_ref_body(metadata={"note": ["fine", "not\u0000fine"]}),
            credential_ref_body(metadata={"k\u0000": 1}),
        ):
            response = client.post("/inference/credential-refs", json=body, headers=headers)
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["field"] in {"display_name", "metadata"}
            assert "NUL" in error["message"]
        listing = client.get("/inference/credential-refs", headers=headers).json()
        assert listing["count"] == 0

    def test_nul_in_a_path_id_is_refused(self, client: TestClient) -> None:
        headers = admin_headers(client.app)  # type: ignore[arg-type]
        health = client.get("/inference/providers/prov_%00x/health", headers=headers)
        assert health.status_code == 422, health.text
        assert health.json()["error"] == {
            "code": "invalid_character",
            "field": "provider_id",
            "message": "provider_id must not contain the NUL character (U+0000)",
            "hint": None,
        }
        rotate = client.patch(
            "/inference/credential-refs/credref_%00/rotate",
            headers=headers,
            json={"rotation_reason": "r", "new_credential_ref": "secret://x"},
        )
        assert rotate.status_code == 422, rotate.text
        assert rotate.json()["error"]["field"] == "credential_ref_id"

    @pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"])
    def test_a_time_outside_the_utc_calendar_is_refused(
        self, client: TestClient, stamp: str
    ) -> None:
        headers = seller_headers(client.app)  # type: ignore[arg-type]
        provider_id = eligible_provider(client, headers)["provider_id"]
        catalog = client.post(
            f"/inference/providers/{provider_id}/catalog",
            json=catalog_body(version=stamp),
            headers=headers,
        )
        assert catalog.status_code == 422, catalog.text
        assert catalog.json()["error"]["field"] == "catalog_version"
        capacity = client.post(
            f"/inference/providers/{provider_id}/capacity",
            json=capacity_body(expires_at=stamp),
            headers=headers,
        )
        assert capacity.status_code == 422, capacity.text
        assert capacity.json()["error"]["field"] == "inventory[0].expires_at"

    def test_times_with_an_offset_are_kept_in_utc(self, client: TestClient) -> None:
        headers = seller_headers(client.app)  # type: ignore[arg-type]
        provider_id = eligible_provider(client, headers)["provider_id"]
        catalog = client.post(
            f"/inference/providers/{provider_id}/catalog",
            json=catalog_body(version="2026-06-17T09:30:00+09:00"),
            headers=headers,
        )
        assert catalog.status_code == 200, catalog.text
        assert catalog.json()["catalog_version"] == "2026-06-17T00:30:00Z"
        capacity = client.post(
            f"/inference/providers/{provider_id}/capacity",
            json=capacity_body(expires_at="2026-12-30T19:00:00-05:00"),
            headers=headers,
        )
        assert capacity.status_code == 200, capacity.text
        assert capacity.json()["inventory"][0]["expires_at"] == "2026-12-31T00:00:00Z"

    def test_prices_at_the_documented_bounds(self, client: TestClient) -> None:
        headers = seller_headers(client.app)  # type: ignore[arg-type]
        provider_id = eligible_provider(client, headers)["provider_id"]
        route = f"/inference/providers/{provider_id}/capacity"
        smallest = client.post(route, json=capacity_body(ask_unit_price=1e-18), headers=headers)
        assert smallest.status_code == 200, smallest.text
        assert smallest.json()["inventory"][0]["ask_unit_price"] == 1e-18
        assert '"ask_unit_price":0.000000000000000001' in smallest.text
        for price in (1e-19, 1.5e-18, 1e20):
            refused = client.post(
                route,
                json=capacity_body(version="2026-06-17T00:06:00Z", ask_unit_price=price),
                headers=headers,
            )
            assert refused.status_code == 422, (price, refused.text)
            assert refused.json()["error"]["field"] == "inventory[0].ask_unit_price"

    def test_provider_api_at_its_documented_max_length_is_stored(self, client: TestClient) -> None:
        headers = seller_headers(client.app)  # type: ignore[arg-type]
        document = client.get("/openapi.json").json()["components"]["schemas"]
        longest = document["CredentialRefCreate"]["properties"]["provider_api"]["maxLength"]
        created = client.post(
            "/inference/credential-refs",
            headers=headers,
            json=credential_ref_body(provider_api="a" * longest),
        )
        assert created.status_code == 201, created.text
        reference_id = created.json()["credential_ref"]["credential_ref_id"]
        enrolled = client.post(
            "/inference/providers/enroll",
            headers=headers,
            json=enroll_body(reference_id, provider_api="b" * longest),
        )
        assert enrolled.status_code == 201, enrolled.text

    @pytest.mark.parametrize("value", ["0.5", "1700000000", "-1", "2026-06-17", "yesterday"])
    def test_a_number_is_not_a_date_time_in_any_query(self, client: TestClient, value: str) -> None:
        """``until=0.5`` was read as 1970-01-01T00:00:00.5Z."""
        headers = admin_headers(client.app)  # type: ignore[arg-type]
        document = client.get("/openapi.json").json()
        found = []
        for path, item in document["paths"].items():
            for method, operation in item.items():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] != "query" or not _is_date_time(parameter["schema"]):
                        continue
                    found.append(parameter["name"])
                    name = parameter["name"]
                    response = client.request(method, path, params={name: value}, headers=headers)
                    assert response.status_code == 422, (path, name, response.text)
                    assert response.json()["error"]["field"] == f"query.{name}"
        # The usage analytics, the usage export and the ledger export.
        assert sorted(found) == ["since"] * 3 + ["until"] * 3

    @pytest.mark.parametrize("value", [0.5, 1700000000, "1700000000", "0.5", "2026-06-17"])
    def test_a_number_is_not_a_date_time_in_any_body(self, client: TestClient, value: Any) -> None:
        headers = seller_headers(client.app)  # type: ignore[arg-type]
        provider_id = eligible_provider(client, headers)["provider_id"]
        route = f"/inference/providers/{provider_id}"
        for suffix, body, field in [
            ("catalog", {**catalog_body(), "catalog_version": value}, "catalog_version"),
            ("capacity", {**capacity_body(), "capacity_version": value}, "capacity_version"),
            ("capacity", capacity_body(expires_at=value), "inventory[0].expires_at"),
        ]:
            refused = client.post(f"{route}/{suffix}", json=body, headers=headers)
            assert refused.status_code == 422, (suffix, refused.text)
            assert refused.json()["error"]["field"] == field

    def test_every_date_time_field_of_a_request_body_refuses_numbers(self) -> None:
        checked = []
        pending: list[type[BaseModel]] = [RequestModel]
        while pending:
            model = pending.pop()
            pending.extend(model.__subclasses__())
            properties = (
                model.model_json_schema()["properties"] if model is not RequestModel else {}
            )
            for name, info in model.model_fields.items():
                if not _is_date_time(properties[name]):
                    continue
                checked.append(f"{model.__name__}.{name}")
                adapter: TypeAdapter[Any] = TypeAdapter(info.rebuild_annotation())
                assert adapter.validate_python("2026-06-17T00:00:00Z")
                for number in (0.5, 1700000000, Decimal("0.5"), "0.5", "1700000000", True):
                    with pytest.raises(ValidationError):
                        adapter.validate_python(number)
        assert sorted(checked) == [
            "CapacityItem.expires_at",
            "JobCreate.expires_at",
            "ProviderCapacity.capacity_version",
            "ProviderCatalog.catalog_version",
        ]


def _is_date_time(schema: dict[str, Any]) -> bool:
    members = schema.get("anyOf", [schema])
    return any(member.get("format") == "date-time" for member in members)


def _validator(document: dict[str, Any], name: str) -> Any:
    """A validator of the published schema ``name``, its references resolved in the document."""
    schema = {**document["components"]["schemas"][name], "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The published OpenAPI document."""
    return _document_app().openapi()


class TestRulesThePublishedDocumentStates:
    """Rules beyond field types are in the document: as schema where JSON Schema can say them,
    in descriptions otherwise. Each is checked against what the server refuses."""

    def test_an_ask_names_its_provider_and_carries_no_routing_policy(
        self, document: dict[str, Any]
    ) -> None:
        orders = _validator(document, "OrderCreate")
        ask = {"side": "ask", "model": "m", "unit_type": "token", "units": 1, "limit_unit_price": 1}
        assert not orders.is_valid(ask)
        assert orders.is_valid({**ask, "provider_id": "prov_1"})
        assert not orders.is_valid({**ask, "provider_id": "prov_1", "routing_policy": {}})
        assert orders.is_valid({**ask, "side": "bid"})
        assert orders.is_valid({**ask, "side": "bid", "routing_policy": {}})
        properties = document["components"]["schemas"]["OrderCreate"]["properties"]
        assert "units" in properties["min_fill_units"]["description"]
        assert "1,000,000,000,000" in properties["limit_unit_price"]["description"]

    def test_a_preview_names_an_order_or_a_reservation(self, document: dict[str, Any]) -> None:
        preview = _validator(document, "PaymentChallengePreviewCreate")
        acknowledged = {"acknowledge_disabled_execution": True}
        assert not preview.is_valid(acknowledged)
        assert not preview.is_valid({**acknowledged, "order_id": None})
        assert preview.is_valid({**acknowledged, "order_id": "ord_1"})
        assert preview.is_valid({**acknowledged, "reservation_id": "res_1"})

    def test_the_usage_cursor_and_time_range_are_described(self, document: dict[str, Any]) -> None:
        for path in ("/inference/analytics/usage", "/inference/analytics/export"):
            parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
            assert "until" in parameters["since"]["description"]
            assert "since" in parameters["until"]["description"]
        usage = {
            p["name"]: p
            for p in document["paths"]["/inference/analytics/usage"]["get"]["parameters"]
        }
        pattern = re.compile(usage["cursor"]["schema"]["pattern"])
        assert pattern.match(base64.urlsafe_b64encode(b"2026|use_x").decode().rstrip("="))
        assert not pattern.match("not a cursor!")

    def test_catalog_and_capacity_units_name_what_they_must_be_within(
        self, document: dict[str, Any]
    ) -> None:
        schemas = document["components"]["schemas"]
        unit_types = schemas["CatalogModel"]["properties"]["unit_types"]["description"]
        assert "supported_units" in unit_types and "unit_type_not_supported" in unit_types
        unit_type = schemas["CapacityItem"]["properties"]["unit_type"]["description"]
        assert "catalog" in unit_type and "unit_type_not_offered" in unit_type

    def test_every_field_that_names_who_acts_says_whose_it_may_be(
        self, document: dict[str, Any]
    ) -> None:
        marked = [
            prop
            for schema in document["components"]["schemas"].values()
            for prop in schema.get("properties", {}).values()
            if prop.get(ACTOR_EXTENSION)
        ]
        assert len(marked) >= 7
        for prop in marked:
            assert "identity_not_yours" in prop["description"]

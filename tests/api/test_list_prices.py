"""Operator list prices: GET, PUT and DELETE /inference/list-prices, who may set them, what
prices are refused, and how a list price becomes the reference of quotes and routes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.clock import FrozenClock
from tests.api.test_routing import policy_request, priced_provider
from tests.api.test_usage_analytics import CHAT, LIST_PRICES, MODEL, Line, selling_provider
from tests.assertions import assert_plain_numbers, error, ok
from tests.factories import admin_headers, key_headers, seller_headers

Headers = dict[str, str]


@pytest.fixture
def admin(app: FastAPI) -> Headers:
    return admin_headers(app)


@pytest.fixture
def reader(app: FastAPI) -> Headers:
    return key_headers(app, "agent-research-1", "inference:read")


@pytest.fixture
def planner(app: FastAPI) -> Headers:
    return key_headers(app, "agent-research-1", "inference:plan", "inference:read")


def put(
    client: TestClient, headers: Headers, price: Any, *, unit: str = "token", **extra: Any
) -> Any:
    body = {"model": MODEL, "unit_type": unit, "unit_price": price, **extra}
    return client.put(LIST_PRICES, json=body, headers=headers)


def put_text(client: TestClient, headers: Headers, price: str) -> Any:
    """PUT a list price whose unit_price is written into the JSON text exactly as given."""
    body = f'{{"model": "{MODEL}", "unit_type": "token", "unit_price": {price}}}'
    return client.put(
        LIST_PRICES, content=body, headers={**headers, "content-type": "application/json"}
    )


def remove(client: TestClient, headers: Headers, model: str = MODEL, unit: str = "token") -> Any:
    return client.delete(LIST_PRICES, params={"model": model, "unit_type": unit}, headers=headers)


def listed(client: TestClient, headers: Headers) -> list[dict[str, Any]]:
    response = client.get(LIST_PRICES, headers=headers)
    body = ok(response)
    prices: list[dict[str, Any]] = json.loads(response.text, parse_float=Decimal)["list_prices"]
    assert body["count"] == len(prices)
    return prices


def quotes(client: TestClient, headers: Headers, **market: Any) -> list[dict[str, Any]]:
    response = client.post("/inference/quote", json=policy_request(**market), headers=headers)
    ok(response)
    found: list[dict[str, Any]] = json.loads(response.text, parse_float=Decimal)["quotes"]
    return found


def reference_of(quote: dict[str, Any]) -> tuple[Any, Any, Any]:
    return quote["reference_unit_price"], quote["reference_source"], quote["discount_bps"]


class TestSetListRemove:
    def test_put_creates_then_updates_and_delete_removes(
        self,
        client: TestClient,
        clock: FrozenClock,
        admin: Headers,
        reader: Headers,
    ) -> None:
        assert listed(client, reader) == []
        response = put(client, admin, 0.0000009, note="Q3 list")
        created = ok(response)["list_price"]
        assert_plain_numbers(response)
        assert '"unit_price":0.0000009' in response.text
        assert created == {
            "model": MODEL,
            "unit_type": "token",
            "unit_price": 0.0000009,
            "set_by": "operator",
            "note": "Q3 list",
            "updated_at": "2026-06-17T00:00:00Z",
        }
        clock.advance(3600)
        updated = ok(put(client, admin, 0.00000095))["list_price"]
        assert (updated["unit_price"], updated["note"], updated["updated_at"]) == (
            0.00000095,
            "",
            "2026-06-17T01:00:00Z",
        )
        ok(put(client, admin, 0.002, unit="request"))
        ok(client.put(LIST_PRICES, json={"model": CHAT, "unit_price": 0.5}, headers=admin))
        assert [(p["model"], p["unit_type"], p["unit_price"]) for p in listed(client, reader)] == [
            (CHAT, "token", Decimal("0.5")),  # unit_type defaults to token
            (MODEL, "request", Decimal("0.002")),
            (MODEL, "token", Decimal("0.00000095")),
        ]
        removed = ok(remove(client, admin))["list_price"]
        assert (removed["model"], removed["unit_type"], removed["unit_price"]) == (
            MODEL,
            "token",
            0.00000095,
        )
        assert [(p["model"], p["unit_type"]) for p in listed(client, reader)] == [
            (CHAT, "token"),
            (MODEL, "request"),
        ]
        error(remove(client, admin), 404, "not_found")
        error(remove(client, admin, model="never-listed"), 404, "not_found")

    @pytest.mark.parametrize("text", ["0.000000000000000001", "0.00000075", "1000", "12345.6789"])
    def test_prices_are_kept_exactly(
        self, client: TestClient, admin: Headers, reader: Headers, text: str
    ) -> None:
        ok(put_text(client, admin, text))
        [price] = listed(client, reader)
        assert price["unit_price"] == Decimal(text)
        assert f'"unit_price":{text}' in client.get(LIST_PRICES, headers=reader).text

    @pytest.mark.parametrize("text", ["0.123456789012345678", "123456789.123456789012345678"])
    def test_prices_with_many_significant_digits_are_kept_exactly(
        self, client: TestClient, admin: Headers, reader: Headers, text: str
    ) -> None:
        ok(put_text(client, admin, text))
        [price] = listed(client, reader)
        assert price["unit_price"] == Decimal(text)

    def test_setting_and_removing_need_inference_admin(
        self, app: FastAPI, client: TestClient, admin: Headers
    ) -> None:
        error(client.get(LIST_PRICES), 401, "unauthenticated")
        error(put(client, {}, 0.0000009), 401, "unauthenticated")
        error(remove(client, {}), 401, "unauthenticated")
        error(
            client.get(LIST_PRICES, headers=key_headers(app, "x", "inference:buy")),
            403,
            "missing_scope",
        )
        for scopes in (
            ("inference:read",),
            ("inference:sell", "inference:read"),
            ("inference:audit",),
            ("inference:plan", "inference:buy"),
        ):
            headers = key_headers(app, "not-an-operator", *scopes)
            detail = error(put(client, headers, 0.0000009), 403, "missing_scope")
            assert "inference:admin" in detail["message"]
        ok(put(client, admin, 0.0000009))
        narrowed = {**admin, "x-flow-memory-scopes": "inference:read"}
        error(put(client, narrowed, 0.000001), 403, "missing_scope")
        error(remove(client, narrowed), 403, "missing_scope")
        error(remove(client, seller_headers(app)), 403, "missing_scope")
        [price] = listed(client, key_headers(app, "x", "inference:read"))
        assert price["unit_price"] == Decimal("0.0000009")

    @pytest.mark.parametrize(
        "price",
        [
            "0",
            "-0.000001",
            '"abc"',
            '"0.0000009 credits"',
            "0.0000000000000000001",  # 19 decimal places
            "0.00000090000000000001",
            "1e-19",
            "null",
            "true",
            "[0.1]",
            "100000000000000000000",  # 21 digits: beyond NUMERIC(38, 18)
            "1.00000000000000000001",  # 20 decimal places
        ],
    )
    def test_bad_prices_are_422_and_change_nothing(
        self, client: TestClient, admin: Headers, reader: Headers, price: str
    ) -> None:
        ok(put(client, admin, 0.0000009))
        detail = error(put_text(client, admin, price), 422, "invalid_request")
        assert detail["field"] == "unit_price"
        assert [p["unit_price"] for p in listed(client, reader)] == [Decimal("0.0000009")]

    @pytest.mark.parametrize(
        "body",
        [
            {"unit_type": "token", "unit_price": 0.0000009},
            {"model": MODEL, "unit_type": "gpu_hour", "unit_price": 0.0000009},
            {"model": "bad model", "unit_price": 0.0000009},
            {"model": MODEL, "unit_price": 0.0000009, "currency": "USD"},
            {"model": MODEL, "unit_price": 0.0000009, "note": "n" * 513},
        ],
    )
    def test_bad_bodies_are_422(
        self, client: TestClient, admin: Headers, reader: Headers, body: dict[str, Any]
    ) -> None:
        response = client.put(LIST_PRICES, json=body, headers=admin)
        assert response.status_code == 422, response.text
        assert listed(client, reader) == []

    def test_delete_needs_a_model_and_a_known_unit(
        self, client: TestClient, admin: Headers
    ) -> None:
        error(client.delete(LIST_PRICES, headers=admin), 422, "missing_field")
        error(
            client.delete(
                LIST_PRICES, params={"model": MODEL, "unit_type": "gpu_hour"}, headers=admin
            ),
            422,
            "invalid_request",
        )


class TestQuotesUseListPrices:
    def test_a_list_price_outranks_the_catalog_until_it_is_removed(
        self, app: FastAPI, client: TestClient, admin: Headers, planner: Headers
    ) -> None:
        priced_provider(client, seller_headers(app), 0.00000075)  # catalog reference 0.000001
        [quote] = quotes(client, planner)
        assert reference_of(quote) == (Decimal("0.000001"), "catalog", 2500)
        ok(put(client, admin, 0.0000009))
        [quote] = quotes(client, planner)
        # floor((0.0000009 - 0.00000075) / 0.0000009 x 10000) = floor(1666.67)
        assert reference_of(quote) == (Decimal("0.0000009"), "list_price", 1666)
        ok(put(client, admin, 0.0000015))
        [quote] = quotes(client, planner)
        assert reference_of(quote) == (Decimal("0.0000015"), "list_price", 5000)
        ok(remove(client, admin))
        [quote] = quotes(client, planner)
        assert reference_of(quote) == (Decimal("0.000001"), "catalog", 2500)

    def test_discount_rules_are_judged_against_the_list_price(
        self, app: FastAPI, client: TestClient, admin: Headers, planner: Headers
    ) -> None:
        provider_id = priced_provider(client, seller_headers(app), 0.00000075)
        assert len(quotes(client, planner, min_discount_bps=2000)) == 1
        ok(put(client, admin, 0.0000009))  # the discount drops to 1666 bps
        response = client.post(
            "/inference/quote", json=policy_request(min_discount_bps=2000), headers=planner
        )
        body = ok(response)
        assert body["quotes"] == []
        assert [(r["provider_id"], r["code"]) for r in body["rejected_routes"]] == [
            (provider_id, "min_discount_not_met")
        ]
        assert "1666" in body["rejected_routes"][0]["message"]

    def test_without_any_reference_there_is_no_source_and_no_discount(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        admin: Headers,
        planner: Headers,
    ) -> None:
        selling_provider(client, seller_headers(app), clock, Line(MODEL, "token", 0.00000075))
        [quote] = quotes(client, planner, min_discount_bps=0)
        assert reference_of(quote) == (None, None, None)
        # A list price for another unit or another model changes nothing here.
        ok(put(client, admin, 0.000001, unit="request"))
        ok(client.put(LIST_PRICES, json={"model": CHAT, "unit_price": 0.000001}, headers=admin))
        [quote] = quotes(client, planner, min_discount_bps=0)
        assert reference_of(quote) == (None, None, None)
        ok(put(client, admin, 0.000001))
        [quote] = quotes(client, planner, min_discount_bps=0)
        assert reference_of(quote) == (Decimal("0.000001"), "list_price", 2500)

    def test_one_list_price_is_every_providers_reference(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        admin: Headers,
        planner: Headers,
    ) -> None:
        with_catalog = priced_provider(client, seller_headers(app), 0.00000075)
        without = selling_provider(
            client,
            seller_headers(app, "provider-team-beta"),
            clock,
            Line(MODEL, "token", 0.0000007),
        )
        found = {
            q["provider_id"]: reference_of(q) for q in quotes(client, planner, min_discount_bps=0)
        }
        assert found == {
            without: (None, None, None),
            with_catalog: (Decimal("0.000001"), "catalog", 2500),
        }
        ok(put(client, admin, 0.0000008))
        found = {
            q["provider_id"]: reference_of(q) for q in quotes(client, planner, min_discount_bps=0)
        }
        assert found == {
            without: (Decimal("0.0000008"), "list_price", 1250),
            with_catalog: (Decimal("0.0000008"), "list_price", 625),
        }

    def test_a_route_records_the_list_price_as_its_reference(
        self, app: FastAPI, client: TestClient, admin: Headers, planner: Headers
    ) -> None:
        priced_provider(client, seller_headers(app), 0.00000075)
        ok(put(client, admin, 0.0000009))
        response = client.post("/inference/route", json=policy_request(), headers=planner)
        body = ok(response)
        selected = json.loads(response.text, parse_float=Decimal)["selected_quote"]
        assert body["decision"] == "selected"
        assert reference_of(selected) == (Decimal("0.0000009"), "list_price", 1666)

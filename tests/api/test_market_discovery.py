"""Discovery over the API: market list, model detail, the feed with its cursor, buyer and
seller profiles, the provider-agent manifest, and the scope matrix of each."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.kit.clock import FrozenClock
from tests.api.test_market_orders import (
    MODEL,
    SNAPSHOT_PRICE,
    SNAPSHOT_UNITS,
    UNIT,
    ask,
    bid,
    cancel,
    error,
    iso,
    ok,
)
from tests.factories import (
    BUYER,
    SELLER,
    capacity_body,
    eligible_provider,
    key_headers,
)

Headers = dict[str, str]
READ_ROUTES = [
    "/inference/market/list",
    f"/inference/market/models/{MODEL}",
    "/inference/market/feed",
    f"/inference/buyers/{BUYER}/profile",
    f"/inference/sellers/{SELLER}/profile",
    "/inference/providers/agent/manifest",
]


@pytest.fixture
def provider_id(client: TestClient, seller: Headers) -> str:
    return str(eligible_provider(client, seller)["provider_id"])


@pytest.fixture
def traded(
    client: TestClient, seller: Headers, buyer: Headers, provider_id: str, clock: FrozenClock
) -> dict[str, Any]:
    """A market with a fill, a resting bid, a cancelled order and a reservation."""
    clock.advance(1)
    filled = bid(client, buyer, 10_000, 0.0000008)
    clock.advance(1)
    resting = bid(client, buyer, 3000, 0.0000006)
    cancelled = ask(client, seller, provider_id, 1000, 0.0000009)
    ok(cancel(client, seller, cancelled["order"]["order_id"]))
    reservation = ok(
        client.post(
            "/inference/market/reservations",
            json={
                "buyer_id": BUYER,
                "model": MODEL,
                "unit_type": UNIT,
                "requested_units": 40_000,
                "max_unit_price": 0.0000008,
                "idempotency_key": "discovery-1",
            },
            headers=buyer,
        ),
        201,
    )
    return {
        "filled": filled,
        "resting": resting,
        "cancelled": cancelled,
        "reservation": reservation,
    }


@pytest.mark.parametrize("route", READ_ROUTES)
def test_every_discovery_route_needs_inference_read(
    app: FastAPI,
    client: TestClient,
    traded: dict[str, Any],
    route: str,
) -> None:
    error(client.get(route), 401, "unauthenticated")
    wrong = key_headers(app, BUYER, "inference:buy", "inference:sell", "inference:plan")
    body = error(client.get(route, headers=wrong), 403, "missing_scope")
    assert "inference:read" in body["error"]["message"]
    narrowed = {**key_headers(app, BUYER, "inference:read", "inference:buy")}
    narrowed["x-flow-memory-scopes"] = "inference:buy"
    error(client.get(route, headers=narrowed), 403, "missing_scope")
    ok(client.get(route, headers=key_headers(app, "someone-else", "inference:read")))


def test_the_market_list_summarises_each_market(
    client: TestClient, buyer: Headers, provider_id: str, traded: dict[str, Any]
) -> None:
    response = client.get("/inference/market/list", headers=buyer)
    body = ok(response)
    by_key = {(m["model"], m["unit_type"]): m for m in body["markets"]}
    assert body["count"] == len(body["markets"])
    token = by_key[(MODEL, UNIT)]
    assert token["best_bid"] == 0.0000006
    assert token["best_ask"] == SNAPSHOT_PRICE
    assert (token["bid_units"], token["bid_orders"]) == (3000, 1)
    # The cancelled manual ask's 1000 units went out of the snapshot ask; the next capacity
    # publish offers them again.
    assert (token["ask_units"], token["ask_orders"]) == (SNAPSHOT_UNITS - 11_000, 1)
    assert token["provider_count"] == 1
    assert token["last_fill_price"] == SNAPSHOT_PRICE
    assert token["last_fill_at"] == iso(1)
    assert '"best_ask":0.00000075' in response.text
    # The catalog's other offers are listed too, without orders.
    request = by_key[(MODEL, "request")]
    assert request["best_ask"] is None and request["ask_units"] == 0
    assert request["provider_count"] == 1


def test_an_empty_market_list(client: TestClient, buyer: Headers) -> None:
    body = ok(client.get("/inference/market/list", headers=buyer))
    assert body == {**body, "markets": [], "count": 0}


def test_model_detail_and_unknown_models(
    client: TestClient, buyer: Headers, provider_id: str, traded: dict[str, Any]
) -> None:
    response = client.get(f"/inference/market/models/{MODEL}", headers=buyer)
    body = ok(response)
    assert body["model"] == MODEL
    assert {m["unit_type"] for m in body["markets"]} == {"token", "request"}
    [offer] = body["offers"]
    assert offer["provider_id"] == provider_id
    assert offer["compatible_api"] == "chat_responses"
    [capacity] = offer["capacity"]
    assert capacity["available_units"] == SNAPSHOT_UNITS
    assert capacity["ask_unit_price"] == SNAPSHOT_PRICE
    assert capacity["expires_at"] == "2026-12-31T00:00:00Z"
    assert '"ask_unit_price":0.00000075' in response.text
    error(
        client.get("/inference/market/models/no-such-model", headers=buyer),
        404,
        "not_found",
        "model",
    )


def test_the_feed_records_orders_fills_cancels_reservations_and_capacity(
    client: TestClient, buyer: Headers, provider_id: str, traded: dict[str, Any]
) -> None:
    body = ok(client.get("/inference/market/feed", headers=buyer))
    events = body["events"]
    assert body["next_cursor"] is None
    ids = [e["event_id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "order_placed",  # the capacity snapshot's ask
        "capacity_published",
        "order_placed",  # the filled bid
        "fill",
        "order_placed",  # the resting bid
        "order_placed",  # the ask that is cancelled
        "order_cancelled",
        "reservation_held",
    ]
    by_subject = {(e["kind"], e["subject_id"]): e for e in events}
    filled = traded["filled"]
    fill = by_subject[("fill", filled["fills"][0]["fill_id"])]
    assert fill["payload"]["units"] == 10_000
    assert fill["payload"]["unit_price"] == SNAPSHOT_PRICE
    assert fill["payload"]["provider_id"] == provider_id
    assert fill["created_at"] == iso(1)
    placed = by_subject[("order_placed", traded["resting"]["order"]["order_id"])]
    assert placed["payload"]["limit_unit_price"] == 0.0000006
    assert placed["payload"]["side"] == "bid"
    cancelled = by_subject[("order_cancelled", traded["cancelled"]["order"]["order_id"])]
    assert cancelled["payload"]["cancel_reason"] == "buyer_repriced"
    held = by_subject[("reservation_held", traded["reservation"]["reservation_id"])]
    assert held["payload"]["held_units"] == 40_000
    capacity = by_subject[("capacity_published", provider_id)]
    assert capacity["payload"]["lines"][0]["ask_unit_price"] == SNAPSHOT_PRICE
    assert capacity["model"] is None


def test_feed_prices_are_plain_numbers(
    client: TestClient, buyer: Headers, traded: dict[str, Any]
) -> None:
    text = client.get("/inference/market/feed", headers=buyer).text
    assert '"limit_unit_price":0.00000075' in text
    assert '"ask_unit_price":0.00000075' in text
    assert '"unit_price":0.00000075' in text
    assert '"0.00000075"' not in text


def test_feed_cursor_pagination(client: TestClient, buyer: Headers, traded: dict[str, Any]) -> None:
    everything = ok(client.get("/inference/market/feed", headers=buyer))["events"]
    pages: list[list[dict[str, Any]]] = []
    after = 0
    while True:
        page = ok(client.get(f"/inference/market/feed?limit=3&after={after}", headers=buyer))
        pages.append(page["events"])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["events"][-1]["event_id"]
        after = page["next_cursor"]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [e for p in pages for e in p] == everything
    last = everything[-1]["event_id"]
    tail = ok(client.get(f"/inference/market/feed?after={last}", headers=buyer))
    assert tail["events"] == [] and tail["next_cursor"] is None
    exact = ok(client.get("/inference/market/feed?limit=8", headers=buyer))
    assert len(exact["events"]) == 8 and exact["next_cursor"] is None


def test_feed_filters_and_query_validation(
    client: TestClient, buyer: Headers, traded: dict[str, Any]
) -> None:
    fills = ok(client.get("/inference/market/feed?kind=fill", headers=buyer))["events"]
    assert [e["kind"] for e in fills] == ["fill"]
    other = ok(client.get("/inference/market/feed?model=other-model", headers=buyer))
    assert other["events"] == []
    for query in ("limit=0", "limit=501", "after=-1"):
        response = client.get(f"/inference/market/feed?{query}", headers=buyer)
        assert response.status_code == 422, query


def test_a_snapshot_republish_and_expiry_are_in_the_feed(
    client: TestClient, seller: Headers, buyer: Headers, provider_id: str, clock: FrozenClock
) -> None:
    ok(
        client.post(
            f"/inference/providers/{provider_id}/capacity",
            json=capacity_body("2026-06-17T00:10:00Z", expires_at=iso(60)),
            headers=seller,
        )
    )
    clock.advance(61)
    ok(client.get(f"/inference/market/depth?model={MODEL}&unit_type={UNIT}", headers=buyer))
    kinds = [e["kind"] for e in ok(client.get("/inference/market/feed", headers=buyer))["events"]]
    assert kinds.count("capacity_published") == 2
    assert kinds[-1] == "order_expired"


def test_buyer_profile(
    app: FastAPI, client: TestClient, buyer: Headers, traded: dict[str, Any]
) -> None:
    response = client.get(f"/inference/buyers/{BUYER}/profile", headers=buyer)
    body = ok(response)
    assert body["buyer_id"] == BUYER
    assert body["order_count"] == 2
    assert body["orders_by_status"] == {"filled": 1, "open": 1}
    assert body["reservation_count"] == 1
    assert body["held_units"] == 40_000
    assert body["fill_count"] == 1
    assert body["filled_units"] == 10_000
    assert body["notional"] == 0.0075
    assert body["models"] == [MODEL]
    assert body["last_fill_at"] == iso(1)
    assert '"notional":0.0075' in response.text
    error(client.get("/inference/buyers/nobody/profile", headers=buyer), 404, "not_found")


def test_seller_profile_by_provider_or_owner(
    client: TestClient, buyer: Headers, provider_id: str, traded: dict[str, Any]
) -> None:
    for seller_id in (provider_id, SELLER):
        body = ok(client.get(f"/inference/sellers/{seller_id}/profile", headers=buyer))
        assert body["seller_id"] == seller_id
        assert body["provider_ids"] == [provider_id]
        assert body["provider_count"] == 1
        assert body["open_ask_count"] == 1
        assert body["open_ask_units"] == SNAPSHOT_UNITS - 11_000
        assert body["published_units"] == SNAPSHOT_UNITS
        assert body["reliability_score"] == 0.99
        assert body["quality_score"] == 0.98
        assert body["fill_count"] == 1
        assert body["filled_units"] == 10_000
        assert body["notional"] == 0.0075
        assert body["models"] == [MODEL]
    error(
        client.get("/inference/sellers/nobody/profile", headers=buyer),
        404,
        "not_found",
        "seller_id",
    )


def test_a_seller_without_fills_has_zero_volume(
    client: TestClient, buyer: Headers, provider_id: str
) -> None:
    body = ok(client.get(f"/inference/sellers/{provider_id}/profile", headers=buyer))
    assert (body["fill_count"], body["filled_units"], body["notional"]) == (0, 0, 0)
    assert body["last_fill_at"] is None


def test_the_provider_agent_manifest(app: FastAPI, client: TestClient) -> None:
    reader = key_headers(app, "any-agent", "inference:read")
    body = ok(client.get("/inference/providers/agent/manifest", headers=reader))
    assert body["product"] == "Flow Memory"
    templates = body["route_templates"]
    assert templates["marketOrders"] == {"method": "POST", "path": "/inference/market/orders"}
    assert templates["marketOrderCancel"]["path"] == "/inference/market/orders/{order_id}/cancel"
    assert templates["providerCapacity"] == {
        "method": "POST",
        "path": "/inference/providers/{provider_id}/capacity",
    }
    assert [s["step"] for s in body["steps"]] == list(range(1, len(body["steps"]) + 1))
    assert {s["route"] for s in body["steps"]} - {"credentialRefs"} <= set(templates)
    assert body["scopes"]["inference:sell"].startswith("enroll")
    assert body["safety_fields"] == {
        "dry_run_only": True,
        "funds_moved": False,
        "broadcast_allowed": False,
        "private_key_required": False,
        "live_trading_enabled": False,
        "legal_review_required": True,
        "compliance_review_required": True,
    }
    assert any("identity_not_yours" in rule for rule in body["safety_rules"])
    text = str(body)
    assert "secret://" in text
    assert "Bearer" not in text and "fm_" not in text


def test_the_feed_newest_first_pages_back_with_before(
    client: TestClient, buyer: Headers, traded: dict[str, Any]
) -> None:
    everything = ok(client.get("/inference/market/feed", headers=buyer))["events"]
    pages: list[list[dict[str, Any]]] = []
    query = "order=newest&limit=3"
    while True:
        page = ok(client.get(f"/inference/market/feed?{query}", headers=buyer))
        pages.append(page["events"])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["events"][-1]["event_id"]
        query = f"order=newest&limit=3&before={page['next_cursor']}"
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [e for p in pages for e in p] == everything[::-1]
    fills = ok(client.get("/inference/market/feed?order=newest&kind=fill", headers=buyer))
    assert [e["kind"] for e in fills["events"]] == ["fill"]
    middle = everything[3]["event_id"]
    window = ok(
        client.get(f"/inference/market/feed?after={middle - 2}&before={middle + 2}", headers=buyer)
    )
    assert [e["event_id"] for e in window["events"]] == [middle - 1, middle, middle + 1]
    for bad in ("order=latest", "before=0"):
        assert client.get(f"/inference/market/feed?{bad}", headers=buyer).status_code == 422, bad

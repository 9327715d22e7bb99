"""Reservations over the API: holds from asks at or below a price, partial holds, expiry,
held units kept from bids and other reservations, idempotency per owner, and scopes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from flow_memory.kit.clock import FrozenClock
from tests.api.test_market_orders import (
    SNAPSHOT_PRICE,
    SNAPSHOT_UNITS,
    ask,
    beat,
    bid,
    capacity_body,
    depth,
    error,
    iso,
    levels,
    ok,
)
from tests.factories import (
    BUYER,
    admin_headers,
    buyer_headers,
    eligible_provider,
    key_headers,
    seller_headers,
)

# Each test runs with the market in the app's process and in a process of its own.
BOTH_MARKETS = True

RESERVATIONS = "/inference/market/reservations"
Headers = dict[str, str]


def seed_body(provider_id: str | None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "buyer_id": "agent-research-1",
        "provider_id": provider_id,
        "model": "flow-memory-orchestrator",
        "unit_type": "token",
        "requested_units": 250000,
        "max_unit_price": 0.0000008,
        "hold_seconds": 300,
        "allow_partial": True,
        "idempotency_key": "agent-research-1-task-42",
    }
    body.update(overrides)
    if body["provider_id"] is None:
        del body["provider_id"]
    return body


def reserve(client: TestClient, headers: Headers, body: dict[str, Any]) -> Response:
    return client.post(RESERVATIONS, json=body, headers=headers)


@pytest.fixture
def provider_id(client: TestClient, seller: Headers) -> str:
    return str(eligible_provider(client, seller)["provider_id"])


def test_the_seed_reservation_holds_capacity(
    client: TestClient, buyer: Headers, provider_id: str
) -> None:
    body = ok(reserve(client, buyer, seed_body(provider_id)), 201)
    assert body["reservation_id"].startswith("res_")
    assert body["held_units"] == 250000
    assert body["expires_at"] == iso(300)
    assert body["idempotent_replay"] is False
    [matched] = body["matched_orders"]
    assert matched["provider_id"] == provider_id
    assert (matched["units"], matched["unit_price"]) == (250000, SNAPSHOT_PRICE)
    record = body["reservation"]
    assert record["status"] == "active"
    assert record["buyer_id"] == "agent-research-1"
    assert record["requested_units"] == 250000
    assert record["max_unit_price"] == 0.0000008
    assert record["idempotency_key"] == "agent-research-1-task-42"
    view = depth(client, buyer)
    assert levels(view["asks"]) == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS - 250000, 1)]
    assert view["active_reservations"] == {"count": 1, "held_units": 250000}


def test_held_units_are_not_available_to_bids_until_the_hold_expires(
    client: TestClient, seller: Headers, buyer: Headers, provider_id: str, clock: FrozenClock
) -> None:
    ok(reserve(client, buyer, seed_body(provider_id, requested_units=2_400_000)), 201)
    taken = bid(client, buyer, 500_000, 0.0000008, time_in_force="ioc")
    assert taken["order"]["filled_units"] == 100_000
    assert taken["order"]["status"] == "expired"
    assert levels(depth(client, buyer)["asks"]) == [(SNAPSHOT_PRICE, 0, 1)]
    resting = bid(client, buyer, 50_000, 0.0000008)
    assert resting["fills"] == [] and resting["order"]["status"] == "open"
    fok = bid(client, buyer, 1000, 0.0000008, time_in_force="fok")
    assert fok["order"]["status"] == "expired"

    clock.advance(299)
    beat(client, seller, provider_id)
    view = depth(client, buyer)
    assert view["active_reservations"] == {"count": 1, "held_units": 2_400_000}
    assert levels(view["bids"]) == [(0.0000008, 50_000, 1)]

    clock.advance(2)
    beat(client, seller, provider_id)
    # The hold has expired: its units are back and the resting crossed bid trades at once.
    view = depth(client, buyer)
    assert view["active_reservations"] == {"count": 0, "held_units": 0}
    assert view["bids"] == []
    assert levels(view["asks"]) == [(SNAPSHOT_PRICE, 2_400_000 - 50_000, 1)]
    assert view["last_fill"]["bid_order_id"] == resting["order"]["order_id"]
    later = bid(client, buyer, 2_350_000, 0.0000008, time_in_force="fok")
    assert later["order"]["status"] == "filled"


def test_held_units_are_not_available_to_other_reservations(
    app: FastAPI, client: TestClient, buyer: Headers, provider_id: str
) -> None:
    everything = seed_body(provider_id, requested_units=SNAPSHOT_UNITS, idempotency_key="all")
    assert ok(reserve(client, buyer, everything), 201)["held_units"] == SNAPSHOT_UNITS
    other = buyer_headers(app, "agent-research-2")
    error(
        reserve(client, other, seed_body(None, buyer_id="agent-research-2")),
        409,
        "insufficient_capacity",
    )
    error(
        reserve(client, buyer, seed_body(None, idempotency_key="k2")), 409, "insufficient_capacity"
    )
    assert depth(client, buyer)["active_reservations"] == {"count": 1, "held_units": SNAPSHOT_UNITS}


def test_allow_partial_holds_what_there_is_otherwise_nothing(
    client: TestClient, buyer: Headers, provider_id: str
) -> None:
    whole = seed_body(provider_id, requested_units=3_000_000, allow_partial=False)
    body = error(reserve(client, buyer, whole), 409, "insufficient_capacity", "requested_units")
    assert "whole request" in body["error"]["message"]
    assert depth(client, buyer)["active_reservations"] == {"count": 0, "held_units": 0}
    partial = seed_body(provider_id, requested_units=3_000_000, idempotency_key="partial")
    held = ok(reserve(client, buyer, partial), 201)
    assert held["held_units"] == SNAPSHOT_UNITS
    assert held["reservation"]["requested_units"] == 3_000_000
    exact = seed_body(provider_id, requested_units=1000, allow_partial=False, idempotency_key="x")
    error(reserve(client, buyer, exact), 409, "insufficient_capacity")


def test_only_asks_at_or_below_max_unit_price_are_held(
    client: TestClient, seller: Headers, buyer: Headers, provider_id: str
) -> None:
    error(
        reserve(client, buyer, seed_body(provider_id, max_unit_price=0.00000074)),
        409,
        "insufficient_capacity",
    )
    ask(client, seller, provider_id, 100_000, 0.0000007)
    ask(client, seller, provider_id, 100_000, 0.0000009)
    body = ok(
        reserve(
            client,
            buyer,
            seed_body(None, requested_units=3_000_000, max_unit_price=SNAPSHOT_PRICE),
        ),
        201,
    )
    assert [(m["unit_price"], m["units"]) for m in body["matched_orders"]] == [
        (0.0000007, 100_000),
        # Both manual asks drew on the published capacity: the snapshot ask shrank by 200,000.
        (SNAPSHOT_PRICE, SNAPSHOT_UNITS - 200_000),
    ]
    assert body["held_units"] == SNAPSHOT_UNITS - 100_000
    assert levels(depth(client, buyer)["asks"]) == [
        (0.0000007, 0, 1),
        (SNAPSHOT_PRICE, 0, 1),
        (0.0000009, 100_000, 1),
    ]


def test_a_named_provider_is_the_only_one_held(
    app: FastAPI, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
) -> None:
    beta_headers = seller_headers(app, "provider-team-beta")
    beta = str(eligible_provider(client, beta_headers)["provider_id"])
    ask(client, seller, provider_id, 100_000, 0.0000007)  # cheaper, but not the named provider
    body = ok(reserve(client, buyer, seed_body(beta, requested_units=300_000)), 201)
    assert {m["provider_id"] for m in body["matched_orders"]} == {beta}
    assert body["reservation"]["provider_id"] == beta
    assert levels(depth(client, buyer)["asks"]) == [
        (0.0000007, 100_000, 1),
        (SNAPSHOT_PRICE, 2 * SNAPSHOT_UNITS - 100_000 - 300_000, 2),
    ]
    error(
        reserve(client, buyer, seed_body("prov_nobody", idempotency_key="nobody")),
        409,
        "insufficient_capacity",
    )


def test_a_stale_providers_asks_cannot_be_held(
    client: TestClient, seller: Headers, buyer: Headers, provider_id: str, clock: FrozenClock
) -> None:
    clock.advance(91)
    error(reserve(client, buyer, seed_body(provider_id)), 409, "insufficient_capacity")
    beat(client, seller, provider_id)
    assert ok(reserve(client, buyer, seed_body(provider_id)), 201)["held_units"] == 250000


def test_idempotency_replays_refuses_reuse_and_is_scoped_per_owner(
    app: FastAPI, client: TestClient, buyer: Headers, provider_id: str, clock: FrozenClock
) -> None:
    first = ok(reserve(client, buyer, seed_body(provider_id)), 201)
    clock.advance(10)
    again = ok(reserve(client, buyer, seed_body(provider_id)), 200)
    assert again["idempotent_replay"] is True
    assert again["reservation_id"] == first["reservation_id"]
    assert again["held_units"] == first["held_units"]
    assert again["expires_at"] == first["expires_at"] == iso(300)
    assert again["matched_orders"] == first["matched_orders"]
    assert depth(client, buyer)["active_reservations"] == {"count": 1, "held_units": 250000}

    for change in ({"requested_units": 250001}, {"hold_seconds": 60}, {"allow_partial": False}):
        body = error(
            reserve(client, buyer, seed_body(provider_id, **change)),
            409,
            "idempotency_key_reused",
            "idempotency_key",
        )
        assert "hint" in body["error"]
    assert depth(client, buyer)["active_reservations"] == {"count": 1, "held_units": 250000}

    other = buyer_headers(app, "agent-research-2")
    theirs = ok(reserve(client, other, seed_body(provider_id, buyer_id="agent-research-2")), 201)
    assert theirs["reservation_id"] != first["reservation_id"]
    assert theirs["idempotent_replay"] is False
    assert depth(client, buyer)["active_reservations"] == {"count": 2, "held_units": 500000}


def test_a_replay_after_expiry_returns_the_expired_reservation_without_holding(
    client: TestClient, seller: Headers, buyer: Headers, provider_id: str, clock: FrozenClock
) -> None:
    first = ok(reserve(client, buyer, seed_body(provider_id)), 201)
    clock.advance(301)
    beat(client, seller, provider_id)
    again = ok(reserve(client, buyer, seed_body(provider_id)), 200)
    assert again["reservation_id"] == first["reservation_id"]
    assert again["reservation"]["status"] == "expired"
    assert depth(client, buyer)["active_reservations"] == {"count": 0, "held_units": 0}
    assert levels(depth(client, buyer)["asks"]) == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS, 1)]


def test_a_buyer_cannot_reserve_as_another_buyer(
    app: FastAPI, client: TestClient, buyer: Headers, provider_id: str
) -> None:
    ok(reserve(client, buyer, seed_body(provider_id, requested_units=1000)), 201)
    profile = client.get("/inference/buyers/agent-research-1/profile", headers=buyer).json()
    other = buyer_headers(app, "agent-research-2")
    answer = reserve(client, other, seed_body(provider_id, idempotency_key="theirs"))
    error(answer, 403, "identity_not_yours", "buyer_id")
    assert "agent-research-1" not in answer.text
    # Nothing was held, and the named buyer's public profile did not change.
    assert depth(client, buyer)["active_reservations"] == {"count": 1, "held_units": 1000}
    assert client.get("/inference/buyers/agent-research-1/profile", headers=buyer).json() == (
        profile
    )
    # The same body without the other buyer's name reserves for the caller.
    mine = ok(reserve(client, other, seed_body(provider_id, buyer_id=None)), 201)
    assert mine["reservation"]["buyer_id"] == "agent-research-2"


def test_reservation_scopes(app: FastAPI, client: TestClient, provider_id: str) -> None:
    error(client.post(RESERVATIONS, json=seed_body(provider_id)), 401, "unauthenticated")
    for scopes in (("inference:sell", "inference:read"), ("inference:read",)):
        headers = key_headers(app, BUYER, *scopes)
        error(reserve(client, headers, seed_body(provider_id)), 403, "missing_scope")
    narrowed = {**buyer_headers(app), "x-flow-memory-scopes": "inference:read"}
    error(reserve(client, narrowed, seed_body(provider_id)), 403, "missing_scope")
    ok(reserve(client, admin_headers(app), seed_body(provider_id)), 201)


@pytest.mark.parametrize(
    "overrides",
    [
        {"requested_units": 0},
        {"max_unit_price": 0},
        {"hold_seconds": 0},
        {"hold_seconds": 3601},
        {"idempotency_key": ""},
        {"unit_type": "gallon"},
        {"unexpected": True},
    ],
)
def test_malformed_reservations_are_422(
    client: TestClient, buyer: Headers, provider_id: str, overrides: dict[str, Any]
) -> None:
    response = reserve(client, buyer, seed_body(provider_id, **overrides))
    assert response.status_code == 422, response.text
    assert response.json()["dry_run_only"] is True
    assert depth(client, buyer)["active_reservations"] == {"count": 0, "held_units": 0}


def test_a_missing_idempotency_key_is_422(
    client: TestClient, buyer: Headers, provider_id: str
) -> None:
    body = seed_body(provider_id)
    del body["idempotency_key"]
    assert reserve(client, buyer, body).status_code == 422


class TestCapacityRepublishKeepsHolds:
    def _republish(self, client: TestClient, seller: Headers, provider_id: str, units: int) -> None:
        body = capacity_body("2026-06-17T00:10:00Z", available_units=units)
        ok(client.post(f"/inference/providers/{provider_id}/capacity", json=body, headers=seller))

    def test_held_units_survive_a_new_snapshot_and_are_not_offered_twice(
        self,
        client: TestClient,
        clock: FrozenClock,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
    ) -> None:
        held = ok(reserve(client, buyer, seed_body(provider_id, requested_units=300_000)), 201)
        self._republish(client, seller, provider_id, 1_000_000)
        view = depth(client, buyer)
        # The old ask keeps only its held units (none available); the new one offers the rest.
        assert levels(view["asks"]) == [(SNAPSHOT_PRICE, 700_000, 2)]
        assert view["active_reservations"] == {"count": 1, "held_units": 300_000}
        # A bid cannot take the held units.
        taken = bid(client, buyer, 1_000_000, SNAPSHOT_PRICE, time_in_force="ioc")
        assert taken["order"]["filled_units"] == 700_000
        matched = {m["order_id"] for m in held["matched_orders"]}
        assert matched.isdisjoint({f["ask_order_id"] for f in taken["fills"]})
        # When the hold ends, the replaced ask ends with it instead of offering the units again.
        clock.advance(301)
        after = depth(client, buyer)
        assert after["asks"] == []
        assert after["active_reservations"] == {"count": 0, "held_units": 0}


def test_a_manual_ask_draws_on_the_snapshot_so_the_book_never_offers_more_than_published(
    client: TestClient, seller: Headers, buyer: Headers, provider_id: str
) -> None:
    ask(client, seller, provider_id, 2_000_000, 0.0000007)
    offered = sum(level["available_units"] for level in depth(client, buyer)["asks"])
    assert offered == SNAPSHOT_UNITS
    error(
        client.post(
            "/inference/market/orders",
            json={
                "side": "ask",
                "provider_id": provider_id,
                "model": "flow-memory-orchestrator",
                "unit_type": "token",
                "units": 600_000,
                "limit_unit_price": 0.0000007,
            },
            headers=seller,
        ),
        422,
        "capacity_exceeded",
    )

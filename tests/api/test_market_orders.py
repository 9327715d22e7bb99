"""Market orders over the API: scopes, ownership, capacity, matching, time in force, route
gates, cancels, depth and capacity-snapshot asks."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import fields
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from flow_memory.keys import service as keys
from flow_memory.keys.models import ApiKey
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Forbidden
from flow_memory.market import batch as market_batch
from flow_memory.market.models import (
    MarketFill,
    MarketOrder,
    Reservation,
    ReservationHold,
)
from flow_memory.market.orders import CancelOrder, PlaceOrder
from flow_memory.market.reservations import Reserve
from flow_memory.market.rows import PlacedFill, PlacedHold, PlacedOrder, PlacedReservation
from flow_memory.market.schemas import OrderCancel, OrderCreate, ReservationCreate
from flow_memory.market.snapshots import PublishCapacity
from flow_memory.market.writer import MarketWriter
from flow_memory.providers.schemas import ProviderCapacity
from flow_memory.usage.models import UsageRecord
from tests.assertions import assert_safety, ok
from tests.assertions import error_body as error
from tests.conftest import TEST_START
from tests.factories import (
    BUYER,
    SELLER,
    admin_headers,
    buyer_headers,
    capacity_body,
    eligible_provider,
    key_headers,
    seller_headers,
)

# Each test runs with the market in the app's process and in a process of its own.
BOTH_MARKETS = True

MODEL = "flow-memory-orchestrator"
UNIT = "token"
ORDERS = "/inference/market/orders"
DEPTH = f"/inference/market/depth?model={MODEL}&unit_type={UNIT}"
SNAPSHOT_UNITS = 2_500_000
SNAPSHOT_PRICE = 0.00000075
Headers = dict[str, str]


def iso(seconds: float) -> str:
    return (TEST_START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def bid_body(units: int, price: float, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "side": "bid",
        "model": MODEL,
        "unit_type": UNIT,
        "units": units,
        "limit_unit_price": price,
    }
    body.update(overrides)
    return body


def ask_body(provider_id: str, units: int, price: float, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "side": "ask",
        "provider_id": provider_id,
        "model": MODEL,
        "unit_type": UNIT,
        "units": units,
        "limit_unit_price": price,
    }
    body.update(overrides)
    return body


def place(client: TestClient, headers: Headers, body: dict[str, Any]) -> dict[str, Any]:
    return ok(client.post(ORDERS, json=body, headers=headers), 201)


def bid(
    client: TestClient, headers: Headers, units: int, price: float, **overrides: Any
) -> dict[str, Any]:
    return place(client, headers, bid_body(units, price, **overrides))


def ask(
    client: TestClient,
    headers: Headers,
    provider_id: str,
    units: int,
    price: float,
    **overrides: Any,
) -> dict[str, Any]:
    return place(client, headers, ask_body(provider_id, units, price, **overrides))


def cancel(
    client: TestClient, headers: Headers, order_id: str, *, requested_by: str | None = None
) -> Response:
    body = {"cancel_reason": "buyer_repriced"}
    if requested_by is not None:
        body["requested_by"] = requested_by
    return client.post(f"{ORDERS}/{order_id}/cancel", json=body, headers=headers)


def depth(client: TestClient, headers: Headers) -> dict[str, Any]:
    return ok(client.get(DEPTH, headers=headers))


def levels(side: list[dict[str, Any]]) -> list[tuple[float, int, int]]:
    return [(lv["unit_price"], lv["available_units"], lv["order_count"]) for lv in side]


def beat(client: TestClient, headers: Headers, provider_id: str) -> None:
    ok(client.post(f"/inference/providers/{provider_id}/heartbeat", headers=headers))


def placing(principal: Principal, body: dict[str, Any]) -> PlaceOrder:
    return PlaceOrder(principal, OrderCreate.model_validate(body))


def another_writer(app: FastAPI) -> MarketWriter:
    """A market writer of its own, beside the app's: as another server on the same database
    would run one (its books are its own; the database keeps both right)."""
    return MarketWriter(
        app.state.session_factory, settings=app.state.settings, clock=app.state.clock
    )


def apply(writer: MarketWriter, commands: list[Any]) -> list[Future[Any]]:
    """Apply commands as one batch, in this thread; their outcomes."""
    futures: list[Future[Any]] = [Future() for _ in commands]
    writer.apply(list(zip(commands, futures, strict=True)))
    return futures


@pytest.fixture
def provider_id(client: TestClient, seller: Headers) -> str:
    return str(eligible_provider(client, seller)["provider_id"])


class TestScopesAndOwnership:
    def test_no_key_is_401(self, client: TestClient) -> None:
        error(client.post(ORDERS, json=bid_body(1000, 0.0000008)), 401, "unauthenticated")

    @pytest.mark.parametrize("scopes", [("inference:read",), ("inference:plan", "inference:read")])
    def test_a_key_without_buy_or_sell_is_403(
        self, app: FastAPI, client: TestClient, scopes: tuple[str, ...]
    ) -> None:
        headers = key_headers(app, BUYER, *scopes)
        error(
            client.post(ORDERS, json=bid_body(1000, 0.0000008), headers=headers),
            403,
            "missing_scope",
        )

    def test_a_bid_needs_inference_buy(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        body = error(
            client.post(ORDERS, json=bid_body(1000, 0.0000008), headers=seller),
            403,
            "missing_scope",
        )
        assert "inference:buy" in body["error"]["message"]

    def test_an_ask_needs_inference_sell(
        self, client: TestClient, buyer: Headers, provider_id: str
    ) -> None:
        body = error(
            client.post(ORDERS, json=ask_body(provider_id, 1000, 0.0000007), headers=buyer),
            403,
            "missing_scope",
        )
        assert "inference:sell" in body["error"]["message"]

    def test_the_scope_header_narrows_a_trader_key(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        both = key_headers(app, SELLER, "inference:buy", "inference:sell")
        narrowed = {**both, "x-flow-memory-scopes": "inference:sell"}
        error(
            client.post(ORDERS, json=bid_body(1000, 0.0000001), headers=narrowed),
            403,
            "missing_scope",
        )
        bid(client, both, 1000, 0.0000001)

    def test_an_ask_for_another_owners_provider_is_404(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        other = seller_headers(app, "provider-team-beta")
        error(
            client.post(ORDERS, json=ask_body(provider_id, 1000, 0.0000007), headers=other),
            404,
            "not_found",
            "provider_id",
        )
        error(
            client.post(ORDERS, json=ask_body("prov_unknown", 1000, 0.0000007), headers=other),
            404,
            "not_found",
        )

    def test_an_admin_may_place_an_ask_for_any_provider(
        self, app: FastAPI, client: TestClient, provider_id: str
    ) -> None:
        order = ask(client, admin_headers(app), provider_id, 1000, 0.0000009)["order"]
        assert order["provider_id"] == provider_id
        assert order["owner_id"] == SELLER


class TestKeyCache:
    """Keys are checked against the database once per cache period, not on every request."""

    @pytest.fixture
    def cache_clock(self, monkeypatch: pytest.MonkeyPatch) -> list[float]:
        now = [1000.0]
        monkeypatch.setattr(keys.KEY_CACHE, "clock", lambda: now[0])
        keys.KEY_CACHE.clear()
        return now

    @staticmethod
    def _key_id(app: FastAPI, headers: Headers) -> str:
        secret = headers["authorization"].removeprefix("Bearer ")
        with app.state.session_factory() as session:
            record = keys.find_active_key(session, secret)
            assert record is not None
            return record.key_id

    def test_a_revoke_in_this_process_refuses_a_cached_key_at_once(
        self, app: FastAPI, client: TestClient, buyer: Headers, cache_clock: list[float]
    ) -> None:
        bid(client, buyer, 1000, 0.0000001)  # the key is now cached
        key_id = self._key_id(app, buyer)
        with app.state.session_factory.begin() as session:
            keys.revoke_key(session, key_id=key_id, now=app.state.clock.now())
        error(
            client.post(ORDERS, json=bid_body(1000, 0.0000001), headers=buyer),
            401,
            "unauthenticated",
        )

    def test_a_revoke_elsewhere_takes_effect_when_the_cache_period_ends(
        self, app: FastAPI, client: TestClient, buyer: Headers, cache_clock: list[float]
    ) -> None:
        bid(client, buyer, 1000, 0.0000001)
        key_id = self._key_id(app, buyer)
        # Another process (the CLI) revokes the key: this process's cache does not hear of it.
        with app.state.session_factory.begin() as session:
            record = session.get(ApiKey, key_id)
            assert record is not None
            record.revoked_at = app.state.clock.now()
        cache_clock[0] += keys.KEY_CACHE_SECONDS - 0.5
        bid(client, buyer, 1000, 0.0000001)  # still trusted within the period
        cache_clock[0] += 1.0
        error(
            client.post(ORDERS, json=bid_body(1000, 0.0000001), headers=buyer),
            401,
            "unauthenticated",
        )

    def test_a_lookup_that_began_before_a_revoke_is_not_cached(self) -> None:
        cache = keys.KeyCache(ttl=5, clock=lambda: 0.0)
        grant = keys.KeyGrant("key_1", "owner", frozenset({"inference:buy"}))
        seen = cache.generation
        cache.forget("key_1")  # a revoke lands while the lookup is in flight
        cache.put("hash", grant, generation=seen)
        assert cache.get("hash") is None
        cache.put("hash", grant, generation=cache.generation)
        assert cache.get("hash") == grant

    def test_entries_end_after_the_period_and_the_cache_stays_bounded(self) -> None:
        now = [0.0]
        cache = keys.KeyCache(ttl=2, clock=lambda: now[0], max_entries=3)
        for n in range(3):
            cache.put(f"h{n}", keys.KeyGrant(f"key_{n}", "o", frozenset()), generation=0)
        assert cache.get("h0") is not None
        now[0] = 2.0
        assert cache.get("h0") is None
        cache.put("h3", keys.KeyGrant("key_3", "o", frozenset()), generation=0)
        assert [cache.get(f"h{n}") is None for n in range(4)] == [True, True, True, False]


class TestValidation:
    def test_asks_are_bounded_by_published_capacity_less_other_manual_asks(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        first = ask(client, seller, provider_id, 2_000_000, 0.0000009)["order"]
        ask(client, seller, provider_id, 500_000, 0.00000095)
        body = error(
            client.post(ORDERS, json=ask_body(provider_id, 1, 0.0000009), headers=seller),
            422,
            "capacity_exceeded",
            "units",
        )
        assert "0 of the published 2500000" in body["error"]["message"]
        # A cancelled ask frees its units; a partly filled ask still counts what remains.
        ok(cancel(client, seller, first["order_id"]))
        ask(client, seller, provider_id, 2_000_000, 0.0000009)
        error(
            client.post(ORDERS, json=ask_body(provider_id, 1, 0.0000009), headers=seller),
            422,
            "capacity_exceeded",
        )

    def test_capacity_not_published_for_the_model_or_unit(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        error(
            client.post(
                ORDERS,
                json=ask_body(provider_id, 1000, 0.0000007, unit_type="request"),
                headers=seller,
            ),
            422,
            "capacity_not_published",
            "model",
        )
        error(
            client.post(
                ORDERS,
                json=ask_body(provider_id, 1000, 0.0000007, model="flow-memory-message-chat"),
                headers=seller,
            ),
            422,
            "capacity_not_published",
        )

    @pytest.mark.parametrize("currency", ["USD", "usd_credit", "ETH", ""])
    def test_only_usd_credit(self, client: TestClient, buyer: Headers, currency: str) -> None:
        error(
            client.post(ORDERS, json=bid_body(1000, 0.0000008, currency=currency), headers=buyer),
            422,
            "invalid_request",
            "currency",
        )

    def test_currency_defaults_to_usd_credit(self, client: TestClient, buyer: Headers) -> None:
        order = bid(client, buyer, 1000, 0.0000008)["order"]
        assert order["currency"] == "USD_CREDIT"
        assert bid(client, buyer, 1000, 0.0000008, currency="USD_CREDIT")["order"]["currency"] == (
            "USD_CREDIT"
        )

    @pytest.mark.parametrize(
        ("flag", "unsafe"),
        [
            ("dry_run_required", False),
            ("raw_credentials_allowed", True),
            ("broadcast_enabled", True),
            ("sensitive_signing_inputs_allowed", True),
        ],
    )
    def test_unsafe_routing_policy_flags_are_refused_and_nothing_is_stored(
        self, client: TestClient, buyer: Headers, flag: str, unsafe: bool
    ) -> None:
        policy = {"min_discount_bps": 500, "allow_fallback": True, flag: unsafe}
        error(
            client.post(
                ORDERS, json=bid_body(1000, 0.0000008, routing_policy=policy), headers=buyer
            ),
            422,
            "forbidden_material",
            f"routing_policy.{flag}",
        )
        assert depth(client, buyer)["bids"] == []
        feed = ok(client.get("/inference/market/feed", headers=buyer))
        assert feed["events"] == []

    def test_the_seed_bid_with_its_safe_routing_policy_is_accepted(
        self, client: TestClient, buyer: Headers, provider_id: str
    ) -> None:
        body = bid_body(
            250000,
            0.0000008,
            buyer_id="agent-research-1",
            time_in_force="ioc",
            routing_policy={
                "min_discount_bps": 500,
                "allow_fallback": True,
                "dry_run_required": True,
                "raw_credentials_allowed": False,
                "broadcast_enabled": False,
                "sensitive_signing_inputs_allowed": False,
            },
        )
        placed = place(client, buyer, body)
        assert placed["order"]["status"] == "filled"
        assert placed["order"]["buyer_id"] == "agent-research-1"
        assert [(f["units"], f["unit_price"]) for f in placed["fills"]] == [
            (250000, SNAPSHOT_PRICE)
        ]

    @pytest.mark.parametrize(
        "overrides",
        [
            {"units": 0},
            {"units": -5},
            {"limit_unit_price": 0},
            {"limit_unit_price": -0.1},
            {"limit_unit_price": 0.0000000000000000001},
            {"min_fill_units": 2000},
            {"time_in_force": "day"},
            {"side": "buy"},
            {"unexpected": 1},
        ],
    )
    def test_malformed_orders_are_422(
        self, client: TestClient, buyer: Headers, overrides: dict[str, Any]
    ) -> None:
        body = {**bid_body(1000, 0.0000008), **overrides}
        response = client.post(ORDERS, json=body, headers=buyer)
        assert response.status_code == 422, response.text
        assert_safety(response.json())
        assert depth(client, buyer)["bids"] == []

    def test_an_ask_without_provider_or_with_routing_policy_is_422(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        no_provider = ask_body(provider_id, 1000, 0.0000009)
        del no_provider["provider_id"]
        assert client.post(ORDERS, json=no_provider, headers=seller).status_code == 422
        with_policy = ask_body(provider_id, 1000, 0.0000009, routing_policy={})
        assert client.post(ORDERS, json=with_policy, headers=seller).status_code == 422


class TestMatching:
    def test_status_open_then_partially_filled_then_filled(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        resting = bid(client, buyer, 10_000, 0.0000007)
        order = resting["order"]
        assert (order["status"], order["filled_units"], order["remaining_units"]) == (
            "open",
            0,
            10_000,
        )
        assert resting["fills"] == []
        first = ask(client, seller, provider_id, 4000, 0.0000006)
        assert first["order"]["status"] == "filled"
        assert first["order"]["filled_units"] == 4000
        [fill] = first["fills"]
        assert fill["bid_order_id"] == order["order_id"]
        assert fill["ask_order_id"] == first["order"]["order_id"]
        assert fill["units"] == 4000
        assert fill["unit_price"] == 0.0000007  # the resting bid's price
        assert fill["provider_id"] == provider_id
        assert fill["fill_id"].startswith("fill_")
        assert levels(depth(client, buyer)["bids"]) == [(0.0000007, 6000, 1)]
        # The resting bid is now partially filled; cancelling shows its state and its fills.
        second = ask(client, seller, provider_id, 8000, 0.0000007)
        assert second["order"]["status"] == "partially_filled"
        assert second["order"]["filled_units"] == 6000
        assert second["order"]["remaining_units"] == 2000
        again = error(cancel(client, buyer, order["order_id"]), 409, "order_not_cancellable")
        assert "filled" in again["error"]["message"]
        cancelled = ok(cancel(client, seller, second["order"]["order_id"]))
        assert cancelled["order"]["status"] == "cancelled"
        assert cancelled["order"]["filled_units"] == 6000
        assert [f["units"] for f in cancelled["fills"]] == [6000]

    def test_price_time_priority_and_fills_at_the_resting_price(
        self, app: FastAPI, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        beta_headers = seller_headers(app, "provider-team-beta")
        beta = str(eligible_provider(client, beta_headers)["provider_id"])
        a_dear = ask(client, seller, provider_id, 1000, 0.00000072)["order"]["order_id"]
        b_cheap = ask(client, beta_headers, beta, 1000, 0.0000007)["order"]["order_id"]
        a_cheap = ask(client, seller, provider_id, 1000, 0.0000007)["order"]["order_id"]
        assert levels(depth(client, buyer)["asks"]) == [
            (0.0000007, 2000, 2),
            (0.00000072, 1000, 1),
            # Manual asks draw on the published capacity, so the snapshot asks shrink.
            (SNAPSHOT_PRICE, 2 * SNAPSHOT_UNITS - 3000, 2),
        ]
        taken = bid(client, buyer, 2500, 0.0000008)
        assert taken["order"]["status"] == "filled"
        assert [(f["ask_order_id"], f["units"], f["unit_price"]) for f in taken["fills"]] == [
            (b_cheap, 1000, 0.0000007),
            (a_cheap, 1000, 0.0000007),
            (a_dear, 500, 0.00000072),
        ]
        assert levels(depth(client, buyer)["asks"])[0] == (0.00000072, 500, 1)

    def test_bids_match_best_price_first_then_oldest(
        self, app: FastAPI, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        other = buyer_headers(app, "agent-research-2")
        low = bid(client, buyer, 1000, 0.0000006)["order"]["order_id"]
        early = bid(client, buyer, 1000, 0.00000065)["order"]["order_id"]
        late = bid(client, other, 1000, 0.00000065)["order"]["order_id"]
        assert levels(depth(client, buyer)["bids"]) == [
            (0.00000065, 2000, 2),
            (0.0000006, 1000, 1),
        ]
        sold = ask(client, seller, provider_id, 2500, 0.0000006)
        assert [(f["bid_order_id"], f["units"], f["unit_price"]) for f in sold["fills"]] == [
            (early, 1000, 0.00000065),
            (late, 1000, 0.00000065),
            (low, 500, 0.0000006),
        ]

    def test_ioc_fills_what_it_can_and_expires_the_rest(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        ask(client, seller, provider_id, 3000, 0.0000007)
        placed = bid(client, buyer, 5000, 0.0000007, time_in_force="ioc")
        assert placed["order"]["status"] == "expired"
        assert placed["order"]["filled_units"] == 3000
        assert placed["order"]["remaining_units"] == 2000
        assert [f["units"] for f in placed["fills"]] == [3000]
        nothing = bid(client, buyer, 5000, 0.0000001, time_in_force="ioc")
        assert nothing["order"]["status"] == "expired"
        assert nothing["order"]["filled_units"] == 0
        assert nothing["fills"] == []
        assert depth(client, buyer)["bids"] == []
        error(cancel(client, buyer, nothing["order"]["order_id"]), 409, "order_not_cancellable")

    def test_fok_fills_completely_or_not_at_all(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        ask(client, seller, provider_id, 3000, 0.0000007)
        refused = bid(client, buyer, 5000, 0.0000007, time_in_force="fok")
        assert refused["order"]["status"] == "expired"
        assert refused["order"]["filled_units"] == 0
        assert refused["fills"] == []
        assert levels(depth(client, buyer)["asks"])[0] == (0.0000007, 3000, 1)
        filled = bid(client, buyer, 3000, 0.0000007, time_in_force="fok")
        assert filled["order"]["status"] == "filled"
        assert sum(f["units"] for f in filled["fills"]) == 3000
        across = bid(client, buyer, 1_000_000, SNAPSHOT_PRICE, time_in_force="fok")
        assert across["order"]["status"] == "filled"
        assert [f["unit_price"] for f in across["fills"]] == [SNAPSHOT_PRICE]

    def test_min_fill_units_blocks_small_fills_on_both_sides(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        # The snapshot ask has min_fill_units 1000: a 500-unit bid rests beside it.
        small = bid(client, buyer, 500, 0.0000008)
        assert small["order"]["status"] == "open" and small["fills"] == []
        view = depth(client, buyer)
        assert view["spread"] == {
            "best_bid": 0.0000008,
            "best_ask": SNAPSHOT_PRICE,
            "crossed": True,
        }
        ok(cancel(client, buyer, small["order"]["order_id"]))
        # A bid that wants at least 4000 per fill skips a 3000-unit ask and takes the next.
        ask(client, seller, provider_id, 3000, 0.0000007)
        picky = bid(client, buyer, 5000, 0.0000008, min_fill_units=4000, time_in_force="ioc")
        assert [(f["units"], f["unit_price"]) for f in picky["fills"]] == [(5000, SNAPSHOT_PRICE)]
        assert levels(depth(client, buyer)["asks"])[0] == (0.0000007, 3000, 1)
        # A bid that accepts 1000-unit fills takes the cheap ask.
        taker = bid(client, buyer, 1000, 0.0000007, min_fill_units=1000)
        assert [f["units"] for f in taker["fills"]] == [1000]

    def test_stale_providers_asks_stay_in_depth_but_trade_once_it_beats_again(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        clock: FrozenClock,
    ) -> None:
        clock.advance(91)
        health = ok(client.get(f"/inference/providers/{provider_id}/health", headers=seller))
        assert health["route_gate"] == "stale"
        placed = bid(client, buyer, 10_000, 0.0000008)
        assert placed["order"]["status"] == "open"
        assert placed["fills"] == []
        refused = bid(client, buyer, 10_000, 0.0000008, time_in_force="fok")
        assert refused["order"]["status"] == "expired" and refused["fills"] == []
        view = depth(client, buyer)
        assert levels(view["asks"]) == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS, 1)]
        assert levels(view["bids"]) == [(0.0000008, 10_000, 1)]
        assert view["spread"]["crossed"] is True
        assert view["recent_fills"] == [] and view["last_fill"] is None

        beat(client, seller, provider_id)
        view = depth(client, buyer)
        assert view["bids"] == []
        assert levels(view["asks"]) == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS - 10_000, 1)]
        assert view["spread"]["crossed"] is False
        last = view["last_fill"]
        assert last["bid_order_id"] == placed["order"]["order_id"]
        assert (last["units"], last["unit_price"]) == (10_000, SNAPSHOT_PRICE)
        error(cancel(client, buyer, placed["order"]["order_id"]), 409, "order_not_cancellable")

    def test_a_stale_provider_cannot_sell_into_resting_bids(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        clock: FrozenClock,
    ) -> None:
        resting = bid(client, buyer, 1000, 0.0000006)["order"]["order_id"]
        clock.advance(91)
        placed = ask(client, seller, provider_id, 1000, 0.0000006)
        assert placed["order"]["status"] == "open" and placed["fills"] == []
        beat(client, seller, provider_id)
        assert depth(client, buyer)["bids"] == []
        error(cancel(client, buyer, resting), 409, "order_not_cancellable")

    def test_revoked_credential_asks_stay_in_depth_but_do_not_match(
        self, app: FastAPI, client: TestClient, seller: Headers, buyer: Headers
    ) -> None:
        provider = eligible_provider(client, seller)
        provider_id = provider["provider_id"]
        revoked = client.post(
            f"/inference/credential-refs/{provider['credential_ref_id']}/revoke",
            json={"revoke_reason": "operator_rotation"},
            headers=admin_headers(app),
        )
        assert revoked.status_code == 200, revoked.text
        placed = bid(client, buyer, 10_000, 0.0000008)
        assert placed["order"]["status"] == "open" and placed["fills"] == []
        held = client.post(
            "/inference/market/reservations",
            json={
                "model": MODEL,
                "unit_type": UNIT,
                "requested_units": 1000,
                "max_unit_price": 0.0000008,
                "idempotency_key": "revoked-1",
            },
            headers=buyer,
        )
        error(held, 409, "insufficient_capacity")
        beat(client, seller, provider_id)  # a heartbeat does not undo a revocation
        view = depth(client, buyer)
        assert levels(view["asks"]) == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS, 1)]
        assert levels(view["bids"]) == [(0.0000008, 10_000, 1)]
        assert view["spread"]["crossed"] is True
        assert view["recent_fills"] == []

    def test_the_writer_sees_a_revoke_at_once_though_it_keeps_route_gates(
        self, app: FastAPI, client: TestClient, seller: Headers, buyer: Headers
    ) -> None:
        provider = eligible_provider(client, seller)
        # The writer reads the provider's gate for this order and keeps it for its next batches.
        assert bid(client, buyer, 1000, 0.0000008)["fills"] != []
        revoked = client.post(
            f"/inference/credential-refs/{provider['credential_ref_id']}/revoke",
            json={"revoke_reason": "operator_rotation"},
            headers=admin_headers(app),
        )
        assert revoked.status_code == 200, revoked.text
        placed = bid(client, buyer, 1000, 0.0000008)
        assert placed["order"]["status"] == "open" and placed["fills"] == []

    def test_the_writer_sees_a_provider_go_stale_though_it_keeps_route_gates(
        self, client: TestClient, seller: Headers, buyer: Headers, clock: FrozenClock
    ) -> None:
        eligible_provider(client, seller)
        assert bid(client, buyer, 1000, 0.0000008)["fills"] != []
        clock.advance(91)  # no heartbeat since: stale, with nothing committed in between
        placed = bid(client, buyer, 1000, 0.0000008)
        assert placed["order"]["status"] == "open" and placed["fills"] == []

    def test_the_writer_sees_a_draining_report_at_once_though_it_keeps_route_gates(
        self, client: TestClient, seller: Headers, buyer: Headers
    ) -> None:
        provider_id = eligible_provider(client, seller)["provider_id"]
        assert bid(client, buyer, 1000, 0.0000008)["fills"] != []
        ok(
            client.post(
                f"/inference/providers/{provider_id}/heartbeat",
                json={"runtime_status": "draining"},
                headers=seller,
            )
        )
        placed = bid(client, buyer, 1000, 0.0000008)
        assert placed["order"]["status"] == "open" and placed["fills"] == []


class TestWhatTheWriterKeeps:
    """The market writer keeps what it read of providers between batches; a change committed
    in this process shows in its next batch all the same."""

    def test_a_capacity_publish_bounds_the_next_ask(
        self, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        ask(client, seller, provider_id, 2_000_000, 0.0000009)  # read 2,500,000 and kept it
        lowered = capacity_body("2026-06-17T00:06:00Z", available_units=2_100_000)
        published = f"/inference/providers/{provider_id}/capacity"
        ok(client.post(published, json=lowered, headers=seller))
        body = error(
            client.post(ORDERS, json=ask_body(provider_id, 200_000, 0.0000009), headers=seller),
            422,
            "capacity_exceeded",
            "units",
        )
        assert "100000 of the published 2100000" in body["error"]["message"]

    def test_offered_units_follow_fills_across_batches(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        ask(client, seller, provider_id, 2_000_000, 0.0000007)  # under the snapshot ask
        assert bid(client, buyer, 1_500_000, 0.0000007)["order"]["status"] == "filled"
        # 500,000 still offered: exactly 2,000,000 more fit in the published 2,500,000.
        ask(client, seller, provider_id, 2_000_000, 0.0000009)
        body = error(
            client.post(ORDERS, json=ask_body(provider_id, 1, 0.0000009), headers=seller),
            422,
            "capacity_exceeded",
        )
        assert "0 of the published 2500000" in body["error"]["message"]

    def test_a_capacity_publish_by_another_writer_bounds_the_next_ask(
        self, app: FastAPI, client: TestClient, seller: Headers, provider_id: str
    ) -> None:
        ask(client, seller, provider_id, 2_000_000, 0.0000009)  # read 2,500,000 and kept it
        owner = Principal(key_id="k", owner_id=SELLER, scopes=frozenset({"inference:sell"}))
        lowered = ProviderCapacity.model_validate(
            capacity_body("2026-06-17T00:06:00Z", available_units=2_100_000)
        )
        # Another server's writer publishes: this app's writer hears nothing of it, but the
        # market's version moved, and what it kept is read afresh with the book.
        other = another_writer(app)
        try:
            [published] = apply(other, [PublishCapacity(owner, provider_id, lowered)])
            published.result()
        finally:
            other.stop()
        body = error(
            client.post(ORDERS, json=ask_body(provider_id, 400_000, 0.0000009), headers=seller),
            422,
            "capacity_exceeded",
        )
        assert "100000 of the published 2100000" in body["error"]["message"]

    def test_an_expiry_settled_before_a_refusal_is_kept_with_its_event(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        clock: FrozenClock,
    ) -> None:
        published = f"/inference/providers/{provider_id}/capacity"
        expiring = capacity_body("2026-06-17T00:10:00Z", expires_at=iso(60))
        ok(client.post(published, json=expiring, headers=seller))
        clock.advance(120)  # the snapshot ask is past its expiry; nothing opened the market since
        beat(client, seller, provider_id)
        too_big = ask_body(provider_id, SNAPSHOT_UNITS + 1, 0.0000009)
        error(client.post(ORDERS, json=too_big, headers=seller), 422, "capacity_exceeded")
        feed = ok(client.get("/inference/market/feed?kind=order_expired", headers=buyer))
        assert [e["payload"]["side"] for e in feed["events"]] == ["ask"]
        assert depth(client, buyer)["asks"] == []

    def test_a_refused_ask_leaves_the_book_as_it_is(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        assert bid(client, buyer, 1000, 0.0000008)["order"]["status"] == "filled"
        rebuilt: list[Any] = []
        rebuild = market_batch.rebuild
        monkeypatch.setattr(market_batch, "rebuild", lambda *a: (rebuilt.append(a), rebuild(*a)))
        too_big = ask_body(provider_id, SNAPSHOT_UNITS + 1, 0.0000009)
        error(client.post(ORDERS, json=too_big, headers=seller), 422, "capacity_exceeded")
        assert rebuilt == []  # nothing moved: nothing to read back
        assert bid(client, buyer, 1000, 0.0000008)["order"]["status"] == "filled"

    def test_a_list_price_change_prices_the_next_fills_savings(
        self, app: FastAPI, client: TestClient, buyer: Headers, provider_id: str
    ) -> None:
        admin = admin_headers(app)
        listed_when_placed = {}
        for price in ("0.000001", "0.000002"):
            listed = {"model": MODEL, "unit_type": UNIT, "unit_price": price}
            ok(client.put("/inference/list-prices", json=listed, headers=admin))
            placed = bid(client, buyer, 1000, 0.0000008)
            assert placed["order"]["status"] == "filled"
            listed_when_placed[placed["order"]["order_id"]] = price
        with app.state.session_factory() as session:
            records = session.scalars(select(UsageRecord)).all()
            assert {r.order_id: str(r.reference_unit_price) for r in records} == listed_when_placed

    def test_a_reservation_made_between_batches_expires_in_a_later_one(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        clock: FrozenClock,
    ) -> None:
        # The first batch finds no reservation and looks for due ones no sooner than an hour on.
        assert bid(client, buyer, 1000, 0.0000008)["order"]["status"] == "filled"
        hold = {
            "model": MODEL,
            "unit_type": UNIT,
            "requested_units": SNAPSHOT_UNITS - 1000,
            "max_unit_price": 0.0000008,
            "hold_seconds": 300,
            "idempotency_key": "hold-everything",
        }
        ok(client.post("/inference/market/reservations", json=hold, headers=buyer), 201)
        fok = bid(client, buyer, 1000, 0.0000008, time_in_force="fok")
        assert fok["order"]["status"] == "expired"
        clock.advance(301)
        beat(client, seller, provider_id)
        # Only this bid's batch can expire the hold: nothing else opens the market in between.
        later = bid(client, buyer, 1000, 0.0000008, time_in_force="fok")
        assert later["order"]["status"] == "filled"


class TestCancel:
    def test_owner_cancels_with_the_seed_body(
        self, client: TestClient, buyer: Headers, clock: FrozenClock
    ) -> None:
        order_id = bid(client, buyer, 1000, 0.0000005)["order"]["order_id"]
        clock.advance(5)
        body = ok(cancel(client, buyer, order_id, requested_by=BUYER))
        assert body["order"]["order_id"] == order_id
        assert body["order"]["status"] == "cancelled"
        assert body["order"]["cancel_reason"] == "buyer_repriced"
        assert body["order"]["updated_at"] == iso(5)
        assert body["fills"] == []
        assert depth(client, buyer)["bids"] == []
        error(cancel(client, buyer, order_id), 409, "order_not_cancellable", "order_id")

    def test_others_get_404_and_admins_may_cancel(
        self, app: FastAPI, client: TestClient, buyer: Headers, seller: Headers
    ) -> None:
        order_id = bid(client, buyer, 1000, 0.0000005)["order"]["order_id"]
        other_buyer = buyer_headers(app, "agent-research-2")
        error(cancel(client, other_buyer, order_id), 404, "not_found", "order_id")
        error(cancel(client, seller, order_id), 404, "not_found")
        assert levels(depth(client, buyer)["bids"]) == [(0.0000005, 1000, 1)]
        assert ok(cancel(client, admin_headers(app), order_id))["order"]["status"] == "cancelled"

    def test_unknown_order_is_404_and_scopes_are_checked(
        self, app: FastAPI, client: TestClient, buyer: Headers
    ) -> None:
        error(cancel(client, buyer, "ord_doesnotexist"), 404, "not_found")
        order_id = bid(client, buyer, 1000, 0.0000005)["order"]["order_id"]
        no_key = client.post(f"{ORDERS}/{order_id}/cancel", json={"cancel_reason": "x"})
        error(no_key, 401, "unauthenticated")
        reader = key_headers(app, BUYER, "inference:read")
        error(cancel(client, reader, order_id), 403, "missing_scope")
        bad_body = client.post(f"{ORDERS}/{order_id}/cancel", json={}, headers=buyer)
        assert bad_body.status_code == 422, bad_body.text

    def test_a_filled_order_is_not_cancellable(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        filled = bid(client, buyer, 1000, SNAPSHOT_PRICE)
        assert filled["order"]["status"] == "filled"
        body = error(
            cancel(client, buyer, filled["order"]["order_id"]), 409, "order_not_cancellable"
        )
        assert "hint" in body["error"]


class TestDepth:
    def test_depth_aggregates_levels_and_reports_spread_fills_and_reservations(
        self, app: FastAPI, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        empty = depth(client, buyer)
        assert empty["model"] == MODEL and empty["unit_type"] == UNIT
        other = buyer_headers(app, "agent-research-2")
        bid(client, buyer, 1000, 0.0000006)
        bid(client, other, 2000, 0.0000006)
        bid(client, buyer, 3000, 0.0000005)
        ask(client, seller, provider_id, 4000, 0.0000009)
        filled = bid(client, buyer, 5000, SNAPSHOT_PRICE, time_in_force="ioc")
        reserved = client.post(
            "/inference/market/reservations",
            json={
                "model": MODEL,
                "unit_type": UNIT,
                "requested_units": 20_000,
                "max_unit_price": SNAPSHOT_PRICE,
                "idempotency_key": "depth-1",
            },
            headers=buyer,
        )
        ok(reserved, 201)
        response = client.get(DEPTH, headers=buyer)
        view = ok(response)
        assert levels(view["bids"]) == [(0.0000006, 3000, 2), (0.0000005, 3000, 1)]
        assert levels(view["asks"]) == [
            # The manual ask of 4000 units shrank the snapshot ask by as much.
            (SNAPSHOT_PRICE, SNAPSHOT_UNITS - 4000 - 5000 - 20_000, 1),
            (0.0000009, 4000, 1),
        ]
        assert view["spread"] == {
            "best_bid": 0.0000006,
            "best_ask": SNAPSHOT_PRICE,
            "crossed": False,
        }
        assert view["last_fill"]["bid_order_id"] == filled["order"]["order_id"]
        assert view["last_fill"]["unit_price"] == SNAPSHOT_PRICE
        assert [f["fill_id"] for f in view["recent_fills"]] == [filled["fills"][0]["fill_id"]]
        assert view["active_reservations"] == {"count": 1, "held_units": 20_000}
        assert '"best_ask":0.00000075' in response.text
        assert '"unit_price":0.0000006,' in response.text
        limited = ok(client.get(f"{DEPTH}&levels=1", headers=buyer))
        assert len(limited["bids"]) == 1 and len(limited["asks"]) == 1

    def test_an_empty_market_has_no_spread(self, client: TestClient, buyer: Headers) -> None:
        view = depth(client, buyer)
        assert view["bids"] == [] and view["asks"] == []
        assert view["spread"] == {"best_bid": None, "best_ask": None, "crossed": False}
        assert view["last_fill"] is None and view["recent_fills"] == []
        assert view["active_reservations"] == {"count": 0, "held_units": 0}

    def test_depth_scopes_and_query_validation(self, app: FastAPI, client: TestClient) -> None:
        error(client.get(DEPTH), 401, "unauthenticated")
        error(
            client.get(DEPTH, headers=key_headers(app, BUYER, "inference:buy")),
            403,
            "missing_scope",
        )
        reader = key_headers(app, BUYER, "inference:read")
        ok(client.get(DEPTH, headers=reader))
        assert (
            client.get(f"/inference/market/depth?model={MODEL}", headers=reader).status_code == 422
        )
        bad_unit = client.get(
            f"/inference/market/depth?model={MODEL}&unit_type=gallon", headers=reader
        )
        assert bad_unit.status_code == 422


class TestCapacitySnapshots:
    def test_a_snapshot_becomes_a_resting_ask(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        view = depth(client, buyer)
        assert levels(view["asks"]) == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS, 1)]
        feed = ok(client.get("/inference/market/feed?kind=order_placed", headers=buyer))
        [event] = feed["events"]
        assert event["payload"]["source"] == "provider_capacity_snapshot"
        # Trading against it records the snapshot ask as the seller's order.
        filled = bid(client, buyer, 1000, 0.0000008)
        ask_id = filled["fills"][0]["ask_order_id"]
        assert ask_id == event["subject_id"]
        cancelled = ok(cancel(client, seller, ask_id))["order"]
        assert cancelled["source"] == "provider_capacity_snapshot"
        assert cancelled["metadata"] == {"source": "provider_capacity_snapshot"}
        assert cancelled["expires_at"] == "2026-12-31T00:00:00Z"
        assert cancelled["min_fill_units"] == 1000
        assert cancelled["filled_units"] == 1000

    def test_the_next_snapshot_replaces_the_previous_asks(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        first = ok(client.get("/inference/market/feed?kind=order_placed", headers=buyer))
        old_ask = first["events"][0]["subject_id"]
        ask(client, seller, provider_id, 500_000, 0.0000009)
        republished = client.post(
            f"/inference/providers/{provider_id}/capacity",
            json=capacity_body(
                "2026-06-17T00:10:00Z", available_units=1_200_000, ask_unit_price=0.0000007
            ),
            headers=seller,
        )
        ok(republished)
        view = depth(client, buyer)
        # The new snapshot ask offers what the manual ask does not already offer.
        assert levels(view["asks"]) == [(0.0000007, 700_000, 1), (0.0000009, 500_000, 1)]
        error(cancel(client, seller, old_ask), 409, "order_not_cancellable")

    def test_an_empty_inventory_withdraws_the_snapshot_asks(
        self, client: TestClient, seller: Headers, buyer: Headers, provider_id: str
    ) -> None:
        body = {"capacity_version": "2026-06-17T00:10:00Z", "inventory": []}
        response = client.post(
            f"/inference/providers/{provider_id}/capacity", json=body, headers=seller
        )
        ok(response)
        assert depth(client, buyer)["asks"] == []

    def test_snapshot_asks_expire_at_expires_at(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        clock: FrozenClock,
    ) -> None:
        ok(
            client.post(
                f"/inference/providers/{provider_id}/capacity",
                json=capacity_body("2026-06-17T00:10:00Z", expires_at=iso(120)),
                headers=seller,
            )
        )
        clock.advance(60)
        beat(client, seller, provider_id)
        assert levels(depth(client, buyer)["asks"]) == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS, 1)]
        clock.advance(60)
        assert depth(client, buyer)["asks"] == []
        expired = ok(client.get("/inference/market/feed?kind=order_expired", headers=buyer))
        assert len(expired["events"]) == 1
        assert expired["events"][0]["created_at"] == iso(120)
        placed = bid(client, buyer, 1000, 0.0000008)
        assert placed["order"]["status"] == "open" and placed["fills"] == []


class LateRefusal:
    """Test double: a command that places its order, then refuses after the book moved."""

    def __init__(self, command: PlaceOrder) -> None:
        self.command = command

    def markets(self, batch: market_batch.Batch) -> list[tuple[str, str]]:
        return self.command.markets(batch)

    def run(self, batch: market_batch.Batch) -> Any:
        self.command.run(batch)
        raise Conflict("refused after matching", code="test_refusal")


class BreaksAfterMatching(LateRefusal):
    """Test double: a command that places its order, then fails as a defect would."""

    def run(self, batch: market_batch.Batch) -> Any:
        self.command.run(batch)
        raise RuntimeError("test double: the command breaks after matching")


BUYER_PRINCIPAL = Principal(key_id="key_test", owner_id=BUYER, scopes=frozenset({"inference:buy"}))
SELLER_PRINCIPAL = Principal(
    key_id="key_test", owner_id=SELLER, scopes=frozenset({"inference:sell"})
)


class TestBatches:
    """Commands applied by the market writer in one batch share one commit; a command refuses
    before it changes anything, and one that fails later is taken out of its batch."""

    @pytest.fixture
    def writer(self, app: FastAPI) -> Any:
        writer = another_writer(app)
        yield writer
        writer.stop()

    def test_a_late_refusal_is_taken_out_and_the_rest_of_the_batch_commits(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        writer: MarketWriter,
    ) -> None:
        resting = ask(client, seller, provider_id, 3000, 0.0000007)["order"]["order_id"]
        first, refused, last = apply(
            writer,
            [
                placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008)),
                LateRefusal(placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008))),
                placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008)),
            ],
        )
        placed = [first.result()["order"]["order_id"], last.result()["order"]["order_id"]]
        with pytest.raises(Conflict):
            refused.result()
        self._check_two_fills_of(client, buyer, placed, resting)

    def test_a_command_that_breaks_after_matching_is_taken_out_of_its_batch(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        writer: MarketWriter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        resting = ask(client, seller, provider_id, 3000, 0.0000007)["order"]["order_id"]
        first, broken, last = apply(
            writer,
            [
                placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008)),
                BreaksAfterMatching(placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008))),
                placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008)),
            ],
        )
        placed = [first.result()["order"]["order_id"], last.result()["order"]["order_id"]]
        with pytest.raises(RuntimeError, match="test double"):
            broken.result()
        assert "market command BreaksAfterMatching failed" in caplog.text
        self._check_two_fills_of(client, buyer, placed, resting)

    @staticmethod
    def _check_two_fills_of(
        client: TestClient, buyer: Headers, placed: list[str], resting: str
    ) -> None:
        app = client.app
        assert isinstance(app, FastAPI)
        with app.state.session_factory() as session:
            fills = session.scalars(select(MarketFill)).all()
            assert sorted(f.bid_order_id for f in fills) == sorted(placed)
            records = session.scalars(select(UsageRecord)).all()
            assert sorted(r.fill_id for r in records) == sorted(f.fill_id for f in fills)
            ask_row = session.get(MarketOrder, resting)
            assert ask_row is not None
            assert (ask_row.remaining_units, ask_row.status) == (1000, "partially_filled")
            orders = session.scalars(select(MarketOrder).where(MarketOrder.side == "bid")).all()
            assert sorted(o.order_id for o in orders) == sorted(placed)
        # The app's own writer reads the book another writer changed, and numbers the next
        # order after every earlier one.
        assert levels(depth(client, buyer)["asks"])[:1] == [(0.0000007, 1000, 1)]
        last = bid(client, buyer, 1000, 0.0000008)
        assert last["order"]["status"] == "filled"
        assert [f["ask_order_id"] for f in last["fills"]] == [resting]
        assert all(level[0] != 0.0000007 for level in levels(depth(client, buyer)["asks"]))

    def test_orders_cancels_and_refusals_share_a_batch(
        self,
        app: FastAPI,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        writer: MarketWriter,
    ) -> None:
        resting = ask(client, seller, provider_id, 3000, 0.0000007)["order"]["order_id"]
        not_a_buyer = Principal(key_id="key_test", owner_id=BUYER, scopes=frozenset())
        first, cancelled, refused, last = apply(
            writer,
            [
                placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008)),
                CancelOrder(
                    SELLER_PRINCIPAL,
                    resting,
                    OrderCancel(cancel_reason="test", requested_by=SELLER),
                ),
                placing(not_a_buyer, bid_body(1000, 0.0000008)),
                placing(BUYER_PRINCIPAL, bid_body(500, 0.0000008)),
            ],
        )
        first_id = first.result()["order"]["order_id"]
        # The cancel's answer reads the ask as the bid before it left it, and its fill.
        answer = cancelled.result()
        assert (answer["order"]["status"], answer["order"]["remaining_units"]) == (
            "cancelled",
            2000,
        )
        assert [f["bid_order_id"] for f in answer["fills"]] == [first_id]
        with pytest.raises(Forbidden):
            refused.result()
        last_id = last.result()["order"]["order_id"]
        with app.state.session_factory() as session:
            fills = session.scalars(select(MarketFill)).all()
            assert [(f.bid_order_id, f.ask_order_id, f.units) for f in fills] == [
                (first_id, resting, 1000)
            ]
            resting_bid = session.get(MarketOrder, last_id)
            assert resting_bid is not None
            assert (resting_bid.status, resting_bid.remaining_units) == ("open", 500)
            records = session.scalars(select(UsageRecord)).all()
            assert [r.fill_id for r in records] == [fills[0].fill_id]
        # The book and the rows agree: the cancelled ask is gone, the last bid rests.
        assert all(level[0] != 0.0000007 for level in levels(depth(client, buyer)["asks"]))
        assert levels(depth(client, buyer)["bids"]) == [(0.0000008, 500, 1)]

    def test_a_writer_reads_back_only_the_orders_another_writer_changed(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        writer: MarketWriter,
        monkeypatch: pytest.MonkeyPatch,
        market_process: bool,
    ) -> None:
        # What the app's writer reads is watched in this process (with a market process of
        # its own, only the answers are).
        in_process = not market_process
        resting = ask(client, seller, provider_id, 3000, 0.0000007)["order"]["order_id"]
        kept_bid = bid(client, buyer, 500, 0.0000001)["order"]["order_id"]
        # The other writer (another server on this database) trades with the ask, cancels
        # the bid and rests an ask of its own.
        taken, cancelled, other_ask = apply(
            writer,
            [
                placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008)),
                CancelOrder(BUYER_PRINCIPAL, kept_bid, OrderCancel(cancel_reason="test")),
                placing(SELLER_PRINCIPAL, ask_body(provider_id, 2000, 0.0000009)),
            ],
        )
        assert taken.result()["order"]["status"] == "filled"
        cancelled.result()
        other_id = other_ask.result()["order"]["order_id"]
        rebuilt: list[Any] = []
        rebuild = market_batch.rebuild
        monkeypatch.setattr(market_batch, "rebuild", lambda *a: (rebuilt.append(a), rebuild(*a)))
        # This app's writer reads those three orders back, not the whole book.
        view = depth(client, buyer)
        assert rebuilt == [] or not in_process
        assert levels(view["asks"])[:1] == [(0.0000007, 2000, 1)]
        assert (0.0000009, 2000, 1) in levels(view["asks"])
        assert levels(view["bids"]) == []
        sweep = bid(client, buyer, 2000, 0.0000007)
        assert [(f["ask_order_id"], f["units"]) for f in sweep["fills"]] == [(resting, 2000)]
        assert cancel(client, seller, other_id).status_code == 200  # it rests here too
        # A reservation by the other writer holds units: the book is read whole again.
        hold = ReservationCreate(
            model=MODEL,
            unit_type=UNIT,
            requested_units=1000,
            max_unit_price=SNAPSHOT_PRICE,
            idempotency_key="other-writer",
        )
        [held] = apply(writer, [Reserve(BUYER_PRINCIPAL, hold)])
        assert held.result()[0]["held_units"] == 1000
        view = depth(client, buyer)
        assert len(rebuilt) == 1 or not in_process
        # The manual asks took 5,000 units off the snapshot ask; the hold takes 1,000 more.
        assert levels(view["asks"])[:1] == [(SNAPSHOT_PRICE, SNAPSHOT_UNITS - 6000, 1)]

    def test_a_connection_dropped_between_batches_is_replaced_before_the_next(
        self,
        app: FastAPI,
        client: TestClient,
        seller: Headers,
        provider_id: str,
        writer: MarketWriter,
    ) -> None:
        ask(client, seller, provider_id, 3000, 0.0000007)
        [first] = apply(writer, [placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008))])
        first.result()
        # What a database restart or an idle timeout does to the connection the writer keeps:
        # it is gone, and nothing has noticed yet.
        kept = writer._connection
        assert kept is not None
        driver = kept.connection.dbapi_connection
        assert driver is not None
        driver.close()
        [placed] = apply(writer, [placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000008))])
        assert placed.result()["order"]["status"] == "filled"

    def test_a_seller_absent_from_the_book_when_the_batch_began_trades_in_it(
        self,
        client: TestClient,
        seller: Headers,
        buyer: Headers,
        provider_id: str,
        writer: MarketWriter,
    ) -> None:
        # All of the published capacity goes to one manual ask, which a bid then takes: the
        # provider has nothing resting when the next batch opens the market.
        ask(client, seller, provider_id, SNAPSHOT_UNITS, 0.0000007)
        assert bid(client, buyer, SNAPSHOT_UNITS, 0.0000007)["order"]["status"] == "filled"
        assert depth(client, buyer)["asks"] == []
        placed_ask, placed_bid = apply(
            writer,
            [
                placing(SELLER_PRINCIPAL, ask_body(provider_id, 1000, 0.0000007)),
                placing(BUYER_PRINCIPAL, bid_body(1000, 0.0000007, time_in_force="ioc")),
            ],
        )
        placed_ask.result()
        assert placed_bid.result()["order"]["status"] == "filled"


def test_placed_rows_are_in_their_tables_column_order() -> None:
    # The writer inserts them as tuples read field by field: a field out of the table's order
    # would store a value in another column.
    for placed, table in [
        (PlacedOrder, MarketOrder),
        (PlacedFill, MarketFill),
        (PlacedReservation, Reservation),
        (PlacedHold, ReservationHold),
    ]:
        assert [f.name.rstrip("_") for f in fields(placed)] == list(table.__table__.columns.keys())

"""Property: over any sequence of capacity publishes, reservations, trades and time passing,
no request fails and a provider's asks never offer more than it published (plus, for units
already held, what reservations hold), in the book and in the database alike."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import select

from flow_memory.kit.clock import FrozenClock
from flow_memory.market.models import MarketOrder, Reservation, ReservationHold
from flow_memory.settings import Settings
from tests.conftest import TEST_START
from tests.factories import Headers, buyer_headers, enroll_provider, pair_provider, seller_headers

_models = itertools.count(1)
_keys = itertools.count(1)

Step = tuple[Any, ...]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(0, 5_000)),
        st.tuples(st.just("reserve"), st.integers(1, 6_000), st.integers(1, 30)),
        st.tuples(st.just("trade"), st.integers(1, 6_000)),
        st.tuples(st.just("wait"), st.integers(1, 40)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Health that never goes stale: time passes here only for reservations."""
    return Settings(
        database_url=database_url,
        heartbeat_stale_seconds=86_400,
        capacity_stale_seconds=86_400,
    )


class Market:
    """One provider selling one model of its own, and a buyer."""

    def __init__(self, app: FastAPI, client: TestClient) -> None:
        self.client = client
        self.clock: FrozenClock = app.state.clock
        self.model = f"seq-model-{next(_models)}"
        owner = f"seq-seller-{self.model}"
        self.seller = seller_headers(app, owner)
        self.buyer: Headers = buyer_headers(app, f"seq-buyer-{self.model}")
        provider = enroll_provider(
            client,
            self.seller,
            credential_ref_id=None,
            provider_name=f"Provider {self.model}",
        )
        self.provider_id = provider["provider_id"]
        pair_provider(client, self.seller, self.provider_id)
        catalog = {
            "catalog_version": "2026-06-17T00:00:00Z",
            "models": [
                {
                    "model": self.model,
                    "compatible_api": "chat_responses",
                    "unit_types": ["token"],
                    "context_window": 8192,
                    "tool_calling": "metadata_only",
                }
            ],
        }
        answer = client.post(
            f"/inference/providers/{self.provider_id}/catalog", json=catalog, headers=self.seller
        )
        assert answer.status_code == 200, answer.text
        self.published = 0
        self.versions = itertools.count(1)

    def apply(self, step: Step) -> None:
        kind = step[0]
        if kind == "publish":
            self.published = step[1]
            version = TEST_START + timedelta(days=1, seconds=next(self.versions))
            body = {
                "capacity_version": version.isoformat().replace("+00:00", "Z"),
                "inventory": [
                    {
                        "model": self.model,
                        "unit_type": "token",
                        "available_units": step[1],
                        "ask_unit_price": 0.000001,
                        "min_order_units": 1,
                        "expires_at": "2027-12-31T00:00:00Z",
                    }
                ],
            }
            answer = self.client.post(
                f"/inference/providers/{self.provider_id}/capacity", json=body, headers=self.seller
            )
            assert answer.status_code == 200, answer.text
        elif kind == "reserve":
            body = {
                "model": self.model,
                "unit_type": "token",
                "requested_units": step[1],
                "max_unit_price": 0.000001,
                "hold_seconds": step[2],
                "idempotency_key": f"seq-{next(_keys)}",
            }
            answer = self.client.post(
                "/inference/market/reservations", json=body, headers=self.buyer
            )
            assert answer.status_code in (201, 409), answer.text
        elif kind == "trade":
            body = {
                "side": "bid",
                "model": self.model,
                "unit_type": "token",
                "units": step[1],
                "limit_unit_price": 0.000001,
                "time_in_force": "ioc",
            }
            answer = self.client.post("/inference/market/orders", json=body, headers=self.buyer)
            assert answer.status_code == 201, answer.text
        else:
            self.clock.advance(step[1])

    def check(self, app: FastAPI) -> None:
        depth = self.client.get(
            "/inference/market/depth",
            params={"model": self.model, "unit_type": "token"},
            headers=self.buyer,
        )
        assert depth.status_code == 200, depth.text
        offered_in_book = sum(level["available_units"] for level in depth.json()["asks"])
        with app.state.session_factory() as session:
            asks = {
                order_id: remaining
                for order_id, remaining in session.execute(
                    select(MarketOrder.order_id, MarketOrder.remaining_units).where(
                        MarketOrder.model == self.model,
                        MarketOrder.provider_id == self.provider_id,
                        MarketOrder.status.in_(("open", "partially_filled")),
                    )
                )
            }
            held = sum(
                units
                for order_id, units in session.execute(
                    select(ReservationHold.order_id, ReservationHold.units)
                    .join(Reservation)
                    .where(Reservation.model == self.model, Reservation.status == "active")
                )
                if order_id in asks
            )
        offered = sum(asks.values()) - held
        assert offered_in_book == offered  # the book is what the database holds
        assert 0 <= offered <= self.published
        assert sum(asks.values()) <= self.published + held


@examples(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_no_sequence_fails_or_offers_more_than_published(
    app: FastAPI, client: TestClient, steps: list[Step]
) -> None:
    market = Market(app, client)
    for step in steps:
        market.apply(step)
        market.check(app)


def test_a_third_publish_after_a_reservation_is_answered(app: FastAPI, client: TestClient) -> None:
    """The sequence a user found: publish, reserve, publish, publish (the third answered 500,
    and the next publish had its connection reset)."""
    market = Market(app, client)
    for step in [("publish", 50_000), ("reserve", 10_000, 300)] + [("publish", 50_000)] * 3:
        market.apply(step)
        market.check(app)

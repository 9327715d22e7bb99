"""POST /inference/quote and /inference/route through the API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory.app import create_app
from flow_memory.kit.clock import FrozenClock
from flow_memory.routing.facts import RouteFacts
from tests.assertions import error, ok
from tests.factories import (
    admin_headers,
    capacity_body,
    catalog_body,
    eligible_provider,
    key_headers,
    seller_headers,
)

Headers = dict[str, str]
MODEL = "flow-memory-orchestrator"


def policy_request(**market: Any) -> dict[str, Any]:
    """The contract's policy request; ``market`` overrides fields of market_policy."""
    return {
        "agent_id": "agent-research-1",
        "workspace_id": "workspace-default",
        "task_id": "task-42",
        "model": MODEL,
        "unit_type": "token",
        "estimated_units": 250000,
        "market_policy": {
            "allowed_models": [MODEL],
            "max_unit_price": 0.0000008,
            "min_discount_bps": 500,
            "allow_fallback": True,
            "allow_external_providers": True,
            "require_healthy_provider": True,
            "dry_run_required": True,
            "raw_credentials_allowed": False,
            "broadcast_enabled": False,
            "sensitive_signing_inputs_allowed": False,
            **market,
        },
    }


def priced_provider(client: TestClient, headers: Headers, price: float, **capacity: Any) -> str:
    """An eligible provider whose catalog names a reference price of 0.000001 per token."""
    provider_id = str(eligible_provider(client, headers)["provider_id"])
    catalog = catalog_body("2026-06-17T00:01:00Z")
    catalog["models"][0]["reference_unit_prices"] = {"token": 0.000001}
    base = f"/inference/providers/{provider_id}"
    ok(client.post(f"{base}/catalog", json=catalog, headers=headers))
    body = capacity_body("2026-06-17T00:06:00Z", ask_unit_price=price, **capacity)
    ok(client.post(f"{base}/capacity", json=body, headers=headers))
    return provider_id


@pytest.fixture
def planner(app: FastAPI) -> Headers:
    return key_headers(app, "agent-research-1", "inference:plan", "inference:read")


def test_quote_ranks_eligible_asks_and_explains_rejections(
    app: FastAPI, client: TestClient, planner: Headers
) -> None:
    alpha = priced_provider(client, seller_headers(app), 0.00000075)
    beta = priced_provider(client, seller_headers(app, "provider-team-beta"), 0.0000007)
    gamma = priced_provider(client, seller_headers(app, "provider-team-gamma"), 0.00000099)
    body = ok(client.post("/inference/quote", json=policy_request(), headers=planner))
    assert [q["provider_id"] for q in body["quotes"]] == [beta, alpha]
    best = body["quotes"][0]
    assert best["rank"] == 1
    assert best["unit_price"] == 0.0000007
    assert best["discount_bps"] == 3000
    assert best["estimated_cost"] == 0.175
    assert "rank 1" in best["score_explanation"]
    [rejected] = body["rejected_routes"]
    assert rejected["provider_id"] == gamma
    assert rejected["code"] == "max_unit_price_exceeded"
    assert rejected["next_action"]
    assert (
        '"estimated_cost":0.175'
        in client.post("/inference/quote", json=policy_request(), headers=planner).text
    )


def test_route_records_the_selection_with_ordered_fallbacks(
    app: FastAPI, client: TestClient, planner: Headers
) -> None:
    alpha = priced_provider(client, seller_headers(app), 0.00000075)
    beta = priced_provider(client, seller_headers(app, "provider-team-beta"), 0.0000007)
    body = ok(client.post("/inference/route", json=policy_request(), headers=planner))
    assert body["decision"] == "selected"
    route = body["route"]
    assert route["route_id"].startswith("route_")
    assert route["provider_id"] == beta
    assert route["task_id"] == "task-42"
    assert route["estimated_cost"] == 0.175
    assert route["expires_at"] == "2026-06-17T00:05:00Z"
    assert [f["provider_id"] for f in body["fallbacks"]] == [alpha]
    no_fallback = ok(
        client.post("/inference/route", json=policy_request(allow_fallback=False), headers=planner)
    )
    assert no_fallback["fallbacks"] == []


def test_discount_and_health_rules_reject_with_the_contract_codes(
    app: FastAPI, client: TestClient, planner: Headers
) -> None:
    seller = seller_headers(app)
    provider_id = priced_provider(client, seller, 0.00000075)
    strict = ok(
        client.post("/inference/quote", json=policy_request(min_discount_bps=5000), headers=planner)
    )
    assert [r["code"] for r in strict["rejected_routes"]] == ["min_discount_not_met"]
    credential = client.get("/inference/credential-refs", headers=seller).json()
    ref_id = credential["credential_refs"][0]["credential_ref_id"]
    ok(
        client.post(
            f"/inference/credential-refs/{ref_id}/revoke",
            json={"revoke_reason": "retired", "disable_provider_routes": True},
            headers=admin_headers(app),
        )
    )
    body = ok(client.post("/inference/route", json=policy_request(), headers=planner))
    assert body["decision"] == "no_valid_inference_route"
    assert body["route"] is None and body["selected_quote"] is None
    assert [(r["provider_id"], r["code"]) for r in body["rejected_routes"]] == [
        (provider_id, "source_disabled")
    ]
    assert body["warnings"][0].startswith("no_valid_inference_route")


def test_a_model_outside_the_policy_is_disallowed(
    app: FastAPI, client: TestClient, planner: Headers
) -> None:
    priced_provider(client, seller_headers(app), 0.00000075)
    body = ok(
        client.post(
            "/inference/quote", json=policy_request(allowed_models=["other"]), headers=planner
        )
    )
    assert [r["code"] for r in body["rejected_routes"]] == ["model_disallowed"]


@pytest.mark.parametrize(
    "flag",
    [
        {"dry_run_required": False},
        {"broadcast_enabled": True},
        {"raw_credentials_allowed": True},
        {"sensitive_signing_inputs_allowed": True},
    ],
)
@pytest.mark.parametrize("route", ["/inference/quote", "/inference/route"])
def test_unsafe_policy_values_are_refused(
    client: TestClient, planner: Headers, route: str, flag: dict[str, bool]
) -> None:
    detail = error(
        client.post(route, json=policy_request(**flag), headers=planner), 422, "forbidden_material"
    )
    assert detail["field"] == f"market_policy.{next(iter(flag))}"


@pytest.mark.parametrize("route", ["/inference/quote", "/inference/route"])
def test_quote_and_route_need_inference_plan(app: FastAPI, client: TestClient, route: str) -> None:
    error(client.post(route, json=policy_request()), 401, "unauthenticated")
    buyer = key_headers(app, "agent-research-1", "inference:buy", "inference:read")
    detail = error(client.post(route, json=policy_request(), headers=buyer), 403, "missing_scope")
    assert "inference:plan" in detail["message"]


def place_ask(
    client: TestClient, headers: Headers, provider_id: str, units: int, price: float
) -> str:
    body = {
        "side": "ask",
        "provider_id": provider_id,
        "model": MODEL,
        "unit_type": "token",
        "units": units,
        "limit_unit_price": price,
    }
    return str(
        ok(client.post("/inference/market/orders", json=body, headers=headers), 201)["order"][
            "order_id"
        ]
    )


def test_a_providers_asks_at_one_price_are_one_quote_with_their_units_summed(
    app: FastAPI, client: TestClient, planner: Headers
) -> None:
    seller = seller_headers(app)
    provider_id = priced_provider(client, seller, 0.0000009, available_units=5_000_000)
    first = place_ask(client, seller, provider_id, 200_000, 0.0000007)
    place_ask(client, seller, provider_id, 100_000, 0.0000007)
    place_ask(client, seller, provider_id, 100_000, 0.00000072)
    body = ok(client.post("/inference/quote", json=policy_request(), headers=planner))
    # Neither 0.0000007 ask serves 250,000 units alone; together they do.
    [quote] = body["quotes"]
    assert (quote["unit_price"], quote["available_units"], quote["ask_count"]) == (
        0.0000007,
        300_000,
        2,
    )
    assert quote["order_id"] == first  # the level's first ask in time priority
    assert (body["quote_count"], body["eligible_count"]) == (1, 1)
    # The dearer asks of a quoted provider are not rejected routes: its quote is its best.
    assert body["rejected_routes"] == [] and body["rejected_count"] == 0


def test_answers_are_bounded_with_totals(
    app: FastAPI, client: TestClient, planner: Headers
) -> None:
    providers = [
        priced_provider(client, seller_headers(app, f"provider-team-{n}"), 0.0000007 + n * 1e-8)
        for n in range(3)
    ]
    dear = [
        priced_provider(client, seller_headers(app, f"provider-team-dear-{n}"), 0.00000099)
        for n in range(2)
    ]
    request = {**policy_request(), "max_quotes": 2, "max_rejected_routes": 1}
    body = ok(client.post("/inference/quote", json=request, headers=planner))
    assert [q["provider_id"] for q in body["quotes"]] == providers[:2]
    assert (body["quote_count"], body["eligible_count"]) == (2, 3)
    [rejected] = body["rejected_routes"]
    assert rejected["provider_id"] in dear and rejected["ask_count"] == 1
    assert body["rejected_count"] == 2
    assert body["rejected_by_code"] == {"max_unit_price_exceeded": 2}
    route = ok(client.post("/inference/route", json=request, headers=planner))
    assert route["selected_quote"]["provider_id"] == providers[0]
    assert [f["provider_id"] for f in route["fallbacks"]] == [providers[1]]
    assert route["eligible_count"] == 3 and route["rejected_count"] == 2


@pytest.mark.parametrize(
    "bounds", [{"max_quotes": 0}, {"max_quotes": 101}, {"max_rejected_routes": 101}]
)
def test_bounds_out_of_range_are_refused(
    client: TestClient, planner: Headers, bounds: dict[str, int]
) -> None:
    request = {**policy_request(), **bounds}
    detail = error(
        client.post("/inference/quote", json=request, headers=planner), 422, "invalid_request"
    )
    assert detail["field"] == next(iter(bounds))


def quoted_units(client: TestClient, planner: Headers, **market: Any) -> list[tuple[Any, ...]]:
    body = ok(client.post("/inference/quote", json=policy_request(**market), headers=planner))
    return [(q["unit_price"], q["available_units"], q["ask_count"]) for q in body["quotes"]]


def test_quotes_follow_every_change_to_the_book(
    app: FastAPI, client: TestClient, clock: FrozenClock, planner: Headers
) -> None:
    """Levels are kept between quotes while the market's version stands: every change to the
    book, and every hold ending with time, shows in the next quote."""
    seller = seller_headers(app)
    provider_id = priced_provider(client, seller, 0.00000075, available_units=5_000_000)
    assert quoted_units(client, planner) == [(0.00000075, 5_000_000, 1)]
    order_id = place_ask(client, seller, provider_id, 300_000, 0.0000007)
    assert quoted_units(client, planner) == [(0.0000007, 300_000, 1)]
    buyer = key_headers(app, "agent-research-1", "inference:buy", "inference:read")
    reservation = {
        "buyer_id": "agent-research-1",
        "provider_id": provider_id,
        "model": MODEL,
        "unit_type": "token",
        "requested_units": 100_000,
        "max_unit_price": 0.0000007,
        "hold_seconds": 60,
        "allow_partial": False,
        "idempotency_key": "hold-1",
    }
    ok(client.post("/inference/market/reservations", json=reservation, headers=buyer), 201)
    # 200,000 units are left at 0.0000007: too few for 250,000, so the dearer level is quoted
    # (the capacity snapshot's ask, less the 300,000 units the manual ask took from it).
    assert quoted_units(client, planner) == [(0.00000075, 4_700_000, 1)]
    assert quoted_units(client, planner, max_unit_price=0.0000007) == []
    clock.advance(61)  # the hold ends with time alone; nothing writes to the market
    assert quoted_units(client, planner) == [(0.0000007, 300_000, 1)]
    cancel = {"cancel_reason": "repricing"}
    ok(client.post(f"/inference/market/orders/{order_id}/cancel", json=cancel, headers=seller))
    [(price, _units, _asks)] = quoted_units(client, planner)
    assert price == 0.00000075


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30  # a guard against a hang, not a timing claim
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class TestKeptProviderOffers:
    """A quote keeps each market's provider offers for a second; whatever gates routing and is
    committed in this process shows in the next quote at once. Real time stands still here, so
    only a forget or the app's clock moving can refresh a kept offer."""

    @pytest.fixture
    def facts(self, app: FastAPI) -> RouteFacts:
        app.state.route_facts = RouteFacts(monotonic=lambda: 0.0)
        return app.state.route_facts  # type: ignore[no-any-return]

    @staticmethod
    def answer(client: TestClient, planner: Headers) -> dict[str, Any]:
        return ok(client.post("/inference/quote", json=policy_request(), headers=planner))

    def codes(self, client: TestClient, planner: Headers) -> list[tuple[str, str]]:
        body = self.answer(client, planner)
        quoted = [(q["provider_id"], "quoted") for q in body["quotes"]]
        return quoted + [(r["provider_id"], r["code"]) for r in body["rejected_routes"]]

    def test_offers_are_kept_between_quotes(
        self, app: FastAPI, client: TestClient, planner: Headers, facts: RouteFacts
    ) -> None:
        provider_id = priced_provider(client, seller_headers(app), 0.00000075)
        assert self.codes(client, planner) == [(provider_id, "quoted")]
        kept = facts.get((MODEL, "token"), now=app.state.clock.now(), listed=None)
        assert kept is not None and [o.provider_id for o in kept] == [provider_id]

    @pytest.mark.parametrize(
        ("change", "code"),
        [
            ("revoke", "source_disabled"),
            ("rotate", "credential_ref_unresolved"),
        ],
    )
    def test_a_credential_change_shows_at_once(
        self,
        app: FastAPI,
        client: TestClient,
        planner: Headers,
        facts: RouteFacts,
        change: str,
        code: str,
    ) -> None:
        seller = seller_headers(app)
        provider_id = priced_provider(client, seller, 0.00000075)
        assert self.codes(client, planner) == [(provider_id, "quoted")]
        refs = client.get("/inference/credential-refs", headers=seller).json()
        base = f"/inference/credential-refs/{refs['credential_refs'][0]['credential_ref_id']}"
        if change == "revoke":
            body = {"revoke_reason": "retired", "disable_provider_routes": False}
            ok(client.post(f"{base}/revoke", json=body, headers=admin_headers(app)))
        else:
            body = {
                "new_credential_ref": "secret://inference/provider-alpha-2",
                "rotation_reason": "scheduled",
            }
            ok(client.patch(f"{base}/rotate", json=body, headers=admin_headers(app)))
        assert self.codes(client, planner) == [(provider_id, code)]

    def test_a_heartbeat_going_stale_and_coming_back_shows_at_once(
        self,
        app: FastAPI,
        client: TestClient,
        clock: FrozenClock,
        planner: Headers,
        facts: RouteFacts,
    ) -> None:
        seller = seller_headers(app)
        provider_id = priced_provider(client, seller, 0.00000075)
        assert self.codes(client, planner) == [(provider_id, "quoted")]
        clock.advance(app.state.settings.heartbeat_stale_seconds + 1)
        assert self.codes(client, planner) == [(provider_id, "provider_unhealthy")]
        ok(client.post(f"/inference/providers/{provider_id}/heartbeat", headers=seller))
        assert self.codes(client, planner) == [(provider_id, "quoted")]

    def test_a_heartbeat_of_an_eligible_provider_keeps_the_offers(
        self, app: FastAPI, client: TestClient, planner: Headers, facts: RouteFacts
    ) -> None:
        seller = seller_headers(app)
        provider_id = priced_provider(client, seller, 0.00000075)
        self.answer(client, planner)
        ok(client.post(f"/inference/providers/{provider_id}/heartbeat", headers=seller))
        assert facts.get((MODEL, "token"), now=app.state.clock.now(), listed=None) is not None

    def test_a_capacity_publish_shows_at_once(
        self, app: FastAPI, client: TestClient, planner: Headers, facts: RouteFacts
    ) -> None:
        seller = seller_headers(app)
        provider_id = priced_provider(client, seller, 0.00000075)
        assert self.answer(client, planner)["quotes"][0]["quality_score"] == 0.98
        body = capacity_body("2026-06-17T00:07:00Z", ask_unit_price=0.00000075, quality_score=0.5)
        ok(client.post(f"/inference/providers/{provider_id}/capacity", json=body, headers=seller))
        assert self.answer(client, planner)["quotes"][0]["quality_score"] == 0.5

    def test_a_new_provider_shows_at_once(
        self, app: FastAPI, client: TestClient, planner: Headers, facts: RouteFacts
    ) -> None:
        alpha = priced_provider(client, seller_headers(app), 0.00000075)
        assert self.codes(client, planner) == [(alpha, "quoted")]
        beta = priced_provider(client, seller_headers(app, "provider-team-beta"), 0.0000007)
        assert self.codes(client, planner) == [(beta, "quoted"), (alpha, "quoted")]

    def test_a_catalog_change_shows_at_once(
        self, app: FastAPI, client: TestClient, planner: Headers, facts: RouteFacts
    ) -> None:
        seller = seller_headers(app)
        provider_id = priced_provider(client, seller, 0.00000075)
        assert self.answer(client, planner)["quotes"][0]["discount_bps"] == 2500
        catalog = catalog_body("2026-06-17T00:08:00Z")
        catalog["models"][0]["reference_unit_prices"] = {"token": 0.0000015}
        base = f"/inference/providers/{provider_id}"
        ok(client.post(f"{base}/catalog", json=catalog, headers=seller))
        assert self.answer(client, planner)["quotes"][0]["discount_bps"] == 5000

    def test_another_apps_change_shows_once_the_second_has_passed(
        self, app: FastAPI, client: TestClient, clock: FrozenClock, planner: Headers
    ) -> None:
        """Apps keep their own offers: a revoke through another app (another server process)
        shows here once this app's kept offers are a second old."""
        seconds = [0.0]
        app.state.route_facts = RouteFacts(monotonic=lambda: seconds[0])
        provider_id = priced_provider(client, seller_headers(app), 0.00000075)
        assert self.codes(client, planner) == [(provider_id, "quoted")]
        other = create_app(app.state.settings, clock=clock)
        try:
            with TestClient(other) as other_client:
                refs = other_client.get(
                    "/inference/credential-refs", headers=admin_headers(other)
                ).json()
                ref_id = refs["credential_refs"][0]["credential_ref_id"]
                body = {"revoke_reason": "retired", "disable_provider_routes": True}
                ok(
                    other_client.post(
                        f"/inference/credential-refs/{ref_id}/revoke",
                        json=body,
                        headers=admin_headers(other),
                    )
                )
        finally:
            other.state.engine.dispose()
            other.state.read_engine.dispose()
        if app.state.engine.dialect.name == "postgresql":
            # The revoke was announced when it committed: this app forgets what it kept as it
            # hears it (flow_memory/kit/broadcast.py), without waiting out the second.
            wait_until(
                lambda: self.codes(client, planner) == [(provider_id, "source_disabled")],
                "the announced revoke to show",
            )
            return
        assert self.codes(client, planner) == [(provider_id, "quoted")]  # kept, a second at most
        seconds[0] = 1.01
        assert self.codes(client, planner) == [(provider_id, "source_disabled")]

"""Usage records written by fills, the contract's savings rule, and GET
/inference/analytics/usage: filters, the rollup-backed summary, pages and who sees what.

The helpers at the top (providers that sell given lines, orders, a six-fill ledger over three
days) are shared with the export and list-price tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import hypothesis
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import strategies as st

from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.db import Base
from flow_memory.kit.deps import Principal
from flow_memory.kit.scopes import AUDIT
from flow_memory.settings import Settings
from flow_memory.usage import service as usage_service
from flow_memory.usage.models import UsageRecord
from tests.assertions import assert_plain_numbers, assert_safety, error, ok
from tests.conftest import TEST_START
from tests.factories import (
    BUYER,
    SELLER,
    admin_headers,
    buyer_headers,
    catalog_body,
    eligible_provider,
    key_headers,
    operated_agents,
    seller_headers,
)

D = Decimal
MODEL = "flow-memory-orchestrator"
CHAT = "flow-memory-message-chat"
USAGE = "/inference/analytics/usage"
ORDERS = "/inference/market/orders"
LIST_PRICES = "/inference/list-prices"
BETA = "provider-team-beta"
OTHER_BUYER = "agent-owner-2"
Headers = dict[str, str]
# The agent identities each buyer operates: a bid's buyer_id names the agent it buys for.
AGENTS = {BUYER: ["agent-a", "agent-b", "agent-7", "agent-9"], OTHER_BUYER: ["agent-c"]}


# -- shared helpers ---------------------------------------------------------------------------


def long_lived_settings(database_url: str) -> Settings:
    """Usage here spans days: providers stay routable without a heartbeat every 90 seconds."""
    week = 7 * 86_400
    return Settings(
        database_url=database_url,
        heartbeat_stale_seconds=week,
        catalog_stale_seconds=week,
        capacity_stale_seconds=week,
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return long_lived_settings(database_url)


def exact_json(response: Response) -> Any:
    """The body with every JSON number with a fraction read as an exact Decimal."""
    return json.loads(response.text, parse_float=Decimal)


@dataclass(frozen=True)
class Line:
    """One inventory line a provider sells, with its catalog reference price (or none)."""

    model: str
    unit_type: str
    price: float
    reference: float | None = None
    units: int = 2_500_000


def publish(
    client: TestClient, headers: Headers, clock: FrozenClock, provider_id: str, *lines: Line
) -> None:
    """Publish a catalog with the lines' reference prices and capacity selling the lines."""
    version = (clock.now() + timedelta(hours=1)).isoformat()
    models = {m["model"]: m for m in catalog_body()["models"]}
    for line in lines:
        if line.reference is not None:
            prices = models[line.model].setdefault("reference_unit_prices", {})
            prices[line.unit_type] = line.reference
    base = f"/inference/providers/{provider_id}"
    catalog = {"catalog_version": version, "models": list(models.values())}
    ok(client.post(f"{base}/catalog", json=catalog, headers=headers))
    inventory = [
        {
            "model": line.model,
            "unit_type": line.unit_type,
            "available_units": line.units,
            "ask_unit_price": line.price,
            "min_order_units": 1,
            "quality_score": 0.98,
            "reliability_score": 0.99,
            "expires_at": "2026-12-31T00:00:00Z",
        }
        for line in lines
    ]
    capacity = {"capacity_version": version, "inventory": inventory}
    ok(client.post(f"{base}/capacity", json=capacity, headers=headers))


def selling_provider(
    client: TestClient, headers: Headers, clock: FrozenClock, *lines: Line, **enroll: Any
) -> str:
    """An eligible provider whose only resting asks are ``lines``."""
    provider_id = str(eligible_provider(client, headers, **enroll)["provider_id"])
    publish(client, headers, clock, provider_id, *lines)
    return provider_id


def place(client: TestClient, headers: Headers, body: dict[str, Any]) -> dict[str, Any]:
    return ok(client.post(ORDERS, json=body, headers=headers), 201)


def bid(
    client: TestClient,
    headers: Headers,
    units: int,
    price: float,
    *,
    model: str = MODEL,
    unit_type: str = "token",
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "side": "bid",
        "model": model,
        "unit_type": unit_type,
        "units": units,
        "limit_unit_price": price,
        **fields,
    }
    return place(client, headers, body)


def ask(
    client: TestClient,
    headers: Headers,
    provider_id: str,
    units: int,
    price: float,
    *,
    model: str = MODEL,
    unit_type: str = "token",
) -> dict[str, Any]:
    body = {
        "side": "ask",
        "provider_id": provider_id,
        "model": model,
        "unit_type": unit_type,
        "units": units,
        "limit_unit_price": price,
    }
    return place(client, headers, body)


def usage(client: TestClient, headers: Headers, **params: Any) -> dict[str, Any]:
    """GET the usage endpoint; every record must carry the safety fields."""
    response = client.get(USAGE, params=params, headers=headers)
    ok(response)
    body: dict[str, Any] = exact_json(response)
    for record in body["records"]:
        assert_safety(record)
    assert body["count"] == len(body["records"])
    return body


def pages(
    client: TestClient, headers: Headers, *, limit: int, **params: Any
) -> list[dict[str, Any]]:
    """Every page the filters select, following next_cursor (a cursor that loops fails)."""
    found = [usage(client, headers, limit=limit, **params)]
    while found[-1]["next_cursor"] is not None:
        assert len(found) < 100, "next_cursor keeps returning pages"
        found.append(usage(client, headers, limit=limit, cursor=found[-1]["next_cursor"], **params))
    return found


def all_records(client: TestClient, headers: Headers, **params: Any) -> list[dict[str, Any]]:
    """Every record the filters select, walking the pages."""
    return [r for page in pages(client, headers, limit=500, **params) for r in page["records"]]


def set_list_price(
    client: TestClient, headers: Headers, price: float, *, model: str = MODEL, unit: str = "token"
) -> dict[str, Any]:
    body = {"model": model, "unit_type": unit, "unit_price": price, "note": "operator list"}
    return ok(client.put(LIST_PRICES, json=body, headers=headers))


# -- a ledger of six fills over three days ------------------------------------------------------


@dataclass(frozen=True)
class Trade:
    """What one ledger fill must have recorded (worked out by hand from the prices)."""

    name: str
    at: datetime
    owner_id: str
    seller_owner_id: str
    agent_id: str
    workspace_id: str
    task_id: str | None
    route_id: str | None
    model: str
    unit_type: str
    provider: str  # "alpha" or "beta"
    units: int
    limit: float
    estimated_cost: Decimal
    actual_cost: Decimal
    reference_cost: Decimal | None
    savings: Decimal | None


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


# alpha sells orchestrator tokens (reference 0.000001) and chat requests (reference 0.0025) at
# 0.00000075 and 0.002; beta sells orchestrator requests at 0.0005 with no reference price. Each
# bid fills at the ask's price; its estimate is units x its own limit.
TRADES = (
    Trade("t1", _at(17, 0), BUYER, SELLER, "agent-a", "ws-1", "task-1", None, MODEL, "token",
          "alpha", 250_000, 0.0000008, D("0.2"), D("0.1875"), D("0.25"), D("0.0625")),
    Trade("t2", _at(17, 9, 30), BUYER, BETA, "agent-b", "ws-2", "task-2", "route_x1", MODEL,
          "request", "beta", 40, 0.0006, D("0.024"), D("0.02"), None, None),
    Trade("t3", _at(17, 23, 59), OTHER_BUYER, SELLER, "agent-c", "ws-1", None, None, CHAT,
          "request", "alpha", 10, 0.003, D("0.03"), D("0.02"), D("0.025"), D("0.005")),
    Trade("t4", _at(18, 6), BUYER, SELLER, "agent-a", "ws-1", "task-1", None, MODEL, "token",
          "alpha", 100_000, 0.00000075, D("0.075"), D("0.075"), D("0.1"), D("0.025")),
    Trade("t5", _at(19, 12), BUYER, BETA, "agent-a", "ws-2", None, None, MODEL, "request",
          "beta", 20, 0.0005, D("0.01"), D("0.01"), None, None),
    Trade("t6", _at(19, 12), OTHER_BUYER, SELLER, "agent-c", "ws-2", None, None, MODEL, "token",
          "alpha", 40_000, 0.000001, D("0.04"), D("0.03"), D("0.04"), D("0.01")),
)  # fmt: skip


@dataclass(frozen=True)
class Ledger:
    providers: dict[str, str]  # "alpha" / "beta" -> provider_id
    orders: dict[str, str]  # trade name -> the bid's order_id
    buyer: Headers
    other_buyer: Headers
    alpha: Headers
    beta: Headers
    admin: Headers

    def names(self, records: Iterable[dict[str, Any]]) -> list[str]:
        by_order = {order_id: name for name, order_id in self.orders.items()}
        return [by_order[r["order_id"]] for r in records]


def record_ledger(app: FastAPI, client: TestClient, clock: FrozenClock) -> Ledger:
    """Run the six TRADES at their times; each bid takes the one ask that sells its line."""
    alpha_headers = seller_headers(app)
    beta_headers = seller_headers(app, BETA)
    providers = {
        "alpha": selling_provider(
            client,
            alpha_headers,
            clock,
            Line(MODEL, "token", 0.00000075, 0.000001),
            Line(CHAT, "request", 0.002, 0.0025),
        ),
        "beta": selling_provider(client, beta_headers, clock, Line(MODEL, "request", 0.0005)),
    }
    buyers = {BUYER: buyer_headers(app), OTHER_BUYER: buyer_headers(app, OTHER_BUYER)}
    orders: dict[str, str] = {}
    with operated_agents(AGENTS):
        for trade in TRADES:
            clock.advance((trade.at - clock.now()).total_seconds())
            metadata = {"workspace_id": trade.workspace_id}
            if trade.task_id:
                metadata["task_id"] = trade.task_id
            if trade.route_id:
                metadata["route_id"] = trade.route_id
            placed = bid(
                client,
                buyers[trade.owner_id],
                trade.units,
                trade.limit,
                model=trade.model,
                unit_type=trade.unit_type,
                buyer_id=trade.agent_id,
                metadata=metadata,
            )
            assert placed["order"]["status"] == "filled", placed
            assert [f["provider_id"] for f in placed["fills"]] == [providers[trade.provider]]
            orders[trade.name] = placed["order"]["order_id"]
    return Ledger(
        providers=providers,
        orders=orders,
        buyer=buyers[BUYER],
        other_buyer=buyers[OTHER_BUYER],
        alpha=alpha_headers,
        beta=beta_headers,
        admin=admin_headers(app),
    )


@pytest.fixture
def ledger(app: FastAPI, client: TestClient, clock: FrozenClock) -> Ledger:
    return record_ledger(app, client, clock)


def trades(*names: str) -> list[Trade]:
    return [t for t in TRADES if t.name in names]


def floor_bps(savings: Decimal, reference_cost: Decimal) -> int:
    return int((savings / reference_cost * 10_000).to_integral_value(ROUND_FLOOR))


def totals(
    items: Iterable[tuple[int, int, Decimal, Decimal | None, Decimal | None]],
) -> dict[str, Any]:
    """The summary totals of (estimated_units, actual_units, actual_cost, reference_cost,
    savings) rows, worked out here independently of the service."""
    rows = list(items)
    priced = [r for r in rows if r[3] is not None]
    reference_cost = sum((r[3] or D(0) for r in priced), D(0))
    savings = sum((r[4] or D(0) for r in priced), D(0))
    return {
        "records": len(rows),
        "records_with_reference": len(priced),
        "records_without_reference": len(rows) - len(priced),
        "estimated_units": sum(r[0] for r in rows),
        "actual_units": sum(r[1] for r in rows),
        "actual_cost": sum((r[2] for r in rows), D(0)),
        "cost_with_reference": sum((r[2] for r in priced), D(0)),
        "reference_cost": reference_cost if priced else None,
        "savings": savings if priced else None,
        "savings_bps": floor_bps(savings, reference_cost) if reference_cost > 0 else None,
    }


def trade_totals(selected: Iterable[Trade]) -> dict[str, Any]:
    return totals((t.units, t.units, t.actual_cost, t.reference_cost, t.savings) for t in selected)


def record_totals(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return totals(
        (
            r["estimated_units"],
            r["actual_units"],
            r["actual_cost"],
            r["reference_cost"],
            r["savings"],
        )
        for r in records
    )


def total_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """The totals part of a summary (or of one of its by_* rows)."""
    keys = totals([]).keys()
    return {k: summary[k] for k in keys}


def grouped(records: Iterable[dict[str, Any]], key: str) -> list[tuple[str, dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        value = record["created_at"][:10] if key == "day" else record[key]
        groups.setdefault(value, []).append(record)
    return [(k, record_totals(v)) for k, v in sorted(groups.items())]


def breakdown(summary: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    name = {"model": "by_model", "provider_id": "by_provider", "day": "by_day"}[key]
    return [(row[key], total_fields(row)) for row in summary[name]]


def assert_summary_of(summary: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """The summary's totals and its by_model, by_provider and by_day rows are those of
    ``records``, summed here one record at a time."""
    assert total_fields(summary) == record_totals(records)
    for key in ("model", "provider_id", "day"):
        assert breakdown(summary, key) == grouped(records, key), key


# -- fills create usage records -----------------------------------------------------------------


class TestFillsRecordUsage:
    def test_a_fill_records_who_what_and_the_contracts_costs(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        provider_id = selling_provider(
            client, seller, clock, Line(MODEL, "token", 0.00000075, 0.000001)
        )
        clock.advance(3600)
        buyer = buyer_headers(app)
        metadata = {
            "workspace_id": "workspace-default",
            "task_id": "task-42",
            "goal_id": "goal-7",
            "route_id": "route_abc123",
            "reservation_id": "res_def456",
            "note": "not attribution",
        }
        with operated_agents(AGENTS):
            placed = bid(client, buyer, 250_000, 0.0000008, buyer_id="agent-7", metadata=metadata)
        [fill] = placed["fills"]
        response = client.get(USAGE, headers=buyer)
        assert_plain_numbers(response)
        body = usage(client, buyer)
        [record] = body["records"]
        assert record["usage_id"].startswith("use_")
        expected = {
            "created_at": "2026-06-17T01:00:00Z",
            "source": "market_fill",
            "decision": "market_fill",
            "owner_id": BUYER,
            "seller_owner_id": SELLER,
            "workspace_id": "workspace-default",
            "agent_id": "agent-7",
            "goal_id": "goal-7",
            "task_id": "task-42",
            "model": MODEL,
            "unit_type": "token",
            "provider_id": provider_id,
            "route_id": "route_abc123",
            "order_id": placed["order"]["order_id"],
            "reservation_id": "res_def456",
            "fill_id": fill["fill_id"],
            "estimated_units": 250_000,
            "actual_units": 250_000,
            "unit_price": D("0.00000075"),
            "estimated_cost": D("0.2"),  # 250000 x the bid's limit 0.0000008
            "actual_cost": D("0.1875"),  # 250000 x the fill price 0.00000075
            "reference_unit_price": D("0.000001"),
            "reference_cost": D("0.25"),
            "savings": D("0.0625"),
            "discount_bps": 2500,
            "savings_bps": 2500,
            "latency_ms": None,
            "quality_score": None,
            "currency": "USD_CREDIT",
        }
        assert {k: record[k] for k in expected} == expected
        assert '"actual_cost":0.1875' in response.text
        assert '"unit_price":0.00000075' in response.text

    def test_the_agent_defaults_to_the_key_owner_and_bad_attribution_is_ignored(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        selling_provider(client, seller, clock, Line(MODEL, "token", 0.00000075, 0.000001))
        buyer = buyer_headers(app)
        ignored = {
            "workspace_id": "",
            "task_id": 42,
            "goal_id": "g" * 129,
            "route_id": "r" * 41,
            "reservation_id": ["res_1"],
        }
        bid(client, buyer, 1000, 0.0000008, metadata=ignored)
        clock.advance(1)
        longest = {
            "workspace_id": "w" * 128,
            "task_id": "t" * 128,
            "goal_id": "g" * 128,
            "route_id": "r" * 40,
            "reservation_id": "s" * 40,
        }
        bid(client, buyer, 1000, 0.0000008, metadata=longest)
        kept, dropped = usage(client, buyer)["records"]  # newest first
        names = ("workspace_id", "task_id", "goal_id", "route_id", "reservation_id")
        assert {n: dropped[n] for n in names} == dict.fromkeys(names)
        assert {n: kept[n] for n in names} == longest
        assert dropped["agent_id"] == kept["agent_id"] == BUYER

    def test_a_bid_across_two_asks_records_one_record_per_fill(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        provider_id = selling_provider(
            client, seller, clock, Line(MODEL, "token", 0.00000075, 0.000001)
        )
        ask(client, seller, provider_id, 1000, 0.0000007)
        buyer = buyer_headers(app)
        placed = bid(client, buyer, 3000, 0.0000008)
        fills = {f["fill_id"]: (f["units"], f["unit_price"]) for f in placed["fills"]}
        assert sorted(fills.values()) == [(1000, 0.0000007), (2000, 0.00000075)]
        records = usage(client, buyer)["records"]
        assert {r["fill_id"] for r in records} == set(fills)
        assert {r["order_id"] for r in records} == {placed["order"]["order_id"]}
        rows = sorted(
            (
                r["actual_units"],
                r["unit_price"],
                r["estimated_cost"],
                r["actual_cost"],
                r["reference_cost"],
                r["savings"],
                r["discount_bps"],
            )
            for r in records
        )
        assert rows == [
            (1000, D("0.0000007"), D("0.0008"), D("0.0007"), D("0.001"), D("0.0003"), 3000),
            (2000, D("0.00000075"), D("0.0016"), D("0.0015"), D("0.002"), D("0.0005"), 2500),
        ]

    def test_an_ask_that_fills_a_resting_bid_records_the_buyers_usage(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        provider_id = selling_provider(
            client, seller, clock, Line(MODEL, "token", 0.00000075, 0.000001)
        )
        buyer = buyer_headers(app)
        with operated_agents(AGENTS):
            resting = bid(client, buyer, 4000, 0.0000007, buyer_id="agent-9")
        assert resting["fills"] == []
        assert usage(client, buyer)["records"] == []
        clock.advance(60)
        sold = ask(client, seller, provider_id, 4000, 0.0000006)
        [fill] = sold["fills"]
        [record] = usage(client, seller)["records"]
        assert (record["owner_id"], record["seller_owner_id"], record["agent_id"]) == (
            BUYER,
            SELLER,
            "agent-9",
        )
        assert (record["order_id"], record["fill_id"]) == (
            resting["order"]["order_id"],
            fill["fill_id"],
        )
        # The fill is at the resting bid's price, which is also its estimate.
        assert (record["unit_price"], record["estimated_cost"], record["actual_cost"]) == (
            D("0.0000007"),
            D("0.0028"),
            D("0.0028"),
        )
        assert (record["reference_cost"], record["savings"], record["discount_bps"]) == (
            D("0.004"),
            D("0.0012"),
            3000,
        )
        assert record["created_at"] == "2026-06-17T00:01:00Z"

    def test_a_bid_that_does_not_fill_records_nothing(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        selling_provider(client, seller, clock, Line(MODEL, "token", 0.00000075, 0.000001))
        buyer = buyer_headers(app)
        bid(client, buyer, 1000, 0.0000007)
        bid(client, buyer, 5000, 0.0000001, time_in_force="ioc")
        body = usage(client, admin_headers(app))
        assert body["records"] == []
        assert body["summary"]["records"] == 0
        assert body["summary"]["actual_cost"] == 0


class TestSavingsRule:
    def test_without_a_reference_price_no_savings_are_invented(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        selling_provider(client, seller, clock, Line(MODEL, "token", 0.00000075))
        buyer = buyer_headers(app)
        bid(client, buyer, 250_000, 0.0000008)
        response = client.get(USAGE, headers=buyer)
        assert_plain_numbers(response)
        body = usage(client, buyer)
        [record] = body["records"]
        assert record["actual_cost"] == D("0.1875")
        names = ("reference_unit_price", "reference_cost", "savings", "discount_bps", "savings_bps")
        assert {n: record[n] for n in names} == dict.fromkeys(names)
        assert total_fields(body["summary"]) == {
            "records": 1,
            "records_with_reference": 0,
            "records_without_reference": 1,
            "estimated_units": 250_000,
            "actual_units": 250_000,
            "actual_cost": D("0.1875"),
            "cost_with_reference": 0,
            "reference_cost": None,
            "savings": None,
            "savings_bps": None,
        }

    def test_a_fill_above_the_reference_saves_nothing(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        selling_provider(client, seller, clock, Line(MODEL, "token", 0.00000075, 0.0000005))
        buyer = buyer_headers(app)
        bid(client, buyer, 250_000, 0.0000008)
        body = usage(client, buyer)
        [record] = body["records"]
        assert record["reference_cost"] == D("0.125")
        assert record["actual_cost"] == D("0.1875")
        assert record["savings"] == 0
        assert record["discount_bps"] == -5000
        assert record["savings_bps"] == -5000  # the contract: savings_bps = discount_bps
        summary = body["summary"]
        assert (summary["reference_cost"], summary["savings"], summary["savings_bps"]) == (
            D("0.125"),
            0,
            0,
        )

    def test_a_list_price_outranks_the_catalogs_reference(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        admin = admin_headers(app)
        alpha = seller_headers(app)
        beta = seller_headers(app, BETA)
        priced = selling_provider(client, alpha, clock, Line(MODEL, "token", 0.00000075, 0.000001))
        unpriced = selling_provider(client, beta, clock, Line(MODEL, "token", 0.0000009))
        buyer = buyer_headers(app)

        def trade_each() -> dict[str, dict[str, Any]]:
            """One fill on alpha's snapshot ask, one on a manual beta ask crossing a bid."""
            bid(client, buyer, 250_000, 0.0000008)
            bid(client, buyer, 1000, 0.00000074)
            ask(client, beta, unpriced, 1000, 0.0000007)
            records = usage(client, buyer)["records"]
            clock.advance(60)
            return {r["provider_id"]: r for r in records[:2]}

        names = ("reference_unit_price", "reference_cost", "savings", "discount_bps")
        set_list_price(client, admin, 0.0000009)
        listed = trade_each()
        assert {n: listed[priced][n] for n in names} == {
            "reference_unit_price": D("0.0000009"),
            "reference_cost": D("0.225"),
            "savings": D("0.0375"),  # 0.225 - 250000 x 0.00000075
            "discount_bps": 1666,
        }
        assert {n: listed[unpriced][n] for n in names} == {
            "reference_unit_price": D("0.0000009"),
            "reference_cost": D("0.0009"),
            "savings": D("0.00016"),  # 0.0009 - 1000 x 0.00000074
            "discount_bps": 1777,
        }
        # Once the list price is gone, each provider's catalog counts again (beta has none).
        ok(client.delete(LIST_PRICES, params={"model": MODEL, "unit_type": "token"}, headers=admin))
        catalog = trade_each()
        assert {n: catalog[priced][n] for n in names} == {
            "reference_unit_price": D("0.000001"),
            "reference_cost": D("0.25"),
            "savings": D("0.0625"),
            "discount_bps": 2500,
        }
        assert {n: catalog[unpriced][n] for n in names} == dict.fromkeys(names)


class TestExactness:
    def test_a_summary_keeps_every_decimal_of_large_and_tiny_costs(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        selling_provider(
            client,
            seller,
            clock,
            Line(MODEL, "token", 1, units=10**12),
            Line(CHAT, "request", 0.000000000000000001, units=10),
        )
        buyer = buyer_headers(app)
        bid(client, buyer, 10**11, 1)
        bid(client, buyer, 1, 0.000000000000000001, model=CHAT, unit_type="request")
        body = usage(client, buyer)
        assert sorted(r["actual_cost"] for r in body["records"]) == [
            D("0.000000000000000001"),
            D(10**11),
        ]
        assert body["summary"]["actual_cost"] == D("100000000000.000000000000000001")


# -- the order value bound ----------------------------------------------------------------------


class TestOrderValueBound:
    @pytest.mark.parametrize(
        ("units", "price"),
        [(10**13, 0.2), (2 * 10**12, 1), (10**15, 0.002), (10**12 + 1, 1)],
    )
    def test_orders_worth_more_than_1e12_credits_are_422(
        self, app: FastAPI, client: TestClient, units: int, price: float
    ) -> None:
        buyer = buyer_headers(app)
        seller = seller_headers(app)
        for headers, side in ((buyer, {"side": "bid"}), (seller, {"side": "ask"})):
            body = {
                **side,
                "model": MODEL,
                "unit_type": "token",
                "units": units,
                "limit_unit_price": price,
            }
            if side["side"] == "ask":
                body["provider_id"] = "prov_any"
            response = client.post(ORDERS, json=body, headers=headers)
            detail = error(response, 422, "invalid_request")
            assert "1,000,000,000,000" in detail["message"]

    def test_an_order_worth_exactly_1e12_credits_is_accepted(
        self, app: FastAPI, client: TestClient
    ) -> None:
        placed = bid(client, buyer_headers(app), 10**12, 1)
        assert placed["order"]["status"] == "open"
        assert placed["order"]["limit_unit_price"] == 1


# -- GET /inference/analytics/usage -------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class TestFilters:
    @pytest.mark.parametrize(
        ("params", "expected", "computed_from"),
        [
            ({}, ["t1", "t2", "t3", "t4", "t5", "t6"], "rollup"),
            ({"agent_id": "agent-a"}, ["t1", "t4", "t5"], "records"),
            ({"provider_id": "beta"}, ["t2", "t5"], "rollup"),
            ({"model": CHAT}, ["t3"], "rollup"),
            ({"workspace_id": "ws-1"}, ["t1", "t3", "t4"], "records"),
            ({"route_id": "route_x1"}, ["t2"], "records"),
            ({"task_id": "task-1"}, ["t1", "t4"], "records"),
            ({"unit_type": "request"}, ["t2", "t3", "t5"], "rollup"),
            ({"since": "2026-06-18T00:00:00Z"}, ["t4", "t5", "t6"], "rollup"),
            ({"until": "2026-06-18T00:00:00Z"}, ["t1", "t2", "t3"], "rollup"),
            # since is inclusive, until exclusive, and both cut a day.
            (
                {"since": "2026-06-17T09:30:00Z", "until": "2026-06-19T12:00:00Z"},
                ["t2", "t3", "t4"],
                "rollup+records",
            ),
            ({"since": "2026-06-17T09:30:01Z"}, ["t3", "t4", "t5", "t6"], "rollup+records"),
            ({"until": "2026-06-19T12:00:01Z"}, ["t1", "t2", "t3", "t4", "t5", "t6"],
             "rollup+records"),
            # Within one day the rollup cannot help at all.
            (
                {"since": "2026-06-17T09:00:00Z", "until": "2026-06-17T23:59:00Z"},
                ["t2"],
                "records",
            ),
            # Another timezone names the same instants.
            ({"since": "2026-06-17T20:00:00-04:00"}, ["t4", "t5", "t6"], "rollup"),
            ({"since": "2026-06-18T08:00:00+02:00"}, ["t4", "t5", "t6"], "rollup+records"),
            (
                {"provider_id": "alpha", "unit_type": "token", "since": "2026-06-17T00:00:01Z"},
                ["t4", "t6"],
                "rollup+records",
            ),
            ({"agent_id": "agent-c", "model": MODEL}, ["t6"], "records"),
            ({"agent_id": "nobody"}, [], "records"),
        ],
    )  # fmt: skip
    def test_each_filter_narrows_summary_and_records(
        self,
        ledger: Ledger,
        client: TestClient,
        params: dict[str, str],
        expected: list[str],
        computed_from: str,
    ) -> None:
        if "provider_id" in params:
            params = {**params, "provider_id": ledger.providers[params["provider_id"]]}
        body = usage(client, ledger.admin, **params)
        summary = body["summary"]
        assert summary["computed_from"] == computed_from
        assert sorted(ledger.names(body["records"])) == expected
        assert total_fields(summary) == trade_totals(trades(*expected))
        assert_summary_of(summary, body["records"])
        echoed = {k: v for k, v in body["filters"].items() if v is not None}
        assert set(echoed) == set(params)

    def test_the_whole_summary_by_model_provider_and_day(
        self, ledger: Ledger, client: TestClient
    ) -> None:
        summary = usage(client, ledger.admin)["summary"]
        assert summary["currency"] == "USD_CREDIT"
        assert total_fields(summary) == {
            "records": 6,
            "records_with_reference": 4,
            "records_without_reference": 2,
            "estimated_units": 390_070,
            "actual_units": 390_070,
            "actual_cost": D("0.3425"),
            "cost_with_reference": D("0.3125"),
            "reference_cost": D("0.415"),
            "savings": D("0.1025"),
            "savings_bps": 2469,  # floor(0.1025 / 0.415 x 10000)
        }
        by_day = {row["day"]: total_fields(row) for row in summary["by_day"]}
        assert list(by_day) == ["2026-06-17", "2026-06-18", "2026-06-19"]
        assert by_day["2026-06-17"] == trade_totals(trades("t1", "t2", "t3"))
        assert by_day["2026-06-18"] == trade_totals(trades("t4"))
        assert by_day["2026-06-19"] == trade_totals(trades("t5", "t6"))
        by_model = {row["model"]: total_fields(row) for row in summary["by_model"]}
        assert by_model == {
            CHAT: trade_totals(trades("t3")),
            MODEL: trade_totals(trades("t1", "t2", "t4", "t5", "t6")),
        }
        by_provider = {row["provider_id"]: total_fields(row) for row in summary["by_provider"]}
        assert by_provider == {
            ledger.providers["alpha"]: trade_totals(trades("t1", "t3", "t4", "t6")),
            ledger.providers["beta"]: trade_totals(trades("t2", "t5")),
        }
        assert by_provider[ledger.providers["beta"]]["savings"] is None

    @pytest.mark.parametrize(
        ("since", "until"),
        [
            ("2026-06-17T09:30:00Z", "2026-06-19T12:00:00Z"),
            ("2026-06-17T23:58:59.5Z", "2026-06-19T11:59:59Z"),
            ("2026-06-17T00:00:00Z", "2026-06-19T12:00:00.000001Z"),
            ("2026-06-16T12:00:00Z", "2026-06-20T00:00:00Z"),
            ("2026-06-17T12:00:00+05:00", "2026-06-19T13:00:00+01:00"),
        ],
    )
    def test_a_summary_from_the_rollup_equals_the_sum_of_its_records(
        self, ledger: Ledger, client: TestClient, since: str, until: str
    ) -> None:
        for principal in (ledger.admin, ledger.buyer, ledger.alpha, ledger.beta):
            body = usage(client, principal, since=since, until=until)
            assert body["summary"]["computed_from"] in ("rollup", "rollup+records")
            records = all_records(client, principal, since=since, until=until)
            assert_summary_of(body["summary"], records)
            # The same range through the records alone (a filter that matches everything).
            for workspace in ("ws-1", "ws-2"):
                narrowed = usage(
                    client, principal, since=since, until=until, workspace_id=workspace
                )
                assert narrowed["summary"]["computed_from"] == "records"
                assert_summary_of(
                    narrowed["summary"], [r for r in records if r["workspace_id"] == workspace]
                )

    @pytest.mark.parametrize(
        ("params", "code", "field"),
        [
            ({"since": "2026-06-18T00:00:00Z", "until": "2026-06-18T00:00:00Z"},
             "invalid_time_range", "since"),
            ({"since": "2026-06-19T00:00:00Z", "until": "2026-06-18T00:00:00Z"},
             "invalid_time_range", "since"),
            ({"since": "2026-06-18T01:00:00+02:00", "until": "2026-06-17T23:00:00Z"},
             "invalid_time_range", "since"),
            ({"since": "2026-06-18T00:00:00"}, "timezone_required", "since"),
            ({"until": "2026-06-18T00:00:00"}, "timezone_required", "until"),
            ({"since": "yesterday"}, "invalid_request", None),
            ({"unit_type": "gpu_hour"}, "invalid_request", None),
            ({"limit": 0}, "invalid_request", None),
            ({"limit": 501}, "invalid_request", None),
            ({"agent_id": "bad id with spaces"}, "invalid_request", None),
        ],
    )  # fmt: skip
    def test_bad_queries_are_422(
        self,
        app: FastAPI,
        client: TestClient,
        params: dict[str, Any],
        code: str,
        field: str | None,
    ) -> None:
        reader = key_headers(app, BUYER, "inference:read")
        error(client.get(USAGE, params=params, headers=reader), 422, code, field)

    def test_limit_500_is_the_largest_page(self, app: FastAPI, client: TestClient) -> None:
        reader = key_headers(app, BUYER, "inference:read")
        assert usage(client, reader, limit=500)["count"] == 0
        assert usage(client, reader, limit=1)["next_cursor"] is None


class TestPages:
    def test_pages_walk_every_record_newest_first_exactly_once(
        self, ledger: Ledger, client: TestClient
    ) -> None:
        for limit in (1, 2, 4, 6, 7):
            walked = pages(client, ledger.admin, limit=limit)
            assert len(walked) == max(1, -(-6 // limit)), limit
            assert [p["count"] for p in walked[:-1]] == [limit] * (len(walked) - 1)
            assert 1 <= walked[-1]["count"] <= limit
            for page in walked:
                assert page["summary"]["records"] == 6  # the summary ignores paging
            seen = [r for page in walked for r in page["records"]]
            keys = [(r["created_at"], r["usage_id"]) for r in seen]
            assert keys == sorted(keys, reverse=True)
            assert len(set(keys)) == 6
            assert sorted(ledger.names(seen)) == ["t1", "t2", "t3", "t4", "t5", "t6"]

    def test_pages_follow_the_filters(self, ledger: Ledger, client: TestClient) -> None:
        first = usage(client, ledger.admin, agent_id="agent-a", limit=2)
        assert ledger.names(first["records"]) == ["t5", "t4"]
        second = usage(
            client, ledger.admin, agent_id="agent-a", limit=2, cursor=first["next_cursor"]
        )
        assert ledger.names(second["records"]) == ["t1"]
        assert second["next_cursor"] is None

    def test_records_written_at_one_instant_page_without_gaps(
        self, app: FastAPI, client: TestClient, clock: FrozenClock
    ) -> None:
        seller = seller_headers(app)
        provider_id = selling_provider(client, seller, clock, Line(MODEL, "token", 0.000001))
        for price in (0.0000007, 0.00000071, 0.00000072, 0.00000073, 0.00000074):
            ask(client, seller, provider_id, 1000, price)
        buyer = buyer_headers(app)
        placed = bid(client, buyer, 5000, 0.0000008)
        assert len(placed["fills"]) == 5
        walked = pages(client, buyer, limit=2)
        assert [p["count"] for p in walked] == [2, 2, 1]
        fill_ids = [r["fill_id"] for page in walked for r in page["records"]]
        assert sorted(fill_ids) == sorted(f["fill_id"] for f in placed["fills"])
        assert len(set(fill_ids)) == 5

    @pytest.mark.parametrize(
        "cursor",
        [
            "not-a-cursor",
            "!!!!",
            base64.urlsafe_b64encode(b"no separator").decode(),
            base64.urlsafe_b64encode(b"2026-06-17T00:00:00|use_x").decode(),  # naive
            base64.urlsafe_b64encode(b"yesterday|use_x").decode(),
            base64.urlsafe_b64encode(b"2026-06-17T00:00:00+00:00|").decode(),
            base64.urlsafe_b64encode(b"\xff\xfe|\x00").decode(),
            # Aware times that leave the calendar once converted to UTC.
            base64.urlsafe_b64encode(b"9999-12-31T23:59:59-05:00|use_x").decode(),
            base64.urlsafe_b64encode(b"0001-01-01T00:00:00+05:00|use_x").decode(),
        ],
    )
    def test_a_cursor_this_endpoint_did_not_give_is_422(
        self, app: FastAPI, client: TestClient, cursor: str
    ) -> None:
        reader = key_headers(app, BUYER, "inference:read")
        error(client.get(USAGE, params={"cursor": cursor}, headers=reader), 422, "invalid_cursor")


EMPTY_TOTALS = {
    "records": 0,
    "records_with_reference": 0,
    "records_without_reference": 0,
    "estimated_units": 0,
    "actual_units": 0,
    "actual_cost": 0,
    "cost_with_reference": 0,
    "reference_cost": None,
    "savings": None,
    "savings_bps": None,
}


class TestVisibility:
    @pytest.mark.parametrize(
        "params",
        [
            {},
            {"workspace_id": "ws-2"},
            {"since": "2026-06-17T09:00:00Z"},
            {"model": MODEL, "until": "2026-06-19T00:00:00Z"},
        ],
    )
    def test_buyers_see_what_they_bought_and_sellers_what_they_sold(
        self, ledger: Ledger, client: TestClient, params: dict[str, str]
    ) -> None:
        everything = all_records(client, ledger.admin, **params)
        seen = {
            "buyer": (ledger.buyer, {"t1", "t2", "t4", "t5"}),
            "other buyer": (ledger.other_buyer, {"t3", "t6"}),
            "alpha": (ledger.alpha, {"t1", "t3", "t4", "t6"}),
            "beta": (ledger.beta, {"t2", "t5"}),
        }
        in_range = set(ledger.names(everything))
        for who, (headers, names) in seen.items():
            body = usage(client, headers, **params)
            expected = sorted(names & in_range)
            assert sorted(ledger.names(body["records"])) == expected, who
            assert total_fields(body["summary"]) == trade_totals(trades(*expected)), who
            assert_summary_of(body["summary"], body["records"])

    def test_another_owner_sees_an_empty_summary(
        self, app: FastAPI, ledger: Ledger, client: TestClient
    ) -> None:
        stranger = key_headers(app, "someone-else", "inference:read", "inference:buy")
        for params in ({}, {"agent_id": "agent-a"}, {"since": "2026-06-17T12:00:00Z"}):
            body = usage(client, stranger, **params)
            assert body["records"] == []
            assert body["next_cursor"] is None
            summary = body["summary"]
            assert total_fields(summary) == EMPTY_TOTALS
            assert (summary["by_model"], summary["by_provider"], summary["by_day"]) == ([], [], [])

    def test_admins_and_auditors_see_everything(
        self, app: FastAPI, ledger: Ledger, client: TestClient
    ) -> None:
        auditor = key_headers(app, "auditor-1", "inference:read", "inference:audit")
        for headers in (ledger.admin, auditor):
            body = usage(client, headers)
            assert sorted(ledger.names(body["records"])) == ["t1", "t2", "t3", "t4", "t5", "t6"]
            assert body["summary"]["records"] == 6

    def test_the_scope_header_can_narrow_an_auditor_to_a_reader(
        self, app: FastAPI, ledger: Ledger, client: TestClient
    ) -> None:
        auditor = key_headers(app, BUYER, "inference:read", "inference:audit")
        narrowed = {**auditor, "x-flow-memory-scopes": "inference:read"}
        body = usage(client, narrowed)
        assert sorted(ledger.names(body["records"])) == ["t1", "t2", "t4", "t5"]

    def test_a_key_is_needed_and_it_needs_inference_read(
        self, app: FastAPI, client: TestClient
    ) -> None:
        error(client.get(USAGE), 401, "unauthenticated")
        error(
            client.get(USAGE, headers={"authorization": "Bearer fm_unknown"}),
            401,
            "unauthenticated",
        )
        for scopes in (("inference:buy",), ("inference:sell",), ("inference:plan",)):
            detail = error(
                client.get(USAGE, headers=key_headers(app, BUYER, *scopes)), 403, "missing_scope"
            )
            assert "inference:read" in detail["message"]

    def test_the_response_carries_the_savings_rule_and_the_safety_fields(
        self, ledger: Ledger, client: TestClient
    ) -> None:
        response = client.get(USAGE, params={"limit": 3}, headers=ledger.admin)
        body = ok(response)
        assert "max(0, reference_cost - actual_cost)" in body["savings_rule"]
        assert body["count"] == 3
        assert body["next_cursor"]
        assert body["filters"] == {
            "agent_id": None,
            "provider_id": None,
            "model": None,
            "workspace_id": None,
            "route_id": None,
            "task_id": None,
            "deployment_id": None,
            "unit_type": None,
            "since": None,
            "until": None,
        }
        for record in body["records"]:
            assert_safety(record)


# -- the rollup and the records agree, for any records and any range -----------------------------

MINUTE = 60
SPAN_MINUTES = 4 * 24 * 60  # four days from TEST_START

usage_inputs = st.builds(
    lambda minute, owner, seller, model, units, price, reference: (
        minute,
        usage_service.UsageInput(
            source="market_fill",
            decision="market_fill",
            owner_id=owner,
            seller_owner_id=seller,
            model=model,
            unit_type="token",
            provider_id=f"prov_{seller}",
            estimated_units=units,
            actual_units=units,
            unit_price=D(price) / 10**6,
            reference_unit_price=None if reference is None else D(reference) / 10**6,
            agent_id=f"agent-{owner}",
        ),
    ),
    st.integers(0, SPAN_MINUTES - 1),
    st.sampled_from(["b1", "b2"]),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from([MODEL, CHAT]),
    st.integers(1, 10**9),
    st.integers(1, 3_000_000),
    st.none() | st.integers(1, 3_000_000),
)
moments = st.integers(-60, SPAN_MINUTES + 60).map(
    lambda minute: TEST_START + timedelta(minutes=minute)
)


def folded(rows: Iterable[UsageRecord]) -> dict[str, Any]:
    return totals(
        (r.estimated_units, r.actual_units, r.actual_cost, r.reference_cost, r.savings)
        for r in rows
    )


def summary_totals(summary: usage_service.Summary) -> Iterator[tuple[str, dict[str, Any]]]:
    read = summary.read()
    yield "total", total_fields(read)
    for name, key in (("by_model", "model"), ("by_provider", "provider_id"), ("by_day", "day")):
        for row in read[name]:
            yield f"{name}:{row[key]}", total_fields(row)


def expected_summary(
    rows: list[UsageRecord],
) -> dict[str, dict[str, Any]]:
    expected = {"total": folded(rows)}
    for name, key in (("by_model", "model"), ("by_provider", "provider_id"), ("by_day", "day")):
        groups: dict[str, list[UsageRecord]] = {}
        for row in rows:
            value = row.created_at.date().isoformat() if key == "day" else getattr(row, key)
            groups.setdefault(value, []).append(row)
        for value, members in groups.items():
            expected[f"{name}:{value}"] = folded(members)
    return expected


# The records and whatever sums the service keeps beside them.
USAGE_TABLES = [t for t in reversed(Base.metadata.sorted_tables) if t.name.startswith("usage_")]


class TestRollupMatchesRecords:
    @hypothesis.settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
    )
    @hypothesis.given(
        items=st.lists(usage_inputs, min_size=0, max_size=12),
        ranges=st.lists(st.tuples(st.none() | moments, st.none() | moments), max_size=4),
        owner=st.sampled_from(["b1", "s2", "all"]),
        model=st.none() | st.sampled_from([MODEL, CHAT]),
    )
    def test_any_range_sums_exactly_the_records_inside_it(
        self,
        app: FastAPI,
        items: list[tuple[int, usage_service.UsageInput]],
        ranges: list[tuple[datetime | None, datetime | None]],
        owner: str,
        model: str | None,
    ) -> None:
        factory = app.state.session_factory
        with factory.begin() as session:
            for table in USAGE_TABLES:
                session.execute(table.delete())
            # Records are written in several calls, as fills are, so rollup rows are updated.
            for minute, item in items:
                usage_service.record_usage(
                    session, [item], now=TEST_START + timedelta(minutes=minute)
                )
        scopes = frozenset({AUDIT}) if owner == "all" else frozenset({"inference:read"})
        principal = Principal(key_id="key_test", owner_id=owner, scopes=scopes)
        with factory() as session:
            rows = list(
                session.scalars(
                    usage_service.records_query(principal, usage_service.UsageFilters())
                )
            )
            for since, until in [(None, None), *ranges]:
                if since is not None and until is not None and since >= until:
                    continue
                filters = usage_service.UsageFilters(model=model, since=since, until=until)
                summary = usage_service.summarize(session, principal, filters)
                inside = [
                    r
                    for r in rows
                    if (since is None or r.created_at >= since)
                    and (until is None or r.created_at < until)
                    and (model is None or r.model == model)
                ]
                assert dict(summary_totals(summary)) == expected_summary(inside), (
                    since,
                    until,
                    summary.computed_from,
                )

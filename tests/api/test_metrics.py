"""/metrics over ASGI: who may read it, that it parses, that its labels never hold what a caller
sent, and that orders and proxied calls move its counters (the market in the app's process and
in a process of its own)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from flow_memory.app import create_app
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.metrics import METHODS
from flow_memory.settings import Settings
from tests.api.test_proxy import SECRET, Market, chat, scripted_market
from tests.assertions import assert_safety
from tests.conftest import clear_tables
from tests.factories import (
    Headers,
    admin_headers,
    eligible_provider,
    key_headers,
    seller_headers,
)

# Order tests run with the market in the app's process and in a process of its own.
BOTH_MARKETS = True

ORDERS = "/inference/market/orders"
MODEL = "flow-memory-orchestrator"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def audit_headers(app: FastAPI) -> Headers:
    return key_headers(app, "operator-metrics", "inference:audit")


def scrape(client: TestClient, headers: Headers) -> Samples:
    """Every sample of a scrape, by name and labels; the page must parse."""
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return samples_of(answer.text)


def samples_of(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


class TestWhoMayRead:
    def test_it_needs_a_key_with_the_audit_scope(self, app: FastAPI, client: TestClient) -> None:
        nobody = client.get("/metrics")
        assert nobody.status_code == 401
        assert nobody.json()["error"]["code"] == "unauthenticated"
        assert_safety(nobody.json())
        seller = client.get("/metrics", headers=seller_headers(app))
        assert seller.status_code == 403
        assert "inference:audit" in seller.json()["error"]["message"]
        auditor = audit_headers(app)
        narrowed = client.get(
            "/metrics", headers={**auditor, "x-flow-memory-scopes": "inference:read"}
        )
        assert narrowed.status_code == 403
        assert client.get("/metrics", headers=auditor).status_code == 200
        assert client.get("/metrics", headers=admin_headers(app)).status_code == 200

    def test_the_scope_is_a_setting(self, database_url: str) -> None:
        clear_tables(database_url)
        app = create_app(Settings(database_url=database_url, metrics_scope="inference:admin"))
        try:
            with TestClient(app) as client:
                assert client.get("/metrics", headers=audit_headers(app)).status_code == 403
                assert client.get("/metrics", headers=admin_headers(app)).status_code == 200
        finally:
            app.state.engine.dispose()
            app.state.read_engine.dispose()

    def test_an_unknown_scope_is_refused_at_start(self) -> None:
        with pytest.raises(ValueError, match="FLOW_MEMORY_METRICS_SCOPE"):
            Settings.from_env({"FLOW_MEMORY_METRICS_SCOPE": "metrics:read"})

    def test_with_a_metrics_port_the_api_port_has_none(self, database_url: str) -> None:
        clear_tables(database_url)
        port = _free_port()
        app = create_app(Settings(database_url=database_url, metrics_port=port))
        try:
            with TestClient(app) as client:
                assert client.get("/metrics", headers=admin_headers(app)).status_code == 404
                served = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
                assert served.status_code == 200
                assert "flow_memory_http_requests_total" in served.text
            # Stopped with the app.
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        finally:
            app.state.engine.dispose()
            app.state.read_engine.dispose()


class TestExposition:
    def test_both_formats_parse_and_name_every_family(
        self, app: FastAPI, client: TestClient
    ) -> None:
        headers = audit_headers(app)
        client.get("/healthz")
        text = client.get("/metrics", headers=headers).text
        families = {family.name for family in text_string_to_metric_families(text)}
        assert {
            "flow_memory_http_requests",
            "flow_memory_http_request_duration_seconds",
            "flow_memory_market_orders",
            "flow_memory_market_batch_commands",
            "flow_memory_market_commit_duration_seconds",
            "flow_memory_proxy_calls",
            "flow_memory_proxy_upstream_first_byte_seconds",
            "flow_memory_usage_queue_depth",
            "flow_memory_provider_route_gates",
            "process_cpu_seconds",
        } <= families
        answer = client.get(
            "/metrics", headers={**headers, "accept": "application/openmetrics-text"}
        )
        assert answer.headers["content-type"].startswith("application/openmetrics-text")
        assert "flow_memory_http_requests" in {f.name for f in openmetrics_families(answer.text)}
        zipped = client.get("/metrics", headers={**headers, "accept-encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert samples_of(zipped.text)  # httpx unzipped it: the same page

    def test_route_gates_are_counted_from_the_database(
        self, app: FastAPI, client: TestClient, seller: Headers
    ) -> None:
        headers = audit_headers(app)
        assert (
            value(scrape(client, headers), "flow_memory_provider_route_gates", gate="eligible") == 0
        )
        eligible_provider(client, seller)
        samples = scrape(client, headers)
        assert value(samples, "flow_memory_provider_route_gates", gate="eligible") == 1
        for gate in ("pending", "stale", "blocked"):
            assert (("flow_memory_provider_route_gates", (("gate", gate),))) in samples


class TestLabels:
    SECRET_SEGMENT = "sk-live-" + "Q7wE9rT2yU4iO6pA8sD0fG3h"
    MARKERS = ("zzmarkerpathzz", "zzmarkerqueryzz", "zzmarkerbodyzz", "ZZMARKERMETHOD")

    def test_no_label_holds_a_value_a_caller_sent(
        self, app: FastAPI, client: TestClient, seller: Headers, buyer: Headers
    ) -> None:
        path, query, body, method = self.MARKERS
        answers = [
            client.get(f"/inference/providers/{self.SECRET_SEGMENT}/health", headers=seller),
            client.get(f"/inference/providers/prov_{path}/health", headers=seller),
            client.get(f"/inference/{path}/{self.SECRET_SEGMENT}", headers=seller),
            client.get(f"/inference/{path}/x", headers=seller),
            client.post(f"{ORDERS}/ord_{path}/cancel", json={"cancel_reason": "x"}, headers=buyer),
            client.get(f"/inference/market/depth?model={query}&unit_type=token", headers=buyer),
            client.get(f"/healthz?{query}={self.SECRET_SEGMENT}"),
            client.post(
                ORDERS,
                json={
                    "side": "bid",
                    "model": body,
                    "unit_type": "token",
                    "units": 10,
                    "limit_unit_price": 0.001,
                    "metadata": {"note": body},
                },
                headers=buyer,
            ),
            client.post("/v1/chat/completions", json={"model": body, "messages": []}),
            client.request(method, "/healthz"),
        ]
        statuses = [a.status_code for a in answers]
        assert statuses == [422, 404, 422, 404, 404, 200, 422, 201, 401, 405], statuses

        text = client.get("/metrics", headers=audit_headers(app)).text
        for needle in (*self.MARKERS, self.SECRET_SEGMENT, "sk-live"):
            assert needle.lower() not in text.lower(), needle
        samples = samples_of(text)
        # Labels are the process's: other tests' requests are checked here too.
        templates = {*app.openapi()["paths"], *(getattr(r, "path", "") for r in app.routes)}
        templates.add("(no route)")
        for name, labels in samples:
            label = dict(labels)
            if "route" in label:
                assert label["route"] in templates, (name, label)
            if "method" in label:
                assert label["method"] in METHODS | {"other"}, (name, label)
        # The refused path and the unknown id are counted under their route's template.
        requests = "flow_memory_http_requests_total"
        provider_route = "/inference/providers/{provider_id}/health"
        assert value(samples, requests, method="GET", route=provider_route, status="422") >= 1
        assert value(samples, requests, method="GET", route=provider_route, status="404") >= 1
        assert value(samples, requests, method="GET", route="(no route)", status="422") >= 1
        assert value(samples, requests, method="GET", route="(no route)", status="404") >= 1
        assert value(samples, requests, method="GET", route="/healthz", status="422") >= 1
        assert value(samples, requests, method="other", route="/healthz", status="405") >= 1


class TestOrdersMoveTheMarketMetrics:
    def test_an_order_moves_orders_fills_and_batches(
        self, app: FastAPI, client: TestClient, seller: Headers, buyer: Headers
    ) -> None:
        eligible_provider(client, seller)  # its capacity rests as asks at 0.00000075
        headers = audit_headers(app)
        before = scrape(client, headers)
        filled = client.post(
            ORDERS,
            json={
                "side": "bid",
                "model": MODEL,
                "unit_type": "token",
                "units": 1000,
                "limit_unit_price": 0.000001,
            },
            headers=buyer,
        )
        assert filled.status_code == 201, filled.text
        assert len(filled.json()["fills"]) == 1
        resting = client.post(
            ORDERS,
            json={
                "side": "bid",
                "model": MODEL,
                "unit_type": "token",
                "units": 1000,
                "limit_unit_price": 0.0000001,
            },
            headers=buyer,
        )
        order_id = resting.json()["order"]["order_id"]
        cancelled = client.post(
            f"{ORDERS}/{order_id}/cancel", json={"cancel_reason": "repriced"}, headers=buyer
        )
        assert cancelled.status_code == 200, cancelled.text
        refused = client.post(f"{ORDERS}/{order_id}/cancel", json={"cancel_reason": "again"},
                              headers=buyer)  # fmt: skip
        assert refused.status_code == 409, refused.text
        after = scrape(client, headers)

        assert moved(before, after, "flow_memory_market_orders_total", side="bid") == 2
        assert moved(before, after, "flow_memory_market_orders_total", side="ask") == 0
        assert moved(before, after, "flow_memory_market_fills_total") == 1
        assert moved(before, after, "flow_memory_market_filled_units_total") == 1000
        assert moved(before, after, "flow_memory_market_cancels_total") == 1
        assert moved(before, after, "flow_memory_market_commands_total", outcome="applied") == 3
        assert moved(before, after, "flow_memory_market_commands_total", outcome="refused") == 1
        batches = moved(before, after, "flow_memory_market_batch_commands_count")
        assert batches >= 1
        assert moved(before, after, "flow_memory_market_batch_commands_sum") == 4
        assert moved(before, after, "flow_memory_market_batch_duration_seconds_count") == batches
        assert moved(before, after, "flow_memory_market_commit_duration_seconds_count") >= 1
        # The order edge answered both orders ahead of the middleware: counted all the same.
        requests = "flow_memory_http_requests_total"
        labels = {"method": "POST", "route": ORDERS, "status": "201"}
        assert moved(before, after, requests, **labels) == 2
        assert moved(before, after, "flow_memory_http_request_duration_seconds_count",
                     method="POST", route=ORDERS) == 2  # fmt: skip


@pytest.fixture
def market(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Market]:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_ALPHA", SECRET)
    with scripted_market(database_url, clock, proxy_route_cache_seconds=0) as scripted:
        yield scripted


class TestProxiedCallsMoveTheProxyMetrics:
    def test_answered_and_failed_calls(self, market: Market) -> None:
        provider_id = market.provider("alpha.example")
        headers = audit_headers(market.app)
        before = scrape(market.client, headers)
        assert chat(market).status_code == 200
        assert chat(market, stream=True).status_code == 200
        market.upstream.handlers["alpha.example"] = lambda _: httpx.Response(503)
        assert chat(market).status_code == 502
        after = scrape(market.client, headers)

        calls = "flow_memory_proxy_calls_total"
        answered: dict[str, Any] = {"provider": provider_id, "api": "chat"}
        assert moved(before, after, calls, **answered, outcome="selected") == 2
        assert moved(before, after, calls, **answered, outcome="upstream_failed") == 1
        duration = "flow_memory_proxy_upstream_duration_seconds_count"
        assert moved(before, after, duration, api="chat", outcome="selected") == 2
        assert moved(before, after, duration, api="chat", outcome="upstream_failed") == 1
        # Time to first byte: of the two calls a provider answered.
        first_byte = "flow_memory_proxy_upstream_first_byte_seconds_count"
        assert moved(before, after, first_byte, api="chat") == 2
        # Proxied calls are HTTP requests too, answered by the proxy's edge.
        requests = "flow_memory_http_requests_total"
        route = {"method": "POST", "route": "/v1/chat/completions"}
        assert moved(before, after, requests, **route, status="200") == 2
        assert moved(before, after, requests, **route, status="502") == 1
        # Their usage records went through the usage writer's queue.
        market.flushed()
        written = scrape(market.client, headers)
        assert value(written, "flow_memory_usage_records_written_total") >= 3
        assert value(written, "flow_memory_usage_queue_depth") == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port

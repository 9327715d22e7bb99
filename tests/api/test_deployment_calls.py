"""Calling a deployment through the proxy (``model: "dep/<slug>"``): its configuration is
applied, the call goes to a provider serving the pinned model version, its usage names the
deployment and versions, and each pinned version's royalty is a ledger transfer written with
it."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anyio
import httpx
import openai
import pytest
from sqlalchemy import func, select

from flow_memory.deployments.calling import RESOLVED_SECONDS, Resolutions
from flow_memory.deployments.limits import LATENCY_SAMPLES, calls_at_once_of, latencies_of
from flow_memory.deployments.models import Deployment
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.scopes import BUY, PROXY, PUBLISH, READ
from flow_memory.ledger import service as ledger
from flow_memory.ledger.models import LedgerTransfer
from flow_memory.ledger.reconcile import check_ledger
from flow_memory.usage.models import UsageRecord
from tests.api.test_proxy import (
    MODEL,
    PRICE,
    REFERENCE,
    SECRET,
    Market,
    _events,
    chat_answer,
    scripted_market,
)
from tests.api.test_registry import agent_body, model_body
from tests.factories import (
    Headers,
    admin_headers,
    create_credential_ref,
    enroll_provider,
    key_headers,
)
from tests.factories import pair_provider as pair

BUYER = "buyer-one"  # the owner of market.buyer's key
AGENT_BPS = 500
MODEL_BPS = 250


@pytest.fixture
def market(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Market]:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_ALPHA", SECRET)
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_BETA", SECRET)
    with scripted_market(database_url, clock, proxy_route_cache_seconds=0) as scripted:
        yield scripted


def serve_version(market: Market, host: str, *, registry_model: Any, model: str = MODEL) -> str:
    """An eligible provider at https://{host}/v1 whose catalog names ``registry_model``."""
    name = host.split(".")[0]
    ref = create_credential_ref(
        market.client,
        market.seller,
        credential_ref=f"secret://inference/{name}",
        allowed_models=[model],
    )
    provider_id = str(
        enroll_provider(
            market.client,
            market.seller,
            ref["credential_ref_id"],
            provider_name=name,
            base_url=f"https://{host}/v1",
        )["provider_id"]
    )
    pair(market.client, market.seller, provider_id)
    entry: dict[str, Any] = {
        "model": model,
        "compatible_api": "chat_completions",
        "unit_types": ["token"],
        "context_window": 32768,
        "reference_unit_prices": {"token": float(REFERENCE)},
    }
    if registry_model is not None:
        entry["registry_model"] = registry_model
    base = f"/inference/providers/{provider_id}"
    catalog = {"catalog_version": "2026-06-17T00:00:00Z", "models": [entry]}
    answer = market.client.post(f"{base}/catalog", json=catalog, headers=market.seller)
    assert answer.status_code == 200, answer.text
    capacity = {
        "capacity_version": "2026-06-17T00:05:00Z",
        "inventory": [
            {
                "model": model,
                "unit_type": "token",
                "available_units": 10_000_000,
                "ask_unit_price": str(PRICE),
                "min_order_units": 1,
                "quality_score": 0.9,
                "reliability_score": 0.9,
                "expires_at": "2026-12-31T00:00:00Z",
            }
        ],
    }
    answer = market.client.post(f"{base}/capacity", json=capacity, headers=market.seller)
    assert answer.status_code == 200, answer.text
    market.providers[host] = provider_id
    return provider_id


def deployed(market: Market, **overrides: Any) -> dict[str, Any]:
    """acme publishes a model and an agent; alpha serves the model; buyer-one deploys them."""
    publisher = key_headers(market.app, "acme", PUBLISH, READ)
    for kind, body in (("models", model_body()), ("agents", agent_body())):
        answer = market.client.post(f"/inference/registry/{kind}", json=body, headers=publisher)
        assert answer.status_code == 201, answer.text
    serve_version(
        market, "alpha.example", registry_model={"slug": "acme/swift-7b", "version": "1.0.0"}
    )
    return deployed_again(market, "reviewer-bot", **overrides)


def deployed_again(market: Market, name: str, **overrides: Any) -> dict[str, Any]:
    """buyer-one deploys acme's agent and model (already published) once more as ``name``."""
    body: dict[str, Any] = {
        "name": name,
        "agent": {"slug": "acme/reviewer"},
        "model": {"slug": "acme/swift-7b"},
        "configuration": {"parameters": {"temperature": 0.1}},
        **overrides,
    }
    answer = market.client.post(
        "/inference/deployments", json=body, headers=key_headers(market.app, BUYER, BUY, READ)
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["deployment"])


def call(market: Market, model: str, headers: Headers | None = None, **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "Review this"}], **extra}
    return market.client.post("/v1/chat/completions", json=body, headers=headers or market.buyer)


def upstream_body(market: Market, index: int = -1) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(market.upstream.requests[index].content)
    return result


class TestCalling:
    def test_a_call_gets_the_agents_configuration_and_the_pinned_models_provider(
        self, market: Market
    ) -> None:
        deployment = deployed(market)
        answer = call(market, deployment["model"])
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "Hello there"
        sent = upstream_body(market)
        assert market.upstream.requests[-1].url.host == "alpha.example"
        assert sent["model"] == MODEL
        assert sent["messages"] == [
            {"role": "system", "content": "You review code."},
            {"role": "user", "content": "Review this"},
        ]
        assert sent["temperature"] == 0.1
        meta = answer.json()["flow_memory"]
        assert meta["deployment"]["deployment_id"] == deployment["deployment_id"]
        assert meta["deployment"]["revision"] == 1
        cost = Decimal(str(meta["cost"]))
        assert cost == 15 * PRICE
        lines = {line["kind"]: line for line in meta["royalties"]}
        assert Decimal(str(lines["agent"]["amount"])) == cost * AGENT_BPS / 10_000
        assert Decimal(str(lines["model"]["amount"])) == cost * MODEL_BPS / 10_000
        assert (lines["agent"]["slug"], lines["model"]["version"]) == ("acme/reviewer", "1.0.0")
        royalty = Decimal(str(meta["royalty_total"]))
        assert royalty == cost * (AGENT_BPS + MODEL_BPS) / 10_000
        assert Decimal(str(meta["total"])) == cost + royalty
        assert meta["funds_moved"] is False

    def test_the_agents_system_message_is_not_sent_twice_and_parameters_are_ceilings(
        self, market: Market
    ) -> None:
        model = deployed(market)["model"]
        messages = [
            {"role": "system", "content": "You review code."},
            {"role": "user", "content": "Review this"},
        ]
        answer = call(market, model, messages=messages, temperature=0.05)
        assert answer.status_code == 200, answer.text
        sent = upstream_body(market)
        assert sent["messages"] == messages and sent["temperature"] == 0.05
        answer = call(market, model, temperature=0.9)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("deployment_parameter_exceeded", "temperature")
        answer = call(market, model, flow_memory={"market_policy": {"allow_fallback": False}})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "deployment_policy"

    def test_responses_get_the_system_prompt_as_instructions(self, market: Market) -> None:
        model = deployed(market)["model"]
        answer = market.client.post(
            "/v1/responses",
            json={"model": model, "input": "Review this", "instructions": "Be brief"},
            headers=market.buyer,
        )
        assert answer.status_code == 200, answer.text
        # Translated to a chat call: the instructions are its system message.
        assert upstream_body(market)["messages"] == [
            {"role": "system", "content": "You review code.\n\nBe brief"},
            {"role": "user", "content": "Review this"},
        ]
        assert answer.json()["flow_memory"]["deployment"]["slug"] == f"{BUYER}/reviewer-bot"

    def test_a_stream_ends_with_the_royalty_arithmetic(self, market: Market) -> None:
        model = deployed(market)["model"]
        answer = call(market, model, stream=True)
        assert answer.status_code == 200, answer.text
        meta = _events(answer.text)[-1]["flow_memory"]
        cost = Decimal(str(meta["cost"]))
        assert cost == 9 * PRICE
        assert Decimal(str(meta["royalty_total"])) == cost * (AGENT_BPS + MODEL_BPS) / 10_000

    def test_only_a_provider_serving_the_pinned_version_is_called(self, market: Market) -> None:
        serve_version(market, "beta.example", registry_model=None)  # same name, no version
        model = deployed(market)["model"]
        for _ in range(3):
            assert call(market, model).status_code == 200
        assert {r.url.host for r in market.upstream.requests} == {"alpha.example"}


class TestRecording:
    def test_usage_names_the_deployment_and_royalties_are_ledger_transfers(
        self, market: Market
    ) -> None:
        deployment = deployed(market)
        answer = call(market, deployment["model"])
        plain = call(market, MODEL)  # the same provider, not through the deployment
        assert plain.status_code == 200, plain.text
        assert "deployment" not in plain.json()["flow_memory"]
        market.flushed()
        meta = answer.json()["flow_memory"]
        usage_id = meta["usage_id"]
        cost = Decimal(str(meta["cost"]))
        with market.app.state.session_factory() as session:
            record = session.get(UsageRecord, usage_id)
            assert record is not None
            assert record.deployment_id == deployment["deployment_id"]
            assert record.agent_version_id == deployment["pins"]["agent"]["version_id"]
            assert record.model_version_id == deployment["pins"]["model"]["version_id"]
            other = session.get(UsageRecord, plain.json()["flow_memory"]["usage_id"])
            assert other is not None and other.deployment_id is None
            transfers = {
                t.idempotency_key: t
                for t in session.scalars(
                    select(LedgerTransfer).where(LedgerTransfer.cause_kind == "royalty")
                )
            }
            assert set(transfers) == {f"royalty:{usage_id}:agent", f"royalty:{usage_id}:model"}
            publisher = ledger.account_of(session, "acme")
            buyer = ledger.account_of(session, BUYER)
            assert publisher is not None and buyer is not None
            earned = ledger.balance(session, account_id=publisher.account_id).balance
            assert earned == cost * (AGENT_BPS + MODEL_BPS) / 10_000
            plain_cost = Decimal(str(plain.json()["flow_memory"]["cost"]))
            paid = ledger.balance(session, account_id=buyer.account_id).balance
            # The buyer paid both calls' costs and the deployment call's royalties.
            assert paid == -(cost + plain_cost + earned)
            check = check_ledger(session)
            assert check.ok, check.report()

    def test_the_usage_api_and_export_show_the_deployment_and_versions(
        self, market: Market
    ) -> None:
        deployment = deployed(market)
        through = call(market, deployment["model"]).json()["flow_memory"]["usage_id"]
        plain = call(market, MODEL).json()["flow_memory"]["usage_id"]
        names = ("deployment_id", "agent_version_id", "model_version_id")
        pinned = (
            deployment["deployment_id"],
            deployment["pins"]["agent"]["version_id"],
            deployment["pins"]["model"]["version_id"],
        )
        records = {r["usage_id"]: r for r in market.usage()["records"]}
        assert tuple(records[through][n] for n in names) == pinned
        assert tuple(records[plain][n] for n in names) == (None, None, None)
        export = market.client.get("/inference/analytics/export", headers=admin_headers(market.app))
        assert export.status_code == 200, export.text
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert lines[0]["schema_version"] == "flow_memory.usage_export.v1"
        exported = {r["usage_id"]: r for r in lines[1:-1] if r.pop("record_type")}
        assert exported[through] == records[through]  # field for field, as the API shows it
        assert exported[plain] == records[plain]

    def test_the_usage_api_and_export_select_one_deployments_calls(self, market: Market) -> None:
        deployment = deployed(market)
        through = call(market, deployment["model"]).json()["flow_memory"]["usage_id"]
        call(market, MODEL)  # a plain call: not the deployment's
        chosen = market.usage(deployment_id=deployment["deployment_id"])
        assert chosen["filters"]["deployment_id"] == deployment["deployment_id"]
        assert [r["usage_id"] for r in chosen["records"]] == [through]
        assert chosen["summary"]["records"] == 1
        assert chosen["summary"]["computed_from"] == "records"
        assert market.usage(deployment_id="dep_none_such")["records"] == []
        export = market.client.get(
            "/inference/analytics/export",
            params={"deployment_id": deployment["deployment_id"]},
            headers=admin_headers(market.app),
        )
        assert export.status_code == 200, export.text
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert lines[0]["filters"]["deployment_id"] == deployment["deployment_id"]
        assert [r["usage_id"] for r in lines[1:-1]] == [through]

    def test_an_enforced_payer_is_never_taken_below_zero_by_a_royalty(self, market: Market) -> None:
        model = deployed(market)["model"]
        admin = admin_headers(market.app)
        cost = 15 * PRICE
        agent_line = cost * AGENT_BPS / 10_000
        model_line = cost * MODEL_BPS / 10_000
        # Enough for the cost and the model's royalty, not for the agent's.
        grant = cost + model_line + Decimal("0.00000000001")
        for path, body in (
            (
                "/inference/ledger/grants",
                {"holder_id": BUYER, "amount": str(grant), "idempotency_key": "grant-b"},
            ),
            ("/inference/ledger/enforcement", {"holder_id": BUYER, "enforced": True}),
        ):
            answer = market.client.post(path, json=body, headers=admin)
            assert answer.status_code in (200, 201), answer.text
        answer = call(market, model, max_tokens=1)
        assert answer.status_code == 200, answer.text
        market.flushed()
        usage_id = answer.json()["flow_memory"]["usage_id"]
        assert market.app.state.usage_recorder.uncollected == agent_line
        with market.app.state.session_factory() as session:
            keys = set(
                session.scalars(
                    select(LedgerTransfer.idempotency_key).where(
                        LedgerTransfer.cause_kind == "royalty"
                    )
                )
            )
            assert keys == {f"royalty:{usage_id}:model"}
            buyer = ledger.account_of(session, BUYER)
            assert buyer is not None
            balance = ledger.balance(session, account_id=buyer.account_id)
            assert balance.balance == Decimal("0.00000000001")
            check = check_ledger(session)
            assert check.ok, check.report()


class TestRequirements:
    def test_a_call_beyond_the_deployments_concurrency_is_refused_until_one_ends(
        self, market: Market
    ) -> None:
        deployment = deployed(market, requirements={"concurrency": 1})
        assert deployment["pins"]["requirements"]["concurrency"] == 1
        entered, release = threading.Event(), threading.Event()

        def held(request: httpx.Request) -> httpx.Response:
            content = chat_answer(request).content

            async def body() -> AsyncIterator[bytes]:
                entered.set()
                await anyio.to_thread.run_sync(release.wait, 30)
                yield content

            return httpx.Response(200, headers={"content-type": "application/json"}, content=body())

        market.upstream.handlers["alpha.example"] = held
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(call, market, deployment["model"])
            assert entered.wait(30)
            answer = call(market, deployment["model"])
            release.set()
            assert first.result(30).status_code == 200
        assert answer.status_code == 429, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("deployment_concurrency_exceeded", "model")
        assert error["hint"] and "concurrency" in error["hint"]
        assert answer.json()["funds_moved"] is False
        del market.upstream.handlers["alpha.example"]
        assert call(market, deployment["model"]).status_code == 200  # the slot was given back
        at_once = calls_at_once_of(market.app.state)
        assert at_once.open(deployment["deployment_id"]) == 0
        market.flushed()
        with market.app.state.session_factory() as session:
            # The refused call reached no provider and left no usage record.
            assert session.scalar(select(func.count()).select_from(UsageRecord)) == 2

    def test_calls_open_on_the_server_count_and_no_limit_when_left_out(
        self, market: Market
    ) -> None:
        deployment = deployed(market, requirements={"concurrency": 2})
        at_once = calls_at_once_of(market.app.state)
        at_once.enter(deployment["deployment_id"], None)
        assert call(market, deployment["model"]).status_code == 200  # 2 at once: allowed
        at_once.enter(deployment["deployment_id"], None)
        answer = call(market, deployment["model"])
        assert answer.status_code == 429, answer.text
        at_once.leave(deployment["deployment_id"])
        assert call(market, deployment["model"]).status_code == 200
        unlimited = deployed_again(market, "unlimited-bot", requirements={})
        assert unlimited["pins"]["requirements"]["concurrency"] is None
        for _ in range(3):
            at_once.enter(unlimited["deployment_id"], None)
        assert call(market, unlimited["model"]).status_code == 200

    def test_providers_measured_over_the_latency_ceiling_are_not_called(
        self, market: Market
    ) -> None:
        deployment = deployed(market, requirements={"latency_ceiling_ms": 3000})
        beta = serve_version(
            market, "beta.example", registry_model={"slug": "acme/swift-7b", "version": "1.0.0"}
        )
        alpha = market.providers["alpha.example"]
        latencies = latencies_of(market.app.state)
        # A call measures the provider that answered it.
        assert call(market, deployment["model"]).status_code == 200
        answered = market.upstream.requests[-1].url.host
        answered_id = beta if answered == "beta.example" else alpha
        assert latencies.measured(answered_id) is not None
        for _ in range(LATENCY_SAMPLES):
            latencies.observe(alpha, 4000.0)
        market.upstream.requests.clear()
        for _ in range(3):
            assert call(market, deployment["model"]).status_code == 200
        assert {r.url.host for r in market.upstream.requests} == {"beta.example"}
        for _ in range(LATENCY_SAMPLES):
            latencies.observe(beta, 3500.0)
        answer = call(market, deployment["model"])
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "latency_ceiling_unmet"
        assert "3000 ms" in error["message"] and "4000 ms" in error["message"]
        # A plain call to the same model is not held to the deployment's ceiling.
        assert call(market, MODEL).status_code == 200


class TestAccess:
    def test_paused_deleted_and_other_owners_deployments_are_refused_clearly(
        self, market: Market
    ) -> None:
        deployment = deployed(market)
        model = deployment["model"]
        other = key_headers(market.app, "buyer-two", PROXY)
        answer = call(market, model, headers=other)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "deployment_not_found"
        assert call(market, "dep/buyer-one/nothing").status_code == 404
        assert call(market, model).status_code == 200  # its resolution is kept a second
        owner = key_headers(market.app, BUYER, BUY)
        path = f"/inference/deployments/{deployment['deployment_id']}"
        assert market.client.post(f"{path}/pause", headers=owner).status_code == 200
        answer = call(market, model)
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "deployment_paused"
        assert market.client.post(f"{path}/resume", headers=owner).status_code == 200
        assert call(market, model).status_code == 200
        assert market.client.delete(path, headers=owner).status_code == 200
        answer = call(market, model)
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "deployment_deleted"
        embeddings = market.client.post(
            "/v1/embeddings", json={"model": model, "input": "x"}, headers=market.buyer
        )
        assert embeddings.status_code in (409, 422), embeddings.text

    def test_a_change_made_through_another_server_applies_within_a_second(
        self, market: Market
    ) -> None:
        moment = [0.0]
        market.app.state.deployment_resolutions = Resolutions(monotonic=lambda: moment[0])
        deployment = deployed(market)
        assert call(market, deployment["model"]).status_code == 200
        with market.app.state.session_factory.begin() as session:
            row = session.get(Deployment, deployment["deployment_id"])
            assert row is not None
            row.state = "paused"  # as another server sharing the database would
        assert call(market, deployment["model"]).status_code == 200
        moment[0] += RESOLVED_SECONDS
        answer = call(market, deployment["model"])
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "deployment_paused"

    def test_the_model_list_shows_the_owners_active_deployments(self, market: Market) -> None:
        deployment = deployed(market)
        ids = [
            m["id"] for m in market.client.get("/v1/models", headers=market.buyer).json()["data"]
        ]
        assert deployment["model"] in ids and MODEL in ids
        other = key_headers(market.app, "buyer-two", PROXY)
        ids = [m["id"] for m in market.client.get("/v1/models", headers=other).json()["data"]]
        assert deployment["model"] not in ids


def test_the_sdk_client_calls_a_deployment_unchanged(market: Market) -> None:
    model = deployed(market)["model"]
    token = market.buyer["authorization"].removeprefix("Bearer ")
    sdk = openai.OpenAI(
        base_url="http://testserver/v1", api_key=token, http_client=market.client, max_retries=0
    )
    completion = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Review this"}]
    )
    assert completion.choices[0].message.content == "Hello there"
    assert completion.model_extra is not None
    assert completion.model_extra["flow_memory"]["deployment"]["slug"] == f"{BUYER}/reviewer-bot"
    assert model in [m.id for m in sdk.models.list()]

"""A deployment in front of the real local model: a publisher registers the model and an agent,
the provider's catalog names the model version, a buyer deploys the pair and calls it with the
official SDK client (chat, a chat stream, responses, a responses stream); each call's cost and
royalty lines, the royalty report and the ledger agree to the last digit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from flow_memory.agent import local_model
from tests.e2e.conftest import CHAT_PRICE, LocalMarket
from tests.integration.test_server import IssuedKey

pytestmark = pytest.mark.e2e

PUBLISHER = "e2e-publisher"
MODEL_SLUG = f"{PUBLISHER}/local-chat"
AGENT_SLUG = f"{PUBLISHER}/brief-helper"
MODEL_BPS = 250
AGENT_BPS = 700
SYSTEM_PROMPT = "Answer in one short sentence."
FLUSH_SECONDS = 60  # a guard while usage batches are written, not a performance claim


@dataclass(frozen=True)
class Deployed:
    publisher: IssuedKey
    deployment: dict[str, Any]


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["dry_run_only"] is True and body["funds_moved"] is False
    return body


def _registry(market: LocalMarket, publisher: IssuedKey) -> None:
    """The publisher's model (the local chat model's terms) and an agent that fits it."""
    model = {
        "slug": MODEL_SLUG,
        "display_name": "Local chat",
        "description": "The small chat model the provider serves on its own machine",
        "tags": ["chat"],
        "license": "apache-2.0",
        "version": "1.0.0",
        "pricing": {"model": "per_token", "price": CHAT_PRICE},
        "royalty_bps": MODEL_BPS,
        "model": {
            "modality": "chat",
            "compatible_api": ["chat_completions", "responses"],
            "context_window": local_model.CHAT_CONTEXT,
            "tool_calling": False,
            "family": "gemma",
        },
    }
    agent = {
        "slug": AGENT_SLUG,
        "display_name": "Brief helper",
        "description": "Answers briefly",
        "tags": ["chat"],
        "license": "mit",
        "version": "1.0.0",
        "pricing": {"model": "per_request", "price": "0.001"},
        "royalty_bps": AGENT_BPS,
        "agent": {
            "requirements": {"apis": ["chat_completions"], "min_context_window": 1024},
            "config_template": {
                "system_prompt": SYSTEM_PROMPT,
                "parameters": {"temperature": 0.7},
            },
        },
    }
    with httpx.Client(base_url=market.base_url, timeout=60) as client:
        _ok(client.post("/inference/registry/models", json=model, headers=publisher.headers), 201)
        _ok(client.post("/inference/registry/agents", json=agent, headers=publisher.headers), 201)


def _name_the_registry_version(market: LocalMarket) -> None:
    """The seller publishes its catalog again, the chat model now naming the registry version
    (the agent's own catalog names none, and it republishes only when its models change)."""
    path = f"/inference/providers/{market.provider_id}/catalog"
    version = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    catalog = {
        "catalog_version": version,
        "models": [
            {
                "model": market.model,
                "compatible_api": "chat_completions",
                "unit_types": ["token"],
                "context_window": local_model.CHAT_CONTEXT,
                "reference_unit_prices": {"token": "0.000001"},
                "registry_model": {"slug": MODEL_SLUG, "version": "1.0.0"},
            },
            {
                "model": market.embedding_model,
                "compatible_api": "embeddings",
                "unit_types": ["token"],
                "context_window": local_model.EMBEDDING_CONTEXT,
            },
        ],
    }
    with httpx.Client(base_url=market.base_url, timeout=60) as client:
        _ok(client.post(path, json=catalog, headers=market.seller.headers))


@pytest.fixture(scope="module")
def deployed(local_market: LocalMarket) -> Deployed:
    publisher = local_market.deployment.create_key(PUBLISHER, "inference:publish,inference:read")
    _registry(local_market, publisher)
    _name_the_registry_version(local_market)
    body = {
        "name": "brief",
        "agent": {"slug": AGENT_SLUG},
        "model": {"slug": MODEL_SLUG, "version": "1.0.0"},
        "configuration": {"parameters": {"temperature": 0.0}},
        "requirements": {"min_context_window": 1024},
        "policy": {"max_unit_price": "0.000001", "allow_fallback": False},
    }
    with httpx.Client(base_url=local_market.base_url, timeout=60) as client:
        answer = _ok(
            client.post("/inference/deployments", json=body, headers=local_market.buyer.headers),
            201,
        )
    capacity = answer["capacity"]
    assert capacity["serving_now"] is True, capacity
    assert [p["provider_id"] for p in capacity["providers"]] == [local_market.provider_id]
    return Deployed(publisher, answer["deployment"])


@pytest.fixture
def sdk(local_market: LocalMarket) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=local_market.sdk_base_url,
        api_key=local_market.buyer.secret,
        max_retries=0,
        timeout=300,
    ) as client:
        yield client


def _meta(answer: Any) -> dict[str, Any]:
    meta: dict[str, Any] = (answer.model_extra or {})["flow_memory"]
    return meta


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _calls(sdk: openai.OpenAI, model: str) -> list[dict[str, Any]]:
    """One call of each kind through the deployment: their flow_memory objects."""
    metas = []
    chat = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Name one colour."}], max_tokens=8
    )
    assert isinstance(chat.choices[0].message.content, str)
    assert chat.usage is not None
    metas.append(_meta(chat))
    assert metas[-1]["usage"]["units"] == chat.usage.total_tokens > 0

    chunks = list(
        sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Count to three."}],
            max_tokens=12,
            stream=True,
        )
    )
    assert chunks[-1].usage is not None
    metas.append(_meta(chunks[-1]))
    assert metas[-1]["usage"]["units"] == chunks[-1].usage.total_tokens

    response = sdk.responses.create(model=model, input="Say yes.", max_output_tokens=8)
    assert response.status in ("completed", "incomplete")
    metas.append(_meta(response))

    events = list(
        sdk.responses.create(model=model, input="Say no.", max_output_tokens=8, stream=True)
    )
    assert events[-1].type == "response.completed"
    metas.append(_meta(events[-1]))
    return metas


def _royalty_rows(market: LocalMarket, publisher: IssuedKey, calls: int) -> list[dict[str, Any]]:
    """The publisher's royalty rows once every call's usage batch is written."""
    deadline = time.monotonic() + FLUSH_SECONDS
    rows: list[dict[str, Any]] = []
    with httpx.Client(base_url=market.base_url, timeout=60) as client:
        while time.monotonic() < deadline:
            body = _ok(client.get("/inference/royalties", headers=publisher.headers))
            rows = body["rows"]
            counted = sum(r["usage_records"] for r in rows if r["kind"] == "agent")
            if counted >= calls:
                return rows
            time.sleep(0.2)
    raise AssertionError(f"the royalty report never counted {calls} calls: {rows}")


def _entries(market: LocalMarket, key: IssuedKey, holder: str) -> list[dict[str, Any]]:
    """Every ledger entry of a holder's account, as its holder reads them."""
    with httpx.Client(base_url=market.base_url, timeout=60) as client:
        accounts = _ok(
            client.get(
                "/inference/ledger/accounts", params={"holder_id": holder}, headers=key.headers
            )
        )["accounts"]
        assert len(accounts) == 1, accounts
        account_id = accounts[0]["account_id"]
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            query: dict[str, Any] = {"limit": 500}
            if cursor:
                query["cursor"] = cursor
            page = _ok(
                client.get(
                    f"/inference/ledger/accounts/{account_id}/entries",
                    params=query,
                    headers=key.headers,
                )
            )
            found.extend(page["entries"])
            cursor = page["next_cursor"]
            if not cursor:
                return found


def test_calls_through_a_deployment_pay_cost_and_royalties_exactly(
    local_market: LocalMarket, deployed: Deployed, sdk: openai.OpenAI
) -> None:
    market = local_market
    deployment = deployed.deployment
    model = deployment["model"]
    assert model == "dep/agent-research-1/brief"
    assert model in {m.id for m in sdk.models.list()}

    metas = _calls(sdk, model)
    price = Decimal(CHAT_PRICE)
    bps = {"agent": AGENT_BPS, "model": MODEL_BPS}
    for meta in metas:
        assert meta["provider_id"] == market.provider_id
        assert meta["deployment"]["deployment_id"] == deployment["deployment_id"]
        assert meta["deployment"]["revision"] == 1
        cost = _decimal(meta["cost"])
        assert cost == meta["usage"]["units"] * price > 0
        lines = {line["kind"]: line for line in meta["royalties"]}
        assert set(lines) == {"agent", "model"}
        for kind, line in lines.items():
            assert line["publisher_id"] == PUBLISHER
            assert line["royalty_bps"] == bps[kind]
            assert _decimal(line["amount"]) == cost * bps[kind] / 10_000
        royalty_total = _decimal(meta["royalty_total"])
        assert royalty_total == sum(_decimal(line["amount"]) for line in lines.values())
        assert _decimal(meta["total"]) == cost + royalty_total

    # The report: per version (and day: a run across midnight has two), the calls, their
    # summed cost and the sum of their lines, which equals the royalty of the summed cost.
    rows = _royalty_rows(market, deployed.publisher, len(metas))
    total_cost = sum((_decimal(m["cost"]) for m in metas), Decimal(0))
    for kind, slug in (("agent", AGENT_SLUG), ("model", MODEL_SLUG)):
        mine = [r for r in rows if r["kind"] == kind]
        assert {(r["slug"], r["version"], r["royalty_bps"]) for r in mine} == {
            (slug, "1.0.0", bps[kind])
        }
        assert sum(r["usage_records"] for r in mine) == len(metas)
        assert sum((_decimal(r["cost"]) for r in mine), Decimal(0)) == total_cost
        paid = sum(
            (
                _decimal(line["amount"])
                for m in metas
                for line in m["royalties"]
                if line["kind"] == kind
            ),
            Decimal(0),
        )
        assert sum((_decimal(r["royalty"]) for r in mine), Decimal(0)) == paid
        assert paid == total_cost * bps[kind] / 10_000
        for row in mine:
            assert _decimal(row["royalty"]) == _decimal(row["royalty_of_cost"])

    # The ledger: the publisher was credited each line, keyed by its call; the provider's
    # owner each cost; the caller was debited both.
    usage_ids = {m["usage_id"] for m in metas}
    credited = [
        e
        for e in _entries(market, deployed.publisher, PUBLISHER)
        if e["cause"]["kind"] == "royalty"
    ]
    assert {e["cause"]["id"] for e in credited} == usage_ids
    assert len(credited) == 2 * len(metas)
    royalties = sum((_decimal(m["royalty_total"]) for m in metas), Decimal(0))
    assert sum((_decimal(e["amount"]) for e in credited), Decimal(0)) == royalties

    paid_to_seller = [
        e
        for e in _entries(market, market.seller, "local-gpu-owner")
        if e["cause"]["id"] in usage_ids
    ]
    assert sum((_decimal(e["amount"]) for e in paid_to_seller), Decimal(0)) == total_cost

    debited = [
        e
        for e in _entries(market, market.buyer, "agent-research-1")
        if e["cause"]["id"] in usage_ids and e["account_role"] == "main"
    ]
    assert sum((_decimal(e["amount"]) for e in debited), Decimal(0)) == -(total_cost + royalties)

    check = market.deployment.cli("db", "check-ledger")
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_deployment_applies_its_system_prompt_and_refuses_a_wider_parameter(
    local_market: LocalMarket, deployed: Deployed, sdk: openai.OpenAI
) -> None:
    model = deployed.deployment["model"]
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Hello."}],
            max_tokens=4,
            temperature=0.5,
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "deployment_parameter_exceeded", error
    assert error["field"] == "temperature"
    # Greedy (the configured temperature 0): the same question answers the same, whole or
    # streamed, through the deployment.
    ask: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 12,
    }
    whole = sdk.chat.completions.create(**ask)
    chunks = list(sdk.chat.completions.create(**ask, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    assert whole.usage is not None
    # The system prompt was sent ahead of the question: more prompt tokens than without it.
    plain = sdk.chat.completions.create(
        model=local_market.model, messages=ask["messages"], max_tokens=12, temperature=0
    )
    assert plain.usage is not None
    assert whole.usage.prompt_tokens > plain.usage.prompt_tokens

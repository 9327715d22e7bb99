"""A provider agent in front of the real local model server: enrollment, catalog, capacity and
a quote that names the provider; the model server itself answers the official SDK client, with
one unit-length vector per input for embeddings, as numbers or as base64."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from flow_memory.agent.local_protocol import decode_base64
from tests.e2e.conftest import CHAT_PRICE, LocalMarket, LocalModelServer

DIMENSIONS = 384  # all-MiniLM-L6-v2

pytestmark = pytest.mark.e2e


def _get(market: LocalMarket, path: str) -> dict[str, Any]:
    response = httpx.get(f"{market.base_url}{path}", headers=market.seller.headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_model_server_answers_the_sdk_directly(local_model_server: LocalModelServer) -> None:
    base_url = local_model_server.base_url
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        names = [m.id for m in client.models.list()]
        assert names == [local_model_server.model, local_model_server.embedding_model]
        chat = client.chat.completions.create(
            model=local_model_server.model,
            messages=[{"role": "user", "content": "Name one colour."}],
            max_tokens=8,
        )
        assert chat.usage is not None and chat.usage.prompt_tokens > 0
        vectors = client.embeddings.create(
            model=local_model_server.embedding_model, input=["flow", "memory"]
        )
    assert len(vectors.data) == 2 and vectors.data[0].embedding


def test_embeddings_are_one_unit_vector_per_input_in_either_encoding(
    local_model_server: LocalModelServer,
) -> None:
    texts = ["a market for inference", "the order book", "a market for inference"]

    def embed(encoding_format: str) -> dict[str, Any]:
        response = httpx.post(
            f"{local_model_server.base_url}/embeddings",
            json={
                "model": local_model_server.embedding_model,
                "input": texts,
                "encoding_format": encoding_format,
            },
            timeout=120,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    floats, packed = embed("float"), embed("base64")
    vectors = [d["embedding"] for d in floats["data"]]
    assert [d["index"] for d in floats["data"]] == [0, 1, 2]
    assert all(len(v) == DIMENSIONS for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]  # one vector per text, not per token
    assert [decode_base64(d["embedding"]) for d in packed["data"]] == vectors
    usage = floats["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > len(texts)

    # The SDK asks for base64 unless told otherwise, and decodes it to the same numbers.
    base_url = local_model_server.base_url
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        answer = client.embeddings.create(model=local_model_server.embedding_model, input=texts)
    assert [d.embedding for d in answer.data] == vectors


def test_agent_publishes_the_local_model_and_a_quote_returns_it(
    local_market: LocalMarket,
) -> None:
    market = local_market
    health = _get(market, f"/inference/providers/{market.provider_id}/health")
    assert health["route_gate"] == "eligible" and health["status"] == "healthy"

    for model, api, price in (
        (market.model, "chat_completions", CHAT_PRICE),
        (market.embedding_model, "embeddings", "0.00000002"),
    ):
        detail = _get(market, f"/inference/market/models/{model}")
        (offer,) = [o for o in detail["offers"] if o["provider_id"] == market.provider_id]
        assert offer["compatible_api"] == api, offer

        response = httpx.post(
            f"{market.base_url}/inference/quote",
            headers=market.buyer.headers,
            json={"model": model, "unit_type": "token", "estimated_units": 1000},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        quotes = response.json()["quotes"]
        assert [q["provider_id"] for q in quotes] == [market.provider_id]
        assert quotes[0]["provider_name"] == "local-gemma"
        assert Decimal(str(quotes[0]["unit_price"])) == Decimal(price)

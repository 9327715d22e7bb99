"""The official SDK client, given only Flow Memory's base URL and a Flow Memory key, talks to the
real local model server through the proxy: chat, a stream, responses (translated to chat),
embeddings, the model list; then analytics shows the usage, priced at the agent's ask. A greedy
answer streamed is the same as whole, and embeddings keep their shape (one vector per input) and
encoding through the proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from flow_memory.agent.local_protocol import decode_base64
from tests.e2e.conftest import CHAT_PRICE, LocalMarket

pytestmark = pytest.mark.e2e


@pytest.fixture
def sdk(local_market: LocalMarket) -> Iterator[openai.OpenAI]:
    """The SDK client at the proxy, closed after the test (its pooled sockets with it)."""
    with openai.OpenAI(
        base_url=local_market.sdk_base_url,
        api_key=local_market.buyer.secret,
        max_retries=0,
        timeout=300,
    ) as client:
        yield client


def _meta(answer: Any) -> dict[str, Any]:
    extra = answer.model_extra or {}
    meta: dict[str, Any] = extra["flow_memory"]
    return meta


def test_sdk_traffic_reaches_the_local_model_and_is_priced_in_analytics(
    local_market: LocalMarket, sdk: openai.OpenAI
) -> None:
    market = local_market
    price = Decimal(CHAT_PRICE)

    assert {m.id for m in sdk.models.list()} == {market.model, market.embedding_model}

    chat = sdk.chat.completions.create(
        model=market.model,
        messages=[{"role": "user", "content": "Name one colour."}],
        max_tokens=8,
        extra_body={"flow_memory": {"agent_id": "agent-research-1", "task_id": "task-e2e"}},
    )
    # A 270M model may answer with nothing at all; the call, its usage and its price are real.
    assert isinstance(chat.choices[0].message.content, str)
    meta = _meta(chat)
    assert meta["provider_id"] == market.provider_id
    assert chat.usage is not None
    assert meta["usage"]["units"] == chat.usage.total_tokens > 0
    assert Decimal(str(meta["cost"])) == chat.usage.total_tokens * price

    chunks = list(
        sdk.chat.completions.create(
            model=market.model,
            messages=[{"role": "user", "content": "Count to three."}],
            max_tokens=12,
            stream=True,
        )
    )
    assert len(chunks) >= 2
    closing = chunks[-1]
    assert closing.choices == [] and closing.usage is not None
    assert _meta(closing)["usage"]["units"] == closing.usage.total_tokens

    response = sdk.responses.create(model=market.model, input="Say yes.", max_output_tokens=8)
    assert response.status in ("completed", "incomplete")
    assert _meta(response)["provider_id"] == market.provider_id

    events = list(
        sdk.responses.create(model=market.model, input="Say no.", max_output_tokens=8, stream=True)
    )
    assert events[-1].type == "response.completed"
    deltas = "".join(getattr(e, "delta", "") for e in events if e.type.endswith("text.delta"))
    assert deltas == events[-1].response.output_text

    vectors = sdk.embeddings.create(model=market.embedding_model, input=["flow", "memory"])
    assert len(vectors.data) == 2 and vectors.data[0].embedding
    assert _meta(vectors)["model"] == market.embedding_model

    # Usage records are written in batches; a moment later analytics shows all five calls.
    summary: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{market.base_url}/inference/analytics/usage",
            params={"limit": 50},
            headers=market.buyer.headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        summary = answer.json()
        proxied = [r for r in summary["records"] if r["source"] == "proxy"]
        if len(proxied) >= 5:
            break
        time.sleep(0.2)
    proxied = [r for r in summary["records"] if r["source"] == "proxy"]
    assert len(proxied) == 5, summary
    assert {r["provider_id"] for r in proxied} == {market.provider_id}
    chat_record = next(r for r in proxied if r["usage_id"] == meta["usage_id"])
    assert chat_record["task_id"] == "task-e2e" and chat_record["agent_id"] == "agent-research-1"
    assert Decimal(str(chat_record["actual_cost"])) == chat.usage.total_tokens * price
    by_model = {m["model"]: m for m in summary["summary"]["by_model"]}
    assert by_model[market.model]["actual_units"] > 0


def test_a_greedy_answer_is_the_same_streamed_or_whole(
    local_market: LocalMarket, sdk: openai.OpenAI
) -> None:
    ask: dict[str, Any] = {
        "model": local_market.model,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16,
        "temperature": 0,
    }
    whole = sdk.chat.completions.create(**ask)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None

    chunks = list(sdk.chat.completions.create(**ask, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    finished = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finished[-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert _meta(chunks[-1])["provider_id"] == local_market.provider_id


def test_embeddings_through_the_proxy_are_one_vector_per_input(
    local_market: LocalMarket, sdk: openai.OpenAI
) -> None:
    texts = ["flow", "memory", "an inference market"]
    as_numbers = sdk.embeddings.create(
        model=local_market.embedding_model, input=texts, encoding_format="float"
    )
    vectors = [d.embedding for d in as_numbers.data]
    assert len(vectors) == len(texts) and {len(v) for v in vectors} == {384}
    # The SDK's default asks for base64 and decodes it: the same numbers.
    as_sent = sdk.embeddings.create(model=local_market.embedding_model, input=texts)
    assert [d.embedding for d in as_sent.data] == vectors
    assert as_sent.usage.prompt_tokens == as_numbers.usage.prompt_tokens > len(texts)

    raw = httpx.post(
        f"{local_market.sdk_base_url}/embeddings",
        headers=local_market.buyer.headers,
        json={"model": local_market.embedding_model, "input": texts, "encoding_format": "base64"},
        timeout=120,
    )
    assert raw.status_code == 200, raw.text
    assert [decode_base64(d["embedding"]) for d in raw.json()["data"]] == vectors

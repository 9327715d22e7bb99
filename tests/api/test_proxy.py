"""The SDK-compatible proxy over scripted provider model servers.

``ScriptedUpstream`` is a test double: an SDK-compatible model server played by an
``httpx.MockTransport``, so each test decides what a provider answers (a stream, a cut stream,
a 500, malformed JSON, a timeout). The real model server runs in tests/e2e."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from flow_memory.app import create_app
from flow_memory.kit.clock import FrozenClock
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.proxy.edge import ProxyEdge
from flow_memory.routing.models import RouteRecord
from flow_memory.settings import Settings
from tests.conftest import clear_tables
from tests.factories import (
    Headers,
    admin_headers,
    create_credential_ref,
    enroll_provider,
    key_headers,
    pair_provider,
    seller_headers,
)

SECRET = "planted-provider-secret-7f3a9c"
MODEL = "flow-memory-orchestrator"
MESSAGES_MODEL = "flow-memory-message-chat"
PRICE = Decimal("0.00000075")
REFERENCE = Decimal("0.000001")
Handler = Callable[[httpx.Request], httpx.Response]


def _sse(*events: Any, done: bool = True) -> bytes:
    body = b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )
    return body + (b"data: [DONE]\n\n" if done else b"")


def chat_answer(request: httpx.Request, text: str = "Hello there") -> httpx.Response:
    body = json.loads(request.content)
    if body.get("stream"):
        chunks = [
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
             "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
             "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
             "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2,
                                      "total_tokens": 9}},
        ]  # fmt: skip
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=_sse(*chunks)
        )
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        },
    )


def messages_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body.get("stream"):
        events = [
            {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 6}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "Hi "}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "you"}},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
             "usage": {"output_tokens": 3}},
            {"type": "message_stop"},
        ]  # fmt: skip
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=_sse(*events, done=False)
        )
    return httpx.Response(
        200,
        json={
            "id": "m1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "Hi you"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 6, "output_tokens": 3},
        },
    )


def embeddings_answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "model": json.loads(request.content)["model"],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        },
    )


def default_answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/chat/completions"):
        return chat_answer(request)
    if path.endswith("/messages"):
        return messages_answer(request)
    if path.endswith("/embeddings"):
        return embeddings_answer(request)
    return httpx.Response(404, json={"error": {"message": f"no route {path}"}})


@dataclass
class ScriptedUpstream:
    """Test double: provider model servers keyed by host, each answering with a handler."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        handler = self.handlers.get(request.url.host, default_answer)
        return handler(request)

    def to(self, host: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == host]


async def public_resolver(host: str, port: int) -> list[str]:
    """Test double for DNS: every host is a public address, except the metadata trap."""
    return ["169.254.169.254"] if host.startswith("metadata-trap") else ["93.184.216.34"]


def _catalog(model: str, api: str, unit: str = "token") -> dict[str, Any]:
    return {
        "catalog_version": "2026-06-17T00:00:00Z",
        "models": [
            {
                "model": model,
                "compatible_api": api,
                "unit_types": [unit],
                "context_window": 8192,
                "reference_unit_prices": {unit: float(REFERENCE)},
            }
        ],
    }


@dataclass
class Market:
    app: FastAPI
    client: TestClient
    upstream: ScriptedUpstream
    buyer: Headers
    seller: Headers
    providers: dict[str, str]

    def provider(
        self,
        host: str,
        *,
        api: str = "chat_responses",
        model: str = MODEL,
        price: str = "0.00000075",
    ) -> str:
        """Enroll an eligible provider at https://{host}/v1 serving ``model``."""
        name = host.split(".")[0]
        ref = create_credential_ref(
            self.client,
            self.seller,
            credential_ref=f"secret://inference/{name}",
            allowed_models=[model],
        )
        provider = enroll_provider(
            self.client,
            self.seller,
            ref["credential_ref_id"],
            provider_name=name,
            base_url=f"https://{host}/v1",
        )
        provider_id = provider["provider_id"]
        pair_provider(self.client, self.seller, provider_id)
        base = f"/inference/providers/{provider_id}"
        answer = self.client.post(f"{base}/catalog", json=_catalog(model, api), headers=self.seller)
        assert answer.status_code == 200, answer.text
        capacity = {
            "capacity_version": "2026-06-17T00:05:00Z",
            "inventory": [
                {
                    "model": model,
                    "unit_type": "token",
                    "available_units": 10_000_000,
                    "ask_unit_price": price,
                    "min_order_units": 1,
                    "quality_score": 0.9,
                    "reliability_score": 0.9,
                    "expires_at": "2026-12-31T00:00:00Z",
                }
            ],
        }
        answer = self.client.post(f"{base}/capacity", json=capacity, headers=self.seller)
        assert answer.status_code == 200, answer.text
        self.providers[host] = provider_id
        return provider_id

    def flushed(self) -> None:
        assert self.app.state.usage_recorder.flush(10)

    def usage(self, **query: str) -> dict[str, Any]:
        self.flushed()
        answer = self.client.get(
            "/inference/analytics/usage", params=query, headers=admin_headers(self.app)
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@contextmanager
def scripted_market(database_url: str, clock: FrozenClock, **settings: Any) -> Iterator[Market]:
    """An app over an emptied database whose providers are played by a ScriptedUpstream."""
    clear_tables(database_url)
    upstream = ScriptedUpstream()
    app = create_app(
        Settings(database_url=database_url, **settings),
        clock=clock,
        upstream_transport=httpx.MockTransport(upstream),
        host_resolver=public_resolver,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Market(
            app,
            client,
            upstream,
            key_headers(app, "buyer-one", "inference:proxy", "inference:plan"),
            seller_headers(app),
            {},
        )
    app.state.engine.dispose()
    app.state.read_engine.dispose()


@pytest.fixture
def market(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Market]:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_ALPHA", SECRET)
    with scripted_market(database_url, clock, proxy_route_cache_seconds=0) as scripted:
        yield scripted


def chat(market: Market, **extra: Any) -> httpx.Response:
    headers = {**market.buyer, **extra.pop("headers", {})}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}], **extra}
    return market.client.post("/v1/chat/completions", json=body, headers=headers)


def test_a_chat_call_is_routed_priced_and_recorded(market: Market) -> None:
    provider_id = market.provider("alpha.example")
    answer = chat(market)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["choices"][0]["message"]["content"] == "Hello there"
    meta = body["flow_memory"]
    assert meta["provider_id"] == provider_id
    assert answer.headers["x-flow-memory-route-id"] == meta["route_id"]
    assert Decimal(str(meta["unit_price"])) == PRICE
    assert meta["usage"]["total_tokens"] == 15 and meta["usage"]["units"] == 15
    assert Decimal(str(meta["cost"])) == 15 * PRICE
    assert Decimal(str(meta["reference_cost"])) == 15 * REFERENCE
    assert Decimal(str(meta["savings"])) == 15 * (REFERENCE - PRICE)
    assert meta["savings_bps"] == 2500
    for name, value in SAFETY_ENVELOPE.items():
        assert meta[name] == value
    # The provider got the credential in its header and no routing options in its body.
    (sent,) = market.upstream.to("alpha.example")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert "flow_memory" not in json.loads(sent.content)
    usage = market.usage(route_id=meta["route_id"])
    (record,) = usage["records"]
    assert record["usage_id"] == meta["usage_id"]
    assert record["provider_id"] == provider_id and record["actual_units"] == 15
    assert Decimal(str(record["actual_cost"])) == 15 * PRICE
    assert record["source"] == "proxy" and record["decision"] == "selected"


def test_the_planted_credential_never_leaves_the_upstream_header(
    market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(request: httpx.Request) -> httpx.Response:
        # A careless provider that repeats the credential it was sent.
        leaked = request.headers["authorization"]
        if json.loads(request.content).get("stream"):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                     "choices": [{"index": 0, "delta": {"content": leaked}}]}  # fmt: skip
            return httpx.Response(200, content=_sse(chunk))
        if "fail" in request.content.decode():
            return httpx.Response(400, json={"error": {"message": f"bad key {leaked}"}})
        return chat_answer(request, text=f"your key is {leaked}")

    market.upstream.handlers["alpha.example"] = echo
    market.provider("alpha.example")
    plain = chat(market)
    streamed = chat(market, stream=True)
    refused = chat(market, messages=[{"role": "user", "content": "fail"}])
    assert refused.status_code == 400
    for answer in (plain, streamed, refused):
        assert SECRET not in answer.text
    assert "[redacted]" in plain.json()["choices"][0]["message"]["content"]
    assert "[redacted]" in streamed.text
    assert SECRET not in caplog.text
    market.flushed()
    export = market.client.get(
        "/inference/analytics/export", headers=key_headers(market.app, "auditor", "inference:audit")
    )
    assert export.status_code == 200 and SECRET not in export.text
    assert export.text.count('"usage_record"') == 3


def _events(text: str) -> list[Any]:
    return [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def test_a_chat_stream_passes_chunks_through_and_ends_with_the_metadata(market: Market) -> None:
    market.provider("alpha.example")
    answer = chat(market, stream=True)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = _events(answer.text)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "Hello"
    last = events[-1]
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 9
    assert last["flow_memory"]["usage"]["units"] == 9
    assert Decimal(str(last["flow_memory"]["cost"])) == 9 * PRICE
    assert answer.text.endswith("data: [DONE]\n\n")
    sent = json.loads(market.upstream.to("alpha.example")[0].content)
    assert sent["stream_options"] == {"include_usage": True}
    assert market.usage()["summary"]["actual_units"] == 9


def test_a_cut_stream_ends_with_an_error_event(market: Market) -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                     "choices": [{"index": 0, "delta": {"content": "partial answer"}}]}  # fmt: skip
            yield _sse(chunk, done=False)
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, content=body())

    market.upstream.handlers["alpha.example"] = cut
    market.provider("alpha.example")
    answer = chat(market, stream=True)
    events = _events(answer.text)
    assert events[0]["choices"][0]["delta"]["content"] == "partial answer"
    assert events[-1]["error"]["code"] == "upstream_stream_cut"
    assert events[-1]["flow_memory"]["usage"]["estimated"] is True
    assert "[DONE]" not in answer.text
    (record,) = market.usage()["records"]
    assert record["decision"] == "stream_cut"


def test_a_stream_that_stops_without_its_end_is_a_cut(market: Market) -> None:
    def silent_end(request: httpx.Request) -> httpx.Response:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                 "choices": [{"index": 0, "delta": {"content": "half"}}]}  # fmt: skip
        return httpx.Response(200, content=_sse(chunk, done=False))

    market.upstream.handlers["alpha.example"] = silent_end
    market.provider("alpha.example")
    events = _events(chat(market, stream=True).text)
    assert events[-1]["error"]["code"] == "upstream_stream_cut"


def test_fallback_to_the_next_provider_on_5xx_connect_errors_and_timeouts(market: Market) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no first byte", request=request)

    market.upstream.handlers["alpha.example"] = lambda r: httpx.Response(503, text="overloaded")
    market.upstream.handlers["beta.example"] = refuse
    market.upstream.handlers["gamma.example"] = slow
    market.provider("alpha.example", price="0.0000005")
    market.provider("beta.example", price="0.0000006")
    market.provider("gamma.example", price="0.0000007")
    delta = market.provider("delta.example", price="0.0000008")
    answer = chat(market)
    assert answer.status_code == 200, answer.text
    meta = answer.json()["flow_memory"]
    assert meta["provider_id"] == delta
    assert [a["outcome"] for a in meta["attempts"]] == [
        "upstream_5xx",
        "connect_error",
        "timeout",
        "answered",
    ]
    assert Decimal(str(meta["unit_price"])) == Decimal("0.0000008")
    (record,) = market.usage()["records"]
    assert record["decision"] == "fallback" and record["provider_id"] == delta


def test_without_fallback_a_failing_provider_is_a_502(market: Market) -> None:
    market.upstream.handlers["alpha.example"] = lambda r: httpx.Response(500, text="boom")
    market.provider("alpha.example", price="0.0000005")
    market.provider("beta.example", price="0.0000006")
    answer = chat(market, flow_memory={"market_policy": {"allow_fallback": False}})
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_unavailable"
    assert market.upstream.to("beta.example") == []
    # The call no provider answered is still a usage record, of no units.
    market.flushed()
    with market.app.state.session_factory() as session:
        rows = session.execute(
            text("SELECT decision, actual_units FROM usage_records WHERE source = 'proxy'")
        ).all()
    assert [tuple(r) for r in rows] == [("upstream_failed", 0)]


def test_a_provider_4xx_is_passed_back_with_the_metadata(market: Market) -> None:
    market.upstream.handlers["alpha.example"] = lambda r: httpx.Response(
        400, json={"error": {"message": "context too long", "type": "invalid_request_error"}}
    )
    market.provider("alpha.example")
    market.provider("beta.example", price="0.0000009")
    answer = chat(market)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "context too long"
    assert answer.json()["flow_memory"]["provider_id"] == market.providers["alpha.example"]
    assert market.upstream.to("beta.example") == []  # a refusal is not retried elsewhere


def test_malformed_json_from_a_provider_is_a_clear_502(market: Market) -> None:
    market.upstream.handlers["alpha.example"] = lambda r: httpx.Response(
        200, content=b"{not json", headers={"content-type": "application/json"}
    )
    market.provider("alpha.example")
    answer = chat(market)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_invalid_response"


def test_a_whole_answer_past_the_limit_is_refused_and_recorded(
    database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_MEMORY_SECRET_INFERENCE_ALPHA", SECRET)
    with scripted_market(
        database_url, clock, proxy_route_cache_seconds=0, proxy_max_answer_bytes=64
    ) as market:
        market.provider("alpha.example")
        answer = chat(market)
        assert answer.status_code == 502
        error = answer.json()["error"]
        assert error["code"] == "upstream_invalid_response"
        assert "more than 64 bytes" in error["message"]
        market.flushed()
        with market.app.state.session_factory() as session:
            rows = session.execute(
                text("SELECT decision FROM usage_records WHERE source = 'proxy'")
            ).all()
        assert [r[0] for r in rows] == ["upstream_invalid"]


def test_malformed_json_mid_stream_ends_with_an_error_event(market: Market) -> None:
    market.upstream.handlers["alpha.example"] = lambda r: httpx.Response(
        200, content=b"data: {broken\n\n"
    )
    market.provider("alpha.example")
    events = _events(chat(market, stream=True).text)
    assert events[-1]["error"]["code"] == "upstream_stream_cut"


def test_responses_are_translated_to_chat_and_back(market: Market) -> None:
    market.provider("alpha.example", api="chat_completions")
    answer = market.client.post(
        "/v1/responses",
        json={"model": MODEL, "input": "Say hello", "instructions": "Be brief"},
        headers=market.buyer,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "response"
    assert body["output"][0]["content"][0]["text"] == "Hello there"
    assert body["usage"]["total_tokens"] == 15
    assert body["flow_memory"]["usage"]["units"] == 15
    sent = market.upstream.to("alpha.example")[0]
    assert sent.url.path == "/v1/chat/completions"
    assert json.loads(sent.content)["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hello"},
    ]


def test_a_responses_stream_is_translated_event_by_event(market: Market) -> None:
    market.provider("alpha.example", api="chat_completions")
    answer = market.client.post(
        "/v1/responses",
        json={"model": MODEL, "input": "Say hello", "stream": True},
        headers=market.buyer,
    )
    events = _events(answer.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "Hello"
    last = events[-1]
    assert last["response"]["usage"]["total_tokens"] == 9
    assert last["flow_memory"]["usage"]["units"] == 9
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_chat_is_translated_to_the_messages_style_and_back(market: Market) -> None:
    market.provider("alpha.example", api="messages", model=MESSAGES_MODEL)
    answer = market.client.post(
        "/v1/chat/completions",
        json={
            "model": MESSAGES_MODEL,
            "messages": [
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": "Greet me"},
            ],
            "max_tokens": 50,
        },
        headers=market.buyer,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hi you"
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
    sent = market.upstream.to("alpha.example")[0]
    assert sent.url.path == "/v1/messages"
    assert sent.headers["x-api-key"] == SECRET and "authorization" not in sent.headers
    assert json.loads(sent.content) == {
        "model": MESSAGES_MODEL,
        "system": "Be brief",
        "messages": [{"role": "user", "content": "Greet me"}],
        "max_tokens": 50,
    }
    streamed = market.client.post(
        "/v1/chat/completions",
        json={"model": MESSAGES_MODEL, "messages": [{"role": "user", "content": "Hi"}],
              "stream": True},
        headers=market.buyer,
    )  # fmt: skip
    events = _events(streamed.text)
    text = "".join((e["choices"] or [{}])[0].get("delta", {}).get("content") or "" for e in events)
    assert text == "Hi you"
    assert events[-1]["usage"]["total_tokens"] == 9
    assert streamed.text.endswith("data: [DONE]\n\n")


def test_responses_reach_a_messages_style_provider_through_both_translations(
    market: Market,
) -> None:
    market.provider("alpha.example", api="messages", model=MESSAGES_MODEL)
    answer = market.client.post(
        "/v1/responses", json={"model": MESSAGES_MODEL, "input": "Hi"}, headers=market.buyer
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][0]["content"][0]["text"] == "Hi you"
    streamed = market.client.post(
        "/v1/responses",
        json={"model": MESSAGES_MODEL, "input": "Hi", "stream": True},
        headers=market.buyer,
    )
    events = _events(streamed.text)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hi you"


def test_embeddings_pass_through(market: Market) -> None:
    market.provider("alpha.example")
    answer = market.client.post(
        "/v1/embeddings", json={"model": MODEL, "input": "hello"}, headers=market.buyer
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"][0]["embedding"] == [0.1, 0.2, 0.3]
    assert answer.json()["flow_memory"]["usage"]["units"] == 4


def test_a_provider_that_cannot_serve_the_call_is_skipped(market: Market) -> None:
    market.provider("alpha.example", api="messages", price="0.0000005")
    market.provider("beta.example", price="0.0000009")
    answer = market.client.post(
        "/v1/embeddings", json={"model": MODEL, "input": "hello"}, headers=market.buyer
    )
    meta = answer.json()["flow_memory"]
    assert meta["provider_id"] == market.providers["beta.example"]
    assert any("not embeddings" in w for w in meta["warnings"])


def test_a_recorded_route_is_followed_by_its_id(market: Market) -> None:
    market.provider("alpha.example", price="0.0000005")
    beta = market.provider("beta.example", price="0.0000009")
    route = market.client.post(
        "/inference/route",
        json={"model": MODEL, "estimated_units": 100, "market_policy": {"allow_fallback": True}},
        headers=market.buyer,
    ).json()["route"]
    market.upstream.handlers["alpha.example"] = lambda r: httpx.Response(502)
    answer = chat(market, headers={"x-flow-memory-route-id": route["route_id"]})
    meta = answer.json()["flow_memory"]
    assert meta["route_id"] == route["route_id"] and meta["provider_id"] == beta
    body_route = chat(market, flow_memory={"route_id": route["route_id"]})
    assert body_route.json()["flow_memory"]["route_id"] == route["route_id"]


def test_a_default_route_is_stored_by_the_usage_writer_and_followable_at_once(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selecting takes no write lock: the route goes to the usage writer. A call that names it
    before the writer has stored it waits for the writer instead of answering 404."""
    market.provider("alpha.example")
    recorder = market.app.state.usage_recorder
    held: list[Any] = []  # test double: a writer that has not reached the route yet
    real_flush = recorder.flush

    def flush(timeout: float = 10.0) -> bool:
        while held:
            recorder.__class__.add_route(recorder, held.pop(0))
        return bool(real_flush(timeout))

    monkeypatch.setattr(recorder, "add_route", held.append)
    monkeypatch.setattr(recorder, "flush", flush)
    first = chat(market)
    assert first.status_code == 200, first.text
    route_id = first.json()["flow_memory"]["route_id"]
    assert [route.route_id for route in held] == [route_id]
    with market.app.state.session_factory() as session:
        assert session.get(RouteRecord, route_id) is None  # not written on the request path
    followed = chat(market, flow_memory={"route_id": route_id})
    assert followed.status_code == 200, followed.text
    assert followed.json()["flow_memory"]["route_id"] == route_id
    with market.app.state.session_factory() as session:
        stored = session.get(RouteRecord, route_id)
        assert stored is not None and stored.model == MODEL


def test_a_route_id_must_be_the_callers_live_route_for_the_model(
    market: Market, clock: FrozenClock
) -> None:
    market.provider("alpha.example")
    route = market.client.post(
        "/inference/route", json={"model": MODEL, "estimated_units": 100}, headers=market.buyer
    ).json()["route"]
    other = key_headers(market.app, "buyer-two", "inference:proxy")
    stranger = chat(market, headers={**other, "x-flow-memory-route-id": route["route_id"]})
    assert stranger.status_code == 404
    options = {"route_id": route["route_id"]}
    wrong_model = market.client.post(
        "/v1/chat/completions",
        json={
            "model": "another-model",
            "messages": [{"role": "user", "content": "hi"}],
            "flow_memory": options,
        },
        headers=market.buyer,
    )
    assert wrong_model.status_code == 409
    assert wrong_model.json()["error"]["code"] == "route_model_mismatch"
    clock.advance(seconds=3600)
    expired = chat(market, flow_memory={"route_id": route["route_id"]})
    assert expired.status_code == 409 and expired.json()["error"]["code"] == "route_expired"


def test_an_unknown_model_is_404_and_no_eligible_provider_503(market: Market) -> None:
    answer = chat(market)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "model_not_found"
    market.provider("alpha.example", price="0.000002")
    capped = chat(market, flow_memory={"market_policy": {"max_unit_price": 0.000001}})
    assert capped.status_code == 503
    assert "max_unit_price_exceeded" in capped.json()["error"]["message"]


def test_a_provider_whose_host_now_resolves_to_metadata_is_refused(market: Market) -> None:
    market.provider("metadata-trap.example", price="0.0000005")
    market.provider("beta.example", price="0.0000009")
    meta = chat(market).json()["flow_memory"]
    assert meta["attempts"][0]["outcome"] == "metadata_address"
    assert meta["provider_id"] == market.providers["beta.example"]
    assert market.upstream.to("metadata-trap.example") == []


def test_auth_scope_and_body_errors(market: Market) -> None:
    market.provider("alpha.example")
    body = {"model": MODEL, "messages": []}
    assert market.client.post("/v1/chat/completions", json=body).status_code == 401
    reader = key_headers(market.app, "reader", "inference:read")
    denied = market.client.post("/v1/chat/completions", json=body, headers=reader)
    assert denied.status_code == 403
    # A body the caller got wrong is 400, as the SDK-compatible APIs answer it.
    for bad, code in (
        (b"[1, 2]", "invalid_request"),
        (b"{not json", "invalid_json"),
        (b'{"messages": []}', "missing_field"),
    ):
        answer = market.client.post(
            "/v1/chat/completions",
            content=bad,
            headers={**market.buyer, "content-type": "application/json"},
        )
        assert answer.status_code == 400, bad
        assert answer.json()["ok"] is False
        assert answer.json()["error"]["code"] == code, bad
    leaked = chat(market, api_key="sk-live-abcdefghijklmnopqrstuvwxyz0123456789")
    assert leaked.status_code == 422
    assert "abcdefghijklmnop" not in leaked.text
    bad_option = chat(market, flow_memory={"estimated_units": 0})
    assert bad_option.status_code == 400
    assert bad_option.json()["error"]["field"] == "flow_memory.estimated_units"
    unsafe = chat(market, flow_memory={"market_policy": {"broadcast_enabled": True}})
    assert unsafe.status_code == 422
    assert market.upstream.requests == []


def test_a_prompt_is_passed_through_even_when_it_mentions_keys(market: Market) -> None:
    market.provider("alpha.example")
    long_prompt = "Explain what an api_key is. " * 400  # beyond the API's 4,096-character strings
    answer = chat(market, messages=[{"role": "user", "content": long_prompt}])
    assert answer.status_code == 200, answer.text
    sent = json.loads(market.upstream.to("alpha.example")[0].content)
    assert sent["messages"][0]["content"] == long_prompt


def test_the_model_list_shows_models_an_eligible_provider_serves(market: Market) -> None:
    market.provider("alpha.example")
    market.provider("beta.example", api="messages", model=MESSAGES_MODEL)
    answer = market.client.get("/v1/models", headers=market.buyer)
    assert answer.status_code == 200
    models = {m["id"]: m for m in answer.json()["data"]}
    assert set(models) == {MODEL, MESSAGES_MODEL}
    assert models[MODEL]["flow_memory"]["eligible_providers"] == 1
    assert models[MESSAGES_MODEL]["flow_memory"]["compatible_apis"] == ["messages"]


def test_the_sdk_client_works_unchanged(market: Market) -> None:
    market.provider("alpha.example")
    token = market.buyer["authorization"].removeprefix("Bearer ")
    sdk = openai.OpenAI(
        base_url="http://testserver/v1", api_key=token, http_client=market.client, max_retries=0
    )
    completion = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert completion.choices[0].message.content == "Hello there"
    assert completion.model_extra is not None and "flow_memory" in completion.model_extra
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        if chunk.choices
    ]
    assert "".join(pieces) == "Hello"
    assert sdk.embeddings.create(model=MODEL, input="hello").data[0].embedding == [0.1, 0.2, 0.3]
    assert [m.id for m in sdk.models.list()] == [MODEL]


def test_the_sdk_client_raises_on_a_cut_stream(market: Market) -> None:
    market.upstream.handlers["alpha.example"] = lambda r: httpx.Response(
        200, content=b'data: {"id": "c", "object": "chat.completion.chunk", "choices": []}\n\n'
    )
    market.provider("alpha.example")
    token = market.buyer["authorization"].removeprefix("Bearer ")
    sdk = openai.OpenAI(
        base_url="http://testserver/v1", api_key=token, http_client=market.client, max_retries=0
    )
    with pytest.raises(openai.APIError, match="incomplete"):
        list(
            sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )


def test_default_routes_are_reused_while_fresh(database_url: str, clock: FrozenClock) -> None:
    with scripted_market(database_url, clock, proxy_route_cache_seconds=60) as market:
        app, client, upstream = market.app, market.client, market.upstream
        market.provider("alpha.example")
        first = chat(market).json()["flow_memory"]["route_id"]
        assert chat(market).json()["flow_memory"]["route_id"] == first
        other_task = chat(market, flow_memory={"task_id": "task-2"}).json()["flow_memory"]
        assert other_task["route_id"] != first
        # Revoking the provider's reference forgets cached routes at once: no call reaches it.
        refs = client.get("/inference/credential-refs", headers=admin_headers(app)).json()
        (ref,) = [r for r in refs["credential_refs"] if r["credential_ref"].endswith("/alpha")]
        revoked = client.post(
            f"/inference/credential-refs/{ref['credential_ref_id']}/revoke",
            json={"revoke_reason": "compromised"},
            headers=admin_headers(app),
        )
        assert revoked.status_code == 200, revoked.text
        calls = len(upstream.requests)
        assert chat(market).status_code == 503
        assert len(upstream.requests) == calls


def test_concurrent_calls_that_miss_the_route_cache_select_one_route(
    database_url: str, clock: FrozenClock
) -> None:
    with scripted_market(database_url, clock, proxy_route_cache_seconds=60) as market:
        market.provider("alpha.example")

        async def burst() -> set[str]:
            transport = httpx.ASGITransport(app=market.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fm") as proxy:
                body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
                answers = await asyncio.gather(
                    *(
                        proxy.post("/v1/chat/completions", json=body, headers=market.buyer)
                        for _ in range(8)
                    )
                )
            assert all(a.status_code == 200 for a in answers)
            return {a.json()["flow_memory"]["route_id"] for a in answers}

        assert len(asyncio.run(burst())) == 1


def test_an_unsafe_secrets_file_sends_nothing_and_says_so(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"secret://inference/alpha": SECRET}))
    secrets.chmod(0o644)  # readable by others: the operator's mistake
    with scripted_market(database_url, clock, secrets_file=str(secrets)) as market:
        market.provider("alpha.example")
        answer = chat(market)
        assert answer.status_code == 502
        assert "credential_unavailable" in answer.json()["error"]["message"]
        assert SECRET not in answer.text
        assert market.upstream.requests == []


def test_sdk_calls_get_the_same_access_log_line_as_every_route(
    market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flow_memory.http")
    market.provider("alpha.example")
    assert chat(market).status_code == 200
    assert market.client.post("/v1/embeddings", json={"model": MODEL}).status_code == 401
    assert market.client.get("/v1/models", headers=market.buyer).status_code == 200
    lines = [
        r.getMessage().rsplit(" ", 1)[0]
        for r in caplog.records
        if r.name == "flow_memory.http" and " /v1/" in r.getMessage()
    ]
    assert lines == [
        "POST /v1/chat/completions 200",
        "POST /v1/embeddings 401",
        "GET /v1/models 200",
    ]


def test_the_declared_routes_answer_alike_without_the_lean_edge(market: Market) -> None:
    """The routes in the OpenAPI document work on their own too (the edge only goes first)."""
    app = market.app
    app.user_middleware = [m for m in app.user_middleware if m.cls is not ProxyEdge]
    app.middleware_stack = None  # rebuilt without the edge on the next request
    market.provider("alpha.example")
    answer = chat(market)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Hello there"
    assert answer.headers["x-flow-memory-route-id"] == answer.json()["flow_memory"]["route_id"]
    streamed = chat(market, stream=True)
    assert _events(streamed.text)[-1]["flow_memory"]["usage"]["units"] == 9
    assert market.client.post("/v1/chat/completions", json={"model": MODEL}).status_code == 401
    assert len(market.usage()["records"]) == 2


def test_routing_fields_are_checked_on_every_call_not_only_the_first(market: Market) -> None:
    market.provider("alpha.example")
    for _ in range(2):
        assert chat(market, user="team-blue", temperature=0).status_code == 200
    for _ in range(2):
        refused = chat(market, user="sk-live-abcdefghijklmnopqrstuvwxyz0123456789", temperature=0)
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "user"


def test_a_client_gone_before_its_stream_starts_is_recorded_and_its_answer_closed(
    market: Market,
) -> None:
    provider_id = market.provider("alpha.example")
    body = json.dumps(
        {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Say hello"}]}
    ).encode()
    headers = [(k.encode(), v.encode()) for k, v in market.buyer.items()]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [*headers, (b"content-type", b"application/json")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
    }
    sent: list[str] = []

    async def scenario() -> None:
        gone = asyncio.Event()
        requests = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if requests:
                return requests.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            if message["type"] == "http.response.start":
                gone.set()  # the client leaves while the answer's start is still being sent
                await asyncio.sleep(10)

        await market.app(scope, receive, send)

    asyncio.run(scenario())
    assert sent == ["http.response.start"]
    market.flushed()
    with market.app.state.session_factory() as session:
        rows = session.execute(
            text("SELECT decision, provider_id FROM usage_records WHERE source = 'proxy'")
        ).all()
    assert [tuple(r) for r in rows] == [("client_disconnected", provider_id)]

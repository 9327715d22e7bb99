"""The order edge (flow_memory/market/edge.py) answers well-formed orders itself and hands every
other order request, byte for byte, to the full stack, which answers it as before."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from flow_memory.kit.edge import Edge, EdgeRoute
from flow_memory.kit.http import SafetyGuardMiddleware
from flow_memory.market.edge import ORDER_ROUTE
from tests.api.test_market_orders import (
    ORDERS,
    ask_body,
    bid_body,
)
from tests.assertions import assert_safety, ok
from tests.factories import eligible_provider, seller_headers

# Each test runs with the market in the app's process and in a process of its own.
BOTH_MARKETS = True

Headers = dict[str, str]


class RecordingStack:
    """Test double for the full stack behind the edge: records what reaches it, answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.bodies.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call_edge(
    app: FastAPI,
    body: bytes,
    headers: Headers,
    *,
    query: bytes = b"",
    content_type: bytes | None = b"application/json",
    chunk: int | None = None,
    sent: list[Message] | None = None,
    route: EdgeRoute = ORDER_ROUTE,
    path: str = ORDERS,
) -> tuple[int, dict[str, Any] | None, RecordingStack]:
    """Send one request through an edge whose full stack is the recording double; the messages
    the edge sends are appended to ``sent`` when it is given."""
    stack = RecordingStack()
    settings = app.state.settings
    guard = SafetyGuardMiddleware(
        stack,
        max_body_bytes=settings.max_body_bytes,
        max_string_length=settings.max_string_length,
        max_list_length=settings.max_list_length,
    )
    edge = Edge(stack, routes=[(route, guard)])
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if content_type is not None:
        raw_headers.append((b"content-type", content_type))
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": raw_headers,
        "app": app,
    }
    size = chunk or max(1, len(body))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent = [] if sent is None else sent

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        await edge(scope, receive, send)

    asyncio.run(run())
    status = sent[0]["status"]
    body_out = b"".join(m.get("body", b"") for m in sent[1:])
    return status, (json.loads(body_out) if body_out else None), stack


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_a_well_formed_order_is_placed_by_the_edge(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    status, answer, stack = call_edge(app, encoded(bid_body(1000, 0.0000008)), buyer)
    assert status == 201 and stack.bodies == []
    assert answer is not None and answer["ok"] is True
    assert answer["order"]["status"] == "open" and answer["order"]["units"] == 1000
    assert_safety(answer)
    # The full stack (reached here with a query string) answers the same shape.
    full = ok(
        client.post(f"{ORDERS}?via=stack", json=bid_body(1000, 0.0000008), headers=buyer), 201
    )
    assert full.keys() == answer.keys()
    assert full["order"].keys() == answer["order"].keys()


def test_an_ask_with_its_provider_is_placed_by_the_edge(app: FastAPI, client: TestClient) -> None:
    seller = seller_headers(app)
    provider_id = str(eligible_provider(client, seller)["provider_id"])
    status, answer, stack = call_edge(
        app, encoded(ask_body(provider_id, 1000, 0.0000007)), seller, chunk=7
    )
    assert (status, stack.bodies) == (201, [])
    assert answer is not None and answer["order"]["provider_id"] == provider_id


@pytest.mark.parametrize(
    ("case", "body", "options"),
    [
        ("query string", encoded(bid_body(1000, 0.0000008)), {"query": b"a=1"}),
        ("form body", b"side=bid", {"content_type": b"application/x-www-form-urlencoded"}),
        ("not JSON", b"{not json", {}),
        ("not an object", b"[1, 2]", {}),
        ("schema", encoded(bid_body(0, 0.0000008)), {}),
        ("unknown field", encoded(bid_body(1000, 0.0000008, colour="red")), {}),
        (
            "forbidden material",
            encoded(bid_body(1000, 0.0000008, metadata={"api_key": "sk-live-abcdef0123456789"})),
            {},
        ),
        (
            "too deep",
            encoded(
                bid_body(1000, 0.0000008, metadata={"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]})
            ),
            {},
        ),
    ],
)
def test_anything_else_reaches_the_full_stack_unchanged(
    app: FastAPI, buyer: Headers, case: str, body: bytes, options: dict[str, Any]
) -> None:
    status, _, stack = call_edge(app, body, buyer, chunk=5, **options)
    assert (status, stack.bodies) == (299, [body]), case


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer fm_unknown"},
        {"x-flow-memory-scopes": "inference:read"},
    ],
)
def test_a_caller_without_a_trading_key_reaches_the_full_stack(
    app: FastAPI, buyer: Headers, headers: Headers
) -> None:
    sent = {**buyer, **headers} if headers.get("x-flow-memory-scopes") else headers
    body = encoded(bid_body(1000, 0.0000008))
    status, _, stack = call_edge(app, body, sent)
    assert (status, stack.bodies) == (299, [body])


def test_an_oversized_body_is_handed_on_whole(app: FastAPI, buyer: Headers) -> None:
    limit = app.state.settings.max_body_bytes
    body = b'{"side": "bid", "metadata": {"note": "' + b"x" * limit + b'"}}'
    status, _, stack = call_edge(app, body, buyer, chunk=65_536)
    assert (status, stack.bodies) == (299, [body])


def test_an_oversized_body_in_one_piece_is_handed_on(app: FastAPI, buyer: Headers) -> None:
    body = encoded(bid_body(1000, 0.0000001, metadata={"note": ["x" * 4000] * 300}))
    assert len(body) > app.state.settings.max_body_bytes
    status, _, stack = call_edge(app, body, buyer)  # its only chunk: nothing left unread
    assert (status, stack.bodies) == (299, [body])


def test_an_oversized_order_is_refused_as_the_full_stack_refuses_it(
    client: TestClient, buyer: Headers
) -> None:
    body = encoded(bid_body(1000, 0.0000001, metadata={"note": ["x" * 4000] * 300}))
    headers = {**buyer, "content-type": "application/json"}
    response = client.post(ORDERS, content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_the_full_stack_answers_refusals_as_before(client: TestClient, buyer: Headers) -> None:
    answer = client.post(ORDERS, json=bid_body(1000, 0.0000008, colour="red"), headers=buyer)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "unknown_field"
    answer = client.post(
        ORDERS, content=b"{not json", headers={**buyer, "content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_json"


def test_the_edge_answers_with_the_headers_of_the_full_stack(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    sent: list[Message] = []
    status, _, stack = call_edge(app, encoded(bid_body(1000, 0.0000008)), buyer, sent=sent)
    assert (status, stack.bodies) == (201, [])
    full = client.post(f"{ORDERS}?via=stack", json=bid_body(1000, 0.0000008), headers=buyer)
    assert full.status_code == 201
    edge_headers = [(name.decode(), value.decode()) for name, value in sent[0]["headers"]]
    assert [name for name, _ in edge_headers] == [name for name, _ in full.headers.items()]
    assert dict(edge_headers)["content-type"] == full.headers["content-type"]
    assert dict(edge_headers)["content-length"] == str(len(sent[1]["body"]))


def test_a_placement_refused_by_the_market_is_answered_as_the_full_stack_answers(
    app: FastAPI, client: TestClient
) -> None:
    seller = seller_headers(app)
    order = ask_body("prov_unknown", 1000, 0.0000007)
    sent: list[Message] = []
    status, answer, stack = call_edge(app, encoded(order), seller, sent=sent)
    assert stack.bodies == [] and answer is not None
    full = client.post(f"{ORDERS}?via=stack", json=order, headers=seller)
    assert status == full.status_code and status >= 400
    assert answer == full.json()
    assert_safety(answer)
    edge_headers = {name.decode(): value.decode() for name, value in sent[0]["headers"]}
    assert edge_headers == dict(full.headers.items())


def test_an_order_for_another_buyer_is_refused_alike_by_the_edge_and_the_route(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    order = bid_body(1000, 0.0000008, buyer_id="agent-research-2")
    sent: list[Message] = []
    status, answer, stack = call_edge(app, encoded(order), buyer, sent=sent)
    assert (status, stack.bodies) == (403, []) and answer is not None
    assert answer["error"]["code"] == "identity_not_yours"
    full = client.post(f"{ORDERS}?via=stack", json=order, headers=buyer)
    assert (full.status_code, full.json()) == (status, answer)
    edge_headers = {name.decode(): value.decode() for name, value in sent[0]["headers"]}
    assert edge_headers == dict(full.headers.items())
    # Neither placed it.
    assert (
        client.get(
            "/inference/market/depth",
            params={"model": "flow-memory-orchestrator", "unit_type": "token"},
            headers=buyer,
        ).json()["bids"]
        == []
    )


class BrokenMarket:
    """Test double for the market: every command fails as a defect would."""

    async def run(self, command: object) -> object:
        raise RuntimeError("the market broke")

    def execute(self, command: object) -> object:
        raise RuntimeError("the market broke")

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_an_unexpected_error_is_answered_as_the_full_stack_answers_it(
    app: FastAPI, buyer: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    app.state.market = BrokenMarket()
    client = TestClient(app, raise_server_exceptions=False)
    order = bid_body(1000, 0.0000008)
    edge = client.post(ORDERS, json=order, headers=buyer)
    full = client.post(f"{ORDERS}?via=stack", json=order, headers=buyer)
    assert edge.status_code == full.status_code == 500
    assert edge.json() == full.json()
    assert edge.json()["error"]["code"] == "internal_error"
    assert_safety(edge.json())
    assert dict(edge.headers.items()) == dict(full.headers.items())
    logged = [r.getMessage() for r in caplog.records if r.name == "flow_memory.http"]
    assert logged.count("unhandled error: RuntimeError") == 2


# -- the edge is a second implementation of the route: these fail when the two drift apart --


def _dependencies(dependant: Any) -> list[str]:
    names = []
    for sub in dependant.dependencies:
        call = sub.call
        names.append(getattr(call, "__name__", type(call).__name__))
        names += _dependencies(sub)
    return names


def test_the_route_runs_no_dependency_the_edge_does_not(app: FastAPI) -> None:
    from fastapi.routing import APIRoute

    from flow_memory.market.api import router

    [route] = [
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == ORDERS and "POST" in r.methods
    ]
    # What the edge does for each: get_market reads app.state.market; require_buy_or_sell
    # authenticates and checks TRADER_SCOPES; HTTPBearer only documents the scheme; the app's
    # refuse_unstorable_path_parameters has no path parameter to check on this route.
    assert _dependencies(route.dependant) == ["get_market", "require_buy_or_sell", "HTTPBearer"], (
        "the order route gained a dependency: make the order edge (flow_memory/market/edge.py) "
        "do what it does, then list it here"
    )
    # authenticate_first runs the route's own auth dependency (the edge authenticates first).
    app_level = [d.dependency.__name__ for d in app.router.dependencies if d.dependency]
    assert app_level == ["authenticate_first", "refuse_unstorable_path_parameters"]


def test_the_edge_answers_ahead_of_only_the_middleware_it_does_the_work_of(app: FastAPI) -> None:
    # Outermost first. The edge runs the guard's body checks and writes the access log line
    # itself; the proxy's edge never sees this path.
    assert [m.cls.__name__ for m in app.user_middleware] == [  # type: ignore[attr-defined]
        "Edge",
        "ProxyEdge",
        "GuardExceptProxy",
        "AccessLogMiddleware",
    ], "new middleware: make the order edge do its work too, then list it here"


def _without_ids(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with its generated ids replaced by their place in it."""
    text = json.dumps(answer)
    for index, found in enumerate(dict.fromkeys(re.findall(r"(?:ord|fill)_[a-z0-9]+", text))):
        text = text.replace(found, f"id-{index}")
    result: dict[str, Any] = json.loads(text)
    return result


def test_the_edge_and_the_route_answer_the_same_bodies(
    app: FastAPI, client: TestClient, buyer: Headers
) -> None:
    seller = seller_headers(app)
    provider_id = str(eligible_provider(client, seller)["provider_id"])
    ok(client.post(ORDERS, json=ask_body(provider_id, 1_000_000, 0.0000007), headers=seller), 201)
    for order in [
        bid_body(1000, 0.0000008, metadata={"task_id": "t-1"}),  # fills
        bid_body(1000, 0.0000006, buyer_id="agent-research-1"),  # rests
        bid_body(1000, 0.0000006, time_in_force="ioc"),  # expires
    ]:
        status, edge_answer, stack = call_edge(app, encoded(order), buyer)
        assert (status, stack.bodies) == (201, [])
        assert edge_answer is not None
        full = client.post(f"{ORDERS}?via=stack", json=order, headers=buyer)
        assert full.status_code == 201, full.text
        assert _without_ids(edge_answer) == _without_ids(full.json())

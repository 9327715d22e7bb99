"""``POST /inference/market/orders`` served straight from ASGI, ahead of the router and its
middleware: the order route is the market's hottest, and at thousands of orders a second the
generic request machinery costs more than placing the order.

The edge runs the same checks as the full stack (the safety guard's body checks, the key and
its scopes, the body's schema) and places the order through the same function as the route
(``flow_memory.market.api.place``). Any request it would refuse, or does not expect (a query
string, another content type, a body that is not a JSON object), it hands on unchanged to the
full stack, which answers it exactly as before; the route stays declared there for the OpenAPI
document.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.kit.http import (
    SafetyGuardMiddleware,
    error_response,
    log_access,
    replay_body,
)
from flow_memory.market.api import authorize_trader, place
from flow_memory.market.schemas import OrderCreate

PATH = "/inference/market/orders"
JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")


class OrderEdge:
    """ASGI middleware: places well-formed orders itself and passes everything else on."""

    def __init__(self, app: ASGIApp, *, guard: SafetyGuardMiddleware) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body, more = await _read_body(receive, self.guard.max_body_bytes)
        accepted = None if more else await self._accept(scope, receive, body)
        if accepted is None:
            await self.app(scope, replay_body(body, receive, more=more), send)
            return
        principal, order = accepted
        state = scope["app"].state
        status = 500
        try:
            answer = await place(
                order,
                principal,
                clock=state.clock,
                settings=state.settings,
                markets=state.markets,
                writer=state.market_writer,
            )
        except FlowMemoryError as error:
            answer = error_response(error)
        try:
            status = answer.status_code
            await answer(scope, receive, send)
        finally:
            log_access(scope, status, started)

    async def _accept(
        self, scope: Scope, receive: Receive, body: bytes
    ) -> tuple[Principal, OrderCreate] | None:
        """The caller and the order, or None when the full stack should answer."""
        if scope.get("query_string") or _content_type(scope) not in JSON_TYPES:
            return None
        try:
            document = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, dict):
            return None
        try:
            self.guard.check_document(document)
            principal = await authorize_trader(Request(scope, receive), None)
            return principal, OrderCreate.model_validate(document)
        except (FlowMemoryError, ValidationError):
            return None


def _content_type(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).lower()
    return b"application/json"  # none given: the full stack parses the body as JSON too


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body, and whether more of it is left unread (it went past ``limit``)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if not more:
            return b"".join(chunks), False
        if size > limit:
            return b"".join(chunks), True

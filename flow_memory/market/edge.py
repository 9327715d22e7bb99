"""``POST /inference/market/orders`` served straight from ASGI, ahead of the router and its
middleware: the order route is the market's hottest, and at thousands of orders a second the
generic request machinery costs more than placing the order.

The edge runs the same checks as the full stack (the safety guard's body checks, the key and
its scopes, the body's schema) and places the order through the same market as the route
(``flow_memory.market.gateway``). Any request it would refuse, or does not expect (a query
string, another content type, a body that is not a JSON object), it hands on unchanged to the
full stack, which answers it exactly as before; the route stays declared there for the OpenAPI
document.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from flow_memory.kit import jsonenc
from flow_memory.kit.deps import SCOPES_HEADER, Principal, authenticate, ensure_scopes
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.kit.http import (
    SafetyGuardMiddleware,
    error_body,
    error_headers,
    log_access,
    replay_body,
    send_json,
    success_body,
)
from flow_memory.market.api import TRADER_SCOPES
from flow_memory.market.orders import PlaceOrder
from flow_memory.market.schemas import OrderCreate

PATH = "/inference/market/orders"
JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")
# json.loads builds a decoder on every call that passes parse_float; this one is built once.
_DECODER = json.JSONDecoder(parse_float=Decimal)
_SCOPES_HEADER = SCOPES_HEADER.encode()


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
        # A body past the limit goes to the full stack, whose guard refuses it (413).
        too_large = more or len(body) > self.guard.max_body_bytes
        accepted = None if too_large else await self._accept(scope, body)
        if accepted is None:
            await self.app(scope, replay_body(body, receive, more=more), send)
            return
        principal, order = accepted
        state = scope["app"].state
        status = 500
        headers = None
        try:
            placed = await state.market.run(PlaceOrder(principal, order))
            status, content = 201, jsonenc.render(success_body(placed))
        except FlowMemoryError as error:
            body_out = error_body(error.code, error.message, error.field, error.hint)
            status, content = error.status_code, jsonenc.render(body_out)
            headers = error_headers(error)  # retry-after, as the full stack sends it
        try:
            await send_json(send, status, content, headers)
        finally:
            log_access(scope, status, started, route=PATH)

    async def _accept(self, scope: Scope, body: bytes) -> tuple[Principal, OrderCreate] | None:
        """The caller and the order, or None when the full stack should answer."""
        if scope.get("query_string"):
            return None
        content_type, authorization, narrowing = _headers(scope)
        if content_type not in JSON_TYPES:
            return None
        try:
            # What json.loads does with bytes, with the decoder built once.
            document = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, dict):
            return None
        try:
            self.guard.check_document(document)
            principal = await authenticate(
                authorization, narrowing, scope["app"].state.read_session_factory
            )
            ensure_scopes(principal, TRADER_SCOPES)
            return principal, OrderCreate.model_validate(document)
        except (FlowMemoryError, ValidationError):
            return None


def _headers(scope: Scope) -> tuple[bytes, str, str | None]:
    """Content type (lowercased), authorization and x-flow-memory-scopes, each the first sent,
    read as Starlette reads them (latin-1)."""
    content_type: bytes | None = None
    authorization: str | None = None
    narrowing: str | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is None:
                content_type = bytes(value).lower()
        elif name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == _SCOPES_HEADER and narrowing is None:
            narrowing = value.decode("latin-1")
    if content_type is None:
        content_type = b"application/json"  # none given: the full stack parses it as JSON too
    return content_type, authorization or "", narrowing


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

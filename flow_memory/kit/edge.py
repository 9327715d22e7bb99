"""The hottest write routes served straight from ASGI, ahead of the router and its middleware:
at hundreds or thousands of requests a second the generic request machinery (middleware,
routing, dependency injection, a thread-pool hop) costs more than the work itself.

The edge runs the same checks as the full stack (the safety guard's body checks, the key and
its scopes, the body's schema) and hands the parsed request to the route's own ``answer``,
which does the work through the same use cases as the declared route. Any request it would
refuse, or does not expect (a query string, another content type, a body that is not a JSON
object, a path parameter the full stack refuses), it hands on unchanged to the full stack,
which answers it exactly as before; each route stays declared there for the OpenAPI document.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import State
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

JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")
# json.loads builds a decoder on every call that passes parse_float; this one is built once.
_DECODER = json.JSONDecoder(parse_float=Decimal)
_SCOPES_HEADER = SCOPES_HEADER.encode()

# What a route's answer gives: the status and the payload, rendered as the full stack renders
# a success (``ok`` first, the safety envelope last).
Answer = tuple[int, Mapping[str, Any]]


@dataclass(frozen=True)
class EdgeRoute:
    """One POST route the edge serves. ``pattern`` fullmatches the path; its named groups are
    the path parameters handed to ``answer``, which runs the route's use case."""

    template: str  # the route's path template, as the access log and /metrics name it
    pattern: re.Pattern[str]
    scopes: tuple[str, ...]  # any one of them (admin satisfies any), as the route demands
    schema: type[BaseModel]
    answer: Callable[[State, Principal, Any, dict[str, str]], Awaitable[Answer]]


class Edge:
    """ASGI middleware: answers well-formed requests to its routes and passes everything else
    on. Each route comes with the guard whose bounds the full stack applies to its path."""

    def __init__(
        self, app: ASGIApp, *, routes: Sequence[tuple[EdgeRoute, SafetyGuardMiddleware]]
    ) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _match(self.routes, scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        route, guard, params = found
        started = time.perf_counter()
        body, more = await _read_body(receive, guard.max_body_bytes)
        # A body past the limit goes to the full stack, whose guard refuses it (413).
        too_large = more or len(body) > guard.max_body_bytes
        accepted = None if too_large else await _accept(route, guard, scope, body)
        if accepted is None:
            await self.app(scope, replay_body(body, receive, more=more), send)
            return
        principal, parsed = accepted
        status = 500
        headers = None
        try:
            status, payload = await route.answer(scope["app"].state, principal, parsed, params)
            content = jsonenc.render(success_body(payload))
        except FlowMemoryError as error:
            body_out = error_body(error.code, error.message, error.field, error.hint)
            status, content = error.status_code, jsonenc.render(body_out)
            headers = error_headers(error)  # retry-after, as the full stack sends it
        try:
            await send_json(send, status, content, headers)
        finally:
            log_access(scope, status, started, route=route.template)


def _match(
    routes: tuple[tuple[EdgeRoute, SafetyGuardMiddleware], ...], scope: Scope
) -> tuple[EdgeRoute, SafetyGuardMiddleware, dict[str, str]] | None:
    if scope["method"] != "POST":
        return None
    path = scope["path"]
    for route, guard in routes:
        matched = route.pattern.fullmatch(path)
        if matched is not None:
            return route, guard, matched.groupdict()
    return None


async def _accept(
    route: EdgeRoute, guard: SafetyGuardMiddleware, scope: Scope, body: bytes
) -> tuple[Principal, Any] | None:
    """The caller and the parsed body, or None when the full stack should answer."""
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
        guard.check_document(document)
        principal = await authenticate(
            authorization, narrowing, scope["app"].state.read_session_factory
        )
        ensure_scopes(principal, route.scopes)
        return principal, route.schema.model_validate(document)
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

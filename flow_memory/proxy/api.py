"""SDK-compatible routes: /v1/models, /v1/chat/completions, /v1/responses, /v1/embeddings.

A request body is what an SDK client sends, plus an optional ``flow_memory`` object of routing
options (or the ``x-flow-memory-*`` headers). Prompts and completions pass through: they are
never stored or logged. The answer is the provider's, plus a ``flow_memory`` object.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SettingsDep,
    require_scopes,
    transaction,
)
from flow_memory.kit.errors import FlowMemoryError, NotFound, PayloadTooLarge
from flow_memory.kit.http import FlowJSONResponse, error_body
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.schemas import ERROR_RESPONSES, ErrorEnvelope
from flow_memory.kit.scopes import PROXY
from flow_memory.proxy import catalog, sse, translate
from flow_memory.proxy.bodies import read_call
from flow_memory.proxy.client import BODY_ERRORS, Opened, UpstreamClient, UpstreamUnavailable
from flow_memory.proxy.metrics import call_ended
from flow_memory.proxy.paying import hold_estimate, needs_hold
from flow_memory.proxy.recorder import UsageRecorder
from flow_memory.proxy.schemas import (
    DEFAULT_OPTIONS,
    DEFAULT_OPTIONS_KEY,
    ROUTE_HEADER,
    ModelList,
    ProxiedAnswer,
    ProxyOptions,
    option_source,
)
from flow_memory.proxy.service import (
    Kind,
    Plan,
    PlanCache,
    Target,
    for_this_call,
    metadata,
    plan_for_route,
    plan_fresh,
    usage_record,
)
from flow_memory.proxy.translate import Json, Usage
from flow_memory.proxy.wire import WireResponse, read_within
from flow_memory.settings import Settings

PROXY_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    502: {
        "model": ErrorEnvelope,
        "description": "No provider answered, or its answer was not JSON",
    },
    503: {
        "model": ErrorEnvelope,
        "description": "No provider can serve the model under the policy",
    },
}
router = APIRouter(prefix="/v1", tags=["proxy"], responses=PROXY_RESPONSES)
authorize_proxy = require_scopes(PROXY)
ProxyCaller = Annotated[Principal, Depends(authorize_proxy)]

UPSTREAM_PATHS = {
    "chat": "/chat/completions",
    "responses": "/responses",
    "embeddings": "/embeddings",
}


def _request_schema(kind: str, required: list[str]) -> dict[str, Any]:
    """The documented body: the SDK's own fields stay open; ``flow_memory`` is described."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": required,
                        "additionalProperties": True,
                        "properties": {
                            "model": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$",
                            },
                            "stream": {"type": "boolean"},
                            "flow_memory": _inlined(ProxyOptions.model_json_schema()),
                        },
                        "description": f"An SDK-compatible {kind} request; optional routing "
                        "options in flow_memory",
                    }
                }
            },
        }
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` references replaced by the definitions."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(definitions[ref.removeprefix("#/$defs/")])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def _json_answer(kind: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "model": ProxiedAnswer,
            "description": f"The provider's {kind} answer plus a flow_memory object "
            "(or, when streamed, server-sent events whose last one carries it)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }


@router.get(
    "/models",
    name="proxyModels",
    summary="SDK-compatible model list: models an eligible provider serves now",
    response_model=ModelList,
)
def list_models(
    session: ReadSessionDep, clock: ClockDep, settings: SettingsDep, _caller: ProxyCaller
) -> FlowJSONResponse:
    return model_list(session, settings=settings, now=clock.now())


@router.post(
    "/chat/completions",
    name="proxyChatCompletions",
    summary="SDK-compatible chat completions, routed to a provider",
    openapi_extra=_request_schema("chat completions", ["model", "messages"]),
    responses=_json_answer("chat completion"),
)
async def chat_completions(caller: ProxyCaller) -> Response:
    return ProxyCall(caller, "chat")


@router.post(
    "/responses",
    name="proxyResponses",
    summary="SDK-compatible responses, routed to a provider",
    openapi_extra=_request_schema("responses", ["model", "input"]),
    responses=_json_answer("response"),
)
async def responses(caller: ProxyCaller) -> Response:
    return ProxyCall(caller, "responses")


@router.post(
    "/embeddings",
    name="proxyEmbeddings",
    summary="SDK-compatible embeddings, routed to a provider",
    openapi_extra=_request_schema("embeddings", ["model", "input"]),
    responses=_json_answer("embeddings"),
)
async def embeddings(caller: ProxyCaller) -> Response:
    return ProxyCall(caller, "embeddings")


def model_list(session: Session, *, settings: Settings, now: datetime) -> FlowJSONResponse:
    """The body of ``GET /v1/models``."""
    return FlowJSONResponse(
        {
            "object": "list",
            "data": catalog.served_models(session, settings=settings, now=now),
            "flow_memory": dict(SAFETY_ENVELOPE),
        }
    )


class ProxyCall(Response):
    """The routes' answer: the call is made when the answer is sent, straight over ASGI."""

    def __init__(self, caller: Principal, kind: Kind) -> None:
        super().__init__()
        self.caller = caller
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_call(scope, receive, send, caller=self.caller, kind=self.kind)


# -- the call ------------------------------------------------------------------------------


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; the first of repeated names wins."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes", field="body")
    raw: bytes = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone()
        raw += message.get("body", b"")
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", field="body")
        if not message.get("more_body", False):
            break
    return raw


async def _plan(
    state: State, caller: Principal, kind: Kind, model: str, options: ProxyOptions
) -> Plan:
    now = state.clock.now()
    if options.route_id is not None:
        route_id = options.route_id

        def follow() -> Plan:
            try:
                return _follow(state, caller, route_id, kind, model, now)
            except NotFound:
                # A route this server chose a moment ago may still be queued to be written.
                if not state.usage_recorder.flush():
                    raise
                return _follow(state, caller, route_id, kind, model, now)

        return await run_in_threadpool(follow)
    cache: PlanCache = state.proxy_plans
    chosen = DEFAULT_OPTIONS_KEY if options is DEFAULT_OPTIONS else options.model_dump_json()
    key = (caller.owner_id, kind, model, chosen)
    cached, due = cache.lookup(key, now)
    if cached is not None:
        if due:
            cache.refresh(
                key,
                lambda: run_in_threadpool(
                    _select_plan, state, caller, kind, model, options, state.clock.now()
                ),
            )
        return cached
    async with cache.selecting(key):
        cached = cache.get(key, now)
        if cached is not None:
            return cached
        generation = cache.generation
        plan = await run_in_threadpool(_select_plan, state, caller, kind, model, options, now)
        cache.put(key, plan, generation=generation)
        return plan


def _follow(
    state: State, caller: Principal, route_id: str, kind: Kind, model: str, now: datetime
) -> Plan:
    with transaction(state.read_session_factory) as session:
        return plan_for_route(
            session,
            principal=caller,
            route_id=route_id,
            model=model,
            kind=kind,
            settings=state.settings,
            now=now,
        )


def _select_plan(
    state: State, caller: Principal, kind: Kind, model: str, options: ProxyOptions, now: datetime
) -> Plan:
    """Select in a read session (no write lock on the request path); the usage writer stores
    the chosen route, ahead of the calls that use it."""
    with transaction(state.read_session_factory) as session:
        return plan_fresh(
            session,
            principal=caller,
            model=model,
            kind=kind,
            options=options,
            settings=state.settings,
            now=now,
            keep=state.usage_recorder.add_route,
        )


def _builder(kind: Kind, body: Json, stream: bool) -> Any:
    def build(target: Target) -> tuple[str, Json]:
        if target.translation is None:
            upstream = dict(body)
            if stream and kind == "chat" and "stream_options" not in upstream:
                upstream["stream_options"] = {"include_usage": True}
            return UPSTREAM_PATHS[kind], upstream
        chat = translate.responses_to_chat_request(body) if kind == "responses" else body
        if target.translation == "chat":
            if stream:
                chat = {**chat, "stream_options": {"include_usage": True}}
            return "/chat/completions", chat
        return "/messages", translate.chat_to_messages_request(chat)

    return build


STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


async def serve_call(
    scope: Scope, receive: Receive, send: Send, *, caller: Principal, kind: Kind
) -> int:
    """Read, route and answer one SDK call; returns the status sent. A FlowMemoryError raised
    here is raised before anything was sent, for the caller to render."""
    state: State = scope["app"].state
    started = time.perf_counter()
    headers = request_headers(scope)
    raw = await _read_body(receive, headers, state.settings.proxy_max_body_bytes)
    # Every client mistake is answered here, before a route is selected or a provider called.
    checked = read_call(raw, kind, headers)
    body, options = checked.body, checked.options
    if options.agent_id is not None:
        field = option_source(checked.sent_options, "agent_id")
        ensure_may_act_as(caller, options.agent_id, field=field)
    model: str = body["model"]
    stream = body.get("stream") is True and kind != "embeddings"
    plan = for_this_call(await _plan(state, caller, kind, model, options), kind, body, options)
    if state.settings.ledger_charges and needs_hold(state.proxy_enforcement, plan):
        # An enforced payer's estimate is held (or refused, 402) before any provider is called.
        hold_id = await run_in_threadpool(
            hold_estimate,
            state.read_session_factory,
            state.session_factory,
            state.proxy_enforcement,
            plan,
            now=state.clock.now(),
        )
        if hold_id is not None:
            plan = replace(plan, hold_id=hold_id)
    client: UpstreamClient = state.proxy_client
    route = [(ROUTE_HEADER.encode(), plan.route_id.encode())]
    watch = DisconnectWatch(receive)
    asked = time.perf_counter()
    try:
        try:
            opened = await client.open_first(plan, _builder(kind, body, stream))
        except asyncio.CancelledError:
            if watch.stop():
                _record_unanswered(state, plan, kind, started, asked, "client_disconnected")
                raise ClientGone() from None
            raise
        except UpstreamUnavailable:
            _record_unanswered(state, plan, kind, started, asked, "upstream_failed")
            raise
        call = Call(state, plan, kind, body, opened, started, asked=asked)
        if opened.response.status_code >= 400 or not stream:
            try:
                status, content = await call.answer_whole()
            except asyncio.CancelledError:
                if watch.stop():
                    if not call.recorded:
                        call._finish(Usage(0, 0), "client_disconnected")
                    raise ClientGone() from None
                raise
            # Stopped before the last message: after it, receive() reports a disconnect.
            watch.stop()
            head = [
                (b"content-length", str(len(content)).encode()),
                (b"content-type", b"application/json"),
                *route,
            ]
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": content})
            return status
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": route + STREAM_HEADERS}
            )
            async with aclosing(call.stream()) as pieces:
                async for piece in pieces:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        except asyncio.CancelledError:
            if watch.stop():
                # The stream recorded what was delivered; a client gone before it began
                # leaves the upstream answer to close and the call to record here.
                await call.abandon()
                return 200
            raise
        watch.stop()
        await send({"type": "http.response.body", "body": b""})
        return 200
    finally:
        watch.stop()


class DisconnectWatch:
    """Cancels the calling task when the client disconnects, so the upstream call is
    cancelled with it. ``stop`` ends the watch and says whether the client went away."""

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._stopped = False
        self._forgiven = False
        self.gone = False
        self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self._stopped:
            self.gone = True
            self._stopped = True
            self._task.cancel()

    def stop(self) -> bool:
        if not self._stopped:
            self._stopped = True
            self._watcher.cancel()
        if self.gone and not self._forgiven:
            # The cancellation came from this watch and is handled by the caller.
            self._forgiven = True
            self._task.uncancel()
        return self.gone


async def _read_answer(response: Any, limit: int) -> bytes | None:
    """A whole answer's bytes, or None once it goes past ``limit`` (a provider must not make
    the proxy hold an answer of any size)."""
    if isinstance(response, WireResponse):
        return await response.aread_within(limit)
    return await read_within(response.aiter_bytes(), limit)  # a test's injected transport


def _record_unanswered(
    state: State, plan: Plan, kind: Kind, started: float, asked: float, decision: str
) -> None:
    """A call no provider answered (every route failed, or the client gave up first) is still
    a usage record, of no units."""
    provider_id = plan.targets[0].provider_id
    call_ended(provider_id=provider_id, api=kind, outcome=decision, asked=asked, answered=None)
    recorder: UsageRecorder = state.usage_recorder
    recorder.add(
        usage_record(
            plan,
            plan.targets[0],
            usage=Usage(0, 0),
            decision=decision,
            latency_ms=(time.perf_counter() - started) * 1000,
            now=state.clock.now(),
        ),
        hold_id=plan.hold_id,
    )


class ClientGone(FlowMemoryError):
    status_code = 499
    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("the client disconnected; the upstream call was cancelled")


class Call:
    """One answered upstream call: turned into the client's answer and a usage record."""

    def __init__(
        self,
        state: State,
        plan: Plan,
        kind: Kind,
        body: Json,
        opened: Opened,
        started: float,
        *,
        asked: float,
    ) -> None:
        self.state = state
        self.plan = plan
        self.kind = kind
        self.body = body
        self.opened = opened
        self.target = opened.target
        self.started = started
        self.asked = asked  # when the first upstream attempt began
        self.answered = time.perf_counter()  # made as soon as a provider's answer began
        self.warnings: list[str] = []
        self.recorded = False

    # -- usage ---------------------------------------------------------------------------

    def _usage(self, reported: Usage | None, output_text: str) -> Usage:
        if reported is not None:
            return reported
        self.warnings.append("the provider reported no usage; tokens were estimated")
        return Usage(
            translate.estimate_tokens(translate.prompt_text(self.body)),
            translate.estimate_tokens(output_text),
            estimated=True,
        )

    async def abandon(self) -> None:
        """The client went away: end the upstream answer and record the call (both once)."""
        with anyio.CancelScope(shield=True):
            await self.opened.response.aclose()
        if not self.recorded:
            self._finish(Usage(0, 0), "client_disconnected")

    def _finish(self, usage: Usage, decision: str) -> Json:
        """Record the usage (once) and build the flow_memory object."""
        record = None
        if not self.recorded:
            self.recorded = True
            call_ended(
                provider_id=self.target.provider_id,
                api=self.kind,
                outcome=decision,
                asked=self.asked,
                answered=self.answered,
            )
            record = usage_record(
                self.plan,
                self.target,
                usage=usage,
                decision=decision,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                now=self.state.clock.now(),
            )
            recorder: UsageRecorder = self.state.usage_recorder
            recorder.add(record, hold_id=self.plan.hold_id)
        return metadata(
            self.plan,
            self.target,
            record=record,
            usage=usage,
            warnings=self.warnings,
            attempts=self.opened.attempts,
        )

    def _decision(self) -> str:
        return "fallback" if len(self.opened.attempts) > 1 else "selected"

    # -- a whole answer --------------------------------------------------------------------

    async def answer_whole(self) -> tuple[int, bytes]:
        """The status and JSON body for the client."""
        response = self.opened.response
        limit = self.state.settings.proxy_max_answer_bytes
        try:
            raw = await _read_answer(response, limit)
        except BODY_ERRORS:
            self._finish(Usage(0, 0), "upstream_failed")
            raise UpstreamUnavailable(
                f"{self.target.provider_id} stopped answering mid-body",
                hint="retry; the call was not completed",
            ) from None
        finally:
            await response.aclose()
        if raw is None:
            self._finish(Usage(0, 0), "upstream_invalid")
            raise UpstreamUnavailable(
                f"{self.target.provider_id} answered with more than {limit} bytes",
                code="upstream_invalid_response",
                hint="ask for less, or stream the answer",
            )
        raw = self.opened.redactor.bytes(raw)
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        if response.status_code >= 400:
            return self._upstream_error(response.status_code, document)
        if not isinstance(document, dict):
            self._finish(Usage(0, 0), "upstream_invalid")
            raise UpstreamUnavailable(
                f"{self.target.provider_id} answered with something that is not a JSON object",
                code="upstream_invalid_response",
                hint="retry; if it persists the provider is misconfigured",
            )
        document = self._translate_whole(document)
        usage = self._usage(translate.usage_from(document), _output_text(self.kind, document))
        document["flow_memory"] = self._finish(usage, self._decision())
        return 200, sse.dumps(document)

    def _translate_whole(self, document: Json) -> Json:
        translation = self.target.translation
        if translation == "messages":
            document = translate.messages_to_chat_response(document, model=self.plan.model)
        if translation is not None and self.kind == "responses":
            document = translate.chat_to_responses_response(document, model=self.plan.model)
        return document

    def _upstream_error(self, status: int, document: Any) -> tuple[int, bytes]:
        """A provider's 4xx goes back as it is, with the flow_memory object beside it."""
        meta = self._finish(Usage(0, 0), "upstream_rejected")
        if isinstance(document, dict) and "error" in document:
            body: Json = {"error": document["error"], "flow_memory": meta}
        else:
            body = {
                **error_body(
                    "upstream_rejected",
                    f"{self.target.provider_id} refused the request with status {status}",
                    hint="check the request against the provider's model and limits",
                ),
                "flow_memory": meta,
            }
        return status, sse.dumps(body)

    # -- a stream -------------------------------------------------------------------------

    async def stream(self) -> AsyncGenerator[bytes]:
        relay = Relay(self)
        response = self.opened.response
        parser = sse.EventParser()
        try:
            try:
                async for chunk in response.aiter_bytes():
                    for event in parser.feed(chunk):
                        for piece in relay.feed(event):
                            yield piece
                        if relay.ended:
                            break
                    if relay.ended:
                        break
            except (*BODY_ERRORS, sse.EventTooLarge) as error:
                relay.cut = f"the provider's stream failed ({type(error).__name__})"
            for piece in relay.close():
                yield piece
        finally:
            # Shielded: after a client disconnect this runs inside a cancelled scope.
            with anyio.CancelScope(shield=True):
                await response.aclose()
            if not self.recorded:
                # The client went away mid-stream: record what was delivered.
                self._finish(relay.usage(), "client_disconnected")


class Relay:
    """Passes a provider's stream to the client event by event, translating where needed, and
    closes it with an event that carries the flow_memory object (or an error event)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.kind = call.kind
        self.translation = call.target.translation
        self.redact = call.opened.redactor.text
        self.ended = False
        self.cut: str | None = None
        self.reported: Usage | None = None
        self.text: list[str] = []
        self.chunk_id = "chatcmpl-stream"
        self.created = int(time.time())
        self.from_messages = (
            translate.MessagesToChatStream(model=call.plan.model)
            if self.translation == "messages"
            else None
        )
        self.to_responses = (
            translate.ChatToResponsesStream(model=call.plan.model)
            if self.translation is not None and self.kind == "responses"
            else None
        )
        self.held_completion: Json | None = None

    def feed(self, event: sse.Event) -> list[bytes]:
        if event.done:
            self.ended = True
            return []
        try:
            document = orjson.loads(self.redact(event.data))
        except orjson.JSONDecodeError:
            self.cut = "the provider sent an event that is not JSON"
            self.ended = True
            return []
        if not isinstance(document, dict):
            self.cut = "the provider sent an event that is not a JSON object"
            self.ended = True
            return []
        if document.get("type") == "error" or ("error" in document and "type" not in document):
            self.cut = "the provider reported an error mid-stream"
            self.ended = True
            return []
        if self.translation is None:
            return self._pass(event, document)
        return self._translated(document)

    def _pass(self, event: sse.Event, document: Json) -> list[bytes]:
        if self.kind == "chat":
            usage = translate.usage_from(document)
            if usage is not None:
                self.reported = usage
            self.text.append(translate.chat_output_text(document))
            self.chunk_id = str(document.get("id") or self.chunk_id)
            self.created = int(document.get("created") or self.created)
            if not document.get("choices") and usage is not None:
                return []  # the usage chunk: its numbers travel in the closing event
            return [sse.encode(self.redact(event.data), event.event)]
        kind = document.get("type")
        self.text.append(translate.responses_output_text(document))
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            # Held back to carry the flow_memory object; it is the stream's last event.
            self.reported = translate.usage_from(document.get("response") or {})
            self.held_completion = document
            self.ended = True
            return []
        return [sse.encode(self.redact(event.data), event.event)]

    def _translated(self, document: Json) -> list[bytes]:
        chunks = [document]
        if self.from_messages is not None:
            chunks = self.from_messages.feed(document)
            if self.from_messages.finished:
                self.reported = self.from_messages.usage()
                self.ended = True
        else:
            usage = translate.usage_from(document)
            if usage is not None:
                self.reported = usage
        out: list[bytes] = []
        for chunk in chunks:
            self.text.append(translate.chat_output_text(chunk))
            if self.to_responses is not None:
                for item in self.to_responses.feed(chunk):
                    out.append(sse.encode(item, item["type"]))
            elif chunk.get("choices"):
                self.chunk_id = str(chunk.get("id") or self.chunk_id)
                out.append(sse.encode(chunk))
        return out

    def usage(self) -> Usage:
        return self.call._usage(self.reported, "".join(self.text))

    def close(self) -> list[bytes]:
        if not self.ended and self.cut is None:
            self.cut = "the provider's stream ended before its last event"
        if self.cut is not None:
            usage = self.usage()
            meta = self.call._finish(usage, "stream_cut")
            error = {
                "error": {
                    "code": "upstream_stream_cut",
                    "message": self.cut + "; the answer is incomplete",
                    "type": "upstream_error",
                },
                "flow_memory": meta,
            }
            if self.kind == "responses":
                return [sse.encode({"type": "error", **error}, "error")]
            return [sse.encode(error)]
        usage = self.usage()
        meta = self.call._finish(usage, self.call._decision())
        if self.kind == "responses":
            if self.held_completion is not None:
                last = self.held_completion
            else:
                assert self.to_responses is not None
                *rest, last = self.to_responses.finish(usage)
                return [sse.encode(item, item["type"]) for item in rest] + [
                    sse.encode({**last, "flow_memory": meta}, last["type"])
                ]
            return [sse.encode({**last, "flow_memory": meta}, str(last.get("type")))]
        closing = {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.call.plan.model,
            "choices": [],
            "usage": usage.as_chat(),
            "flow_memory": meta,
        }
        return [sse.encode(closing), sse.DONE]


def _output_text(kind: Kind, document: Json) -> str:
    if kind == "embeddings":
        return ""
    if kind == "chat":
        choices = document.get("choices") or [{}]
        return translate.text_of((choices[0].get("message") or {}).get("content"))
    return "".join(
        translate.text_of(item.get("content"))
        for item in document.get("output") or []
        if isinstance(item, dict)
    )

"""SDK-compatible routes: /v1/models, /v1/chat/completions, /v1/responses, /v1/embeddings.

A request body is what an SDK client sends, plus an optional ``flow_memory`` object of routing
options (or the ``x-flow-memory-*`` headers). Prompts and completions pass through: they are
never stored or logged. The answer is the provider's, plus a ``flow_memory`` object.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import anyio
import httpx
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SettingsDep,
    require_scopes,
    transaction,
)
from flow_memory.kit.errors import FlowMemoryError, ForbiddenMaterial, Invalid, PayloadTooLarge
from flow_memory.kit.http import FlowJSONResponse, error_body
from flow_memory.kit.safety import SAFETY_ENVELOPE, find_forbidden
from flow_memory.kit.schemas import ERROR_RESPONSES, ErrorEnvelope
from flow_memory.kit.scopes import PROXY
from flow_memory.proxy import catalog, sse, translate
from flow_memory.proxy.client import Opened, UpstreamClient, UpstreamUnavailable
from flow_memory.proxy.recorder import UsageRecorder
from flow_memory.proxy.schemas import (
    ROUTE_HEADER,
    ModelList,
    ProxiedAnswer,
    ProxyOptions,
    read_options,
)
from flow_memory.proxy.service import (
    Kind,
    Plan,
    PlanCache,
    Target,
    metadata,
    plan_for_route,
    plan_fresh,
    usage_record,
)
from flow_memory.proxy.translate import Json, Usage

T = TypeVar("T")

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
ProxyCaller = Annotated[Principal, Depends(require_scopes(PROXY))]

# Fields that carry prompt text: passed to the provider as they are, never scanned or stored.
CONTENT_FIELDS = frozenset({"messages", "input", "instructions", "prompt", "system", "tools"})
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
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
    return FlowJSONResponse(
        {
            "object": "list",
            "data": catalog.served_models(session, settings=settings, now=clock.now()),
            "flow_memory": dict(SAFETY_ENVELOPE),
        }
    )


@router.post(
    "/chat/completions",
    name="proxyChatCompletions",
    summary="SDK-compatible chat completions, routed to a provider",
    openapi_extra=_request_schema("chat completions", ["model", "messages"]),
    responses=_json_answer("chat completion"),
)
async def chat_completions(request: Request, caller: ProxyCaller) -> Response:
    return await _proxy(request, caller, "chat")


@router.post(
    "/responses",
    name="proxyResponses",
    summary="SDK-compatible responses, routed to a provider",
    openapi_extra=_request_schema("responses", ["model", "input"]),
    responses=_json_answer("response"),
)
async def responses(request: Request, caller: ProxyCaller) -> Response:
    return await _proxy(request, caller, "responses")


@router.post(
    "/embeddings",
    name="proxyEmbeddings",
    summary="SDK-compatible embeddings, routed to a provider",
    openapi_extra=_request_schema("embeddings", ["model", "input"]),
    responses=_json_answer("embeddings"),
)
async def embeddings(request: Request, caller: ProxyCaller) -> Response:
    return await _proxy(request, caller, "embeddings")


# -- the call ------------------------------------------------------------------------------


async def _read_body(request: Request) -> Json:
    limit: int = request.app.state.settings.proxy_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes", field="body")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", field="body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Invalid("the body must be a JSON object", field="body") from None
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object", field="body")
    model = body.get("model")
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        raise Invalid(
            "model must be a model name (letters, digits and . _ : @ / -, at most 128)",
            field="model",
            hint="GET /v1/models lists the models providers serve now",
        )
    # Everything but the prompt is checked for forbidden material, as on every other route.
    found = find_forbidden({k: v for k, v in body.items() if k not in CONTENT_FIELDS})
    if found is not None:
        raise ForbiddenMaterial(
            f"{found.field} holds forbidden material ({found.kind.replace('_', ' ')}); "
            "the request was refused and nothing was stored",
            field=found.field,
            hint="provider credentials stay with the operator; send only routing options",
        )
    return body


async def _plan(
    request: Request, caller: Principal, kind: Kind, model: str, options: ProxyOptions
) -> Plan:
    app = request.app
    settings = app.state.settings
    now = app.state.clock.now()
    if options.route_id is not None:
        route_id = options.route_id

        def follow() -> Plan:
            with transaction(app.state.read_session_factory) as session:
                return plan_for_route(
                    session,
                    principal=caller,
                    route_id=route_id,
                    model=model,
                    kind=kind,
                    settings=settings,
                    now=now,
                )

        return await run_in_threadpool(follow)
    cache: PlanCache = app.state.proxy_plans
    key = (caller.owner_id, kind, model, options.model_dump_json())
    cached = cache.get(key, now)
    if cached is not None:
        return cached
    async with cache.selecting(key):
        cached = cache.get(key, now)
        if cached is not None:
            return cached
        plan = await run_in_threadpool(_select_plan, app, caller, kind, model, options, now)
        cache.put(key, plan)
        return plan


def _select_plan(
    app: Any, caller: Principal, kind: Kind, model: str, options: ProxyOptions, now: datetime
) -> Plan:
    with transaction(app.state.session_factory) as session:
        return plan_fresh(
            session,
            principal=caller,
            model=model,
            kind=kind,
            options=options,
            settings=app.state.settings,
            now=now,
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


async def _proxy(request: Request, caller: Principal, kind: Kind) -> Response:
    started = time.perf_counter()
    body = await _read_body(request)
    options = read_options(body.pop("flow_memory", None), dict(request.headers))
    model: str = body["model"]
    stream = body.get("stream") is True and kind != "embeddings"
    plan = await _plan(request, caller, kind, model, options)
    client: UpstreamClient = request.app.state.proxy_client
    try:
        opened = await _until_disconnect(
            request, client.open_first(plan, _builder(kind, body, stream))
        )
    except ClientGone:
        _record_abandoned(request, plan, started)
        raise
    call = Call(request, plan, kind, body, opened, started)
    if opened.response.status_code >= 400 or not stream:
        try:
            return await _until_disconnect(request, call.answer_whole())
        except ClientGone:
            if not call.recorded:
                call._finish(Usage(0, 0), "client_disconnected")
            raise
    return StreamingResponse(
        call.stream(),
        media_type="text/event-stream",
        headers={ROUTE_HEADER: plan.route_id, "cache-control": "no-cache"},
    )


def _record_abandoned(request: Request, plan: Plan, started: float) -> None:
    """A call the client gave up on before any provider answered is still a usage record."""
    recorder: UsageRecorder = request.app.state.usage_recorder
    recorder.add(
        usage_record(
            plan,
            plan.targets[0],
            usage=Usage(0, 0),
            decision="client_disconnected",
            latency_ms=(time.perf_counter() - started) * 1000,
            now=request.app.state.clock.now(),
        )
    )


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work`` unless the client goes away first; then the upstream call is cancelled."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task not in done:
        task.cancel()
        raise ClientGone()
    return task.result()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class ClientGone(FlowMemoryError):
    status_code = 499
    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("the client disconnected; the upstream call was cancelled")


class Call:
    """One answered upstream call: turned into the client's answer and a usage record."""

    def __init__(
        self, request: Request, plan: Plan, kind: Kind, body: Json, opened: Opened, started: float
    ) -> None:
        self.app = request.app
        self.plan = plan
        self.kind = kind
        self.body = body
        self.opened = opened
        self.target = opened.target
        self.started = started
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

    def _finish(self, usage: Usage, decision: str) -> Json:
        """Record the usage (once) and build the flow_memory object."""
        record = None
        if not self.recorded:
            self.recorded = True
            record = usage_record(
                self.plan,
                self.target,
                usage=usage,
                decision=decision,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                now=self.app.state.clock.now(),
            )
            recorder: UsageRecorder = self.app.state.usage_recorder
            recorder.add(record)
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

    async def answer_whole(self) -> Response:
        response = self.opened.response
        try:
            raw = await response.aread()
        except httpx.HTTPError:
            self._finish(Usage(0, 0), "upstream_failed")
            raise UpstreamUnavailable(
                f"{self.target.provider_id} stopped answering mid-body",
                hint="retry; the call was not completed",
            ) from None
        finally:
            await response.aclose()
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
        return Response(
            sse.dumps(document),
            media_type="application/json",
            headers={ROUTE_HEADER: self.plan.route_id},
        )

    def _translate_whole(self, document: Json) -> Json:
        translation = self.target.translation
        if translation == "messages":
            document = translate.messages_to_chat_response(document, model=self.plan.model)
        if translation is not None and self.kind == "responses":
            document = translate.chat_to_responses_response(document, model=self.plan.model)
        return document

    def _upstream_error(self, status: int, document: Any) -> Response:
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
        return Response(
            sse.dumps(body),
            status_code=status,
            media_type="application/json",
            headers={ROUTE_HEADER: self.plan.route_id},
        )

    # -- a stream -------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[bytes]:
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
            except httpx.HTTPError as error:
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

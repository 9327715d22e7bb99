"""Serving one SDK call: read and check the body, plan its route, call the provider (the
next one on failure), relay the answer, and record its usage. Prompts and completions pass
through: they are never stored or logged."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from flow_memory.deployments.calling import is_deployment
from flow_memory.deployments.calling import plan_call as deployment_plan
from flow_memory.deployments.limits import calls_at_once_of
from flow_memory.kit.actors import ensure_may_act_as
from flow_memory.kit.deps import Principal, transaction
from flow_memory.kit.errors import FlowMemoryError, NotFound, PayloadTooLarge
from flow_memory.proxy import translate
from flow_memory.proxy.bodies import read_call
from flow_memory.proxy.client import UpstreamClient, UpstreamUnavailable
from flow_memory.proxy.metrics import call_ended
from flow_memory.proxy.paying import hold_estimate, needs_hold
from flow_memory.proxy.plans import PlanCache
from flow_memory.proxy.recorder import UsageRecorder
from flow_memory.proxy.relay import Call
from flow_memory.proxy.schemas import (
    DEFAULT_OPTIONS,
    DEFAULT_OPTIONS_KEY,
    ROUTE_HEADER,
    ProxyOptions,
    option_source,
)
from flow_memory.proxy.service import (
    Kind,
    Plan,
    Target,
    for_this_call,
    plan_for_route,
    plan_fresh,
    usage_record,
)
from flow_memory.proxy.translate import Json, Usage

UPSTREAM_PATHS = {
    "chat": "/chat/completions",
    "responses": "/responses",
    "embeddings": "/embeddings",
}


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
    if is_deployment(model):
        # A deployment's configuration and route (flow_memory.deployments.calling).
        planned, body = await deployment_plan(
            state, caller, kind, body, options, checked.sent_options
        )
    else:
        planned = await _plan(state, caller, kind, model, options)
    plan = for_this_call(planned, kind, body, options)
    if plan.deployment is None:
        return await _serve_planned(state, receive, send, plan, kind, body, stream, started)
    # A deployment's calls at once on this server (flow_memory.deployments.limits).
    at_once = calls_at_once_of(state)
    at_once.enter(plan.deployment.deployment_id, plan.deployment.concurrency)
    try:
        return await _serve_planned(state, receive, send, plan, kind, body, stream, started)
    finally:
        at_once.leave(plan.deployment.deployment_id)


async def _serve_planned(
    state: State,
    receive: Receive,
    send: Send,
    plan: Plan,
    kind: Kind,
    body: Json,
    stream: bool,
    started: float,
) -> int:
    """Hold an enforced payer's estimate, call the provider (the next one on failure), relay
    its answer and record the call."""
    if state.settings.ledger_charges and await needs_hold(
        state.proxy_enforcement, plan, state.read_session_factory
    ):
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

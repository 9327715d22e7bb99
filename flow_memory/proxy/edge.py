"""The SDK routes served straight from ASGI, ahead of the router and its middleware.

Every other route goes through FastAPI's routing, dependency solving, the safety guard and the
access-log middleware; at hundreds of SDK calls a second that machinery costs more than the
call itself. Here the same checks run directly: the key and the ``inference:proxy`` scope, the
proxy's own body checks, Flow Memory's error shape, and the same access-log line. The routes
stay declared in ``flow_memory.proxy.api`` for the OpenAPI document, and work there too.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from flow_memory.kit.deps import read_session
from flow_memory.kit.errors import FlowMemoryError
from flow_memory.kit.http import error_response, log_access
from flow_memory.proxy.api import authorize_proxy, model_list
from flow_memory.proxy.serve import serve_call
from flow_memory.proxy.service import Kind

CALLS: dict[tuple[str, str], Kind] = {
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/responses"): "responses",
    ("POST", "/v1/embeddings"): "embeddings",
}
MODELS = ("GET", "/v1/models")


class ProxyEdge:
    """ASGI middleware: answers the four SDK routes itself and passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = (scope["method"], scope["path"])
        kind = CALLS.get(route)
        if kind is None and route != MODELS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        try:
            caller = await authorize_proxy(Request(scope, receive), None)
            if kind is None:
                answer = await run_in_threadpool(_models, scope["app"].state, caller.owner_id)
                status = answer.status_code
                await answer(scope, receive, send)
            else:
                status = await serve_call(scope, receive, send, caller=caller, kind=kind)
        except FlowMemoryError as error:
            status = error.status_code
            await error_response(error)(scope, receive, send)
        finally:
            log_access(scope, status, started, route=scope["path"])  # one of its fixed routes


def _models(state: State, owner_id: str) -> Response:
    with read_session(state.read_session_factory) as session:
        return model_list(
            session, settings=state.settings, now=state.clock.now(), owner_id=owner_id
        )

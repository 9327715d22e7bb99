"""SDK-compatible routes: /v1/models, /v1/chat/completions, /v1/responses, /v1/embeddings.

A request body is what an SDK client sends, plus an optional ``flow_memory`` object of routing
options (or the ``x-flow-memory-*`` headers). Prompts and completions pass through: they are
never stored or logged. The answer is the provider's, plus a ``flow_memory`` object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from flow_memory.deployments.calling import listed_models
from flow_memory.kit.deps import (
    ClockDep,
    Principal,
    ReadSessionDep,
    SettingsDep,
    require_scopes,
)
from flow_memory.kit.http import FlowJSONResponse
from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.kit.schemas import ERROR_RESPONSES, ErrorEnvelope
from flow_memory.kit.scopes import PROXY
from flow_memory.proxy import catalog
from flow_memory.proxy.schemas import (
    ModelList,
    ProxiedAnswer,
    ProxyOptions,
)
from flow_memory.proxy.serve import serve_call
from flow_memory.proxy.service import (
    Kind,
)
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
    session: ReadSessionDep, clock: ClockDep, settings: SettingsDep, caller: ProxyCaller
) -> FlowJSONResponse:
    return model_list(session, settings=settings, now=clock.now(), owner_id=caller.owner_id)


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


def model_list(
    session: Session, *, settings: Settings, now: datetime, owner_id: str | None = None
) -> FlowJSONResponse:
    """The body of ``GET /v1/models``: the models served now, then the caller's active
    deployments (``dep/<slug>``)."""
    deployed = [] if owner_id is None else listed_models(session, owner_id=owner_id)
    return FlowJSONResponse(
        {
            "object": "list",
            "data": catalog.served_models(session, settings=settings, now=now) + deployed,
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

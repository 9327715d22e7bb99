"""How a proxied request says how to route it: the ``flow_memory`` body object and headers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flow_memory.kit.actors import Actor
from flow_memory.kit.errors import ForbiddenMaterial, Problem
from flow_memory.kit.http import validation_problems
from flow_memory.kit.money import Amount
from flow_memory.kit.safety import secret_kind_in_text
from flow_memory.kit.schemas import Identifier, RequestModel, SafetyFields
from flow_memory.providers.schemas import UnitType
from flow_memory.routing.schemas import MarketPolicy

ROUTE_HEADER = "x-flow-memory-route-id"
# Headers that set the same-named option when the body's flow_memory object leaves it out.
OPTION_HEADERS = {
    "route_id": ROUTE_HEADER,
    "agent_id": "x-flow-memory-agent-id",
    "workspace_id": "x-flow-memory-workspace-id",
    "task_id": "x-flow-memory-task-id",
    "goal_id": "x-flow-memory-goal-id",
}


class ProxyOptions(RequestModel):
    """Routing options for one proxied call; every field may be left out."""

    route_id: Identifier | None = None
    agent_id: Actor = None
    workspace_id: Identifier = "workspace-default"
    task_id: Identifier | None = None
    goal_id: Identifier | None = None
    unit_type: UnitType = "token"
    estimated_units: Annotated[int, Field(ge=1, le=10**15)] | None = None
    market_policy: MarketPolicy | None = None


DEFAULT_OPTIONS = ProxyOptions()
DEFAULT_OPTIONS_KEY = DEFAULT_OPTIONS.model_dump_json()


def parse_options(body_options: Any, headers: dict[str, str]) -> ProxyOptions | list[Problem]:
    """The routing options, or every problem with them (each named by the field or header it
    was read from). Forbidden material in a header is refused at once."""
    if body_options is None:
        body_options = {}
    if not isinstance(body_options, dict):
        return [
            Problem(
                "flow_memory",
                'flow_memory must be an object of routing options, such as {"route_id": "route_…"}',
                "invalid_request",
            )
        ]
    merged = dict(body_options)
    for name, header in OPTION_HEADERS.items():
        value = headers.get(header)
        if value is not None and name not in merged:
            # A header is checked as a body field is: it is stored with the call's usage.
            kind = secret_kind_in_text(value)
            if kind is not None:
                raise ForbiddenMaterial(
                    f"{header} holds forbidden material ({kind.replace('_', ' ')}); the "
                    "request was refused and nothing was stored",
                    field=header,
                    hint="send only routing identifiers in the x-flow-memory-* headers",
                )
            merged[name] = value
    if not merged:
        return DEFAULT_OPTIONS  # most calls: validated once
    try:
        return ProxyOptions.model_validate(merged)
    except ValidationError as error:
        problems = validation_problems(error.errors())
        return [_named_by_source(problem, body_options) for problem in problems]


def _named_by_source(problem: Problem, body_options: dict[str, Any]) -> Problem:
    """A problem found in an option, named by where the option was read from: the body's
    flow_memory object, or its header."""
    path = problem.field or ""
    name = path.split(".", 1)[0].split("[", 1)[0]
    if name in OPTION_HEADERS and name not in body_options:
        field = OPTION_HEADERS[name]
        return Problem(field, f"{field}: {problem.message.split(': ', 1)[-1]}", problem.code)
    field = f"flow_memory.{path}" if path and path != "body" else "flow_memory"
    return Problem(field, f"{field}: {problem.message.split(': ', 1)[-1]}", problem.code)


def option_source(body_options: Any, name: str) -> str:
    """Where the option ``name`` was read from: the body's flow_memory object, or its header."""
    if isinstance(body_options, dict) and name in body_options:
        return f"flow_memory.{name}"
    return OPTION_HEADERS[name]


# -- documented answers ---------------------------------------------------------------------


class UsageCounts(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    units: int | None
    estimated: bool = Field(description="true when the provider reported no usage")


class Attempt(BaseModel):
    provider_id: str
    outcome: str = Field(
        description="answered, upstream_5xx, connect_error, timeout, or an address refusal code"
    )
    detail: str


class ProxyMetadata(SafetyFields):
    """The ``flow_memory`` object on every proxied answer (and a stream's last event)."""

    route_id: str
    provider_id: str | None
    model: str
    unit_type: str
    unit_price: Amount | None
    reference_unit_price: Amount | None
    usage: UsageCounts | None
    cost: Amount | None
    reference_cost: Amount | None
    savings: Amount | None
    savings_bps: int | None
    usage_id: str | None
    attempts: list[Attempt]
    warnings: list[str]


class ProxiedAnswer(BaseModel):
    """The provider's SDK-compatible answer, unchanged, plus ``flow_memory``."""

    model_config = ConfigDict(extra="allow")

    flow_memory: ProxyMetadata


class ModelServing(BaseModel):
    eligible_providers: int
    compatible_apis: list[str]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    flow_memory: ModelServing


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]
    flow_memory: SafetyFields

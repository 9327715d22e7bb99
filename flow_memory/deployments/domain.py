"""Deployment rules in plain Python: the configuration a revision pins, how a call's body takes
it, and the royalty each pinned version earns on a call's cost.

**Configuration.** A revision's configuration is the agent version's template (system prompt,
parameters, tools), then a solution's configuration over it, then the deployer's overrides.
An override may set the system prompt and any parameter the template (or the solution) names,
with a value of the same type; any other parameter is refused.

**A call's body.** The system prompt goes first: a chat call gets it as a leading system
message unless its first message is already that system message; a responses call gets it as
``instructions``, ahead of any the caller sent. Each configured parameter is a default the
caller may narrow but never widen: a parameter the body leaves out is set to the configured
value; a numeric one may be sent at or below it (a ceiling: ``max_tokens``, ``temperature``);
any other may only be sent equal to it. Parameters the configuration does not name pass through.

**Royalties.** Each pinned version earns ``cost * royalty_bps / 10,000`` of a call's cost,
rounded half-to-even to 18 decimal places (the ledger's precision). A line is exact whenever
the product has at most 18 decimals, which holds for every price of up to 14 decimals; beyond
that, each line is off the exact product by at most half an atto, and the day's report shows
both the lines' sum and the exact royalty of the day's summed cost."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from flow_memory.kit.errors import Problem
from flow_memory.kit.money import EXACT

BPS = Decimal(10_000)
QUANTUM = Decimal(1).scaleb(-18)
Parameter = str | int | float | bool
# Body fields a configured parameter never sets: they carry the call itself.
RESERVED = frozenset({"model", "messages", "input", "instructions", "stream", "flow_memory"})


@dataclass(frozen=True, slots=True)
class RoyaltyTerm:
    """What one pinned version earns: its publisher, entry and version, and its basis points."""

    kind: str  # agent | model
    publisher_id: str
    slug: str
    version: str
    version_id: str
    royalty_bps: int


@dataclass(frozen=True, slots=True)
class RoyaltyLine:
    term: RoyaltyTerm
    amount: Decimal


def royalty_of(cost: Decimal, royalty_bps: int) -> Decimal:
    """``cost * royalty_bps / 10,000``, rounded half-to-even to 18 decimal places."""
    exact = EXACT.divide(EXACT.multiply(cost, Decimal(royalty_bps)), BPS)
    return exact.quantize(QUANTUM, rounding=ROUND_HALF_EVEN, context=EXACT).normalize(EXACT)


def exact_royalty(cost: Decimal, royalty_bps: int) -> Decimal:
    """The unrounded royalty of ``cost`` (at most 22 decimal places)."""
    return EXACT.divide(EXACT.multiply(cost, Decimal(royalty_bps)), BPS).normalize(EXACT)


def royalty_lines(cost: Decimal, terms: tuple[RoyaltyTerm, ...]) -> list[RoyaltyLine]:
    """Each term's royalty on ``cost``, in the order of ``terms`` (zero lines included)."""
    return [RoyaltyLine(term, royalty_of(cost, term.royalty_bps)) for term in terms]


def _kind_of(value: Parameter) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def merged_configuration(
    template: dict[str, Any],
    solution: dict[str, Any] | None,
    overrides: dict[str, Any],
) -> tuple[dict[str, Any], list[Problem]]:
    """The configuration a revision pins, and every problem with the overrides (see the
    module). ``overrides`` holds ``system_prompt`` (None: kept) and ``parameters``."""
    configuration = {
        "system_prompt": template.get("system_prompt", ""),
        "parameters": dict(template.get("parameters", {})),
        "tools": list(template.get("tools", [])),
    }
    if solution is not None:
        configuration["system_prompt"] = (
            solution.get("system_prompt") or configuration["system_prompt"]
        )
        configuration["parameters"].update(solution.get("parameters", {}))
        configuration["tools"] = list(solution.get("tools") or configuration["tools"])
    problems: list[Problem] = []
    known: dict[str, Parameter] = configuration["parameters"]
    for name, value in sorted(overrides.get("parameters", {}).items()):
        field = f"configuration.parameters.{name}"
        if name not in known:
            named = ", ".join(sorted(known)) or "none"
            problems.append(
                Problem(
                    field,
                    f"the agent's configuration template has no parameter {name!r} "
                    f"(it has: {named})",
                    "unknown_parameter",
                )
            )
        elif _kind_of(value) != _kind_of(known[name]):
            problems.append(
                Problem(
                    field,
                    f"{name} is a {_kind_of(known[name])} in the agent's template",
                    "parameter_type",
                )
            )
        else:
            known[name] = value
    if overrides.get("system_prompt") is not None:
        configuration["system_prompt"] = overrides["system_prompt"]
    return configuration, problems


def configured_body(
    kind: str, body: dict[str, Any], configuration: dict[str, Any], model: str
) -> tuple[dict[str, Any], list[Problem]]:
    """The call's body with the configuration applied and ``model`` as its model (see the
    module), and every parameter it sends beyond what the configuration allows."""
    out = dict(body)
    out["model"] = model
    problems: list[Problem] = []
    for name, limit in configuration.get("parameters", {}).items():
        if name in RESERVED:
            continue
        if name not in out or out[name] is None:
            out[name] = limit
            continue
        sent = out[name]
        if _kind_of(limit) == "number" and _kind_of(sent) == "number":
            if sent > limit:
                problems.append(
                    Problem(
                        name,
                        f"the deployment allows {name} up to {limit}",
                        "deployment_parameter_exceeded",
                    )
                )
        elif sent != limit or _kind_of(sent) != _kind_of(limit):
            problems.append(
                Problem(
                    name,
                    f"the deployment fixes {name}; leave it out or send the configured value",
                    "deployment_parameter_fixed",
                )
            )
    prompt = configuration.get("system_prompt") or ""
    if prompt:
        if kind == "chat":
            messages = list(out.get("messages") or [])
            first = messages[0] if messages else None
            if not (
                isinstance(first, dict)
                and first.get("role") == "system"
                and first.get("content") == prompt
            ):
                messages.insert(0, {"role": "system", "content": prompt})
            out["messages"] = messages
        else:
            sent_instructions = out.get("instructions")
            if not sent_instructions:
                out["instructions"] = prompt
            elif isinstance(sent_instructions, str) and not sent_instructions.startswith(prompt):
                out["instructions"] = f"{prompt}\n\n{sent_instructions}"
    return out, problems


@dataclass(frozen=True, slots=True)
class DeployedCall:
    """What a call through a deployment carries to its usage record and metadata."""

    deployment_id: str
    slug: str
    revision: int
    agent_version_id: str
    model_version_id: str
    terms: tuple[RoyaltyTerm, ...]  # the agent's, then the model's
    # The revision's requirements the server applies (flow_memory.deployments.limits).
    concurrency: int | None = None
    latency_ceiling_ms: int | None = None

    def columns(self) -> dict[str, str]:
        """The usage record's deployment columns."""
        return {
            "deployment_id": self.deployment_id,
            "agent_version_id": self.agent_version_id,
            "model_version_id": self.model_version_id,
        }


def call_metadata(call: DeployedCall, cost: Decimal | None) -> dict[str, Any]:
    """The deployment's part of a call's ``flow_memory`` object: the pins and the arithmetic
    (the cost, each royalty line, and the total the caller pays)."""
    lines = royalty_lines(cost if cost is not None else Decimal(0), call.terms)
    royalty = sum((line.amount for line in lines), Decimal(0))
    return {
        "deployment": {
            "deployment_id": call.deployment_id,
            "slug": call.slug,
            "revision": call.revision,
            "agent_version_id": call.agent_version_id,
            "model_version_id": call.model_version_id,
        },
        "royalties": [
            {
                "kind": line.term.kind,
                "publisher_id": line.term.publisher_id,
                "slug": line.term.slug,
                "version": line.term.version,
                "royalty_bps": line.term.royalty_bps,
                "amount": line.amount,
            }
            for line in lines
        ],
        "royalty_total": royalty,
        "total": None if cost is None else EXACT.add(cost, royalty),
    }

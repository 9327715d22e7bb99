"""Request and response models of the agent identity routes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from flow_memory.kit.actors import Actor
from flow_memory.kit.money import Amount
from flow_memory.kit.schemas import Identifier, Name, RequestModel, SafetyFields, Text
from flow_memory.ledger.schemas import Credits
from flow_memory.reputation.schemas import Score

AgentKind = Literal["bound", "free"]
AgentStatus = Literal["active", "suspended"]
Scope = Literal[
    "inference:read",
    "inference:buy",
    "inference:sell",
    "inference:plan",
    "inference:audit",
    "inference:proxy",
    "inference:validate",
    "inference:publish",
]
MemoryRef = Annotated[
    str,
    StringConstraints(
        max_length=256, pattern=r"^(?:memory|secret)://[A-Za-z0-9][A-Za-z0-9._~/-]*$"
    ),
    Field(
        description="An opaque pointer to where the agent's memory lives (memory://… or "
        "secret://…), resolved on the agent's side: never the memory itself"
    ),
]
Value = Annotated[str, StringConstraints(min_length=1, max_length=280, strip_whitespace=True)]


class PublicProfile(RequestModel):
    """What anyone with inference:read may read about the agent besides its name."""

    tagline: Text = ""
    capabilities: list[Name] = Field(default_factory=list, max_length=32)
    languages: list[Name] = Field(default_factory=list, max_length=16)


class AgentCreate(RequestModel):
    kind: AgentKind = Field(
        description="bound: an endpoint its operator (the registering owner) runs and earns "
        "through; free: an identity with its own keys, balance and memory"
    )
    display_name: Name
    description: Text = ""
    values: list[Value] = Field(
        default_factory=list, max_length=32, description="Short statements the agent holds"
    )
    memory_ref: MemoryRef | None = None
    models: list[Identifier] = Field(
        default_factory=list, max_length=64, description="Models the agent runs"
    )
    profile: PublicProfile = Field(default_factory=PublicProfile)
    owner_id: Actor = None


class AgentKeyCreate(RequestModel):
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=6,
        description="The key's scopes: among those of the key that issues it; never "
        "inference:admin",
    )
    label: Name | None = None


class AgentSuspend(RequestModel):
    reason: Name


class ActivityRead(BaseModel):
    usage_records: int
    units_consumed: int
    active_keys: int


class StandingRead(BaseModel):
    """The agent's standing as its recorded outcomes make it (GET /inference/reputation/{id}
    shows the components and history)."""

    bidder: Score = Field(
        description="What the job board reads: (good + 1) / (good + bad + 2) of its record, a "
        "bound agent's no higher than its operator's; 0.5 for a new identity"
    )
    validator: Score = Field(
        description="Its standing as a validator, read the same way; 0.5 for a new identity"
    )


class AgentRead(BaseModel):
    agent_id: str
    kind: AgentKind
    display_name: str
    description: str
    values: list[str]
    models: list[str]
    profile: dict[str, object]
    operator_id: str | None = Field(description="A bound agent's operator; null for a free agent")
    memory_ref: str | None = Field(
        description="Shown to those who may act as the agent, admins and auditors; else null"
    )
    status: AgentStatus
    self_keyed: bool = Field(
        description="A free agent holding keys of its own: only they act as it"
    )
    account_id: str | None
    created_at: datetime
    suspended_at: datetime | None
    activity: ActivityRead
    standing: StandingRead


class IssuedAgentKey(BaseModel):
    key_id: str
    owner_id: str
    scopes: list[str]
    label: str
    secret: str = Field(description="Shown once: store it now, it is never shown again")
    created_at: datetime


class AgentResponse(SafetyFields):
    ok: Literal[True] = True
    agent: AgentRead


class AgentListResponse(SafetyFields):
    ok: Literal[True] = True
    agents: list[AgentRead]
    count: int
    next_cursor: str | None


class AgentKeyResponse(SafetyFields):
    ok: Literal[True] = True
    key: IssuedAgentKey
    agent: AgentRead


class MetabolismDay(BaseModel):
    day: date
    earned: Amount
    spent: Amount
    net: Credits
    units_consumed: int


class MetabolismRead(BaseModel):
    agent_id: str
    account_id: str | None
    currency: Literal["USD_CREDIT"] = "USD_CREDIT"
    days: list[MetabolismDay]
    earned: Amount
    spent: Amount
    net: Credits
    units_consumed: int
    balance: Credits
    held: Credits
    available: Credits
    burn_rate_per_day: Amount = Field(description="Credits spent a day over the burn window")
    burn_window_days: int
    runway_days: Amount | None = Field(
        description="Days the available credits last at the burn rate; null when nothing is "
        "being spent"
    )


class MetabolismResponse(SafetyFields):
    ok: Literal[True] = True
    metabolism: MetabolismRead

"""The provider agent: a plain client of Flow Memory's HTTP API that keeps a local model server
enrolled, paired, alive and published, and (``jobs_worker``) bids on the job board with it. It
imports nothing from the server packages."""

from flow_memory.agent.clients import (
    DiscoveredModel,
    FlowMemoryClient,
    FlowMemoryRefused,
    FlowMemoryUnavailable,
    ModelServerClient,
    ModelServerUnavailable,
)
from flow_memory.agent.config import (
    AgentConfig,
    ConfigError,
    JobsConfig,
    Offer,
    UnitTerms,
    load_config,
)
from flow_memory.agent.runtime import AgentStatus, Backoff, ProviderAgent, StateFile

__all__ = [
    "AgentConfig",
    "AgentStatus",
    "Backoff",
    "ConfigError",
    "DiscoveredModel",
    "FlowMemoryClient",
    "FlowMemoryRefused",
    "FlowMemoryUnavailable",
    "JobsConfig",
    "ModelServerClient",
    "ModelServerUnavailable",
    "Offer",
    "ProviderAgent",
    "StateFile",
    "UnitTerms",
    "load_config",
]

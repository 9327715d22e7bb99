"""A deployment's resource requirements, applied to its calls by the server that takes them.

**Concurrency.** ``requirements.concurrency`` is the most calls through the deployment one
server answers at once, streams included until their last event. A call beyond it is refused
``429 deployment_concurrency_exceeded`` before any provider is called or any credit held (the
caller's to retry later). Servers sharing a database count apart: N servers answer up to N
times the figure together. Left out (or null), no limit.

**Latency ceiling.** ``requirements.latency_ceiling_ms`` is the longest a provider may take to
begin its answer (its time to first byte: the status line and headers, so a whole answer for a
call that is not streamed), as this server measured it: the median of the provider's last
``LATENCY_SAMPLES`` answered calls, any model, any caller, fallbacks excluded. A call through
the deployment is routed only to the providers within it; a provider not yet measured by this
server is tried. When every provider serving the deployment measures over it, the call is
refused ``503 latency_ceiling_unmet`` (the providers' side: none is fast enough now). The
ceiling selects providers: it never cuts a call short once a provider has been asked.

Both live in memory on the event loop's thread (``app.state``): no lock, no database."""

from __future__ import annotations

from collections import deque
from statistics import median

from starlette.datastructures import State

from flow_memory.kit.errors import FlowMemoryError

LATENCY_SAMPLES = 20
KEPT_PROVIDERS = 10_000  # measured providers kept, at most (beyond: forgotten, measured anew)


class DeploymentBusy(FlowMemoryError):
    status_code = 429
    code = "deployment_concurrency_exceeded"


class LatencyCeilingUnmet(FlowMemoryError):
    status_code = 503
    code = "latency_ceiling_unmet"


class CallsAtOnce:
    """The calls through each deployment this server is answering now."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def enter(self, deployment_id: str, limit: int | None) -> None:
        """Count a call in, or refuse it when ``limit`` calls are already open."""
        open_now = self._open.get(deployment_id, 0)
        if limit is not None and open_now >= limit:
            raise DeploymentBusy(
                f"the deployment answers at most {limit} call(s) at once on this server",
                field="model",
                hint="retry when a call ends, or raise requirements.concurrency with a new "
                "revision (POST /inference/deployments/{id}/revisions)",
            )
        self._open[deployment_id] = open_now + 1

    def leave(self, deployment_id: str) -> None:
        open_now = self._open.get(deployment_id, 0) - 1
        if open_now > 0:
            self._open[deployment_id] = open_now
        else:
            self._open.pop(deployment_id, None)

    def open(self, deployment_id: str) -> int:
        return self._open.get(deployment_id, 0)


class ProviderLatencies:
    """Each provider's recent times to first byte, as this server measured them."""

    def __init__(self, samples: int = LATENCY_SAMPLES) -> None:
        self._samples = samples
        self._seen: dict[str, deque[float]] = {}

    def observe(self, provider_id: str, milliseconds: float) -> None:
        seen = self._seen.get(provider_id)
        if seen is None:
            if len(self._seen) >= KEPT_PROVIDERS:
                self._seen.clear()
            seen = self._seen[provider_id] = deque(maxlen=self._samples)
        seen.append(milliseconds)

    def measured(self, provider_id: str) -> float | None:
        """The median of the provider's recent samples; None when it has none yet."""
        seen = self._seen.get(provider_id)
        return None if not seen else median(seen)

    def fits(self, provider_id: str, ceiling_ms: int) -> bool:
        measured = self.measured(provider_id)
        return measured is None or measured <= ceiling_ms


def calls_at_once_of(state: State) -> CallsAtOnce:
    found: CallsAtOnce | None = getattr(state, "deployment_calls_at_once", None)
    if found is None:
        found = state.deployment_calls_at_once = CallsAtOnce()
    return found


def latencies_of(state: State) -> ProviderLatencies:
    found: ProviderLatencies | None = getattr(state, "provider_latencies", None)
    if found is None:
        found = state.provider_latencies = ProviderLatencies()
    return found

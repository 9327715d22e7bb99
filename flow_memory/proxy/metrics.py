"""The proxy's instruments: SDK calls by provider, API and outcome, their upstream latency and
time to first byte.

Labels: ``provider`` is the id Flow Memory gave an enrolled provider (``prov_…``), never a
value a caller sent; there are as many as providers enrolled, so it is on the call counter
only, and the histograms (a dozen series per label set) carry the API and outcome alone.
``api`` is the SDK route (chat, responses, embeddings); ``outcome`` is the usage record's
decision (selected, fallback, upstream_rejected, upstream_invalid, upstream_failed,
stream_cut, client_disconnected). The model a caller names is never a label.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

UPSTREAM_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

CALLS = Counter(
    "flow_memory_proxy_calls",
    "SDK calls the proxy ended, by provider, API and outcome",
    ("provider", "api", "outcome"),
)
UPSTREAM_DURATION = Histogram(
    "flow_memory_proxy_upstream_duration_seconds",
    "Time from the first upstream attempt to the call's end (the last byte relayed, or the "
    "failure), fallbacks included, by API and outcome",
    ("api", "outcome"),
    buckets=UPSTREAM_SECONDS,
)
FIRST_BYTE = Histogram(
    "flow_memory_proxy_upstream_first_byte_seconds",
    "Time from the first upstream attempt until a provider's answer began (its status line "
    "and headers), fallbacks included, by API",
    ("api",),
    buckets=UPSTREAM_SECONDS,
)


def call_ended(
    *, provider_id: str, api: str, outcome: str, asked: float, answered: float | None
) -> None:
    """Count one call that ended now; ``asked`` is when its first upstream attempt began and
    ``answered`` when a provider's answer began (None: none answered), both
    ``time.perf_counter`` readings."""
    CALLS.labels(provider_id, api, outcome).inc()
    UPSTREAM_DURATION.labels(api, outcome).observe(time.perf_counter() - asked)
    if answered is not None:
        FIRST_BYTE.labels(api).observe(answered - asked)

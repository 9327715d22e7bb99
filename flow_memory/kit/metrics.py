"""The process's Prometheus instruments for HTTP, and how a /metrics page is rendered.

Instruments live in prometheus_client's default registry, beside its process, platform and
garbage-collector collectors: they count what this process served. A label only ever holds a
value Flow Memory chose: a route template (never the path a caller wrote), a method of the
closed list below, a status code, or a name from the code. Ids, keys and body values never
become labels. Domains keep their own instruments (``flow_memory.market.metrics``,
``flow_memory.proxy.metrics``); what /metrics shows and who may read it is
``flow_memory.scrape``.
"""

from __future__ import annotations

import gzip

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

# A ``_created`` sample beside every counter and histogram doubles the series for nothing a
# Prometheus server uses (read when collected: this covers every domain's instruments).
disable_created_metrics()  # type: ignore[no-untyped-call]

# Request durations: the order route answers in milliseconds, a proxied call in seconds.
HTTP_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# What a method label may hold; any other method a caller sends is counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "flow_memory_http_requests",
    "HTTP requests answered, by method, route template and status",
    ("method", "route", "status"),
)
HTTP_REQUEST_SECONDS = Histogram(
    "flow_memory_http_request_duration_seconds",
    "Time from a request's arrival to its answer, by method and route template",
    ("method", "route"),
    buckets=HTTP_SECONDS,
)

# Each (method, route, status)'s counter and histogram children, found once: looking a child
# up by its labels takes a lock and builds a tuple, on a path that runs thousands of times a
# second. The keys are bounded: methods above, route templates of the app, status codes.
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration. ``route`` must be a route template or a
    fixed name, never a path a caller wrote."""
    children = _REQUEST_CHILDREN.get((method, route, status))
    if children is None:
        children = _request_children(method, route, status)
    children[0].inc()
    children[1].observe(seconds)


def _request_children(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    label = method if method in METHODS else "other"
    children = (
        HTTP_REQUESTS.labels(label, route, str(status)),
        HTTP_REQUEST_SECONDS.labels(label, route),
    )
    _REQUEST_CHILDREN[(method, route, status)] = children
    return children


def registry_with(*collectors: Collector) -> CollectorRegistry:
    """A registry that collects the process's instruments (the default registry) and
    ``collectors`` besides: what one app's /metrics shows."""
    registry = CollectorRegistry(support_collectors_without_names=True)
    registry.register(REGISTRY)
    for collector in collectors:
        registry.register(collector)
    return registry


def render(
    registry: Collector, accept: str | None, accept_encoding: str | None
) -> tuple[bytes, dict[str, str]]:
    """The exposition of ``registry`` in the format the scraper accepts (Prometheus text or
    OpenMetrics), gzipped when it accepts that; and the headers to send with it."""
    encoder, content_type = choose_encoder(accept or "")
    body = encoder(registry)
    headers = {"content-type": content_type, "cache-control": "no-store"}
    if gzip_accepted(accept_encoding or ""):
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return body, headers

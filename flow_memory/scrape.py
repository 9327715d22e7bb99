"""/metrics: what a Prometheus scrape reads, and where and by whom.

A scrape shows this process's instruments (HTTP requests by route template, the market
writer's orders, fills, cancels and batches, the proxy's calls; and prometheus_client's own
process, platform and garbage-collector collectors), then this app's figures, read when
scraped: the usage writer's queue and what it wrote or lost, and how many enrolled providers
stand at each route gate (read from the database, a few queries per 500 providers). Several
servers on one database each show their own process's figures; the gate counts are the
database's, the same on each.

Two ways to keep it from the world (docs/METRICS.md):
- on the API's port (the default), ``GET /metrics`` needs a key with ``metrics_scope``
  (``FLOW_MEMORY_METRICS_SCOPE``, default ``inference:audit``; admin keys hold every scope);
- with ``FLOW_MEMORY_METRICS_PORT``, it is served by a listener of its own on
  ``FLOW_MEMORY_METRICS_HOST`` (default 127.0.0.1), with no key, and the API's port has no
  /metrics at all: the address is the protection (bind it to a private network).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.datastructures import State

from flow_memory.kit.deps import read_session, require_scopes
from flow_memory.kit.errors import DatabaseUnavailable
from flow_memory.kit.metrics import registry_with, render
from flow_memory.providers import service as providers_service
from flow_memory.proxy.recorder import UsageRecorder

log = logging.getLogger("flow_memory.metrics")

PATH = "/metrics"


class AppFigures:
    """The figures of one app that are read when scraped."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        recorder: UsageRecorder = self.state.usage_recorder
        yield GaugeMetricFamily(
            "flow_memory_usage_queue_depth",
            "Usage records of proxied calls queued or being written, not yet committed",
            value=recorder.depth(),
        )
        yield CounterMetricFamily(
            "flow_memory_usage_records_written",
            "Usage records of proxied calls the usage writer committed",
            value=recorder.written,
        )
        yield CounterMetricFamily(
            "flow_memory_usage_records_lost",
            "Usage records of proxied calls the usage writer gave up on",
            value=recorder.lost,
        )
        gates = self._route_gates()
        if gates is not None:
            family = GaugeMetricFamily(
                "flow_memory_provider_route_gates",
                "Enrolled providers by route gate (eligible, pending, stale, blocked)",
                labels=("gate",),
            )
            for gate, count in gates.items():
                family.add_metric((gate,), count)
            yield family

    def _route_gates(self) -> dict[str, int] | None:
        state = self.state
        try:
            with read_session(state.read_session_factory) as session:
                return providers_service.route_gate_counts(
                    session, settings=state.settings, now=state.clock.now()
                )
        except DatabaseUnavailable:
            # The rest of the page is this process's: it is still worth showing.
            log.warning("route gates left out of /metrics: the database is unreachable")
            return None


def install(app: FastAPI) -> None:
    """Give the app its metrics registry, and ``GET /metrics`` on its own port unless a
    metrics port is set (``MetricsListener`` serves it there)."""
    settings = app.state.settings
    registry = app.state.metrics_registry = registry_with(AppFigures(app.state))
    if settings.metrics_port:
        return

    @app.get(
        PATH,
        include_in_schema=False,
        dependencies=[Depends(require_scopes(settings.metrics_scope))],
    )
    def metrics(request: Request) -> Response:
        body, headers = render(
            registry, request.headers.get("accept"), request.headers.get("accept-encoding")
        )
        return Response(body, headers=headers)


class MetricsListener:
    """/metrics on an address of its own: prometheus_client's HTTP server, in a thread."""

    def __init__(self, registry: Collector, *, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, app: FastAPI) -> MetricsListener | None:
        """The app's listener, or None when /metrics is on the API's port."""
        settings = app.state.settings
        if not settings.metrics_port:
            return None
        registry = app.state.metrics_registry
        return cls(registry, host=settings.metrics_host, port=settings.metrics_port)

    def start(self) -> None:
        """Bind and serve; a port that cannot be bound fails the server's start."""
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self.registry
        )
        log.info("metrics served at http://%s:%d%s", self.host, self.port, PATH)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

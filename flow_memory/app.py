"""create_app(settings): routers, middleware, error handlers, the dashboard."""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import text
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from flow_memory import __version__
from flow_memory.credentials.api import router as credentials_router
from flow_memory.deployments.api import router as deployments_router
from flow_memory.identities.api import router as identities_router
from flow_memory.jobs.api import router as jobs_router
from flow_memory.jobs.edge import BID_ROUTE, POST_JOB_ROUTE
from flow_memory.jobs.feed import JobFeed
from flow_memory.jobs.outcomes import JobRules
from flow_memory.jobs.timer import JobTimer
from flow_memory.jobs.writer import JobWriter
from flow_memory.keys.service import KEY_CACHE
from flow_memory.kit.broadcast import KEY_REVOKED, ROUTES, Listener
from flow_memory.kit.clock import Clock, SystemClock
from flow_memory.kit.db import WalCheckpointer, make_engine, make_session_factory
from flow_memory.kit.deps import authenticate_first, refuse_unstorable_path_parameters
from flow_memory.kit.edge import Edge
from flow_memory.kit.http import (
    AccessLogMiddleware,
    FlowJSONResponse,
    SafetyGuardMiddleware,
    install_error_handlers,
)
from flow_memory.kit.schemas import GUARD_RESPONSES
from flow_memory.ledger.api import router as ledger_router
from flow_memory.market.api import router as market_router
from flow_memory.market.discovery_api import router as discovery_router
from flow_memory.market.edge import ORDER_ROUTE
from flow_memory.market.gateway import LocalMarket, Market
from flow_memory.market.process import MarketProcess
from flow_memory.market.writer import MarketWriter
from flow_memory.payments.api import router as payments_router
from flow_memory.pricing.api import router as pricing_router
from flow_memory.providers.api import router as providers_router
from flow_memory.proxy.api import router as proxy_router
from flow_memory.proxy.client import HostResolver, UpstreamClient
from flow_memory.proxy.edge import ProxyEdge
from flow_memory.proxy.paying import Enforcement
from flow_memory.proxy.plans import PlanCache
from flow_memory.proxy.recorder import UsageRecorder
from flow_memory.proxy.resolver import CredentialResolver
from flow_memory.registry.api import router as registry_router
from flow_memory.registry.discovery_api import router as registry_discovery_router
from flow_memory.reputation.api import router as reputation_router
from flow_memory.routing.api import router as routing_router
from flow_memory.routing.facts import RouteFacts
from flow_memory.scrape import MetricsListener
from flow_memory.scrape import install as install_metrics
from flow_memory.settings import Settings
from flow_memory.usage.api import router as usage_router

PROXY_PREFIX = "/v1/"
# Posting a job (its prompt) and uploading its result (the output): long texts.
LONG_TEXT_PATHS = re.compile(r"/inference/jobs(/[^/]+/result)?")
UI_DIRECTORY = Path(__file__).parent / "ui"
# The dashboard runs only its own files and talks only to this origin.
DASHBOARD_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
}
# The API docs page runs scripts and styles that the fastapi-offline package ships (an
# interactive OpenAPI viewer), served by this app so the page works without the internet.
DOCS_ASSETS = "/docs/assets"
DOCS_HEADERS = {
    # The viewer needs inline script (its start-up call) and inline styles; nothing may come
    # from another origin.
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
DESCRIPTION = """Flow Memory is a dry-run marketplace for inference capacity. Every market
record is an application record: no funds move, nothing is signed or broadcast, and every
response carries the seven safety fields. Authenticate with `Authorization: Bearer fm_…`;
narrow a key's scopes for one request with `x-flow-memory-scopes`."""


class DocumentedJSONResponse(FlowJSONResponse, JSONResponse):
    """FlowJSONResponse rendering; FastAPI documents a route's response_model only when the
    response class is a JSONResponse, otherwise it publishes every 2xx body as a string."""


class Liveness(BaseModel):
    ok: Literal[True] = True
    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    ok: bool
    status: Literal["ready", "unavailable"]
    database: Literal["reachable", "unreachable"]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    checkpointer = WalCheckpointer.for_engine(app.state.engine)
    if checkpointer is not None:
        checkpointer.start()
    app.state.wal_checkpointer = checkpointer
    listener = _changes_listener(app)
    if listener is not None:
        listener.start()
    app.state.changes_listener = listener
    metrics = MetricsListener.of(app)  # /metrics on an address of its own, if one is set
    try:
        if metrics is not None:
            metrics.start()  # first: a port that cannot be bound stops the start here
        app.state.market.start()
        app.state.job_timer.start()
        yield
        # Acknowledge every queued market command and write every usage record before exiting.
        app.state.market.stop()
        app.state.usage_recorder.stop()
        await app.state.proxy_client.aclose()
    finally:
        app.state.job_timer.stop()
        if metrics is not None:
            metrics.stop()
        if listener is not None:
            listener.stop()
        if checkpointer is not None:
            checkpointer.stop()


def _changes_listener(app: FastAPI) -> Listener | None:
    """On PostgreSQL, what hears other servers' changes (``flow_memory.kit.broadcast``)."""
    if app.state.engine.dialect.name != "postgresql":
        return None

    def forget_routes(_: str) -> None:
        app.state.proxy_plans.clear()
        app.state.route_facts.clear()  # the market writer reads provider gates afresh too

    def forget_key(key_id: str) -> None:
        if key_id:
            KEY_CACHE.forget(key_id)
        else:
            KEY_CACHE.clear()

    return Listener(
        app.state.settings.database_url, {ROUTES: forget_routes, KEY_REVOKED: forget_key}
    )


class GuardExceptProxy:
    """The safety guard on every route but the SDK proxy's, which checks its own bodies:
    prompts are larger than API records and pass through to the provider unscanned. A job's
    prompt and its result are long texts too: their two routes are guarded with the job
    board's bounds (``job_max_body_bytes``, ``job_max_text_length``), scanned all the same."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.guarded = _guard(app, settings)
        self.long_text = _guard(app, settings, long_text=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.guarded(scope, receive, send)
        elif scope["path"].startswith(PROXY_PREFIX):
            await self.app(scope, receive, send)
        elif scope["method"] == "POST" and LONG_TEXT_PATHS.fullmatch(scope["path"]):
            await self.long_text(scope, receive, send)
        else:
            await self.guarded(scope, receive, send)


def _guard(app: ASGIApp, settings: Settings, *, long_text: bool = False) -> SafetyGuardMiddleware:
    """The safety guard with the bounds of every body, or with the job board's long texts."""
    return SafetyGuardMiddleware(
        app,
        max_body_bytes=max(settings.job_max_body_bytes, settings.max_body_bytes)
        if long_text
        else settings.max_body_bytes,
        max_string_length=max(settings.job_max_text_length, settings.max_string_length)
        if long_text
        else settings.max_string_length,
        max_list_length=settings.max_list_length,
    )


# FastAPI's own telemetry stays off (Flow Memory's metrics are its Prometheus instruments,
# flow_memory.scrape); FastAPI versions that offer it would otherwise look for a provider on
# every request.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


_API_DEPENDENCIES = [Depends(authenticate_first), Depends(refuse_unstorable_path_parameters)]
_API_ROUTERS = (
    credentials_router,
    discovery_router,
    providers_router,
    market_router,
    routing_router,
    payments_router,
    pricing_router,
    usage_router,
    identities_router,
    ledger_router,
    jobs_router,
    registry_router,
    registry_discovery_router,
    deployments_router,
    reputation_router,
    proxy_router,
)


@functools.cache
def _api_routes() -> tuple[BaseRoute, ...]:
    """Every API route, with the dependencies every route takes, built once per process.
    Preparing a route (its parameters' and response's validators) takes most of the cost of
    an app; every app in a process (a test run builds thousands) shares these."""
    api = APIRouter(dependencies=_API_DEPENDENCIES, default_response_class=DocumentedJSONResponse)
    for router in _API_ROUTERS:
        api.include_router(router)
    return tuple(api.routes)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    host_resolver: HostResolver | None = None,
) -> FastAPI:
    """Build the ASGI app; the database schema must already be migrated. Tests may swap the
    proxy's upstream transport and host resolver."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)
    app = FastAPI(
        title="Flow Memory",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=DocumentedJSONResponse,
        docs_url=None,  # served by _add_api_docs, from this app's files
        redoc_url=None,
        # Authentication first: no key answers 401 whatever else is wrong with a request.
        dependencies=list(_API_DEPENDENCIES),
        lifespan=_lifespan,
        **_NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    read_engine = (
        make_engine(settings.database_url, read_only=True)
        if engine.dialect.name == "sqlite"
        else engine
    )
    app.state.engine = engine
    app.state.read_engine = read_engine
    app.state.session_factory = make_session_factory(engine)
    app.state.read_session_factory = make_session_factory(read_engine)

    install_error_handlers(app)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(GuardExceptProxy, settings=settings)
    app.add_middleware(ProxyEdge)  # ahead of the guard and access log: SDK calls skip them
    # Well-formed orders, jobs and bids skip the stack below, which answers every other
    # request to their paths (each with the bounds the guard applies to its path).
    app.add_middleware(
        Edge,
        routes=[
            (ORDER_ROUTE, _guard(app, settings)),
            (POST_JOB_ROUTE, _guard(app, settings, long_text=True)),
            (BID_ROUTE, _guard(app, settings)),
        ],
    )
    market: Market = (
        MarketProcess(settings, app.state.clock, lambda: app.state.route_facts)
        if settings.market_process
        else LocalMarket(
            MarketWriter(
                app.state.session_factory,
                settings=settings,
                clock=app.state.clock,
                generation=lambda: app.state.route_facts.generation,
            )
        )
    )
    app.state.market = market
    app.state.job_timer = JobTimer(
        app.state.session_factory,
        app.state.read_session_factory,
        app.state.clock,
        database_url=settings.database_url,
        idle_seconds=settings.job_timer_seconds,
        rules=JobRules.of(settings),
    )
    app.state.job_feed = JobFeed(app.state.read_session_factory, app.state.job_timer.signal)
    # Called as the server begins to stop (``kit.server.run_server``): open streams end.
    app.state.on_stopping = [app.state.job_feed.end_streams]
    app.state.job_writer = JobWriter.for_engine(
        app.state.engine, app.state.session_factory, committed=app.state.job_timer.committed
    )
    app.state.job_timer.writer = app.state.job_writer
    app.router.routes.extend(_api_routes())
    app.state.usage_recorder = UsageRecorder(
        app.state.session_factory, charges=settings.ledger_charges
    )
    app.state.proxy_enforcement = Enforcement()
    app.state.proxy_plans = PlanCache(settings.proxy_route_cache_seconds)
    app.state.route_facts = RouteFacts()
    app.state.proxy_client = UpstreamClient(
        settings,
        resolver=CredentialResolver(secrets_file=settings.secrets_file or None),
        transport=upstream_transport,
        host_resolver=host_resolver,
    )
    install_metrics(app)

    @app.get(
        "/healthz",
        response_model=Liveness,
        tags=["service"],
        summary="Liveness",
        responses=GUARD_RESPONSES,
    )
    def healthz() -> FlowJSONResponse:
        return FlowJSONResponse({"ok": True, "status": "ok", "version": __version__})

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["service"],
        responses={**GUARD_RESPONSES, 503: {"model": Readiness}},
        summary="Readiness: the database answers",
    )
    def readyz() -> FlowJSONResponse:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return FlowJSONResponse(
                {"ok": False, "status": "unavailable", "database": "unreachable"},
                status_code=503,
            )
        return FlowJSONResponse({"ok": True, "status": "ready", "database": "reachable"})

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(UI_DIRECTORY / "index.html", headers=DASHBOARD_HEADERS)

    app.mount("/ui", StaticFiles(directory=UI_DIRECTORY), name="ui")
    _add_api_docs(app)
    _share_openapi_document(app)
    return app


_OPENAPI_DOCUMENTS: dict[tuple[str, ...], dict[str, Any]] = {}


def _share_openapi_document(app: FastAPI) -> None:
    """Every app in a process documents the same routes: the OpenAPI document is made once
    and each app gets its own copy (making it takes far longer than copying it)."""
    own = tuple(
        sorted(
            f"{sorted(route.methods or ())} {route.path}"
            for route in app.router.routes
            if isinstance(route, APIRoute) and route.include_in_schema
        )
    )
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = _OPENAPI_DOCUMENTS.get(own)
            if document is None:
                document = _OPENAPI_DOCUMENTS[own] = copy.deepcopy(make())
            app.openapi_schema = copy.deepcopy(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_api_docs(app: FastAPI) -> None:
    """/docs: the OpenAPI document as an interactive page, every file of it served here."""
    app.mount(
        DOCS_ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets"
    )

    @app.get("/docs", include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="Flow Memory API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}/ui/favicon.svg",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        page.headers.update(DOCS_HEADERS)
        return page

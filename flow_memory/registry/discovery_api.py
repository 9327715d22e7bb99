"""Routes that find registry entries: search with facets, listed solutions, compatible
counterparts both ways, and publishers' pages."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from flow_memory.kit.deps import ReadSessionDep
from flow_memory.kit.http import ExactJSONRoute, FlowJSONResponse, respond
from flow_memory.kit.schemas import ERROR_RESPONSES
from flow_memory.providers.schemas import CompatibleApi
from flow_memory.registry import compatibility, repository, service, views
from flow_memory.registry.api import REGISTRY, Limit, NamePath, PinQuery, PublisherPath, Reader
from flow_memory.registry.domain import PUBLISHER_PATTERN
from flow_memory.registry.schemas import (
    CompatibilityResponse,
    Kind,
    License,
    PricingModel,
    PublisherResponse,
    SearchResponse,
)
from flow_memory.registry.search import SearchFilters, search

router = APIRouter(
    route_class=ExactJSONRoute, prefix="/inference", tags=["registry"], responses=ERROR_RESPONSES
)
Candidates = Annotated[
    list[str],
    Query(
        max_length=compatibility.MAX_CANDIDATES,
        description="Counterparts to judge (slug or slug@version), each answered in checked "
        "with the requirements it fails",
    ),
]
CAPABILITIES = (
    "tool_calling",
    "text",
    "chat",
    "vision",
    "audio",
    "image",
    "embedding",
    "multimodal",
)


@router.get(
    f"{REGISTRY}/models/{{publisher_id}}/{{name}}/compatible-agents",
    response_model=CompatibilityResponse,
    name="registryModelCompatibleAgents",
    summary="Listed agents this model version fits, and named candidates with reasons",
)
def model_compatible_agents(
    publisher_id: PublisherPath,
    name: NamePath,
    session: ReadSessionDep,
    _principal: Reader,
    version: PinQuery = None,
    candidate: Candidates = [],  # noqa: B006  (FastAPI copies a default list per request)
    limit: Limit = 20,
) -> FlowJSONResponse:
    entry = service.find_entry(session, f"{publisher_id}/{name}", kind="model")
    model = service.find_version(session, entry, version)
    fits, checked = compatibility.compatible_agents(
        session, model=model, candidates=candidate, limit=limit
    )
    subject = {"slug": entry.slug, "version": model.version}
    return respond({"subject": subject, "compatible": fits, "checked": checked})


@router.get(
    f"{REGISTRY}/agents/{{publisher_id}}/{{name}}/compatible-models",
    response_model=CompatibilityResponse,
    name="registryAgentCompatibleModels",
    summary="Listed models that fit this agent version, and named candidates with reasons",
)
def agent_compatible_models(
    publisher_id: PublisherPath,
    name: NamePath,
    session: ReadSessionDep,
    _principal: Reader,
    version: PinQuery = None,
    candidate: Candidates = [],  # noqa: B006  (FastAPI copies a default list per request)
    limit: Limit = 20,
) -> FlowJSONResponse:
    entry = service.find_entry(session, f"{publisher_id}/{name}", kind="agent")
    agent = service.find_version(session, entry, version)
    fits, checked = compatibility.compatible_models(
        session, agent=agent, candidates=candidate, limit=limit
    )
    subject = {"slug": entry.slug, "version": agent.version}
    return respond({"subject": subject, "compatible": fits, "checked": checked})


@router.get(
    f"{REGISTRY}/solutions",
    response_model=SearchResponse,
    name="registrySolutions",
    summary="Listed solutions, newest first (search them with kind=solution)",
)
def list_solutions(
    session: ReadSessionDep,
    _principal: Reader,
    limit: Limit = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> FlowJSONResponse:
    return _search(session, "", SearchFilters(kind="solution"), limit, offset)


# -- finding --------------------------------------------------------------------------------


def _search(
    session: Session, q: str, filters: SearchFilters, limit: int, offset: int
) -> FlowJSONResponse:
    page = search(session, query=q, filters=filters, limit=limit, offset=offset)
    results = [{**views.list_item(entry), "rank": rank} for entry, rank in page.hits]
    return respond(
        {
            "results": results,
            "total": page.total,
            "total_exact": page.total_exact,
            "facets": page.facets,
            "facets_over": page.facets_over,
            "facets_exact": page.facets_exact,
            "limit": limit,
            "offset": offset,
        }
    )


@router.get(
    f"{REGISTRY}/search",
    response_model=SearchResponse,
    name="registrySearch",
    summary="Full-text search over names, descriptions and tags, ranked, filtered, with facet "
    "counts",
)
def search_registry(
    session: ReadSessionDep,
    _principal: Reader,
    q: Annotated[str, Query(max_length=200, description="Words to find; empty lists all")] = "",
    kind: Annotated[Kind | None, Query()] = None,
    capability: Annotated[
        str | None,
        Query(
            pattern=f"^({'|'.join(CAPABILITIES)})$",
            description="tool_calling, or a modality (text, chat, vision, …)",
        ),
    ] = None,
    api: Annotated[CompatibleApi | None, Query()] = None,
    min_context_window: Annotated[int | None, Query(ge=0, le=100_000_000)] = None,
    max_price: Annotated[
        Decimal | None,
        Query(ge=0, le=10**12, max_digits=38, decimal_places=18, allow_inf_nan=False),
    ] = None,
    pricing_model: Annotated[PricingModel | None, Query()] = None,
    license: Annotated[License | None, Query()] = None,
    publisher: Annotated[str | None, Query(pattern=PUBLISHER_PATTERN)] = None,
    limit: Limit = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> FlowJSONResponse:
    filters = SearchFilters(
        kind=kind,
        capability=capability,
        api=api,
        min_context_window=min_context_window,
        max_price=max_price,
        pricing_model=pricing_model,
        license=license,
        publisher_id=publisher,
    )
    return _search(session, q, filters, limit, offset)


@router.get(
    "/publishers/{publisher_id}",
    response_model=PublisherResponse,
    name="publisher",
    summary="A publisher's page: what it has registered, by kind, with each listed version",
)
def get_publisher(
    publisher_id: PublisherPath,
    session: ReadSessionDep,
    _principal: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> FlowJSONResponse:
    entries = repository.by_publisher(session, publisher_id, limit=limit, offset=offset)
    counts = repository.publisher_counts(session, publisher_id)
    return respond(
        {
            "publisher": {
                "publisher_id": publisher_id,
                "counts": {kind: counts.get(kind, 0) for kind in ("model", "agent", "solution")},
                "entries": [views.list_item(entry) for entry in entries],
            }
        }
    )

"""The proxy's model list: every model at least one provider can be routed to now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow_memory.providers import service as providers_service
from flow_memory.providers.models import CatalogEntry, Provider
from flow_memory.settings import Settings


def served_models(session: Session, *, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """SDK-compatible model objects, with how many eligible providers serve each."""
    rows = session.execute(
        select(
            CatalogEntry.model,
            CatalogEntry.provider_id,
            CatalogEntry.compatible_api,
            Provider.catalog_published_at,
        ).join(Provider, Provider.provider_id == CatalogEntry.provider_id)
    ).all()
    gates = providers_service.route_gates(
        session, {row.provider_id for row in rows}, settings=settings, now=now
    )
    models: dict[str, dict[str, Any]] = {}
    for row in rows:
        if gates.get(row.provider_id) != "eligible":
            continue
        entry = models.setdefault(
            row.model,
            {
                "id": row.model,
                "object": "model",
                "created": 0,
                "owned_by": "flow-memory-market",
                "flow_memory": {"eligible_providers": 0, "compatible_apis": []},
            },
        )
        published = row.catalog_published_at
        if published is not None:
            entry["created"] = max(entry["created"], int(published.timestamp()))
        entry["flow_memory"]["eligible_providers"] += 1
        if row.compatible_api not in entry["flow_memory"]["compatible_apis"]:
            entry["flow_memory"]["compatible_apis"].append(row.compatible_api)
    return [models[name] for name in sorted(models)]

"""What callers read of registry entries and versions."""

from __future__ import annotations

from typing import Any

from flow_memory.registry.domain import parse_version
from flow_memory.registry.models import RegistryEntry, RegistryVersion


def pricing_read(pricing_model: str | None, price: Any) -> dict[str, Any] | None:
    if pricing_model is None or price is None:
        return None
    return {"model": pricing_model, "price": price, "currency": "USD_CREDIT"}


def entry_read(entry: RegistryEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "kind": entry.kind,
        "slug": entry.slug,
        "publisher_id": entry.publisher_id,
        "name": entry.name,
        "display_name": entry.display_name,
        "description": entry.description,
        "tags": entry.tags,
        "license": entry.license,
        "latest_version": entry.latest_version,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }


def version_read(version: RegistryVersion) -> dict[str, Any]:
    return {
        "version_id": version.version_id,
        "version": version.version,
        "status": version.status,
        "status_reason": version.status_reason,
        "status_changed_at": version.status_changed_at,
        "pricing": pricing_read(version.pricing_model, version.price),
        "royalty_bps": version.royalty_bps,
        "spec": version.spec,
        "changelog": version.changelog,
        "published_by": version.published_by,
        "published_at": version.published_at,
    }


def version_summaries(versions: list[RegistryVersion]) -> list[dict[str, Any]]:
    """Versions newest (highest precedence) first."""
    ordered = sorted(versions, key=lambda v: parse_version(v.version), reverse=True)
    return [
        {
            "version": v.version,
            "status": v.status,
            "pricing": pricing_read(v.pricing_model, v.price),
            "royalty_bps": v.royalty_bps,
            "published_at": v.published_at,
        }
        for v in ordered
    ]


def facts_read(entry: RegistryEntry) -> dict[str, Any]:
    """The listed version's facts that search filters on."""
    return {
        "modality": entry.modality,
        "family": entry.family,
        "apis": entry.api_text.split(),
        "context_window": entry.context_window,
        "tool_calling": entry.tool_calling,
    }


def list_item(entry: RegistryEntry) -> dict[str, Any]:
    return {
        "entry": entry_read(entry),
        "pricing": pricing_read(entry.pricing_model, entry.price),
        "royalty_bps": entry.royalty_bps,
        "facts": facts_read(entry),
    }

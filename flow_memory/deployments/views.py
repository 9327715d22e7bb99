"""How deployments, revisions and capacity are shown in answers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flow_memory.deployments.capacity import Capacity
from flow_memory.deployments.models import Deployment, DeploymentRevision
from flow_memory.deployments.service import MODEL_PREFIX


def _pin(term: dict[str, Any]) -> dict[str, Any]:
    pricing = term["pricing"]
    return {
        **term,
        "pricing": None if pricing is None else {**pricing, "price": Decimal(pricing["price"])},
    }


def _policy(policy: dict[str, Any]) -> dict[str, Any]:
    """Stored as JSON text; a price is answered as a number, as everywhere."""
    price = policy.get("max_unit_price")
    return {**policy, "max_unit_price": None if price is None else Decimal(str(price))}


def revision_read(row: DeploymentRevision) -> dict[str, Any]:
    return {
        "revision": row.revision,
        "solution": None
        if row.solution_slug is None
        else {"slug": row.solution_slug, "version": row.solution_version or ""},
        "agent": _pin(row.agent),
        "model": _pin(row.model),
        "configuration": row.configuration,
        "requirements": row.requirements,
        "policy": _policy(row.policy),
        "wait_for_capacity": row.wait_for_capacity,
        "created_by": row.created_by,
        "created_at": row.created_at,
    }


def deployment_read(deployment: Deployment, current: DeploymentRevision) -> dict[str, Any]:
    return {
        "deployment_id": deployment.deployment_id,
        "slug": deployment.slug,
        "model": MODEL_PREFIX + deployment.slug,
        "owner_id": deployment.owner_id,
        "state": deployment.state,
        "revision": deployment.revision,
        "pins": revision_read(current),
        "created_at": deployment.created_at,
        "updated_at": deployment.updated_at,
    }


def capacity_read(found: Capacity) -> dict[str, Any]:
    return {
        "serving_now": found.serving_now,
        "providers": [
            {
                "provider_id": s.provider_id,
                "provider_name": s.provider_name,
                "model": s.model,
                "unit_type": s.unit_type,
                "route_gate": s.route_gate,
                "ask_unit_price": s.ask_unit_price,
                "available_units": s.available_units,
                "serving_now": s.serving_now,
            }
            for s in found.providers
        ],
        "reasons": found.reasons,
    }

"""Passive health, derived from the clock when read (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

RouteGate = Literal["eligible", "pending", "stale", "blocked"]
HealthStatus = Literal["healthy", "degraded", "unhealthy", "pending"]


@dataclass(frozen=True)
class HealthThresholds:
    heartbeat_stale: timedelta
    catalog_stale: timedelta
    capacity_stale: timedelta


@dataclass(frozen=True)
class RuntimeFacts:
    """What is recorded about a provider, gathered by the service."""

    paired: bool
    routes_disabled: bool
    credential_status: str  # active | revoked
    credential_pointer_current: bool
    last_heartbeat_at: datetime | None
    catalog_published_at: datetime | None
    capacity_published_at: datetime | None
    capacity_latest_expiry: datetime | None
    reported_status: str | None = None  # the last heartbeat's runtime_status


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    credential_ref_status: str
    heartbeat_status: str
    catalog_status: str
    capacity_status: str
    route_gate: RouteGate
    reasons: tuple[str, ...]


def _age_status(moment: datetime | None, now: datetime, limit: timedelta) -> str:
    if moment is None:
        return "missing"
    return "current" if now - moment <= limit else "stale"


def derive_health(facts: RuntimeFacts, now: datetime, limits: HealthThresholds) -> Health:
    """Decide health and the route gate from recorded facts and the current time."""
    reasons: list[str] = []
    if facts.credential_status == "revoked":
        credential = "revoked"
        reasons.append("credential_ref_revoked")
    elif not facts.credential_pointer_current:
        credential = "rotated"
        reasons.append("credential_ref_rotated")
    else:
        credential = "active"
    if facts.routes_disabled:
        reasons.append("provider_routes_disabled")
    if not facts.paired:
        reasons.append("pairing_pending")

    heartbeat = _age_status(facts.last_heartbeat_at, now, limits.heartbeat_stale)
    catalog = _age_status(facts.catalog_published_at, now, limits.catalog_stale)
    capacity = _age_status(facts.capacity_published_at, now, limits.capacity_stale)
    if capacity == "current" and (
        facts.capacity_latest_expiry is None or facts.capacity_latest_expiry <= now
    ):
        capacity = "expired"
    for name, state in (("heartbeat", heartbeat), ("catalog", catalog), ("capacity", capacity)):
        if state != "current":
            reasons.append(f"{name}_{state}")
    # What the runtime says of itself counts only while its heartbeat is current.
    reported = facts.reported_status if heartbeat == "current" else None
    if reported in ("draining", "degraded"):
        reasons.append(f"runtime_{reported}")

    gate: RouteGate
    if credential == "revoked" or facts.routes_disabled:
        gate = "blocked"
    elif not facts.paired or "missing" in (heartbeat, catalog, capacity):
        gate = "pending"
    elif (
        credential == "rotated"
        or heartbeat != "current"
        or catalog != "current"
        or (capacity != "current")
    ):
        gate = "stale"
    elif reported == "draining":
        gate = "pending"  # the runtime asked for no new traffic until it reports ready
    else:
        gate = "eligible"

    status: HealthStatus
    if gate == "eligible" and reported != "degraded":
        status = "healthy"
    elif reported in ("draining", "degraded") and gate in ("eligible", "pending"):
        status = "degraded"
    elif gate == "blocked" or heartbeat == "stale":
        status = "unhealthy"
    elif gate == "pending":
        status = "pending"
    else:
        status = "degraded"
    return Health(status, credential, heartbeat, catalog, capacity, gate, tuple(reasons))

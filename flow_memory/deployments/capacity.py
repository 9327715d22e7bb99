"""Who can serve a deployment's pinned model version now, and the refusal when nobody can."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from flow_memory.kit.errors import Conflict, Problem
from flow_memory.registry.models import RegistryEntry
from flow_memory.registry.serving import Serving, servers
from flow_memory.settings import Settings


@dataclass(frozen=True)
class Capacity:
    """Who serves the pinned model version: the providers listing it, and why none serves it
    now when none does."""

    providers: list[Serving]
    reasons: list[str]

    @property
    def serving_now(self) -> bool:
        return any(p.serving_now for p in self.providers)


def capacity(
    session: Session,
    model_entry: RegistryEntry,
    version: str,
    *,
    settings: Settings,
    now: datetime,
) -> Capacity:
    """The providers whose catalog names the model version, serving now first."""
    found = [
        s for s in servers(session, model_entry, settings=settings, now=now) if s.version == version
    ]
    reasons: list[str] = []
    if not found:
        reasons.append(f"no provider's catalog names {model_entry.slug}@{version}")
    elif not any(s.serving_now for s in found):
        for s in found:
            why = (
                f"its route gate is {s.route_gate}"
                if s.route_gate != "eligible"
                else "it publishes no live capacity"
            )
            reasons.append(f"provider {s.provider_id} ({s.unit_type}): {why}")
    return Capacity(found, reasons)


def ensure_capacity(found: Capacity, *, wait: bool) -> None:
    if found.serving_now or wait:
        return
    raise Conflict(
        "no provider serves the model version now: " + "; ".join(found.reasons),
        code="no_capacity",
        field="model",
        hint="deploy with wait_for_capacity: true to keep it until a provider serves it",
        problems=tuple(Problem("model", reason, "no_capacity") for reason in found.reasons),
    )

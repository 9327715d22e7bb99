"""Compatible counterparts both ways: models for an agent version, agents for a model version.

Listed counterparts are judged on the facts their entry carries (its latest active version's);
candidates the caller names (``slug`` or ``slug@version``) are judged on the version named,
and each incompatible one says which requirements failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.errors import Invalid
from flow_memory.registry import repository, service
from flow_memory.registry.domain import Mismatch, ModelFacts, mismatches
from flow_memory.registry.models import RegistryEntry, RegistryVersion

BATCH = 500
# The most listed counterparts read to find ``limit`` compatible ones.
SCAN_LIMIT = 10_000
MAX_CANDIDATES = 20


def _entry_facts(entry: RegistryEntry) -> ModelFacts:
    return ModelFacts(
        modality=entry.modality or "",
        apis=frozenset(entry.api_text.split()),
        context_window=entry.context_window or 0,
        tool_calling=bool(entry.tool_calling),
        family=entry.family or "",
    )


def _counterpart(entry: RegistryEntry, version: str, failed: list[Mismatch]) -> dict[str, Any]:
    return {
        "slug": entry.slug,
        "version": version,
        "display_name": entry.display_name,
        "compatible": not failed,
        "reasons": [{"requirement": f.requirement, "message": f.message} for f in failed],
    }


def parse_candidates(candidates: list[str]) -> list[tuple[str, str | None]]:
    if len(candidates) > MAX_CANDIDATES:
        raise Invalid(
            f"at most {MAX_CANDIDATES} candidates a request", field="candidate", code="too_many"
        )
    return [
        (slug, version or None)
        for slug, _, version in (candidate.partition("@") for candidate in candidates)
    ]


def _checked(
    session: Session,
    *,
    kind: str,
    candidates: list[str],
    judge: Any,
) -> list[dict[str, Any]]:
    """Each named candidate judged by ``judge(version)``; an unknown one says so."""
    found: list[dict[str, Any]] = []
    named = parse_candidates(candidates)
    entries = repository.entries_by_slug(session, [slug for slug, _ in named])
    for slug, wanted in named:
        entry = entries.get(slug)
        version = None
        if entry is not None and entry.kind == kind:
            text = wanted or entry.latest_version
            version = repository.version(session, entry.entry_id, text) if text else None
        if entry is None or version is None:
            found.append(
                {
                    "slug": slug,
                    "version": wanted or "",
                    "display_name": "",
                    "compatible": False,
                    "reasons": [
                        {
                            "requirement": "exists",
                            "message": f"no {kind} version {slug}@{wanted or 'latest'}",
                        }
                    ],
                }
            )
            continue
        found.append(_counterpart(entry, version.version, judge(version)))
    return found


def _listed_fits(
    session: Session,
    *,
    kind: str,
    filters: dict[str, Any],
    fitting: Callable[[list[RegistryEntry]], list[RegistryEntry]],
    limit: int,
) -> list[dict[str, Any]]:
    """Listed entries of ``kind`` (slug order, narrowed by ``filters``) that ``fitting`` keeps
    from each batch, until ``limit`` are found or ``SCAN_LIMIT`` entries were read."""
    fits: list[dict[str, Any]] = []
    after, scanned = "", 0
    while len(fits) < limit and scanned < SCAN_LIMIT:
        batch = repository.listed_of_kind(
            session, kind=kind, after_slug=after, limit=BATCH, **filters
        )
        for entry in fitting(batch)[: limit - len(fits)]:
            fits.append(_counterpart(entry, entry.latest_version or "", []))
        if len(batch) < BATCH:
            break
        after, scanned = batch[-1].slug, scanned + len(batch)
    return fits


def compatible_models(
    session: Session, *, agent: RegistryVersion, candidates: list[str], limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Listed models that fit the agent version (slug order), and the named candidates."""
    needs = service.needs_of(agent)
    fits = _listed_fits(
        session,
        kind="model",
        filters={
            "min_context_window": needs.min_context_window,
            "tool_calling": True if needs.tool_calling else None,
        },
        fitting=lambda batch: [e for e in batch if not mismatches(needs, _entry_facts(e))],
        limit=limit,
    )
    checked = _checked(
        session,
        kind="model",
        candidates=candidates,
        judge=lambda version: mismatches(needs, service.facts_of(version)),
    )
    return fits, checked


def compatible_agents(
    session: Session, *, model: RegistryVersion, candidates: list[str], limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Listed agents the model version fits (slug order), and the named candidates."""
    facts = service.facts_of(model)

    def fitting(batch: list[RegistryEntry]) -> list[RegistryEntry]:
        listed = repository.latest_versions(session, batch)
        return [
            entry
            for entry in batch
            if (version := listed.get(entry.entry_id)) is not None
            and not mismatches(service.needs_of(version), facts)
        ]

    fits = _listed_fits(
        session,
        kind="agent",
        filters={
            "max_context_window": facts.context_window,
            "tool_calling": False if not facts.tool_calling else None,
        },
        fitting=fitting,
        limit=limit,
    )
    checked = _checked(
        session,
        kind="agent",
        candidates=candidates,
        judge=lambda version: mismatches(service.needs_of(version), facts),
    )
    return fits, checked

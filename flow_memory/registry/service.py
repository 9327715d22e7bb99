"""Publish entries and versions, change a version's status, and find what a caller asks for.

A published version is never changed but for its status: there is no code path here that
writes its terms or specification again. Changing a price or royalty is a new version."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Forbidden, Invalid, NotFound, Problem
from flow_memory.kit.ids import new_id
from flow_memory.registry import repository, search_index
from flow_memory.registry.domain import (
    AgentNeeds,
    ModelFacts,
    api_text,
    mismatches,
    parse_version,
    split_slug,
    valid_publisher,
)
from flow_memory.registry.models import RegistryEntry, RegistryVersion
from flow_memory.registry.schemas import (
    AgentCreate,
    AgentVersionCreate,
    ModelCreate,
    ModelVersionCreate,
    SolutionCreate,
    SolutionSpec,
    SolutionVersionCreate,
    VersionStatusChange,
)

EntryCreate = ModelCreate | AgentCreate | SolutionCreate
VersionCreate = ModelVersionCreate | AgentVersionCreate | SolutionVersionCreate


def ensure_namespace(principal: Principal, publisher_id: str, *, field: str = "slug") -> None:
    """A publisher writes only under its own namespace: the key's owner, or an identity that
    owner controls. The one actor rule of every request holds here too: a key with
    inference:admin may act as any publisher but a free agent with keys of its own."""
    if principal.may_act_as(publisher_id):
        return
    hint = "the part before '/' is the publisher: the key's owner id or an identity it controls"
    if not valid_publisher(principal.owner_id):
        hint += (
            "; this key's owner id cannot name a namespace (lower-case letters, digits, "
            "'.', '_' and '-' only): publish with a key of an owner whose id can"
        )
    raise Forbidden(
        "the slug is under another publisher's namespace",
        field=field,
        code="namespace_not_yours",
        hint=hint,
    )


def publish_entry(
    session: Session, *, principal: Principal, kind: str, body: EntryCreate, now: datetime
) -> tuple[RegistryEntry, RegistryVersion]:
    """Register a model, agent or solution with its first version."""
    publisher_id, name = split_slug(body.slug)
    ensure_namespace(principal, publisher_id)
    if repository.entry_by_slug(session, body.slug) is not None:
        raise Conflict(
            "an entry with this slug exists",
            code="slug_taken",
            field="slug",
            hint="publish a new version of it at …/{publisher}/{name}/versions",
        )
    entry = RegistryEntry(
        entry_id=new_id("reg"),
        doc_id=secrets.randbits(62),
        kind=kind,
        slug=body.slug,
        publisher_id=publisher_id,
        name=name,
        display_name=body.display_name,
        description=body.description,
        tags=sorted(set(body.tags)),
        tag_text=" ".join(sorted(set(body.tags))),
        license=body.license,
        published_by=principal.owner_id,
        created_at=now,
        updated_at=now,
        listed=False,
        latest_version=None,
        api_text=" ",
    )
    session.add(entry)
    session.flush()
    version = _add_version(session, principal=principal, entry=entry, body=body, now=now)
    return entry, version


def publish_version(
    session: Session,
    *,
    principal: Principal,
    kind: str,
    slug: str,
    body: VersionCreate,
    now: datetime,
) -> tuple[RegistryEntry, RegistryVersion]:
    """A new version of an entry: strictly newer than every version it has."""
    entry = find_entry(session, slug, kind=kind, for_update=True)
    ensure_namespace(principal, entry.publisher_id, field="slug")
    wanted = parse_version(body.version)
    existing = repository.versions_of(session, entry.entry_id)
    if any(v.version == body.version for v in existing):
        raise Conflict(
            f"version {body.version} is published and cannot change",
            code="version_exists",
            field="version",
            hint="a published version is immutable, its price and royalty included: publish "
            "a newer version",
        )
    newest = max((parse_version(v.version) for v in existing), default=None)
    if newest is not None and wanted <= newest:
        raise Conflict(
            f"version {body.version} is not newer than {newest}",
            code="version_not_newer",
            field="version",
            hint=f"publish a version above {newest}",
        )
    version = _add_version(session, principal=principal, entry=entry, body=body, now=now)
    return entry, version


def _add_version(
    session: Session,
    *,
    principal: Principal,
    entry: RegistryEntry,
    body: EntryCreate | VersionCreate,
    now: datetime,
) -> RegistryVersion:
    parsed = parse_version(body.version)
    spec, pricing = _spec_and_pricing(session, entry, body)
    version = RegistryVersion(
        version_id=new_id("regv"),
        entry_id=entry.entry_id,
        version=body.version,
        major=parsed.major,
        minor=parsed.minor,
        patch=parsed.patch,
        prerelease=parsed.prerelease,
        spec=spec,
        pricing_model=pricing[0] if pricing else None,
        price=pricing[1] if pricing else None,
        royalty_bps=body.royalty_bps,
        changelog=body.changelog,
        status="active",
        status_reason=None,
        status_changed_at=None,
        published_by=principal.owner_id,
        published_at=now,
    )
    session.add(version)
    session.flush()
    refresh_listing(session, entry, now=now)
    return version


def _spec_and_pricing(
    session: Session, entry: RegistryEntry, body: EntryCreate | VersionCreate
) -> tuple[dict[str, Any], tuple[str, Any] | None]:
    if isinstance(body, ModelCreate | ModelVersionCreate):
        return body.model.model_dump(mode="json"), (body.pricing.model, body.pricing.price)
    if isinstance(body, AgentCreate | AgentVersionCreate):
        return body.agent.model_dump(mode="json"), (body.pricing.model, body.pricing.price)
    return _checked_solution(session, body.solution), None


def _checked_solution(session: Session, solution: SolutionSpec) -> dict[str, Any]:
    """A solution's pins, resolved and checked: both exist, neither is yanked, they fit."""
    agent_entry, agent = pinned(session, solution.agent.slug, solution.agent.version, "agent")
    model_entry, model = pinned(session, solution.model.slug, solution.model.version, "model")
    failed = mismatches(needs_of(agent), facts_of(model))
    if failed:
        problems = tuple(
            Problem("solution.model", f.message, f"requirement_{f.requirement}") for f in failed
        )
        raise Invalid(
            "the agent and model versions are not compatible: " + failed[0].message,
            code="solution_incompatible",
            field="solution.model",
            hint="pick a model version the agent's requirements allow "
            "(GET …/agents/{publisher}/{name}/compatible-models)",
            problems=problems,
        )
    return {
        "agent": {
            "slug": agent_entry.slug,
            "version": agent.version,
            "version_id": agent.version_id,
        },
        "model": {
            "slug": model_entry.slug,
            "version": model.version,
            "version_id": model.version_id,
        },
        "configuration": solution.configuration.model_dump(mode="json"),
    }


def pinned(
    session: Session, slug: str, text: str, kind: str
) -> tuple[RegistryEntry, RegistryVersion]:
    """A solution's pinned version: it must exist and not be yanked."""
    entry = repository.entry_by_slug(session, slug, kind=kind)
    version = None if entry is None else repository.version(session, entry.entry_id, text)
    if entry is None or version is None:
        raise Invalid(
            f"no {kind} version {slug}@{text}", field=f"solution.{kind}", code="pin_unknown"
        )
    if version.status == "yanked":
        raise Invalid(
            f"{kind} version {slug}@{text} is yanked",
            field=f"solution.{kind}",
            code="pin_yanked",
            hint="pin an active or deprecated version",
        )
    return entry, version


def change_status(
    session: Session,
    *,
    principal: Principal,
    kind: str,
    slug: str,
    version_text: str,
    body: VersionStatusChange,
    now: datetime,
) -> tuple[RegistryEntry, RegistryVersion]:
    """Activate, deprecate or yank a version; a yanked version stays yanked."""
    entry = find_entry(session, slug, kind=kind, for_update=True)
    ensure_namespace(principal, entry.publisher_id, field="slug")
    version = find_version(session, entry, version_text)
    if version.status == "yanked":
        raise Conflict(
            "a yanked version stays yanked",
            code="version_yanked",
            field="status",
            hint="publish a newer version",
        )
    version.status = body.status
    version.status_reason = body.reason.strip() if body.reason else None
    version.status_changed_at = now
    session.flush()
    refresh_listing(session, entry, now=now)
    return entry, version


def refresh_listing(session: Session, entry: RegistryEntry, *, now: datetime) -> None:
    """Copy the latest active version's facts onto the entry (unlisted when none is) and
    bring its search postings in line."""
    active = [v for v in repository.versions_of(session, entry.entry_id) if v.status == "active"]
    latest = max(active, key=lambda v: parse_version(v.version), default=None)
    entry.updated_at = now
    entry.listed = latest is not None
    entry.latest_version = latest.version if latest else None
    facts: dict[str, Any] = {}
    if latest is not None:
        facts = listing_facts(session, entry.kind, latest)
    entry.modality = facts.get("modality")
    entry.family = facts.get("family")
    entry.api_text = api_text(facts.get("apis", ()))
    entry.context_window = facts.get("context_window")
    entry.tool_calling = facts.get("tool_calling")
    entry.pricing_model = latest.pricing_model if latest else None
    entry.price = latest.price if latest else None
    entry.royalty_bps = latest.royalty_bps if latest else None
    session.flush()
    # In this transaction: an entry is found exactly while it is listed.
    search_index.index_entry(session, entry)


def listing_facts(session: Session, kind: str, version: RegistryVersion) -> dict[str, Any]:
    """What search filters on: a model's offer, an agent's needs, a solution's model's offer."""
    spec = version.spec
    if kind == "agent":
        needs = spec["requirements"]
        return {
            "apis": needs["apis"],
            "context_window": needs["min_context_window"],
            "tool_calling": needs["tool_calling"],
            "modality": None,
            "family": None,
        }
    if kind == "solution":
        model = repository.versions_by_id(session, [spec["model"]["version_id"]])
        return listing_facts(session, "model", model[spec["model"]["version_id"]])
    return {
        "apis": spec["compatible_api"],
        "context_window": spec["context_window"],
        "tool_calling": spec["tool_calling"],
        "modality": spec["modality"],
        "family": spec["family"],
    }


def needs_of(agent: RegistryVersion) -> AgentNeeds:
    needs = agent.spec["requirements"]
    return AgentNeeds(
        apis=frozenset(needs["apis"]),
        min_context_window=needs["min_context_window"],
        tool_calling=needs["tool_calling"],
        families=frozenset(needs["families"]),
        modalities=frozenset(needs["modalities"]),
    )


def facts_of(model: RegistryVersion) -> ModelFacts:
    spec = model.spec
    return ModelFacts(
        modality=spec["modality"],
        apis=frozenset(spec["compatible_api"]),
        context_window=spec["context_window"],
        tool_calling=spec["tool_calling"],
        family=spec["family"],
    )


# -- finding --------------------------------------------------------------------------------


def find_entry(
    session: Session, slug: str, *, kind: str, for_update: bool = False
) -> RegistryEntry:
    entry = repository.entry_by_slug(session, slug, kind=kind, for_update=for_update)
    if entry is None:
        raise NotFound(f"no {kind} {slug} in the registry", field="slug")
    return entry


def find_version(session: Session, entry: RegistryEntry, text: str | None) -> RegistryVersion:
    """The version ``text`` pins, else the latest active one."""
    if text is None:
        if entry.latest_version is None:
            raise NotFound(
                f"{entry.slug} has no active version",
                code="no_active_version",
                field="version",
                hint="pin a version with ?version=: its versions are deprecated or yanked",
            )
        text = entry.latest_version
    version = repository.version(session, entry.entry_id, text)
    if version is None:
        raise NotFound(f"{entry.slug} has no version {text}", field="version")
    return version

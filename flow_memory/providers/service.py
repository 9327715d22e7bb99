"""Provider-runtime use cases: enroll, pair, heartbeat, publish catalog and capacity, health."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, get_args

from sqlalchemy.orm import Session

from flow_memory.credentials import repository as credentials_repository
from flow_memory.credentials.models import CredentialRef
from flow_memory.credentials.service import resolve_owner
from flow_memory.kit.deps import Principal
from flow_memory.kit.errors import Conflict, Invalid, NotFound
from flow_memory.kit.ids import new_id
from flow_memory.providers import repository
from flow_memory.providers.health import (
    Health,
    HealthThresholds,
    RouteGate,
    RuntimeFacts,
    derive_health,
)
from flow_memory.providers.models import CapacityEntry, CatalogEntry, PairingToken, Provider
from flow_memory.providers.schemas import (
    ProviderCapacity,
    ProviderCatalog,
    ProviderEnroll,
    ProviderHeartbeat,
    RegistryModelRef,
)
from flow_memory.providers.upstream import UpstreamPolicy, UpstreamRefused, check_base_url
from flow_memory.registry import repository as registry_repository
from flow_memory.settings import Settings

PAIRING_HEADER = "x-flow-memory-pairing-token"
PAIRING_PREFIX = "fmpair_"


def thresholds(settings: Settings) -> HealthThresholds:
    return HealthThresholds(
        heartbeat_stale=timedelta(seconds=settings.heartbeat_stale_seconds),
        catalog_stale=timedelta(seconds=settings.catalog_stale_seconds),
        capacity_stale=timedelta(seconds=settings.capacity_stale_seconds),
    )


def get_owned(
    session: Session, *, principal: Principal, provider_id: str, for_update: bool = False
) -> Provider:
    provider = repository.get(session, provider_id, for_update=for_update)
    if provider is None or not principal.can_see(provider.owner_id):
        raise NotFound("provider not found", field="provider_id")
    return provider


def enroll_provider(
    session: Session,
    *,
    principal: Principal,
    body: ProviderEnroll,
    settings: Settings,
    now: datetime,
) -> tuple[Provider, bool]:
    """Enroll a runtime, or update the caller's earlier enrollment of the same name."""
    owner_id = resolve_owner(principal, body.owner_id)
    credential = credentials_repository.get(session, body.credential_ref_id)
    if credential is None or credential.owner_id != owner_id:
        raise NotFound(
            "credential reference not found",
            field="credential_ref_id",
            hint="create one with POST /inference/credential-refs first",
        )
    if credential.status != "active":
        raise Conflict(
            f"credential reference {body.credential_ref_id} is {credential.status}",
            field="credential_ref_id",
            code="credential_ref_revoked",
            hint="enroll with an active credential reference",
        )
    if body.credential_ref is not None and body.credential_ref != credential.credential_ref:
        raise Invalid(
            "credential_ref does not match the reference's current pointer",
            field="credential_ref",
            code="credential_ref_mismatch",
            hint="omit credential_ref or send the current pointer",
        )
    base_url = str(body.base_url).rstrip("/")
    try:
        check_base_url(
            base_url,
            UpstreamPolicy(settings.allow_loopback_upstreams, settings.allow_private_upstreams),
        )
    except UpstreamRefused as refused:
        raise Invalid(
            str(refused),
            field="base_url",
            code="upstream_address_refused",
            hint=f"reason: {refused.reason}",
        ) from None

    provider = repository.find_by_name(session, owner_id, body.provider_name)
    created = provider is None
    if provider is None:
        provider = Provider(
            provider_id=new_id("prov"),
            owner_id=owner_id,
            provider_name=body.provider_name,
            runtime_status="pending_pairing",
            created_at=now,
        )
        session.add(provider)
    if provider.credential_ref_id != credential.credential_ref_id:
        # Routes were disabled because an earlier reference was revoked; a new one lifts that.
        provider.routes_disabled = False
    provider.workspace_id = body.workspace_id
    provider.provider_api = body.provider_api
    provider.base_url = base_url
    provider.credential_ref_id = credential.credential_ref_id
    provider.credential_ref = credential.credential_ref
    provider.supported_units = list(dict.fromkeys(body.supported_units))
    provider.contact = dict(body.contact)
    provider.updated_at = now
    session.flush()
    return provider, created


def issue_pairing_token(
    session: Session,
    *,
    principal: Principal,
    provider_id: str,
    settings: Settings,
    now: datetime,
) -> tuple[PairingToken, str]:
    provider = get_owned(session, principal=principal, provider_id=provider_id)
    secret = PAIRING_PREFIX + secrets.token_urlsafe(24)
    token = PairingToken(
        token_id=new_id("pair"),
        provider_id=provider.provider_id,
        token_hash=_hash(secret),
        token_preview=secret[:12] + "…",
        created_at=now,
        expires_at=now + timedelta(seconds=settings.pairing_token_ttl_seconds),
    )
    session.add(token)
    session.flush()
    return token, secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def record_heartbeat(
    session: Session,
    *,
    principal: Principal,
    provider_id: str,
    body: ProviderHeartbeat,
    pairing_token: str | None,
    now: datetime,
) -> Provider:
    provider = get_owned(session, principal=principal, provider_id=provider_id, for_update=True)
    if pairing_token is not None:
        _redeem_pairing_token(session, provider, pairing_token, now)
    if provider.paired_at is None:
        raise Conflict(
            "the provider is not paired yet",
            code="pairing_required",
            hint=f"request a pairing token and send it in the {PAIRING_HEADER} header "
            "of the first heartbeat",
        )
    provider.last_heartbeat_at = now
    provider.reported_status = body.runtime_status
    provider.agent_version = body.agent_version
    provider.updated_at = now
    session.flush()
    return provider


def _redeem_pairing_token(session: Session, provider: Provider, secret: str, now: datetime) -> None:
    token = repository.find_pairing_token(session, _hash(secret))
    if token is None or token.provider_id != provider.provider_id:
        raise Conflict(
            "the pairing token is not valid for this provider",
            field=PAIRING_HEADER,
            code="pairing_token_invalid",
            hint="request a new pairing token",
        )
    if token.used_at is not None:
        raise Conflict(
            "the pairing token was already used",
            field=PAIRING_HEADER,
            code="pairing_token_used",
            hint="request a new pairing token",
        )
    if token.expires_at <= now:
        raise Conflict(
            "the pairing token has expired",
            field=PAIRING_HEADER,
            code="pairing_token_expired",
            hint="request a new pairing token",
        )
    token.used_at = now
    provider.paired_at = now
    provider.runtime_status = "paired"


def _check_version(current: datetime | None, offered: datetime, what: str) -> None:
    if current is not None and offered < current:
        raise Conflict(
            f"{what}_version {offered.isoformat()} is older than the current {current.isoformat()}",
            field=f"{what}_version",
            code=f"{what}_version_outdated",
            hint=f"publish a {what} with a newer {what}_version",
        )


def publish_catalog(
    session: Session,
    *,
    principal: Principal,
    provider_id: str,
    body: ProviderCatalog,
    now: datetime,
) -> tuple[Provider, list[CatalogEntry]]:
    provider = get_owned(session, principal=principal, provider_id=provider_id, for_update=True)
    _check_version(provider.catalog_version, body.catalog_version, "catalog")
    seen: set[str] = set()
    entries: list[CatalogEntry] = []
    for index, item in enumerate(body.models):
        if item.model in seen:
            raise Invalid(
                "this model appears twice",
                field=f"models[{index}].model",
                code="duplicate_model",
            )
        seen.add(item.model)
        unsupported = [u for u in item.unit_types if u not in provider.supported_units]
        if unsupported:
            raise Invalid(
                f"unit types {', '.join(unsupported)} are not in the provider's supported_units",
                field=f"models[{index}].unit_types",
                code="unit_type_not_supported",
                hint="re-enroll with these units in supported_units",
            )
        named = item.registry_model
        version_id = None if named is None else _registry_version_id(session, named, index)
        entries.append(
            CatalogEntry(
                provider_id=provider.provider_id,
                model=item.model,
                compatible_api=item.compatible_api,
                unit_types=list(dict.fromkeys(item.unit_types)),
                context_window=item.context_window,
                tool_calling=item.tool_calling,
                reference_unit_prices={
                    k: format(v, "f") for k, v in item.reference_unit_prices.items()
                },
                registry_slug=None if named is None else named.slug,
                registry_version=None if named is None else named.version,
                registry_version_id=version_id,
            )
        )
    repository.replace_catalog(session, provider.provider_id, entries)
    provider.catalog_version = body.catalog_version
    provider.catalog_published_at = now
    provider.updated_at = now
    session.flush()
    return provider, entries


def _registry_version_id(session: Session, named: RegistryModelRef, index: int) -> str:
    """The id of the registry model version a catalog entry names; 422 when the registry has
    no such model version, or the version was yanked (deprecated versions may still be
    served)."""
    field = f"models[{index}].registry_model"
    entry = registry_repository.entry_by_slug(session, named.slug, kind="model")
    version = None
    if entry is not None:
        version = registry_repository.version(session, entry.entry_id, named.version)
    if version is None:
        raise Invalid(
            f"the registry has no model {named.slug} version {named.version}",
            field=field,
            code="registry_model_not_found",
            hint="name a model version published with POST /inference/registry/models",
        )
    if version.status == "yanked":
        raise Invalid(
            f"{named.slug} {named.version} was yanked from the registry",
            field=field,
            code="registry_version_yanked",
            hint="name an active or deprecated version",
        )
    return version.version_id


def publish_capacity(
    session: Session,
    *,
    principal: Principal,
    provider_id: str,
    body: ProviderCapacity,
    now: datetime,
) -> tuple[Provider, list[CapacityEntry]]:
    """Check a capacity snapshot, then record it."""
    provider, entries = check_capacity(
        session, principal=principal, provider_id=provider_id, body=body, now=now
    )
    record_capacity(session, provider, entries, body=body, now=now)
    return provider, entries


def check_capacity(
    session: Session,
    *,
    principal: Principal,
    provider_id: str,
    body: ProviderCapacity,
    now: datetime,
) -> tuple[Provider, list[CapacityEntry]]:
    """The provider (its row locked) and the snapshot's entries, or the refusal; writes
    nothing."""
    provider = get_owned(session, principal=principal, provider_id=provider_id, for_update=True)
    _check_version(provider.capacity_version, body.capacity_version, "capacity")
    catalog = {entry.model: entry for entry in repository.catalog(session, provider.provider_id)}
    if not catalog:
        raise Conflict(
            "publish a catalog before capacity",
            code="catalog_required",
            hint=f"POST /inference/providers/{provider_id}/catalog first",
        )
    seen: set[tuple[str, str]] = set()
    entries: list[CapacityEntry] = []
    for index, item in enumerate(body.inventory):
        where = f"inventory[{index}]"
        offered = catalog.get(item.model)
        if offered is None:
            raise Invalid(
                "this model is not in the provider's catalog",
                field=f"{where}.model",
                code="model_not_in_catalog",
            )
        if item.unit_type not in offered.unit_types:
            raise Invalid(
                f"this model is not offered in {item.unit_type} units",
                field=f"{where}.unit_type",
                code="unit_type_not_offered",
            )
        if (item.model, item.unit_type) in seen:
            raise Invalid(
                "this model and unit appear twice",
                field=where,
                code="duplicate_capacity",
            )
        seen.add((item.model, item.unit_type))
        if item.expires_at <= now:
            raise Invalid(
                "expires_at is in the past",
                field=f"{where}.expires_at",
                code="capacity_already_expired",
            )
        if item.available_units and item.min_order_units > item.available_units:
            raise Invalid(
                "min_order_units exceeds available_units",
                field=f"{where}.min_order_units",
                code="min_order_above_available",
            )
        entries.append(
            CapacityEntry(
                provider_id=provider.provider_id,
                model=item.model,
                unit_type=item.unit_type,
                available_units=item.available_units,
                ask_unit_price=item.ask_unit_price,
                min_order_units=item.min_order_units,
                quality_score=item.quality_score,
                reliability_score=item.reliability_score,
                expires_at=item.expires_at,
            )
        )
    return provider, entries


def record_capacity(
    session: Session,
    provider: Provider,
    entries: list[CapacityEntry],
    *,
    body: ProviderCapacity,
    now: datetime,
) -> None:
    """Replace the provider's published capacity with checked entries."""
    repository.replace_capacity(session, provider.provider_id, entries)
    provider.capacity_version = body.capacity_version
    provider.capacity_published_at = now
    provider.updated_at = now
    session.flush()


def provider_health(
    session: Session, provider: Provider, *, settings: Settings, now: datetime
) -> Health:
    return health_of_many(session, [provider.provider_id], settings=settings, now=now)[
        provider.provider_id
    ]


def health_of_many(
    session: Session, provider_ids: Iterable[str], *, settings: Settings, now: datetime
) -> dict[str, Health]:
    """The health of many providers at once, in three queries."""
    ids = sorted(set(provider_ids))
    if not ids:
        return {}
    providers = repository.many(session, ids)
    credentials = credentials_repository.many(session, {p.credential_ref_id for p in providers})
    expiries = repository.latest_capacity_expiry(session, ids)
    limits = thresholds(settings)
    return {
        provider.provider_id: derive_health(
            _facts(
                provider,
                credentials.get(provider.credential_ref_id),
                expiries.get(provider.provider_id),
            ),
            now,
            limits,
        )
        for provider in providers
    }


def route_gates(
    session: Session, provider_ids: Iterable[str], *, settings: Settings, now: datetime
) -> dict[str, str]:
    """The route gate of many providers at once."""
    healths = health_of_many(session, provider_ids, settings=settings, now=now)
    return {provider_id: health.route_gate for provider_id, health in healths.items()}


# Providers whose gates one round of ``route_gate_counts`` reads: a bounded IN list.
_GATE_SLICE = 500


def route_gate_counts(session: Session, *, settings: Settings, now: datetime) -> dict[str, int]:
    """How many enrolled providers stand at each route gate (every gate named, even at 0)."""
    provider_ids = repository.ids(session)
    counts = dict.fromkeys(get_args(RouteGate), 0)
    for start in range(0, len(provider_ids), _GATE_SLICE):
        chunk = provider_ids[start : start + _GATE_SLICE]
        for gate in route_gates(session, chunk, settings=settings, now=now).values():
            counts[gate] += 1
    return counts


def _facts(
    provider: Provider, credential: CredentialRef | None, latest_expiry: datetime | None
) -> RuntimeFacts:
    return RuntimeFacts(
        paired=provider.paired_at is not None,
        routes_disabled=provider.routes_disabled,
        credential_status=credential.status if credential else "revoked",
        credential_pointer_current=credential is not None
        and credential.credential_ref == provider.credential_ref,
        last_heartbeat_at=provider.last_heartbeat_at,
        catalog_published_at=provider.catalog_published_at,
        capacity_published_at=provider.capacity_published_at,
        capacity_latest_expiry=latest_expiry,
        reported_status=provider.reported_status,
    )


def provider_read(provider: Provider, health: Health) -> dict[str, Any]:
    return {
        "provider_id": provider.provider_id,
        "owner_id": provider.owner_id,
        "workspace_id": provider.workspace_id,
        "provider_name": provider.provider_name,
        "provider_api": provider.provider_api,
        "base_url": provider.base_url,
        "credential_ref_id": provider.credential_ref_id,
        "credential_ref": provider.credential_ref,
        "supported_units": list(provider.supported_units),
        "contact": dict(provider.contact),
        "runtime_status": provider.runtime_status,
        "route_gate": health.route_gate,
        "created_at": provider.created_at,
        "updated_at": provider.updated_at,
    }

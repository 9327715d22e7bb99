"""The provider agent's loop: enroll, pair, heartbeat, publish catalog and capacity, recover."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flow_memory.agent.clients import (
    DiscoveredModel,
    FlowMemoryClient,
    FlowMemoryRefused,
    FlowMemoryUnavailable,
    ModelServerClient,
    ModelServerUnavailable,
)
from flow_memory.agent.config import AgentConfig, Offer

log = logging.getLogger("flow_memory.agent")

AGENT_VERSION = "flow-memory-agent/1"
# Flow Memory's identifier rule; a model id outside it cannot be published.
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with a Z and microseconds, as Flow Memory reads it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Backoff:
    """Exponential delays with jitter, capped: half fixed, half random, so retries spread out."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class AgentState:
    """What survives an agent restart: which enrollment and credential reference to reuse."""

    flow_memory_url: str = ""
    provider_name: str = ""
    provider_id: str | None = None
    credential_ref_id: str | None = None


class StateFile:
    """The agent's state as a small JSON file, replaced atomically, readable by its owner only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self, *, flow_memory_url: str, provider_name: str) -> AgentState:
        fresh = AgentState(flow_memory_url, provider_name)
        if self.path is None or not self.path.exists():
            return fresh
        try:
            raw = json.loads(self.path.read_text())
            state = AgentState(**{k: raw.get(k) for k in asdict(fresh)})
        except (OSError, ValueError, TypeError):
            log.warning("ignoring an unreadable state file %s", self.path)
            return fresh
        if (state.flow_memory_url, state.provider_name) != (flow_memory_url, provider_name):
            return fresh
        return state

    def save(self, state: AgentState) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(asdict(state), handle, indent=2)
        os.replace(temporary, self.path)


@dataclass
class AgentStatus:
    """What the agent last did, for logs, tests and a status line."""

    phase: str = "starting"
    provider_id: str | None = None
    paired: bool = False
    model_server_up: bool | None = None
    models: list[str] = field(default_factory=list)
    heartbeats: int = 0
    catalog_publications: int = 0
    capacity_publications: int = 0
    capacity_live: bool = False
    capacity_expires_at: datetime | None = None
    last_error: str | None = None


class ProviderAgent:
    """One provider runtime kept enrolled, paired, alive and published; `step` does one round."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        flow: FlowMemoryClient,
        model_server: ModelServerClient,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        state_file: StateFile | None = None,
    ) -> None:
        self.config = config
        self.flow = flow
        self.model_server = model_server
        self.clock = clock
        self.status = AgentStatus()
        self._rng = rng or random.Random()
        self._flow_backoff = Backoff(
            config.backoff_base_seconds, config.backoff_cap_seconds, self._rng
        )
        self._model_backoff = Backoff(
            config.backoff_base_seconds,
            min(config.backoff_cap_seconds, config.heartbeat_interval_seconds),
            self._rng,
        )
        self._state_file = state_file or StateFile(config.state_file)
        self.state = self._state_file.load(
            flow_memory_url=config.flow_memory_url, provider_name=config.provider_name
        )
        self._published_models: tuple[DiscoveredModel, ...] | None = None
        self._last_version: datetime | None = None
        self._heartbeat_due: datetime | None = None
        self._catalog_due: datetime | None = None
        self._capacity_due: datetime | None = None
        self._withdraw_pending = True  # an earlier run may have left capacity behind

    # -- one round -----------------------------------------------------------------------------

    def step(self) -> float:
        """Do whatever is due now; return the seconds to wait before the next round."""
        try:
            self._ensure_enrolled()
            models = self._probe_model_server()
            self._heartbeat_if_due(up=models is not None)
            if models is None:
                self._withdraw_if_live()
            else:
                self._publish_if_due(models)
            self.status.phase = "serving" if models else "degraded"
        except FlowMemoryUnavailable as error:
            return self._retry_later(f"Flow Memory unavailable ({error})")
        except FlowMemoryRefused as error:
            return self._refused(error)
        if self.status.last_error is not None:
            log.info("recovered: Flow Memory answers again")
            self.status.last_error = None
        self._flow_backoff.reset()
        return self._until_next_round()

    def run(self, stop: threading.Event) -> None:
        """Run rounds until `stop` is set, then withdraw capacity if configured to."""
        log.info(
            "provider agent starting: Flow Memory %s, model server %s, provider %r",
            self.config.flow_memory_url,
            self.config.model_server_url,
            self.config.provider_name,
        )
        while not stop.is_set():
            delay = self.step()
            stop.wait(delay)
        self.shutdown()

    def shutdown(self) -> None:
        """Tell Flow Memory the runtime is draining and withdraw its capacity (best effort)."""
        self.status.phase = "stopping"
        provider_id = self.state.provider_id
        if not self.config.withdraw_on_stop or provider_id is None or not self.status.paired:
            log.info("provider agent stopped")
            return
        try:
            self.flow.heartbeat(provider_id, self._heartbeat_body("draining"))
            self._publish_capacity_body([], self.clock())
            log.info("provider agent stopped; capacity withdrawn")
        except (FlowMemoryUnavailable, FlowMemoryRefused) as error:
            log.warning("provider agent stopped without withdrawing capacity (%s)", error)

    # -- enrollment and pairing ----------------------------------------------------------------

    def _ensure_enrolled(self) -> None:
        if self.status.provider_id is not None:
            return
        self.status.phase = "enrolling"
        credential_ref_id = self._ensure_credential_ref()
        body = {
            "workspace_id": self.config.workspace_id,
            "provider_name": self.config.provider_name,
            "provider_api": "sdk_compatible",
            "base_url": self.config.upstream_base_url,
            "credential_ref_id": credential_ref_id,
            "supported_units": self._supported_units(),
            "contact": {"agent_version": AGENT_VERSION},
        }
        answer = self.flow.enroll(body)
        provider = answer["provider"]
        provider_id: str = provider["provider_id"]
        reused = provider_id == self.state.provider_id
        log.info(
            "enrollment %s: provider %s%s",
            answer["enrollment"],
            provider_id,
            " (the earlier enrollment, reused)" if reused else "",
        )
        if not reused:
            self._forget_publications()
        self.state.provider_id = provider_id
        self._state_file.save(self.state)
        self.status.provider_id = provider_id
        self.status.paired = provider["runtime_status"] != "pending_pairing"
        if not self.status.paired:
            self._pair(provider_id)

    def _ensure_credential_ref(self) -> str:
        if self.config.credential_ref_id:
            return self.config.credential_ref_id
        if self.state.credential_ref_id:
            return self.state.credential_ref_id
        try:
            for ref in self.flow.list_credential_refs():
                if ref["credential_ref"] == self.config.credential_ref:
                    log.info("reusing credential reference %s", ref["credential_ref_id"])
                    return self._remember_credential(ref["credential_ref_id"])
        except FlowMemoryRefused as error:
            if error.status != 403:
                raise
            log.info("this key cannot list credential references; creating one")
        ref = self.flow.create_credential_ref(
            credential_ref=self.config.credential_ref,
            display_name=f"{self.config.provider_name} model server",
            workspace_id=self.config.workspace_id,
        )
        log.info("created credential reference %s", ref["credential_ref_id"])
        return self._remember_credential(ref["credential_ref_id"])

    def _remember_credential(self, credential_ref_id: str) -> str:
        self.state.credential_ref_id = credential_ref_id
        self._state_file.save(self.state)
        return credential_ref_id

    def _pair(self, provider_id: str) -> None:
        self.status.phase = "pairing"
        token = self.flow.pairing_token(provider_id)
        self.flow.heartbeat(provider_id, self._heartbeat_body("ready"), pairing_token=token)
        self.status.paired = True
        self.status.heartbeats += 1
        self._heartbeat_due = self.clock() + timedelta(
            seconds=self.config.heartbeat_interval_seconds
        )
        log.info("paired provider %s", provider_id)

    def _supported_units(self) -> list[str]:
        units = dict.fromkeys(self.config.offer.unit_types)
        for offer in self.config.models.values():
            units.update(dict.fromkeys(offer.unit_types))
        return list(units)

    # -- the model server ----------------------------------------------------------------------

    def _probe_model_server(self) -> tuple[DiscoveredModel, ...] | None:
        try:
            models = tuple(self.model_server.list_models())
        except ModelServerUnavailable as error:
            if self.status.model_server_up is not False:
                log.warning("model server unavailable (%s); withdrawing capacity", error)
                self._heartbeat_due = None
            self.status.model_server_up = False
            return None
        if self.status.model_server_up is False:
            log.info("model server is back; publishing again")
            self._heartbeat_due = None
            self._capacity_due = None
        self.status.model_server_up = True
        self._model_backoff.reset()
        publishable = tuple(m for m in models if self._publishable(m.model))
        self.status.models = [m.model for m in publishable]
        return publishable

    def _publishable(self, model: str) -> bool:
        if not IDENTIFIER.match(model):
            log.warning("skipping model %r: not a valid Flow Memory model id", model)
            return False
        return self.config.offer_for(model).enabled

    # -- heartbeat, catalog, capacity ----------------------------------------------------------

    def _heartbeat_body(self, runtime_status: str) -> dict[str, Any]:
        return {
            "runtime_status": runtime_status,
            "agent_version": AGENT_VERSION,
            "metadata": {"models": ",".join(self.status.models)[:512]},
        }

    def _heartbeat_if_due(self, *, up: bool) -> None:
        now = self.clock()
        if self._heartbeat_due is not None and now < self._heartbeat_due:
            return
        provider_id = self._provider_id()
        body = self._heartbeat_body("ready" if up else "degraded")
        try:
            self.flow.heartbeat(provider_id, body)
        except FlowMemoryRefused as error:
            if error.code != "pairing_required":
                raise
            self._pair(provider_id)
            return
        self.status.heartbeats += 1
        self._heartbeat_due = now + timedelta(seconds=self.config.heartbeat_interval_seconds)
        log.debug("heartbeat sent (%s)", body["runtime_status"])

    def _publish_if_due(self, models: tuple[DiscoveredModel, ...]) -> None:
        now = self.clock()
        if not models:
            if self._published_models != models:
                log.warning("the model server lists no publishable model; withdrawing capacity")
                self._published_models = models
            self._withdraw_if_live()
            return
        catalog_stale = self._catalog_due is None or now >= self._catalog_due
        if models != self._published_models or catalog_stale:
            self._publish_catalog(models, now)
            self._capacity_due = None
        if self._capacity_due is None or now >= self._capacity_due:
            self._publish_capacity(models, now)

    def _version(self, now: datetime) -> datetime:
        """Strictly increasing versions, even if two publications share a clock reading."""
        if self._last_version is not None and now <= self._last_version:
            now = self._last_version + timedelta(milliseconds=1)
        self._last_version = now
        return now

    def _publish_catalog(self, models: tuple[DiscoveredModel, ...], now: datetime) -> None:
        entries = []
        for found in models:
            offer = self.config.offer_for(found.model)
            entry: dict[str, Any] = {
                "model": found.model,
                "compatible_api": offer.compatible_api,
                "unit_types": offer.unit_types,
                "context_window": offer.context_window
                or found.context_window
                or self.config.default_context_window,
                "tool_calling": offer.tool_calling,
            }
            references = {
                unit: terms.reference_unit_price
                for unit, terms in offer.units.items()
                if terms.reference_unit_price is not None
            }
            if references:
                entry["reference_unit_prices"] = references
            entries.append(entry)
        body = {"catalog_version": iso(self._version(now)), "models": entries}
        self.flow.publish_catalog(self._provider_id(), body)
        self._published_models = models
        self._catalog_due = now + timedelta(seconds=self.config.catalog_refresh_seconds)
        self.status.catalog_publications += 1
        log.info("catalog published: %s", ", ".join(m.model for m in models))

    def _publish_capacity(self, models: tuple[DiscoveredModel, ...], now: datetime) -> None:
        ttl = self.config.capacity_ttl_seconds
        expires_at = now + timedelta(seconds=ttl)
        inventory = []
        for found in models:
            offer = self.config.offer_for(found.model)
            inventory.extend(_inventory(found.model, offer, ttl=ttl, expires_at=expires_at))
        self._publish_capacity_body(inventory, now)
        self.status.capacity_live = any(item["available_units"] for item in inventory)
        self.status.capacity_expires_at = expires_at
        self._withdraw_pending = not self.status.capacity_live
        # Renew at half-life (or sooner) so a late round or a short outage never lets capacity
        # lapse, and often enough that Flow Memory never sees the snapshot as stale.
        renew = min(ttl / 2, self.config.capacity_refresh_seconds)
        self._capacity_due = now + timedelta(seconds=renew)
        summary = "; ".join(
            f"{i['model']}/{i['unit_type']} {i['available_units']} units "
            f"at {format(i['ask_unit_price'], 'f')}"
            for i in inventory
        )
        log.info("capacity published until %s: %s", iso(expires_at), summary or "none")

    def _publish_capacity_body(self, inventory: list[dict[str, Any]], now: datetime) -> None:
        body = {"capacity_version": iso(self._version(now)), "inventory": inventory}
        self.flow.publish_capacity(self._provider_id(), body)
        self.status.capacity_publications += 1

    def _withdraw_if_live(self) -> None:
        if not (self.status.capacity_live or self._withdraw_pending):
            return
        try:
            self._publish_capacity_body([], self.clock())
        except FlowMemoryRefused as error:
            if error.code != "catalog_required":
                raise
            # Nothing was ever published under this enrollment, so nothing is left to withdraw.
        else:
            log.info("capacity withdrawn")
        self.status.capacity_live = False
        self.status.capacity_expires_at = None
        self._withdraw_pending = False
        self._capacity_due = None

    # -- failures ------------------------------------------------------------------------------

    def _retry_later(self, reason: str) -> float:
        delay = self._flow_backoff.next_delay()
        if self.status.last_error != reason:
            log.warning("%s; retrying in %.1fs", reason, delay)
        else:
            log.debug("%s; retrying in %.1fs", reason, delay)
        self.status.last_error = reason
        # After an outage, say we are alive and re-publish capacity straight away.
        self._heartbeat_due = None
        self._capacity_due = None
        return delay

    def _refused(self, error: FlowMemoryRefused) -> float:
        if error.status == 404 and error.code == "not_found":
            if "credential reference" in error.message:
                log.warning("the credential reference is gone; resolving it again")
                self.state.credential_ref_id = None
            else:
                log.warning("the enrollment is gone (%s); enrolling again", error.message)
                self.state.provider_id = None
            self._state_file.save(self.state)
            self.status.provider_id = None
        elif error.code == "catalog_required":
            self._catalog_due = None
            self._published_models = None
        elif error.code == "credential_ref_revoked":
            log.error(
                "the credential reference was revoked by an operator; configure a new "
                "credential_ref (the agent does not replace a revoked reference by itself)"
            )
        return self._retry_later(f"Flow Memory refused the request ({error})")

    def _forget_publications(self) -> None:
        self._published_models = None
        self._catalog_due = None
        self._capacity_due = None
        self._heartbeat_due = None
        self._withdraw_pending = True
        self.status.capacity_live = False

    def _provider_id(self) -> str:
        assert self.status.provider_id is not None
        return self.status.provider_id

    def _until_next_round(self) -> float:
        now = self.clock()
        moments = [m for m in (self._heartbeat_due, self._capacity_due) if m is not None]
        delay = min((m - now).total_seconds() for m in moments) if moments else 0.0
        if self.status.model_server_up is False:
            delay = min(delay, self._model_backoff.next_delay())
        return max(delay, 0.05)


def _inventory(model: str, offer: Offer, *, ttl: int, expires_at: datetime) -> list[dict[str, Any]]:
    lines = []
    for unit, terms in offer.units.items():
        units = terms.units_for(concurrency=offer.concurrency, window_seconds=ttl)
        lines.append(
            {
                "model": model,
                "unit_type": unit,
                "available_units": units,
                "ask_unit_price": terms.ask_price(),
                "min_order_units": min(terms.min_order_units, units) if units else 1,
                "expires_at": iso(expires_at),
            }
        )
    return lines
